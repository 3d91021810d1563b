r"""The TPTT paper's protocol (Manchev & Spratling 2020, sec. 3.1) for TPTT, TPTT_hx or BPTT.

    python -m experiments.tptt_protocol --config=experiments/configs/tptt.py:temporal_order \
        --workdir=/tmp/tptt_to [--config.protocol.max_iters=2000 --config.protocol.mode=single]

`protocol.mode`: "curriculum" (T = 10, 20, ... while solved: t_max, Table 1, and the iterations
per T, Table 2), "generalisation" (train at T=100, test at T=200: Table 4) or "single" (one run at
`task.length`). Writes DIR/config.json, DIR/metrics.jsonl (one "train" record per validation,
with "length"), DIR/protocol.json (the results) and figures per T: radius_T{T}.png (Fig. 3),
angle_T{T}.png (Fig. 5, TPTT only), local_losses_T{T}.png (Fig. 6, with
--config.learner.log_local_losses=True). Prints a markdown table.
"""

import os
import sys

from absl import app, flags, logging
from ml_collections import config_flags
import numpy as np

from tca_jax import metrics_io, plotting, tptt_protocol
from tca_jax.registry import ConfigError

_CONFIG = config_flags.DEFINE_config_file("config", None, "Path to an experiment config file.")
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for results and figures.")
flags.mark_flags_as_required(["config", "workdir"])


def _figures(run, workdir, learner):
  hist = run["history"]
  if not hist:
    return
  t = run["length"]
  steps = [h["iteration"] for h in hist]
  radius = [h.get("radius_W_hh", np.nan) for h in hist]
  norm = [h.get("recurrent_update_norm", h.get("update_norm", np.nan)) for h in hist]
  plotting.plot_radius_and_update_norm(steps, radius, norm,
                                       os.path.join(workdir, f"radius_T{t}.png"),
                                       f"{learner}, T={t} (means over 100 iterations)")
  if "bptt_cosine_recurrent" in hist[0]:
    records = [{"step": h["iteration"], "cos": h["bptt_cosine_recurrent"]} for h in hist]
    plotting.plot_update_angle(records, os.path.join(workdir, f"angle_T{t}.png"), key="cos",
                               window=1, title=f"{learner} vs BPTT, W_hh, T={t}")
  if "f_loss/001" in hist[0]:
    f = [[h[f"f_loss/{i:03d}"] for i in range(1, t + 1)] for h in hist]
    g = [[h[f"g_loss/{i:03d}"] for i in range(1, t + 1)] for h in hist]
    plotting.plot_local_losses(steps, f, g, [h["loss"] for h in hist],
                               os.path.join(workdir, f"local_losses_T{t}.png"),
                               f"{learner}, T={t}", every=max(1, t // 10))


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  logging.set_verbosity(logging.INFO)
  config, workdir = _CONFIG.value, _WORKDIR.value
  mode = config.get("protocol", {}).get("mode", "curriculum")
  try:
    protocol = tptt_protocol.protocol_from_config(config)
    if mode not in ("curriculum", "generalisation", "single"):
      raise ConfigError(f"protocol.mode={mode!r} is not allowed; allowed: curriculum, "
                        "generalisation, single")
    os.makedirs(workdir, exist_ok=True)
    metrics_io.write_json(os.path.join(workdir, "config.json"), config.to_dict())
    writer = metrics_io.MetricsWriter(workdir)
    if mode == "curriculum":
      result = tptt_protocol.curriculum(config, protocol, writer)
      runs = result["runs"]
    elif mode == "generalisation":
      result = tptt_protocol.generalisation(config, protocol, writer)
      runs = [result]
    else:
      result = tptt_protocol.train_until_solved(config, protocol, config.task.length, writer=writer)
      runs = [result]
  except ConfigError as e:
    sys.exit(f"error: config.{e}")

  learner = config.learner.name
  for run in runs:
    _figures(run, workdir, learner)
  metrics_io.write_json(os.path.join(workdir, "protocol.json"), {
      "mode": mode, "learner": learner, "task": config.task.name,
      "t_max": result.get("t_max"),
      "runs": [{k: v for k, v in r.items() if k != "history"} for r in runs]})

  print(f"| T | learner | solved | iterations | stopped at | reason | val error | wall s |")
  print("| --- | --- | --- | --- | --- | --- | --- | --- |")
  for r in runs:
    print(f"| {r['length']} | {learner} | {r['solved']} | {r['iterations'] or '-'} | "
          f"{r['stopped_at']} | {r['reason']} | {r['val_error']:.4g} | {r['wall_s']:.0f} |")
  if mode == "curriculum":
    print(f"t_max = {result['t_max']} ({config.task.name}, {learner})")
  if mode == "generalisation":
    print(f"accuracy at T={result['test_length']} after training at T={result['length']}: "
          f"{100 * result['test_accuracy']:.2f}%")
  print(f"results in {workdir}/protocol.json")


if __name__ == "__main__":
  app.run(main)
