"""The `Batch` container shared by tasks, learners and the trainer."""

from __future__ import annotations

from typing import NamedTuple

import jax

Array = jax.Array


class Batch(NamedTuple):
  """A batch of sequences, time-major.

  Attributes:
    inputs: `[time, batch, input_size]` float inputs (one-hot for symbolic tasks).
    targets: `[time, batch]` int32 class labels, or `[time, batch, output_size]` float targets.
    mask: `[time, batch]` float loss weights. Zero where a step carries no loss; for every
      sequence the weights sum to one over time, so the per-sequence loss is a weighted mean of
      per-step losses and the losses of consecutive windows add up to the loss of the sequence.
  """

  inputs: Array
  targets: Array
  mask: Array

  @property
  def length(self) -> int:
    return self.inputs.shape[0]

  @property
  def batch_size(self) -> int:
    return self.inputs.shape[1]

  def window(self, start: int, stop: int) -> "Batch":
    """Steps `[start, stop)` of every field."""
    return jax.tree.map(lambda a: a[start:stop], self)
