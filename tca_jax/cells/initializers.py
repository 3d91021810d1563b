"""Weight initialisers for recurrent matrices.

All return `[fan_in, fan_out]` matrices for the row-vector convention `x @ W` used by every cell.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

RECURRENT_INITS = ("normal", "orthogonal", "identity")


def normal(key, shape, scale):
  """Gaussian entries with standard deviation `scale`."""
  return scale * jax.random.normal(key, shape)


def orthogonal(key, shape, scale=1.0):
  """`scale` times a (semi-)orthogonal matrix drawn from the Haar measure (QR with sign fix)."""
  rows, cols = shape
  n = max(rows, cols)
  a = jax.random.normal(key, (n, n))
  q, r = jnp.linalg.qr(a)
  q = q * jnp.sign(jnp.diag(r))[None, :]
  return scale * q[:rows, :cols]


def identity(key, shape, scale=1.0):
  """`scale` times the identity (IRNN, Le et al. 2015); `key` is unused."""
  del key
  rows, cols = shape
  return scale * jnp.eye(rows, cols)


def recurrent(kind: str, key, shape, scale: float):
  """The recurrent-matrix initialiser named `kind` (one of `RECURRENT_INITS`)."""
  if kind == "normal":
    return normal(key, shape, scale)
  if kind == "orthogonal":
    return orthogonal(key, shape, scale)
  if kind == "identity":
    return identity(key, shape, scale)
  raise ValueError(f"model.recurrent_init={kind!r} is not allowed; allowed: {', '.join(RECURRENT_INITS)}")


def recurrent_scale(kind: str, scale, hidden_size: int) -> float:
  """`scale`, or its default when None: 1/sqrt(H) for "normal", 1.0 otherwise."""
  if scale is not None:
    return scale
  return 1.0 / hidden_size ** 0.5 if kind == "normal" else 1.0


def input_matrix(key, shape):
  """Input weights: Gaussian with variance 1 / fan_in."""
  return jax.random.normal(key, shape) / jnp.sqrt(shape[0])
