"""Checkpoints of the training state with orbax, and what resuming a run needs.

A run's checkpoints live in `DIR/checkpoints/<step>`; `Checkpointer.restore_latest` returns the
newest one (or None), and `truncate_records` drops the metrics written after it, so that a
resumed run ends with exactly the records of an uninterrupted one.
"""

from __future__ import annotations

import json

from absl import logging
import jax
import orbax.checkpoint as ocp

from tca_jax import paths


class Checkpointer:
  """Saves and restores a pytree of arrays (the `TrainState`) every so many steps.

  Args:
    workdir: the run's directory (local or `gs://...`: orbax writes to buckets itself).
    max_to_keep: how many checkpoints to keep (oldest are deleted).
  """

  def __init__(self, workdir: str, max_to_keep: int = 2):
    self.directory = paths.join(paths.resolve(workdir), "checkpoints")
    self._manager = ocp.CheckpointManager(
        self.directory,
        options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True))

  def latest_step(self):
    return self._manager.latest_step()

  def save(self, step: int, state) -> None:
    self._manager.save(int(step), args=ocp.args.StandardSave(state), force=True)
    self._manager.wait_until_finished()
    logging.info("saved checkpoint at step %d in %s", step, self.directory)

  def restore_latest(self, like):
    """The newest checkpoint restored into the structure (and shardings) of `like`, or None."""
    step = self.latest_step()
    if step is None:
      return None, None
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, like)
    state = self._manager.restore(step, args=ocp.args.StandardRestore(abstract))
    logging.info("resumed from the checkpoint at step %d", step)
    return step, state

  def close(self):
    self._manager.close()


def truncate_records(path: str, step: int) -> None:
  """Keeps the records of `path` (metrics.jsonl) that an uninterrupted run has at `step`.

  Train and eval records of steps <= `step` stay; diagnostics (measured before the update of step
  s + 1 and recorded as s) stay for s < `step`; the final test record goes.
  """
  if not paths.exists(path):
    return
  records = [json.loads(line) for line in paths.read_text(path).splitlines() if line.strip()]
  keep = [r for r in records
          if r["split"] != "test" and (r["step"] < step or
                                       (r["step"] == step and r["split"] != "diag"))]
  paths.write_text_atomic(path, "".join(json.dumps(r) + "\n" for r in keep))
