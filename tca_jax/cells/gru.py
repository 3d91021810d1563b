"""The GRU cell (Cho et al. 2014), the reset gate applied before the recurrent matmul.

    z = sigmoid(x W_xz + h U_z + b_z),  r = sigmoid(x W_xr + h U_r + b_r)
    n = tanh(x W_xn + (r * h) U_n + b_n)
    h_t = (1 - z) * n + z * h_{t-1}

This is Cho et al.'s original form; cuDNN's variant (r applied after `h U_n`) differs.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from tca_jax.cells.base import Cell
from tca_jax.cells import initializers
from tca_jax.registry import check_choice, check_positive


@dataclasses.dataclass(frozen=True)
class GRU(Cell):
  """GRU cell; the state is `[batch, H]`.

  Attributes:
    hidden_size: H.
    recurrent_init: initialiser of each block of the recurrent weights.
    init_scale: gain / std of `recurrent_init` (None: 1.0, or 1/sqrt(H) for "normal").
  """

  hidden_size: int
  recurrent_init: str = "orthogonal"
  init_scale: float | None = None

  def __post_init__(self):
    check_positive(self.hidden_size, "model.hidden_size")
    check_choice(self.recurrent_init, "model.recurrent_init", initializers.RECURRENT_INITS)

  @property
  def feature_size(self) -> int:
    return self.hidden_size

  def init(self, key, input_size: int):
    """Returns `{"W_x": [in, 3H], "U_zr": [H, 2H], "U_n": [H, H], "b": [3H]}` (order z, r, n)."""
    h = self.hidden_size
    k_in, k_z, k_r, k_n = jax.random.split(key, 4)
    scale = initializers.recurrent_scale(self.recurrent_init, self.init_scale, h)
    rec = lambda k: initializers.recurrent(self.recurrent_init, k, (h, h), scale)
    return {
        "W_x": initializers.input_matrix(k_in, (input_size, 3 * h)),
        "U_zr": jnp.concatenate([rec(k_z), rec(k_r)], axis=1),
        "U_n": rec(k_n),
        "b": jnp.zeros((3 * h,)),
    }

  def initial_state(self, batch_size: int, dtype=None):
    return jnp.zeros((batch_size, self.hidden_size), dtype)

  def step(self, params, state, x):
    """One transition. Args: state `[batch, H]`, x `[batch, in]`. Returns (h_t, h_t)."""
    h = self.hidden_size
    xw = x @ params["W_x"] + params["b"]
    zr = jax.nn.sigmoid(xw[:, :2 * h] + state @ params["U_zr"])
    z, r = zr[:, :h], zr[:, h:]
    n = jnp.tanh(xw[:, 2 * h:] + (r * state) @ params["U_n"])
    new = (1.0 - z) * n + z * state
    return new, new

  def recurrent_matrix(self, params):
    return params["U_n"]
