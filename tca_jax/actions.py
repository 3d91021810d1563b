"""Periodic actions: what a training loop does every so many steps, one small object each.

The shape of `clu.periodic_actions` (not a dependency: clu pulls in TensorFlow through
`clu.metric_writers`): an action is called after (or before) every step with the step number
and what it may need, and runs when it is due.

    actions = [LogAction(...), EvalAction(...)]
    for step in range(1, steps + 1):
      state, metrics = train_step(state, batch, key)
      for action in actions:
        action(step, state=state, metrics=metrics)
"""

from __future__ import annotations

from typing import Optional


class PeriodicAction:
  """Runs `run(step, **context)` when due: every `every` steps (0: never), on `last_step`, and on
  step 1 with `on_first`.

  Args:
    every: the period in steps; 0 disables the periodic part.
    last_step: also due at this step (the end of training), if `every` is not 0.
    on_first: also due at step 1 (diagnostics of the initial parameters).
  """

  def __init__(self, every: int, last_step: Optional[int] = None, on_first: bool = False):
    self.every = every
    self.last_step = last_step
    self.on_first = on_first

  def due(self, step: int, **context) -> bool:
    del context
    if not self.every:
      return False
    return step % self.every == 0 or step == self.last_step or (self.on_first and step == 1)

  def __call__(self, step: int, **context) -> bool:
    """Runs the action if it is due at `step`; returns whether it ran."""
    if not self.due(step, **context):
      return False
    self.run(step, **context)
    return True

  def run(self, step: int, **context) -> None:
    raise NotImplementedError
