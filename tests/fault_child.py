"""A binary of experiments/ run with faults injected, for tests/test_faults.py.

    python -m tests.fault_child train|tptt_protocol [binary flags]

Environment (all optional):
  FAULT_SLOW: seconds to sleep before each train step and each evaluation, so that a test can
    signal the process mid-run;
  FAULT_KILL_IN_SAVE: a step whose checkpoint save is started and then the process killed with
    SIGKILL while the write is in flight.

Production code has no test hooks; the faults are patched in here.
"""

import os
import signal
import sys
import time

from absl import app

from tca_jax import checkpoint, cli, train


def _patch():
  slow = float(os.environ.get("FAULT_SLOW", "0"))
  if slow:
    make, evaluate = train.make_train_step, train.evaluate

    def slow_make(*args, **kwargs):
      step = make(*args, **kwargs)

      def slow_step(*a):
        time.sleep(slow)
        return step(*a)
      return slow_step

    def slow_evaluate(*args, **kwargs):
      time.sleep(slow)
      return evaluate(*args, **kwargs)

    train.make_train_step, train.evaluate = slow_make, slow_evaluate
  kill_at = int(os.environ.get("FAULT_KILL_IN_SAVE", "0"))
  if kill_at:
    save = checkpoint.Checkpointer.save

    def killing_save(self, step, state):
      if int(step) != kill_at:
        return save(self, step, state)
      import orbax.checkpoint as ocp  # pylint: disable=g-import-not-at-top
      self._manager.save(int(step), args=ocp.args.StandardSave(state), force=True)  # async
      os.kill(os.getpid(), signal.SIGKILL)
    checkpoint.Checkpointer.save = killing_save


def main():
  binary, sys.argv = sys.argv[1], [sys.argv[1]] + sys.argv[2:]
  _patch()
  if binary == "train":
    from experiments import train as module  # pylint: disable=g-import-not-at-top
  else:
    from experiments import tptt_protocol as module  # pylint: disable=g-import-not-at-top
  app.run(module.main, flags_parser=cli.parse_flags)


if __name__ == "__main__":
  main()
