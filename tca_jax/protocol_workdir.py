"""The TPTT protocol in a workdir: resumable, owned, with its figures (`tca_jax.tptt_protocol` does
the training; this module keeps its results on disk).

    result, runs, fresh = protocol_workdir.run(config, workdir, mode="curriculum")

Used by the binary `experiments/tptt_protocol.py` and by the table runner (`tca_jax.reproduce`),
so a table's protocol cell and a hand-started protocol run are the same run. Writes
WORKDIR/config.json, WORKDIR/metrics.jsonl (one "train" record per validation, with "length"),
WORKDIR/protocol.json (the results, when finished), WORKDIR/protocol_runs/T#####.json (each finished
curriculum length: what a resume keeps) and figures per T: radius_T{T}.png (Fig. 3), angle_T{T}.png
(Fig. 5, TPTT only), local_losses_T{T}.png (Fig. 6, with learner.log_local_losses=True).

With `config.num_seeds = N > 1` the seeds `config.seed, ..., config.seed + N - 1` run side by
side in one jitted call per validation period (`tptt_protocol.curriculum(seeds=...)`), each in
WORKDIR/seed<s>/ (laid out like a single-seed WORKDIR), with WORKDIR/config.json and, when every
seed is done, WORKDIR/protocol.json holding `"seeds": [{"seed", "t_max", "runs"}, ...]`.

The process owns WORKDIR while it runs (a second one is refused, naming it); a WORKDIR holding
another config is refused. An interrupted curriculum resumes after the last length it finished;
within a length nothing is checkpointed (a length starts again from iteration 0, and its earlier
records are dropped). Runs are deterministic, so a resumed run's records equal an uninterrupted one's.
"""

import dataclasses
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


def seed_dirs(config, workdir):
  """`{seed: its directory}`: WORKDIR itself for one seed (`num_seeds=1`, the single-seed layout),
  WORKDIR/seed<s> for each of the seeds `seed, seed + 1, ...` with `num_seeds > 1`."""
  n = config.get("num_seeds", 1)
  if n == 1:
    return {config.seed: workdir}
  return {config.seed + k: os.path.join(workdir, f"seed{config.seed + k}") for k in range(n)}


def _keep(run_dir, same, mode, protocol, several):
  """Prepares one seed's directory for this try; returns the runs an earlier try finished.

  A curriculum keeps the lengths it saved in RUN_DIR/protocol_runs (and their records); with
  several seeds the other modes keep a seed whose run was saved (its records too), the others
  start again. The single-seed layout's other modes start again (there is one run).
  """
  metrics_path = os.path.join(run_dir, "metrics.jsonl")
  runs_dir = os.path.join(run_dir, RUNS_DIR)
  done_runs = []
  if same and os.path.exists(metrics_path):
    done_runs = finished_lengths(runs_dir) if mode == "curriculum" or several else []
    kept = {r["length"] for r in done_runs}
    records = [r for r in workdir_lib.read_jsonl(metrics_path)
               if r.get("length") in kept or r.get("train_length") in kept]
    if done_runs and mode == "curriculum":
      logging.warning("resuming an interrupted curriculum after T=%d (the lengths it finished "
                      "are kept; T=%d starts again from iteration 0): %s", done_runs[-1]["length"],
                      done_runs[-1]["length"] + protocol.length_step, run_dir)
    elif done_runs:
      logging.warning("%s finished its run before the interruption; kept", run_dir)
    else:
      logging.warning("resuming an interrupted protocol run: it keeps no checkpoints within a "
                      "length, so it starts again from iteration 0 and the earlier try's "
                      "records are dropped")
    metrics_io.write_jsonl(metrics_path, records)
  elif os.path.isdir(runs_dir):  # an earlier try that wrote no record: nothing to keep
    shutil.rmtree(runs_dir)
  return done_runs


def protocol_defaults():
  """`{"protocol.<field>": default}` of every `tptt_protocol.Protocol` field: a workdir written
  before a field existed (its config.json lacks it) ran with the field's default, so it resumes
  under a config that holds the default (e.g. `protocol.validation`, added later: the early exit
  makes the same stops as the full validation the older runs did)."""
  return {f"protocol.{f.name}": f.default for f in dataclasses.fields(tptt_protocol.Protocol)}


def _summary(mode, config, runs, t_max):
  return {"mode": mode, "learner": config.learner.name, "task": config.task.name,
          "t_max": t_max, "runs": [{k: v for k, v in r.items() if k != "history"} for r in runs]}


def run(config, workdir, mode):
  """Validates, takes the workdir, runs the protocol; returns ({seed: (result, runs)}, fresh).

  `result` is the library's result for that seed (`curriculum`'s `{"t_max", "runs"}`, else one
  run's dict); `runs` its per-T runs (with history when run now).
  """
  protocol = tptt_protocol.protocol_from_config(config)
  if mode not in MODES:
    raise ConfigError(f"protocol.mode={mode!r} is not allowed; allowed: curriculum, "
                      "generalisation, single")
  config_lib.build(tptt_protocol.with_length(config, *_first_length(config, protocol, mode)))
  workdir_lib.check_writable(workdir)
  dirs = seed_dirs(config, workdir)
  several = len(dirs) > 1
  with workdir_lib.owned(workdir, "protocol"):
    same = workdir_lib.check_same_config(workdir, metrics_io.to_python(config.to_dict()),
                                         defaults=protocol_defaults())
    done = os.path.join(workdir, "protocol.json")
    if same and os.path.exists(done):
      logging.info("%s holds this protocol's results already; printing them", done)
      saved = workdir_lib.read_json(done)
      if not several:
        return {config.seed: (saved, saved["runs"])}, False
      return {r["seed"]: (r, r["runs"]) for r in saved["seeds"]}, False
    done_runs = {s: _keep(d, same, mode, protocol, several) for s, d in dirs.items()}
    metrics_io.write_json(os.path.join(workdir, "config.json"), config.to_dict())
    for d in dirs.values():
      os.makedirs(os.path.join(d, RUNS_DIR) if mode == "curriculum" or several else d,
                  exist_ok=True)
    writers = {s: metrics_io.MetricsWriter(d) for s, d in dirs.items()}

    def save(seed, run):
      metrics_io.write_json(os.path.join(dirs[seed], RUNS_DIR, f"T{run['length']:05d}.json"), run)

    if not several:
      writer = writers[config.seed]
      if mode == "curriculum":
        result = tptt_protocol.curriculum(config, protocol, writer, done=done_runs[config.seed],
                                          on_run=lambda run: save(config.seed, run))
        results = {config.seed: (result, result["runs"])}
      elif mode == "generalisation":
        result = tptt_protocol.generalisation(config, protocol, writer)
        results = {config.seed: (result, [result])}
      else:
        result = tptt_protocol.train_until_solved(config, protocol, config.task.length,
                                                  writer=writer)
        results = {config.seed: (result, [result])}
    elif mode == "curriculum":
      out = tptt_protocol.curriculum(config, protocol, writers, done=done_runs,
                                     on_run=save, seeds=tuple(dirs))
      results = {s: (r, r["runs"]) for s, r in out.items()}
    else:
      # A seed saved by an earlier try is kept; the others run (vmapped) again.
      results = {s: (runs[0], runs) for s, runs in done_runs.items() if runs}
      todo = tuple(s for s in dirs if s not in results)
      if todo:
        if mode == "generalisation":
          out = tptt_protocol.generalisation(config, protocol, writers, seeds=todo, on_run=save)
        else:
          out = tptt_protocol.train_until_solved(config, protocol, config.task.length,
                                                 writer=writers, seeds=todo, on_run=save)
        results.update({s: (r, [r]) for s, r in out.items()})
      results = {s: results[s] for s in dirs}

    learner = config.learner.name
    summaries = []
    for s, (result, runs) in results.items():
      for run in runs:
        _figures(run, dirs[s], learner)
      summary = _summary(mode, config, runs, result.get("t_max"))
      if several:
        metrics_io.write_json(os.path.join(dirs[s], "protocol.json"), summary)
      summaries.append({"seed": s, **summary})
    if several:
      metrics_io.write_json(done, {"mode": mode, "learner": learner, "task": config.task.name,
                                   "seeds": summaries})
    else:
      metrics_io.write_json(done, {k: v for k, v in summaries[0].items() if k != "seed"})
  return results, True
