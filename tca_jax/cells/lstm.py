"""The LSTM cell (Hochreiter & Schmidhuber 1997, with forget gates, Gers et al. 2000).

    [i, f, g, o] = x_t W_x + h_{t-1} W_h + b            (one fused [in, 4H] / [H, 4H] matmul each)
    c_t = sigmoid(f) * c_{t-1} + sigmoid(i) * tanh(g)
    h_t = sigmoid(o) * tanh(c_t)

No peepholes. The forget-gate bias starts at `forget_bias` (1.0, Jozefowicz et al. 2015).
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar, NamedTuple

import jax
import jax.numpy as jnp

from tca_jax.cells.base import Cell
from tca_jax.cells import initializers
from tca_jax.ops.lstm_scan import lstm_scan
from tca_jax.registry import check_choice, check_positive


class LSTMState(NamedTuple):
  h: jax.Array  # [batch, H]
  c: jax.Array  # [batch, H]


@dataclasses.dataclass(frozen=True)
class LSTM(Cell):
  """LSTM cell; the state is `LSTMState(h, c)` and the readout sees `h`.

  Attributes:
    hidden_size: H.
    recurrent_init: initialiser of each gate's block of `W_h` ("orthogonal", "normal", "identity").
    init_scale: gain / std of `recurrent_init` (None: 1.0, or 1/sqrt(H) for "normal").
    forget_bias: initial bias of the forget gate.
  """

  hidden_size: int
  recurrent_init: str = "orthogonal"
  init_scale: float | None = None
  forget_bias: float = 1.0

  has_fused_scan: ClassVar[bool] = True

  def __post_init__(self):
    check_positive(self.hidden_size, "model.hidden_size")
    check_choice(self.recurrent_init, "model.recurrent_init", initializers.RECURRENT_INITS)

  @property
  def feature_size(self) -> int:
    return self.hidden_size

  def init(self, key, input_size: int):
    """Returns `{"W_x": [in, 4H], "W_h": [H, 4H], "b": [4H]}`, gates ordered i, f, g, o."""
    h = self.hidden_size
    k_in, *k_rec = jax.random.split(key, 5)
    scale = initializers.recurrent_scale(self.recurrent_init, self.init_scale, h)
    w_h = jnp.concatenate(
        [initializers.recurrent(self.recurrent_init, k, (h, h), scale) for k in k_rec], axis=1)
    b = jnp.zeros((4 * h,)).at[h:2 * h].set(self.forget_bias)
    return {"W_x": initializers.input_matrix(k_in, (input_size, 4 * h)), "W_h": w_h, "b": b}

  def initial_state(self, batch_size: int, dtype=None) -> LSTMState:
    shape = (batch_size, self.hidden_size)
    return LSTMState(jnp.zeros(shape, dtype), jnp.zeros(shape, dtype))

  def hidden(self, state: LSTMState):
    return state.h

  # recurrent_matrix: the Cell default, None. `W_h` is `[H, 4H]`, four gate blocks and no one
  # square matrix, so no spectral radius is logged (declared here, not probed).

  def step(self, params, state: LSTMState, x):
    """One transition. Args: state `LSTMState([batch, H], [batch, H])`, x `[batch, in]`."""
    new = self.from_gates(self.gates(params, state.h, x), state.c)
    return new, new.h

  def fused_scan(self, params, state: LSTMState, inputs, cut, unroll: int = 1,
                 kernel: str = "xla"):
    """The window as one op with a hand-written VJP (`tca_jax.ops.lstm_scan`): the same values
    and gradients as scanning `step`, with `cut` as block truncation."""
    hs, (h, c) = lstm_scan(params["W_x"], params["W_h"], params["b"], state.h, state.c, inputs,
                           cut, unroll, kernel)
    return LSTMState(h, c), hs

  # The two halves of a step, for hand-written backward passes (the `sab` learner's).

  @staticmethod
  def gates(params, h, x):
    """Gate pre-activations `[batch, 4H]` = x W_x + h W_h + b."""
    return x @ params["W_x"] + h @ params["W_h"] + params["b"]

  @staticmethod
  def from_gates(gates, c) -> LSTMState:
    """The state from the pre-activations `[batch, 4H]` and the previous cell state `[batch, H]`."""
    i, f, g, o = jnp.split(gates, 4, axis=-1)
    c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
    return LSTMState(jax.nn.sigmoid(o) * jnp.tanh(c), c)
