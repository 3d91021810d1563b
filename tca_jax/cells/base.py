"""The cell interface as code: what every cell has, and the defaults of what some cells have.

A cell is a frozen dataclass subclassing `Cell` (hashable, a static argument of `jax.jit`):

    init(key, input_size) -> params                         a pytree
    initial_state(batch_size, dtype=None) -> state          a pytree of [batch, ...] arrays
    step(params, state, x [batch, in]) -> (state, features [batch, feature_size])
    feature_size: int                                        what the readout sees

and, with defaults here, members that the trainer and the diagnostics use without asking whether
a cell has them:

    recurrent_matrix(params) -> [H, H] or None   the matrix whose spectral radius is logged
    hidden(state) -> [batch, H]                  the hidden output h_t inside a state
    has_attention_map, attention_map(params, inputs)   cores with a memory (SAB)
    has_fused_scan, fused_scan(params, state, inputs, cut, unroll)
                                                 the window as one op with a hand VJP (LSTM)

`config.build` checks once that `model.cell` builds a `Cell`.
"""

from __future__ import annotations

from typing import Any, ClassVar, Optional

import jax


class Cell:
  """Base class of every cell: the required members, and defaults for the optional ones."""

  # Whether `attention_map` draws the attention over memories (the trainer plots it).
  has_attention_map: ClassVar[bool] = False
  # Paths inside the core's params that no learner updates (the echo state network's W_hh);
  # `config.build` adds them to `model.frozen`.
  frozen_params: ClassVar[tuple] = ()
  # Whether `fused_scan` runs the window as one op with a hand-written VJP (`Model.unroll`'s
  # `fused=True`; the LSTM's `tca_jax.ops.lstm_scan`).
  has_fused_scan: ClassVar[bool] = False

  @property
  def feature_size(self) -> int:
    raise NotImplementedError

  def init(self, key, input_size: int) -> Any:
    raise NotImplementedError

  def initial_state(self, batch_size: int, dtype=None) -> Any:
    raise NotImplementedError

  def step(self, params, state, x):
    raise NotImplementedError

  def recurrent_matrix(self, params) -> Optional[jax.Array]:
    """The square `[H, H]` recurrent matrix (for its spectral radius), or None if there is none."""
    del params
    return None

  def hidden(self, state) -> jax.Array:
    """The hidden output `h_t`, `[batch, H]`, of a state (the state itself by default)."""
    return state

  def attention_map(self, params, inputs, dtype=None) -> jax.Array:
    """Attention weights `[T, batch, M]` of a forward pass; cores with `has_attention_map`."""
    raise NotImplementedError(f"{type(self).__name__} has no attention over memories")

  def fused_scan(self, params, state, inputs, cut, unroll: int = 1, kernel: str = "xla"):
    """The window in one op: `(final state, features [T, batch, F])`; cores with `has_fused_scan`.

    Args:
      params, state: as for `step`; inputs: `[T, batch, in]`.
      cut: `[T]` bool, where the state entering a step is a constant (block truncation).
      unroll: the scans' unroll factor.
      kernel: "xla", or "native" (a `jax.ffi` CPU kernel where the core has one; XLA elsewhere).
    """
    raise NotImplementedError(f"{type(self).__name__} has no fused scan")
