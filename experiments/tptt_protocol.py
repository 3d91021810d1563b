r"""The TPTT paper's protocol (Manchev & Spratling 2020, sec. 3.1) for TPTT, TPTT_hx or BPTT.

    python -m experiments.tptt_protocol --config=experiments/configs/tptt.py:temporal_order \
        --workdir=/tmp/tptt_to [--config.protocol.max_iters=2000 --config.protocol.mode=single]

`protocol.mode`: "curriculum" (T = 10, 20, ... while solved: t_max, Table 1, and the iterations
per T, Table 2), "generalisation" (train at T=100, test at T=200: Table 4) or "single" (one run at
`task.length`). Writes DIR/config.json, DIR/metrics.jsonl (one "train" record per validation,
with "length"), DIR/protocol.json (the results) and figures per T: radius_T{T}.png (Fig. 3),
angle_T{T}.png (Fig. 5, TPTT only), local_losses_T{T}.png (Fig. 6, with
--config.learner.log_local_losses=True). Prints a markdown table.

The process owns DIR while it runs (a second one is refused, naming it); a DIR holding another
config is refused. Rerunning an interrupted curriculum resumes after the last T it finished (DIR/
protocol_runs/T#####.json); within a T nothing is checkpointed, so that T starts again from
iteration 0 (the records of the interrupted try are dropped). Rerunning a finished one prints its
results from DIR/protocol.json. Runs are deterministic, so either way the records equal an
uninterrupted run's. The logic lives in `tca_jax.protocol_workdir` (the table runner uses it too).
"""

import sys

from absl import app, flags, logging
from ml_collections import config_flags

from tca_jax import cli, protocol_workdir
from tca_jax.registry import ConfigError, error_line

_CONFIG = config_flags.DEFINE_config_file("config", None, "Path to an experiment config file.")
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for results and figures.")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  logging.set_verbosity(logging.INFO)
  config, workdir = _CONFIG.value, _WORKDIR.value
  mode = config.get("protocol", {}).get("mode", "curriculum")
  try:
    result, runs, _ = protocol_workdir.run(config, workdir, mode)
  except ConfigError as e:
    sys.exit(error_line(e))

  learner = config.learner.name
  print("| T | learner | solved | iterations | stopped at | reason | val error | wall s |")
  print("| --- | --- | --- | --- | --- | --- | --- | --- |")
  for r in runs:
    print(f"| {r['length']} | {learner} | {r['solved']} | {r['iterations'] or '-'} | "
          f"{r['stopped_at']} | {r['reason']} | {r['val_error']:.4g} | {r['wall_s']:.0f} |")
  if mode == "curriculum":
    print(f"t_max = {result['t_max']} ({config.task.name}, {learner})")
  if mode == "generalisation":
    result = runs[0]
    print(f"accuracy at T={result['test_length']} after training at T={result['length']}: "
          f"{100 * result['test_accuracy']:.2f}%")
  print(f"results in {workdir}/protocol.json")


if __name__ == "__main__":
  app.run(main, flags_parser=cli.parse_flags)
