r"""Trains one model with one learner on one task.

    python -m experiments.train --config=experiments/configs/copy.py --workdir=/tmp/copy \
        [--config.learner.name=tbptt --config.learner.truncation=5 ...]

Writes DIR/config.json, DIR/metrics.jsonl and figures; prints the final test metrics.
"""

import logging as std_logging
import sys

from absl import app, flags, logging
from ml_collections import config_flags

from tca_jax import cli, distributed, train
from tca_jax.registry import ConfigError, error_line

_CONFIG = config_flags.DEFINE_config_file("config", None, "Path to an experiment config file.")
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for config.json, metrics and figures.")
flags.mark_flags_as_required(["config", "workdir"])


class _QuietCheckpointing(std_logging.Filter):
  """Orbax logs every checkpoint step at INFO; keep its warnings and errors only."""

  def filter(self, record):
    return record.levelno >= std_logging.WARNING or "orbax" not in record.pathname


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  logging.set_verbosity(logging.INFO)
  logging.get_absl_handler().addFilter(_QuietCheckpointing())
  try:
    distributed.maybe_initialize(_CONFIG.value)  # before any other JAX call
    result = train.train_and_evaluate(_CONFIG.value, _WORKDIR.value)
  except ConfigError as e:
    sys.exit(error_line(e))
  except train.NonFiniteError as e:
    sys.exit(f"error: {e}")
  except train.Preempted as e:
    logging.warning("%s", e)
    sys.exit(143)  # 128 + SIGTERM, so schedulers requeue the job
  # With num_seeds > 1 the record also holds per-seed lists (`accuracy_seeds`): printed as lists.
  print("final test metrics: " + ", ".join(
      f"{k}={v:.4g}" if isinstance(v, float) else
      f"{k}=[{', '.join(f'{x:.4g}' for x in v)}]" if isinstance(v, list) else f"{k}={v}"
      for k, v in result.items()))
  print(f"metrics in {_WORKDIR.value}/metrics.jsonl")


if __name__ == "__main__":
  app.run(main, flags_parser=cli.parse_flags)
