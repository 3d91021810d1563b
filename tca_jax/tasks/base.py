"""The task protocol and the per-step losses tasks share."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import jax
import jax.numpy as jnp

from tca_jax.types import Batch


def weighted_xent(logits, labels, weights):
  """Cross-entropy per step, times its weight.

  Args:
    logits: `[..., classes]`.
    labels: `[...]` int.
    weights: `[...]` loss weights (the batch mask).

  Returns:
    `[...]`, zero wherever the weight is zero (even for garbage labels there).
  """
  logp = jax.nn.log_softmax(logits)
  nll = -jnp.take_along_axis(logp, labels[..., None].astype(jnp.int32), axis=-1)[..., 0]
  return jnp.where(weights > 0, weights * nll, 0.0)


def weighted_mse(outputs, targets, weights):
  """Squared error (mean over output units) per step, times its weight. Shapes as above."""
  se = jnp.mean(jnp.square(outputs - targets), axis=-1)
  return jnp.where(weights > 0, weights * se, 0.0)


@dataclasses.dataclass(frozen=True)
class Task:
  """Base class of every task: a frozen dataclass, so tasks are static jit arguments.

  Subclasses set `input_size`, `output_size`, `loss_type` ("xent" or "mse") and implement
  `sample` and `metrics`.

  Attributes:
    length: the T of the task's paper definition (`task.length`).
  """

  length: int

  loss_type: ClassVar[str] = "xent"
  # Language-modelling tasks carry the recurrent state from one batch to the next.
  carries_state: ClassVar[bool] = False
  # Sampled tasks (False) draw batches on the device with `sample`; dataset tasks (True) stream
  # numpy batches from the host with `train_batches` and `eval_batches`.
  host_data: ClassVar[bool] = False
  min_length: ClassVar[int] = 1

  def __post_init__(self):
    from tca_jax.registry import ConfigError  # pylint: disable=g-import-not-at-top
    if not isinstance(self.length, int) or self.length < self.min_length:
      raise ConfigError(
          f"task.length={self.length!r}: task {self.name!r} needs an integer length >= "
          f"{self.min_length}")

  @property
  def name(self) -> str:
    return getattr(type(self), "NAME", type(self).__name__)

  @property
  def sequence_length(self) -> int:
    """Steps in one sample (T + 20 for copy)."""
    return self.length

  def draw_length(self, key) -> int:
    """The number of steps of the next batch (a Python int; varies only with jitter)."""
    del key
    return self.sequence_length

  def length_choices(self) -> tuple:
    """Every length `draw_length` can return, each equally likely (one unless jittered)."""
    return (self.sequence_length,)

  def sample(self, key, batch_size: int, length: int | None = None) -> Batch:
    raise NotImplementedError

  def write_artifacts(self, workdir: str) -> None:
    """Writes into `workdir` what else reproduces a run (pmnist's permutation); default none."""
    del workdir

  def loss(self, outputs, targets, mask):
    """Weighted per-step loss `[...]` for outputs `[..., out]`; works per step or per window."""
    if self.loss_type == "xent":
      return weighted_xent(outputs, targets, mask)
    return weighted_mse(outputs, targets, mask)

  def sequence_loss(self, outputs, batch: Batch):
    """The objective: per-sequence weighted loss summed over time, averaged over the batch."""
    return jnp.mean(jnp.sum(self.loss(outputs, batch.targets, batch.mask), axis=0))

  def metrics(self, outputs, batch: Batch):
    """Scalar metrics (batch means) of outputs `[time, batch, out]`; always "loss", "accuracy"."""
    raise NotImplementedError
