"""Network-design cells of the BPTT review: the echo state network and the orthogonal RNN.

`esn` (Jaeger 2001): an SRN whose recurrent matrix is drawn once, scaled to spectral radius
`spectral_radius`, and never trained; only the input weights, the bias and the readout learn. The
cell declares `W_hh` in `frozen_params`, which `config.build` adds to `model.frozen`, so every
learner's update for it is exactly zero (`learners.frozen`).

`orthogonal` (Lezcano-Casado & Martinez-Rubio 2019, expRNN): `W_hh = expm(A - A^T)` with `A`
free, so `W_hh` is orthogonal for every `A` and gradients never vanish or explode through it.
`jax.scipy.linalg.expm` (Pade approximant with scaling and squaring) and its autodiff derivative
are used rather than a hand-written Frechet derivative.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import jax
import jax.numpy as jnp
import numpy as np

from tca_jax.cells.base import Cell
from tca_jax.cells import initializers
from tca_jax.cells.rnn import ACTIVATIONS
from tca_jax.registry import check_choice, check_positive


def _radius(w):
  w = np.asarray(w)
  return np.max(np.abs(np.linalg.eigvals(w.astype(np.float64)))).astype(w.dtype)


class _SRNStep(Cell):
  """The SRN step shared by both cells; subclasses provide `recurrent_matrix(params)`."""

  hidden_size: int
  activation: str

  @property
  def feature_size(self) -> int:
    return self.hidden_size

  def initial_state(self, batch_size: int, dtype=None):
    return jnp.zeros((batch_size, self.hidden_size), dtype)

  def step(self, params, state, x):
    """`h_t = act(x W_xh + h W_hh + b_h)`; state `[batch, H]`, x `[batch, in]`."""
    pre = x @ params["W_xh"] + state @ self.recurrent_matrix(params) + params["b_h"]
    h = ACTIVATIONS[self.activation](pre)
    return h, h


@dataclasses.dataclass(frozen=True)
class ESN(_SRNStep):
  """Echo state network: an SRN with a fixed random recurrent matrix.

  Attributes:
    hidden_size: H.
    spectral_radius: rho, the largest eigenvalue modulus of the initial (and only) `W_hh`.
    activation: "tanh" or "relu".
  """

  frozen_params: ClassVar[tuple] = ("W_hh",)  # paths inside the core's params
  hidden_size: int
  spectral_radius: float = 0.9
  activation: str = "tanh"

  def __post_init__(self):
    check_positive(self.hidden_size, "model.hidden_size")
    check_positive(self.spectral_radius, "model.spectral_radius")
    check_choice(self.activation, "model.activation", tuple(ACTIVATIONS))

  def init(self, key, input_size: int):
    """`{"W_xh": [in, H], "W_hh": [H, H] at spectral radius rho, "b_h": [H]}`."""
    k_in, k_rec = jax.random.split(key)
    h = self.hidden_size
    w = jax.random.normal(k_rec, (h, h)) / np.sqrt(h)
    # The eigenvalues of a non-symmetric matrix need LAPACK's geev, which JAX has on the CPU
    # only, so they are computed on the host (numpy), also under jit/vmap; the power method would
    # oscillate on the complex pair that usually has the largest modulus.
    radius = jax.pure_callback(_radius, jax.ShapeDtypeStruct((), w.dtype), w,
                               vmap_method="sequential")
    return {"W_xh": initializers.input_matrix(k_in, (input_size, h)),
            "W_hh": w * (self.spectral_radius / radius).astype(w.dtype),
            "b_h": jnp.zeros((h,))}

  def recurrent_matrix(self, params):
    return params["W_hh"]


@dataclasses.dataclass(frozen=True)
class OrthogonalRNN(_SRNStep):
  """SRN with `W_hh = expm(A - A^T)` (always orthogonal).

  Attributes:
    hidden_size: H.
    activation: "tanh" or "relu".
  """

  hidden_size: int
  activation: str = "tanh"

  def __post_init__(self):
    check_positive(self.hidden_size, "model.hidden_size")
    check_choice(self.activation, "model.activation", tuple(ACTIVATIONS))

  def init(self, key, input_size: int):
    """`{"W_xh": [in, H], "A": [H, H], "b_h": [H]}`; `A` small so `W_hh` starts near a rotation
    of moderate angles (expRNN initialises the skew part; here `A ~ N(0, 1/H)`)."""
    k_in, k_rec = jax.random.split(key)
    h = self.hidden_size
    return {"W_xh": initializers.input_matrix(k_in, (input_size, h)),
            "A": jax.random.normal(k_rec, (h, h)) / np.sqrt(h),
            "b_h": jnp.zeros((h,))}

  def recurrent_matrix(self, params):
    a = params["A"]
    return jax.scipy.linalg.expm(a - a.T)
