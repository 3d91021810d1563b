r"""The TPTT paper's protocol (Manchev & Spratling 2020, sec. 3.1) for TPTT, TPTT_hx or BPTT.

    python -m experiments.tptt_protocol --config=experiments/configs/tptt.py:temporal_order \
        --workdir=/tmp/tptt_to [--config.protocol.max_iters=2000 --config.protocol.mode=single]

`protocol.mode`: "curriculum" (T = 10, 20, ... while solved: t_max, Table 1, and the iterations
per T, Table 2), "generalisation" (train at T=100, test at T=200: Table 4) or "single" (one run at
`task.length`). Writes DIR/config.json, DIR/metrics.jsonl (one "train" record per validation,
with "length"), DIR/protocol.json (the results) and figures per T: radius_T{T}.png (Fig. 3),
angle_T{T}.png (Fig. 5, TPTT only), local_losses_T{T}.png (Fig. 6, with
--config.learner.log_local_losses=True). Prints a markdown table.

`--config.num_seeds=N` (N > 1) runs seeds `config.seed, ..., config.seed + N - 1` side by side
in one jitted call per validation period (`tptt_protocol.curriculum(seeds=...)`) and writes one
directory per seed, DIR/seed<s>/ (metrics.jsonl, protocol_runs/, protocol.json, figures: each
reads like a single-seed DIR), plus DIR/config.json and, when every seed is done,
DIR/protocol.json with `"seeds": [{"seed", "t_max", "runs"}, ...]`. N = 1 keeps the layout above.

The process owns DIR while it runs (a second one is refused, naming it); a DIR holding another
config is refused. The protocol keeps no checkpoints: rerunning an interrupted command starts it
again from iteration 0 (the records of the interrupted try are dropped; a curriculum keeps the
lengths it finished, per seed; with several seeds a seed whose run was saved is kept in every
mode), and rerunning a finished one prints its results from DIR/protocol.json. Runs are
deterministic, so either way the records equal an uninterrupted run's. The logic lives in
`tca_jax.protocol_workdir` (the table runner uses it too).
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
    results, _ = protocol_workdir.run(config, workdir, mode)
  except ConfigError as e:
    sys.exit(error_line(e))

  learner = config.learner.name
  several = len(results) > 1
  seed_col = ("| seed ", "| --- ") if several else ("", "")
  print(f"{seed_col[0]}| T | learner | solved | iterations | stopped at | reason | val error | "
        "wall s |")
  print(f"{seed_col[1]}| --- | --- | --- | --- | --- | --- | --- | --- |")
  for s, (_, runs) in results.items():
    for r in runs:
      print(f"{f'| {s} ' if several else ''}| {r['length']} | {learner} | {r['solved']} | "
            f"{r['iterations'] or '-'} | {r['stopped_at']} | {r['reason']} | "
            f"{r['val_error']:.4g} | {r['wall_s']:.0f} |")
  for s, (result, runs) in results.items():
    name = f" seed {s}" if several else ""
    if mode == "curriculum":
      print(f"t_max = {result['t_max']} ({config.task.name}, {learner}{name})")
    if mode == "generalisation":
      r = runs[0]
      print(f"accuracy at T={r['test_length']} after training at T={r['length']}{name}: "
            f"{100 * r['test_accuracy']:.2f}%")
  print(f"results in {workdir}/protocol.json")


if __name__ == "__main__":
  app.run(main, flags_parser=cli.parse_flags)
