"""Checkpoints of the training state with orbax, and what resuming a run needs.

A run's checkpoints live in `DIR/checkpoints/<step>`; `Checkpointer.restore_latest` returns the
newest one that restores (or None): a damaged one (a file truncated or deleted by a kill or a full
disk) is named in a warning with its cause and moved to `DIR/checkpoints_damaged/`, and the one
before it is tried. `truncate_records` then drops the metrics written after the restored step, so
that a resumed run ends with exactly the records of an uninterrupted one.
"""

from __future__ import annotations

import json
import os
import shutil

from absl import logging
import jax
import orbax.checkpoint as ocp

from tca_jax import paths
from tca_jax import workdir as workdir_lib


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
    """The newest checkpoint that restores into the structure (and shardings) of `like`.

    Returns:
      `(step, state)`, or `(None, None)` when no checkpoint restores. Checkpoints that fail to
      restore are named in a warning and moved to `checkpoints_damaged/` (kept for inspection;
      left in place, a later save at their step would collide with them).
    """
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, like)
    for step in sorted(self._manager.all_steps(), reverse=True):
      try:
        state = self._manager.restore(step, args=ocp.args.StandardRestore(abstract))
      except Exception as e:  # pylint: disable=broad-except  (any damage: orbax, tensorstore, OS)
        moved = self._set_aside(step)
        logging.warning("the checkpoint at step %d cannot be restored (%s); moved it to %s and "
                        "trying the one before it", step, _cause(e), moved)
        continue
      logging.info("resumed from the checkpoint at step %d", step)
      return step, state
    return None, None

  def _set_aside(self, step: int) -> str:
    aside = os.path.join(os.path.dirname(self.directory), "checkpoints_damaged")
    os.makedirs(aside, exist_ok=True)
    target = os.path.join(aside, str(step))
    n = 1
    while os.path.exists(target):
      target, n = os.path.join(aside, f"{step}.{n}"), n + 1
    shutil.move(os.path.join(self.directory, str(step)), target)
    self._manager.reload()
    return target

  def close(self):
    self._manager.close()


def read_latest(workdir: str, like):
  """The newest checkpoint in `workdir/checkpoints` that restores into the structure of `like`,
  read only: nothing is created or moved (another process may be training that run, and a
  checkpoint that fails here may be one it is still writing).

  Returns:
    `(step, state)`, or `(None, None)` when there is none that restores.
  """
  directory = paths.join(paths.resolve(workdir), "checkpoints")
  if not paths.exists(directory):
    return None, None
  abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, like)
  manager = ocp.CheckpointManager(directory, options=ocp.CheckpointManagerOptions(
      create=False, read_only=True))
  try:
    for step in sorted(manager.all_steps(), reverse=True):
      try:
        return step, manager.restore(step, args=ocp.args.StandardRestore(abstract))
      except Exception as e:  # pylint: disable=broad-except  (see Checkpointer.restore_latest)
        logging.warning("the checkpoint at step %d in %s cannot be read (%s); trying the one "
                        "before it", step, directory, _cause(e))
    return None, None
  finally:
    manager.close()


def latest_step(workdir: str):
  """The step of the newest checkpoint folder in `workdir/checkpoints` (None when there is
  none), from the folder names alone: nothing is opened, created or restored."""
  directory = os.path.join(workdir, "checkpoints")
  steps = [int(n) for n in os.listdir(directory) if n.isdigit()] if os.path.isdir(directory) else []
  return max(steps) if steps else None


def _cause(e: Exception) -> str:
  """`Type: first line of the message` (at most 200 characters) for a one-line warning."""
  return f"{type(e).__name__}: {str(e).strip().splitlines()[0][:200] if str(e) else ''}"


def truncate_records(path: str, step: int) -> None:
  """Keeps the records of `path` (metrics.jsonl) that an uninterrupted run has at `step`.

  Train and eval records of steps <= `step` stay; diagnostics (measured before the update of step
  s + 1 and recorded as s) stay for s < `step`; the final test record goes.
  """
  if not paths.exists(path):
    return
  records = workdir_lib.read_jsonl(path)  # a last line cut short by a kill is dropped
  keep = [r for r in records
          if r["split"] != "test" and (r["step"] < step or
                                       (r["step"] == step and r["split"] != "diag"))]
  paths.write_text_atomic(path, "".join(json.dumps(r) + "\n" for r in keep))
