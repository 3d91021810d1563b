"""The SAB sparsifier (Ke et al. 2018, Algorithm 1 lines 6-8) as a `jax.custom_vjp`.

For raw attention weights `a [..., M]` over M memory slots (invalid slots hold `-inf`):

    tau = the (k+1)-th largest raw weight
    w_i = relu(a_i - tau) / sum_j relu(a_j - tau)            ("paper", Algorithm 1)

so exactly the k largest weights are non-zero ("prominence" over the (k+1)-th). The original
release subtracted the k-th largest weight instead (`mode="release"`), which leaves k - 1
memories active; the release also added 1e-7 to tau and to the normaliser, which we do not.

Fewer than k + 1 valid memories. The threshold does not exist, so (as the original release did
when `time_step <= top_k`) the weights are a softmax over the valid raw weights: every valid
memory is selected. With no valid memory all weights are zero (the summary is the zero vector).
This holds in both modes.

Credit (`credit`, the gradient only; the forward values are the same):

- `"paper"` (default): Ke et al. sec. 3.2, "the gradient ... flows ... to the at-most k_top
  memories ... (and no others)": the threshold tau is a constant of the backward pass
  (`stop_gradient`), so only the raw weights of the selected entries get gradient; the threshold
  memory gets none, through its key or otherwise.
- `"exact"`: the derivative of Algorithm 1 as written, tau included: the threshold entry's raw
  weight also gets gradient (tau moves the others' prominence), so the threshold memory gets
  credit through its key. This is what the authors' release computed (PyTorch autograd through a
  threshold it did not detach), i.e. the variant behind the paper's numbers.

The custom VJP. `lax.top_k` picks the k + 1 largest entries once in the forward pass; the
backward pass works on those k + 1 entries only (O(k) per row, plus one scatter into a zero
cotangent). It equals `jax.grad` of the plain formula (`plain_sparsify`, same `credit`) wherever
that is differentiable (no ties among the k + 1 largest). Every raw weight outside the k
selected entries and (for "exact") the threshold entry gets exactly zero.

A normaliser of 0 (all k selected weights tie with tau) gives all-zero weights and gradients.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

MODES = ("paper", "release")
CREDITS = ("paper", "exact")


def _threshold(tau, credit: str):
  # "paper" credit: the threshold is a constant of the backward pass (sec. 3.2).
  return jax.lax.stop_gradient(tau) if credit == "paper" else tau


def _from_top(vals, k: int, mode: str, credit: str = "paper"):
  """Weights of the k+1 largest raw weights `vals [..., k+1]` (descending, -inf = invalid).

  Returns `[..., k]`: the weights of `vals[..., :k]` (the last entry, tau, always gets 0).
  """
  finite = jnp.isfinite(vals)
  safe = jnp.where(finite, vals, 0.0)
  # Sparse branch: all k+1 exist.
  n_sel = k if mode == "paper" else k - 1
  tau = _threshold(safe[..., n_sel], credit)
  r = jax.nn.relu(safe[..., :k] - tau[..., None])
  r = jnp.where(jnp.arange(k) < n_sel, r, 0.0)
  total = jnp.sum(r, axis=-1, keepdims=True)
  sparse = r / jnp.where(total > 0, total, 1.0)
  # Dense branch (fewer than k+1 valid memories): softmax over the valid ones among the first k.
  fin_k = finite[..., :k]
  shifted = jnp.where(fin_k, safe[..., :k] - safe[..., :1], -jnp.inf)
  e = jnp.where(fin_k, jnp.exp(jnp.where(fin_k, shifted, 0.0)), 0.0)
  z = jnp.sum(e, axis=-1, keepdims=True)
  dense = e / jnp.where(z > 0, z, 1.0)
  return jnp.where(finite[..., k:k + 1], sparse, dense)


def _scatter(values, idx, size):
  """`out[..., idx[..., j]] = values[..., j]` into zeros of shape `[..., size]`."""
  lead = values.shape[:-1]
  flat_v = values.reshape((-1, values.shape[-1]))
  flat_i = idx.reshape((-1, idx.shape[-1]))
  rows = jnp.arange(flat_v.shape[0])[:, None]
  out = jnp.zeros((flat_v.shape[0], size), values.dtype).at[rows, flat_i].set(flat_v, mode="drop")
  return out.reshape(lead + (size,))


def pad_to(a, n: int):
  """Pads the last axis of `a` with `-inf` to at least `n` entries (for `lax.top_k(a, n)`)."""
  m = a.shape[-1]
  if m >= n:
    return a
  pad = [(0, 0)] * (a.ndim - 1) + [(0, n - m)]
  return jnp.pad(a, pad, constant_values=-jnp.inf)


def weights_of_top(vals, k: int, mode: str = "paper", credit: str = "paper"):
  """The weights of the k largest of `vals [..., k+1]`, the k+1 largest raw weights in
  descending order (`-inf` = invalid), as `sparsify` computes them: `[..., k]`.

  Differentiable with plain autodiff (with `credit="paper"` the last entry, the threshold, gets
  no gradient); the `sab` learner applies it to raw weights recomputed on the gathered k+1
  candidates, so its backward pass never touches the other memories.
  """
  return _from_top(vals, k, mode, credit)


@functools.partial(jax.custom_vjp, nondiff_argnums=(1, 2, 3))
def sparsify(a, k: int, mode: str = "paper", credit: str = "paper"):
  """Sparsified attention weights.

  Args:
    a: `[..., M]` raw attention weights; `-inf` marks an invalid (empty) memory slot.
    k: k_top >= 1 (>= 2 in "release" mode), a static int.
    mode: "paper" (subtract the (k+1)-th largest) or "release" (subtract the k-th).
    credit: "paper" (gradient to the selected entries only) or "exact" (the threshold too).

  Returns:
    `[..., M]` non-negative weights summing to 1 over the last axis (0 if no slot is valid).
  """
  return _fwd(a, k, mode, credit)[0]


def _fwd(a, k, mode, credit):
  m = a.shape[-1]
  vals, idx = jax.lax.top_k(pad_to(a, k + 1), k + 1)
  w = _from_top(vals, k, mode, credit)
  out = _scatter(w, idx[..., :k], m)  # padded slots (index >= m) are dropped
  return out, (vals, idx)


def _sparsify_fwd(a, k, mode, credit):
  return _fwd(a, k, mode, credit)


def _sparsify_bwd(k, mode, credit, res, g):
  vals, idx = res
  m = g.shape[-1]
  g_sel = jnp.take_along_axis(g, jnp.minimum(idx[..., :k], m - 1), axis=-1)
  _, vjp = jax.vjp(lambda v: _from_top(v, k, mode, credit), vals)
  (g_vals,) = vjp(g_sel)
  g_vals = jnp.where(jnp.isfinite(vals), g_vals, 0.0)
  lead = g_vals.shape[:-1]
  flat_g = g_vals.reshape((-1, k + 1))
  flat_i = idx.reshape((-1, k + 1))
  rows = jnp.arange(flat_g.shape[0])[:, None]
  size = max(m, k + 1)
  out = jnp.zeros((flat_g.shape[0], size), g.dtype).at[rows, flat_i].add(flat_g)
  return (out[:, :m].reshape(lead + (m,)),)


sparsify.defvjp(_sparsify_fwd, _sparsify_bwd)


def plain_sparsify(a, k: int, mode: str = "paper", credit: str = "paper"):
  """The same function written densely with `jnp.sort` (the reference for tests).

  Rows must hold at least k + 1 finite entries (the sparse regime).
  """
  srt = jnp.sort(a, axis=-1)[..., ::-1]
  tau = _threshold(srt[..., k] if mode == "paper" else srt[..., k - 1], credit)
  r = jax.nn.relu(a - tau[..., None])
  return r / jnp.sum(r, axis=-1, keepdims=True)
