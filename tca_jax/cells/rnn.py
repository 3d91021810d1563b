"""The simple recurrent network (SRN), with tanh or ReLU units; the IRNN is its identity init.

    h_t = act(x_t W_xh + h_{t-1} W_hh + b_h)

Weights use the row-vector convention (`W_hh` is `[hidden_prev, hidden_next]`), the transpose of
the papers' `W_hh h`; spectra and gradients are the same up to that transpose.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from tca_jax.cells.base import Cell
from tca_jax.cells import initializers
from tca_jax.registry import check_choice, check_positive

ACTIVATIONS = {"tanh": jnp.tanh, "relu": jax.nn.relu}


def init_params(key, input_size: int, hidden_size: int, recurrent_init: str,
                init_scale=None) -> dict:
  """The SRN's parameters (the leaky SRN shares them): `{"W_xh": [in, H], "W_hh": [H, H],
  "b_h": [H]}`, `W_hh` drawn by `recurrent_init` at `init_scale`."""
  k_in, k_rec = jax.random.split(key)
  h = hidden_size
  scale = initializers.recurrent_scale(recurrent_init, init_scale, h)
  return {
      "W_xh": initializers.input_matrix(k_in, (input_size, h)),
      "W_hh": initializers.recurrent(recurrent_init, k_rec, (h, h), scale),
      "b_h": jnp.zeros((h,)),
  }


@dataclasses.dataclass(frozen=True)
class SRN(Cell):
  """Simple recurrent network cell.

  Attributes:
    hidden_size: number of hidden units H.
    activation: "tanh" or "relu".
    recurrent_init: initialiser of `W_hh`: "normal" (std `init_scale`), "orthogonal" (gain
      `init_scale`) or "identity" (`init_scale` * I, the IRNN of Le et al. 2015, with "relu").
    init_scale: see `recurrent_init`; when None, 1/sqrt(H) for "normal" and 1.0 otherwise.
  """

  hidden_size: int
  activation: str = "tanh"
  recurrent_init: str = "orthogonal"
  init_scale: float | None = None

  def __post_init__(self):
    check_positive(self.hidden_size, "model.hidden_size")
    check_choice(self.activation, "model.activation", tuple(ACTIVATIONS))
    check_choice(self.recurrent_init, "model.recurrent_init", initializers.RECURRENT_INITS)

  @property
  def feature_size(self) -> int:
    return self.hidden_size

  def init(self, key, input_size: int):
    """Returns `{"W_xh": [in, H], "W_hh": [H, H], "b_h": [H]}`."""
    return init_params(key, input_size, self.hidden_size, self.recurrent_init, self.init_scale)

  def initial_state(self, batch_size: int, dtype=None):
    """Zeros, `[batch, H]`."""
    return jnp.zeros((batch_size, self.hidden_size), dtype)

  def pre_activation(self, params, state, x):
    """`x W_xh + h W_hh + b_h`, `[batch, H]`."""
    return x @ params["W_xh"] + state @ params["W_hh"] + params["b_h"]

  def step(self, params, state, x):
    """One transition. Args: state `[batch, H]`, x `[batch, in]`. Returns (h_t, h_t)."""
    h = ACTIVATIONS[self.activation](self.pre_activation(params, state, x))
    return h, h

  def recurrent_matrix(self, params):
    return params["W_hh"]
