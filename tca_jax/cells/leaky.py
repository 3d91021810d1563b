"""The leaky SRN: the continuous-time RNN of computational neuroscience, Euler-discretised.

    h_t = (1 - alpha) h_{t-1} + alpha act(x_t W_xh + h_{t-1} W_hh + b_h)

`alpha = dt / tau` in (0, 1] is the leak rate; `alpha = 1` is the `srn` cell exactly (same
parameters, same initialisers, same step). Row-vector convention as in `cells.rnn`. RFLO
(Murray 2019) and e-prop (Bellec et al. 2020) were written for this cell.

Not a subclass of `SRN` on purpose: learners that check `isinstance(core, SRN)` (TPTT's exact
inverse) assume the non-leaky step.
"""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp

from tca_jax.cells.base import Cell
from tca_jax.cells import initializers
from tca_jax.cells import rnn
from tca_jax.cells.rnn import ACTIVATIONS
from tca_jax.registry import ConfigError, check_choice, check_positive


@dataclasses.dataclass(frozen=True)
class LeakySRN(Cell):
  """Leaky SRN cell; the state is `[batch, H]`.

  Attributes:
    hidden_size: H.
    alpha: leak rate in (0, 1] (`dt / tau`); 1 is the SRN.
    activation: "tanh" or "relu".
    recurrent_init: "normal", "orthogonal" or "identity" (see `cells.rnn.SRN`).
    init_scale: gain / std of `recurrent_init` (None: 1.0, or 1/sqrt(H) for "normal").
  """

  hidden_size: int
  alpha: float = 0.5
  activation: str = "tanh"
  recurrent_init: str = "orthogonal"
  init_scale: float | None = None

  def __post_init__(self):
    check_positive(self.hidden_size, "model.hidden_size")
    if isinstance(self.alpha, bool) or not isinstance(self.alpha, (int, float)) or not (
        0 < self.alpha <= 1):
      raise ConfigError(f"model.alpha={self.alpha!r} must be a number in (0, 1]")
    check_choice(self.activation, "model.activation", tuple(ACTIVATIONS))
    check_choice(self.recurrent_init, "model.recurrent_init", initializers.RECURRENT_INITS)

  @property
  def feature_size(self) -> int:
    return self.hidden_size

  def init(self, key, input_size: int):
    """Returns `{"W_xh": [in, H], "W_hh": [H, H], "b_h": [H]}` (the SRN's init)."""
    return rnn.init_params(key, input_size, self.hidden_size, self.recurrent_init,
                           self.init_scale)

  def initial_state(self, batch_size: int, dtype=None):
    return jnp.zeros((batch_size, self.hidden_size), dtype)

  def pre_activation(self, params, state, x):
    """`u_t = x W_xh + h W_hh + b_h`, `[batch, H]`."""
    return x @ params["W_xh"] + state @ params["W_hh"] + params["b_h"]

  def step(self, params, state, x):
    """One transition. Args: state `[batch, H]`, x `[batch, in]`. Returns (h_t, h_t)."""
    drive = ACTIVATIONS[self.activation](self.pre_activation(params, state, x))
    if self.alpha == 1:  # exactly the SRN's arithmetic (no 0 * h term)
      return drive, drive
    h = (1 - self.alpha) * state + self.alpha * drive
    return h, h

  def recurrent_matrix(self, params):
    return params["W_hh"]
