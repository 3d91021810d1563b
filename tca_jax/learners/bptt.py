"""Backpropagation through time (Werbos 1990) and its truncated form (Williams & Peng 1990).

`bptt` unrolls the model over the window with `lax.scan` and differentiates the summed loss with
`jax.grad`. With `remat=True` every step's internals are recomputed in the backward pass
(`jax.checkpoint`), so only the carried state is stored per step: the memory-efficient BPTT of
Gruslys et al. 2016 in its simplest, one-checkpoint-per-step form.

`tbptt(truncation=k)` passes the carried state through `stop_gradient` at every step t with
`t % k == 0` (counting from the window start): block truncation, so a loss at step t credits
steps `k * (t // k) .. t`. With `train.update_every = k` the parameters change after every block
(Williams & Peng's TBPTT(k, k)); with the default window (the whole sequence) the block gradients
are accumulated over the sequence. With `k >= T` it is exactly BPTT.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar, Optional

import jax

from tca_jax.backend import scan_unroll
from tca_jax.learners.base import (Aux, CarriedState, Learner, check_window_option,
                                    window_loss)
from tca_jax.registry import ConfigError, check_choice


@dataclasses.dataclass(frozen=True)
class BPTT(Learner):
  """Exact gradient of the window loss; the state entering the window is a constant.

  Attributes:
    remat: recompute step internals in the backward pass (memory O(T * state) instead of
      O(T * activations)).
    unroll: `lax.scan` unroll factor; None: 1 on the CPU, 8 on a GPU or TPU (`scan_unroll`).
    fused: run a cell that has one (the LSTM) as one op with a hand-written VJP
      (`tca_jax.ops.lstm_scan`: the weight gradients as one GEMM over the window after the
      reverse scan, the cell's backward by hand from stored gates): the same gradient up to
      float rounding, 0.82x the step time and less memory on the CPU (docs/PERFORMANCE.md);
      False: autodiff of the cell's scan. Ignored with `remat` and for cells without one.
    kernel: the fused scan's implementation: "xla", or "native" (the LSTM's recurrent core as
      `jax.ffi` CPU kernels, `tca_jax.ops.native`; XLA on other platforms or where it cannot be
      built). "auto" is "xla": native was not measured faster (docs/PERFORMANCE.md).
  """

  NAME: ClassVar[str] = "bptt"
  generic_cells: ClassVar[bool] = True
  remat: bool = False
  unroll: Optional[int] = None
  fused: bool = True
  kernel: str = "auto"

  def __post_init__(self):
    scan_unroll(self.unroll)  # validates
    check_choice(self.kernel, "learner.kernel", ("auto", "native", "xla"))
    if not isinstance(self.fused, bool):
      raise ConfigError(f"learner.fused={self.fused!r} must be True or False")

  def _truncation(self) -> Optional[int]:
    return None

  def update(self, model, params, lparams, lstate, batch, loss_fn, key):
    del key

    def objective(p):
      final, outputs = model.unroll(p, lstate.model_state, batch.inputs,
                                    truncation=self._truncation(), remat=self.remat,
                                    unroll=scan_unroll(self.unroll), fused=self.fused,
                                    kernel="native" if self.kernel == "native" else "xla")
      return window_loss(loss_fn, outputs, batch), (final, outputs)

    (loss, (final, outputs)), grads = jax.value_and_grad(objective, has_aux=True)(params)
    zeros = jax.tree.map(lambda x: 0 * x, lparams)
    return CarriedState(final), (grads, zeros), Aux(loss, outputs, {})


@dataclasses.dataclass(frozen=True)
class TBPTT(BPTT):
  """Truncated BPTT.

  Attributes:
    truncation: k, the number of steps a gradient may travel back (block truncation).
  """

  NAME: ClassVar[str] = "tbptt"
  exact: ClassVar[bool] = False
  truncation: int = 1

  def _truncation(self):
    return self.truncation

  def validate(self, sequence_length, update_every):
    del update_every
    check_window_option(self.truncation, "learner.truncation", sequence_length)
