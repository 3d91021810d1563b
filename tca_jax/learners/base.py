"""The learner protocol: one signature for every temporal credit-assignment rule.

A learner is a frozen dataclass (hyper-parameters only, hashable, a static jit argument) with

    init(key, model, params, batch_size) -> (lparams, lstate)
    init_state(model, params, batch_size) -> lstate          a fresh sequence
    update(model, params, lparams, lstate, batch, loss_fn, key) -> (lstate, updates, Aux)

* `lparams` are the learner's own trainable parameters (TPTT's inverse `V_hh`; `{}` for most).
* `lstate` is what crosses a window boundary: always the model state (`lstate.model_state`), plus
  whatever the rule carries (RTRL's influence matrix, UORO's rank-one factors, SAB's memory).
* `updates` has the structure `(params, lparams)`: a descent direction (a gradient or an estimate
  of one) that the trainer hands to an optax optimizer.
* `loss_fn(outputs, targets, mask) -> [...]` is the task's weighted per-step loss (elementwise
  over leading `[time, batch]` or `[batch]` axes); a window's loss is its sum over time averaged
  over the batch, so window losses add up to the sequence loss.
* `Aux(loss, outputs, metrics)`: the window loss, the model outputs `[time, batch, out]` (for the
  task's metrics) and learner-specific scalar metrics.

The trainer calls `update` once per window of `train.update_every` steps and applies the
optimizer after each call; `accumulate` runs the windows at fixed parameters and sums the updates
(what the gradient diagnostics compare with BPTT).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, ClassVar, Dict, NamedTuple, Optional

import jax
import jax.numpy as jnp
import optax

from tca_jax import backend
from tca_jax.registry import ConfigError
from tca_jax.types import Batch


class Aux(NamedTuple):
  loss: jax.Array  # scalar
  outputs: jax.Array  # [time, batch, out]
  metrics: Dict[str, jax.Array]


class CarriedState(NamedTuple):
  """The learner state of rules that carry nothing but the model state."""

  model_state: Any


LossFn = Callable[[jax.Array, jax.Array, jax.Array], jax.Array]


def window_loss(loss_fn: LossFn, outputs, batch: Batch):
  """Weighted per-step losses summed over time and averaged over the batch."""
  return jnp.mean(jnp.sum(loss_fn(outputs, batch.targets, batch.mask), axis=0))


@dataclasses.dataclass(frozen=True)
class Learner:
  """Base class: defaults for learners without own parameters that carry only the model state."""

  NAME: ClassVar[str] = "learner"
  # Whether `update` is exact or an estimate of the BPTT gradient (for docs and diagnostics).
  exact: ClassVar[bool] = True
  # The `model.cell` names this learner supports; None = every cell (finer conditions, such as
  # a state without batch coupling, go in `validate_model`). Checked by `config.build`.
  supported_cells: ClassVar[Optional[tuple]] = None
  # Whether the rule uses a cell only through its `step` (so any cell, a Flax one included,
  # works); False where it needs the cell's internals (a closed-form Jacobian, the gates, ...).
  generic_cells: ClassVar[bool] = False

  @property
  def name(self) -> str:
    return self.NAME

  def validate(self, sequence_length: int, update_every: int) -> None:
    """Raises `ConfigError` naming the field if the options cannot work for these shapes."""
    del sequence_length, update_every

  def validate_cell(self, cell_name: str) -> None:
    """Raises `ConfigError` if `model.cell=cell_name` is not in `supported_cells`."""
    if self.supported_cells is not None and cell_name not in self.supported_cells:
      raise ConfigError(
          f"model.cell={cell_name!r} is not supported by learner {self.name!r}; allowed: "
          f"{', '.join(self.supported_cells)}")

  def validate_model(self, model) -> None:
    """Raises `ConfigError` naming `model.cell` if this learner cannot train this model (the
    default: every model). Called once by `config.build`, before anything is written."""
    del model

  def trainable(self, grads):
    """`grads` (a `params`-shaped pytree) restricted to what this learner updates: the
    diagnostics compare an update with the BPTT gradient projected the same way (the default:
    every parameter; `Frozen` zeroes its frozen ones)."""
    return grads

  def init(self, key, model, params, batch_size: int):
    return self.init_params(key, model, params), self.init_state(model, params, batch_size)

  def init_params(self, key, model, params):
    del key, model, params
    return {}

  def init_state(self, model, params, batch_size: int):
    leaf = jax.tree.leaves(params)[0]
    return CarriedState(model.initial_state(batch_size, leaf.dtype))

  def update(self, model, params, lparams, lstate, batch: Batch, loss_fn: LossFn, key):
    raise NotImplementedError

  def optimizer(self, make: Callable[[float], optax.GradientTransformation],
                learning_rate: float) -> optax.GradientTransformation:
    """The optimizer for `(params, lparams)`; learners with parameter groups override this."""
    return make(learning_rate)


# Backend choices live in tca_jax.backend; these names stay importable from here.
per_backend = backend.per_backend
scan_unroll = backend.scan_unroll


def check_window_option(value, field: str, sequence_length: int):
  """A window-like option (truncation, k_trunc) must be an int in [1, sequence_length]."""
  if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= sequence_length:
    raise ConfigError(
        f"{field}={value!r} must be an integer in [1, {sequence_length}] (the sequence has "
        f"{sequence_length} steps)")
