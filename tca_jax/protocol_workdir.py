"""The TPTT protocol in a workdir: resumable, owned, with its figures (`tca_jax.tptt_protocol` does
the training; this module keeps its results on disk).

    result, runs, fresh = protocol_workdir.run(config, workdir, mode="curriculum")

Used by the binary `experiments/tptt_protocol.py` and by the table runner (`experiments/runner.py`),
so a table's protocol cell and a hand-started protocol run are the same run. Writes
WORKDIR/config.json, WORKDIR/metrics.jsonl (one "train" record per validation, with "length"),
WORKDIR/protocol.json (the results, when finished), WORKDIR/protocol_runs/T#####.json (each finished
curriculum length: what a resume keeps) and figures per T: radius_T{T}.png (Fig. 3), angle_T{T}.png
(Fig. 5, TPTT only), local_losses_T{T}.png (Fig. 6, with learner.log_local_losses=True).

The process owns WORKDIR while it runs (a second one is refused, naming it); a WORKDIR holding
another config is refused. An interrupted curriculum resumes after the last length it finished;
within a length nothing is checkpointed (a length starts again from iteration 0, and its earlier
records are dropped). Runs are deterministic, so a resumed run's records equal an uninterrupted one's.
"""

import os
import shutil

from absl import logging
import numpy as np

from tca_jax import config as config_lib
from tca_jax import metrics_io, plotting, tptt_protocol
from tca_jax import workdir as workdir_lib
from tca_jax.registry import ConfigError

MODES = ("curriculum", "generalisation", "single")


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


def _first_length(config, protocol, mode):
  """The (T, eval T) of the first run, whose config `build` validates before anything is written."""
  if mode == "curriculum":
    return protocol.start_length, None
  if mode == "generalisation":
    return protocol.train_length, protocol.test_length
  return config.task.length, None


RUNS_DIR = "protocol_runs"  # one JSON per finished curriculum length: what a resume keeps


def finished_lengths(runs_dir):
  """The saved results of the lengths an interrupted curriculum finished, in order of T."""
  if not os.path.isdir(runs_dir):
    return []
  names = sorted(n for n in os.listdir(runs_dir) if n.startswith("T") and n.endswith(".json"))
  return [workdir_lib.read_json(os.path.join(runs_dir, n)) for n in names]


def run(config, workdir, mode):
  """Validates, takes the workdir, runs the protocol; returns (result, runs, fresh)."""
  protocol = tptt_protocol.protocol_from_config(config)
  if mode not in MODES:
    raise ConfigError(f"protocol.mode={mode!r} is not allowed; allowed: curriculum, "
                      "generalisation, single")
  config_lib.build(tptt_protocol.with_length(config, *_first_length(config, protocol, mode)))
  workdir_lib.check_writable(workdir)
  with workdir_lib.owned(workdir, "protocol"):
    same = workdir_lib.check_same_config(workdir, metrics_io.to_python(config.to_dict()))
    done = os.path.join(workdir, "protocol.json")
    if same and os.path.exists(done):
      logging.info("%s holds this protocol's results already; printing them", done)
      result = workdir_lib.read_json(done)
      return result, result["runs"], False
    metrics_path = os.path.join(workdir, "metrics.jsonl")
    runs_dir = os.path.join(workdir, RUNS_DIR)
    done_runs = []
    if same and os.path.exists(metrics_path):
      done_runs = finished_lengths(runs_dir) if mode == "curriculum" else []
      kept = {r["length"] for r in done_runs}
      records = [r for r in workdir_lib.read_jsonl(metrics_path) if r.get("length") in kept]
      if done_runs:
        logging.warning("resuming an interrupted curriculum after T=%d (the lengths it finished "
                        "are kept; T=%d starts again from iteration 0)", done_runs[-1]["length"],
                        done_runs[-1]["length"] + protocol.length_step)
      else:
        logging.warning("resuming an interrupted protocol run: it keeps no checkpoints within a "
                        "length, so it starts again from iteration 0 and the earlier try's "
                        "records are dropped")
      metrics_io.write_jsonl(metrics_path, records)
    elif os.path.isdir(runs_dir):  # an earlier try that wrote no record: nothing to keep
      shutil.rmtree(runs_dir)
    metrics_io.write_json(os.path.join(workdir, "config.json"), config.to_dict())
    writer = metrics_io.MetricsWriter(workdir)
    if mode == "curriculum":
      os.makedirs(runs_dir, exist_ok=True)
      result = tptt_protocol.curriculum(
          config, protocol, writer, done=done_runs,
          on_run=lambda run: metrics_io.write_json(
              os.path.join(runs_dir, f"T{run['length']:05d}.json"), run))
      runs = result["runs"]
    elif mode == "generalisation":
      result = tptt_protocol.generalisation(config, protocol, writer)
      runs = [result]
    else:
      result = tptt_protocol.train_until_solved(config, protocol, config.task.length, writer=writer)
      runs = [result]
    learner = config.learner.name
    for run in runs:
      _figures(run, workdir, learner)
    metrics_io.write_json(done, {
        "mode": mode, "learner": learner, "task": config.task.name,
        "t_max": result.get("t_max"),
        "runs": [{k: v for k, v in r.items() if k != "history"} for r in runs]})
  return result, runs, True
