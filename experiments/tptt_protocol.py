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
deterministic, so either way the records equal an uninterrupted run's.
"""

import os
import shutil
import sys

from absl import app, flags, logging
from ml_collections import config_flags
import numpy as np

from tca_jax import cli, metrics_io, plotting, tptt_protocol
from tca_jax import config as config_lib
from tca_jax import workdir as workdir_lib
from tca_jax.registry import ConfigError, error_line

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


def _first_length(config, protocol, mode):
  """The (T, eval T) of the first run, whose config `build` validates before anything is written."""
  if mode == "curriculum":
    return protocol.start_length, None
  if mode == "generalisation":
    return protocol.train_length, protocol.test_length
  return config.task.length, None


RUNS_DIR = "protocol_runs"  # one JSON per finished curriculum length: what a resume keeps


def _finished_lengths(runs_dir):
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
    done_runs = _finished_lengths(runs_dir) if mode == "curriculum" or several else []
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


def _summary(mode, config, runs, t_max):
  return {"mode": mode, "learner": config.learner.name, "task": config.task.name,
          "t_max": t_max, "runs": [{k: v for k, v in r.items() if k != "history"} for r in runs]}


def _run(config, workdir, mode):
  """Validates, takes the workdir, runs the protocol; returns ({seed: (result, runs)}, fresh).

  `result` is the library's result for that seed (`curriculum`'s `{"t_max", "runs"}`, else one
  run's dict); `runs` its per-T runs (with history when run now).
  """
  protocol = tptt_protocol.protocol_from_config(config)
  if mode not in ("curriculum", "generalisation", "single"):
    raise ConfigError(f"protocol.mode={mode!r} is not allowed; allowed: curriculum, "
                      "generalisation, single")
  config_lib.build(tptt_protocol.with_length(config, *_first_length(config, protocol, mode)))
  workdir_lib.check_writable(workdir)
  dirs = seed_dirs(config, workdir)
  several = len(dirs) > 1
  with workdir_lib.owned(workdir, "protocol"):
    same = workdir_lib.check_same_config(workdir, metrics_io.to_python(config.to_dict()))
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


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  logging.set_verbosity(logging.INFO)
  config, workdir = _CONFIG.value, _WORKDIR.value
  mode = config.get("protocol", {}).get("mode", "curriculum")
  try:
    results, _ = _run(config, workdir, mode)
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
