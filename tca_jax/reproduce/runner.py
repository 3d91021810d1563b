"""Runs a paper table (`tca_jax.reproduce.table.Table`): its rows x columns x seeds, one run kind
per table.

    result = run_table(tables.SAB_COPY, preset="local", out_dir="results")

(`tables`: experiments/configs/tables.py) writes `results/STEM.csv`, `results/STEM.md` and
figures (`tca_jax.reproduce.render`; STEM = NAME for the full preset, NAME_PRESET otherwise). Runs
live in `results/STEM/<row>/<column>/` (`seeds`: the cell's seeds as one vmapped run of the
generic trainer; `seed<k>`: one protocol run per seed; <column> is the paper's column label); a
finished run is read back instead of trained again (the generic trainer's `test` record, or the
protocol's `protocol.json`), so an interrupted reproduction continues where it stopped. The table
is an argument: the papers' tables are recipes in experiments/configs/tables.py, which this
library does not import.

Rows whose learner is not registered (`tca_jax.learners.names()`) are listed as "not available
yet"; rows the paper has but tca-jax does not implement (the Transformer) as "not in tca-jax"; a
configuration that is invalid at the local scale (a truncation longer than the local sequence) as
"n/a" with the reason.

Run kinds (`RUN_KINDS`, named by `Table.kind`): each is `kind(config, metrics, workdir,
train_now) -> SeedResult` (or one per seed for "final"), with `SeedResult.values` mapping a metric
label to its number for one seed:

* "final": `train.train_and_evaluate` and the test metrics;
* "t_max", "iters", "generalisation": the TPTT paper's protocol (`tca_jax.tptt_protocol`) with the
  config's `protocol` section: the largest T solved (Table 1), the iterations to solve at
  `task.length` (Table 2), the accuracy at `protocol.test_length` after training at
  `protocol.train_length` (Table 4).
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import re
import time
from typing import Dict, Optional, Sequence

from absl import logging

from tca_jax import checkpoint
from tca_jax import config as config_lib
from tca_jax import learners, metrics_io, protocol_workdir, train, tptt_protocol
from tca_jax import workdir as workdir_lib
from tca_jax.registry import ConfigError
from tca_jax.reproduce import render
from tca_jax.reproduce import table as table_lib

NAN = float("nan")


@dataclasses.dataclass
class SeedResult:
  """What one seed of a cell has: its numbers and how far its run got."""

  values: dict  # metric label -> number (NaN: none yet)
  detail: str = ""  # "failed at T=100", "not solved in 20000 iterations", "at step 6500 of ..."
  state: str = "done"  # "done", "partial" (a run stopped or still going), "pending" (not started)


@dataclasses.dataclass
class TableCell:
  """What one (row, setting) of a table produced."""

  status: str  # "ok", "not available yet", "not in tca-jax", "n/a: ...", "error: ..."
  values: dict = dataclasses.field(default_factory=dict)  # metric label -> [per seed]
  workdirs: list = dataclasses.field(default_factory=list)
  detail: str = ""  # e.g. "not solved in 300 iterations" (the last seed's)
  seeds: list = dataclasses.field(default_factory=list)  # [SeedResult] per seed
  carried: bool = False  # read from the table's earlier CSV (`carry_over`), not from run folders

  @property
  def finished(self) -> bool:
    return all(r.state == "done" for r in self.seeds)


@dataclasses.dataclass(frozen=True)
class Selection:
  """Which runs of a table this process trains; the others are only read back.

  Several processes can fill one table at once, each with its own selection (each run's workdir
  is owned by the process training it); every process writes the whole table from what is
  finished so far. `None` selects everything; `train=False` trains nothing (render only).
  """

  rows: Optional[frozenset] = None  # render.slug(row.label)
  columns: Optional[frozenset] = None  # render.slug(setting.paper)
  seeds: Optional[frozenset] = None  # seed numbers (protocol tables: one run per seed)
  train: bool = True

  def trains(self, row, setting, seed: Optional[int] = None) -> bool:
    return (self.train
            and (self.rows is None or render.slug(row.label) in self.rows)
            and (self.columns is None or render.slug(setting.paper) in self.columns)
            and (seed is None or self.seeds is None or seed in self.seeds))

  def check(self, table: table_lib.Table, preset: str) -> None:
    """A one-line ValueError naming an unknown preset, row, column or seed, with the allowed
    ones."""
    table.check_preset(preset)  # first: a table builds its settings for its own presets only
    for flag, chosen, allowed in (
        ("rows", self.rows, [render.slug(r.label) for r in table.rows]),
        ("columns", self.columns, [render.slug(s.paper) for s in table.settings(preset)]),
        ("seeds", self.seeds, list(range(table.num_seeds(preset))))):
      unknown = sorted(set(chosen or ()) - set(allowed), key=str)
      if unknown:
        raise ValueError(f"--{flag}={','.join(map(str, unknown))} is not in table "
                         f"{table.name!r}; allowed: {', '.join(map(str, allowed))}")


EVERYTHING = Selection()


def select(table: table_lib.Table, preset: str, rows: Optional[Sequence[str]] = None,
           columns: Optional[Sequence[str]] = None, seeds: Optional[Sequence[str]] = None,
           train: bool = True) -> Selection:
  """The Selection that flag values name (lists of strings, None for all), checked against the
  table and preset (`Selection.check`); a one-line ValueError otherwise."""
  try:
    seed_numbers = None if seeds is None else frozenset(int(x) for x in seeds)
  except ValueError:
    raise ValueError(f"--seeds={','.join(seeds)}: give seed numbers, e.g. --seeds=0,1,2"
                     ) from None
  selection = Selection(rows=None if rows is None else frozenset(rows),
                        columns=None if columns is None else frozenset(columns),
                        seeds=seed_numbers, train=train)
  selection.check(table, preset)
  return selection


# ------------------------------------------------------------------------------------------------
# Run kinds: kind(config, metrics, workdir, train) -> SeedResult, or [SeedResult] per seed for
# "final" (its seeds are one vmapped run). With train=False nothing is trained: a finished run is
# read back, an unfinished one reports how far it got.


def _test_record(workdir: str):
  path = os.path.join(workdir, "metrics.jsonl")
  if not os.path.exists(path):
    return None
  tests = [r for r in metrics_io.read_metrics(workdir) if r.get("split") == "test"]
  return tests[-1] if tests else None


def _per_seed(record: dict, key: str, num_seeds: int) -> list:
  """`key`'s value per seed in a trainer record (`KEY_seeds` with several seeds)."""
  if num_seeds > 1 and f"{key}_seeds" in record:
    return [NAN if v is None else float(v) for v in record[f"{key}_seeds"]]
  v = record.get(key)
  return [NAN if v is None else float(v)] * num_seeds


def _no_number(metrics, n: int, detail: str, state: str) -> list:
  """`n` seeds without a number yet (NaN for every metric)."""
  return [SeedResult({m.label: NAN for m in metrics}, detail, state) for _ in range(n)]


def _before_first_evaluation(config, step: int, running) -> str:
  """Where a generic-trainer run stopped before its first evaluation (slow rows)."""
  return (f"{'running' if running else 'stopped'} at step {step} of {config.train.steps}, "
          f"before its first evaluation (step {config.train.eval_every})")


def run_final(config, metrics, workdir, train_now=True):
  """Test metrics of the generic trainer's run in `workdir`, one SeedResult per seed (all the
  config's `num_seeds` seeds train in one vmapped run); read back when finished."""
  n = config.get("num_seeds", 1)
  result = _test_record(workdir)
  if result is None and train_now:
    # An interrupted run resumes from its latest checkpoint (the trainer truncates its records).
    logging.info("train %s", workdir)
    train.train_and_evaluate(config, workdir)
    result = _test_record(workdir)
  elif result is not None:
    logging.info("reuse %s (finished)", workdir)
  if result is not None:
    per = {m.label: [v * m.scale for v in _per_seed(result, m.key, n)] for m in metrics}
    return [SeedResult({label: vs[i] for label, vs in per.items()}) for i in range(n)]
  # Not finished and not trained here: how far it got (the last evaluation), or pending.
  records = (metrics_io.read_metrics(workdir)
             if os.path.exists(os.path.join(workdir, "metrics.jsonl")) else [])
  evals = [r for r in records if r.get("split") == "eval"]
  running = workdir_lib.holder(workdir)
  if not evals:
    trained = [r["step"] for r in records if r.get("split") == "train"]
    if not trained:
      return _no_number(metrics, n, "not started", "pending")
    # Slow rows stop before their first evaluation: say where, so the row is never a blank.
    return _no_number(metrics, n, _before_first_evaluation(config, trained[-1], running),
                      "partial")
  last = evals[-1]
  where = (f"{'running' if running else 'stopped'} at step {last['step']} of "
           f"{config.train.steps}")
  per = {m.label: [v * m.scale for v in _per_seed(last, m.key, n)] for m in metrics}
  return [SeedResult({label: vs[i] for label, vs in per.items()}, where, "partial")
          for i in range(n)]


def _protocol(config, workdir, mode, train_now):
  """The TPTT protocol's result in `workdir` (`protocol_workdir`'s resumable run: per-T
  files for a curriculum, protocol.json when finished), or None when not finished and
  `train_now` is False."""
  path = os.path.join(workdir, "protocol.json")
  if os.path.exists(path):
    logging.info("reuse %s (finished)", workdir)
    return workdir_lib.read_json(path)
  if not train_now:
    return None
  results, _ = protocol_workdir.run(config, workdir, mode)  # one seed: {config.seed: ...}
  (result, runs), = results.values()
  return {**_without_history(result), "runs": [_without_history(r) for r in runs]}


def _without_history(result: dict) -> dict:
  out = {k: v for k, v in result.items() if k != "history"}
  if "runs" in out:
    out["runs"] = [_without_history(r) for r in out["runs"]]
  return out


def _not_solved(run: dict) -> str:
  if run["reason"] == "max_iters":
    return f"not solved in {run['stopped_at']} iterations"
  return f"stopped at iteration {run['stopped_at']} ({run['reason']})"


def _unfinished(config, workdir: str, metrics) -> SeedResult:
  """A protocol run that is not finished: pending, or (curriculum) the lengths it solved so far."""
  runs_dir = os.path.join(workdir, protocol_workdir.RUNS_DIR)
  done = protocol_workdir.finished_lengths(runs_dir)
  running = workdir_lib.holder(workdir) if os.path.isdir(workdir) else None
  if not done:
    return SeedResult({m.label: NAN for m in metrics},
                      "running" if running else "not started", "partial" if running else "pending")
  solved = [r["length"] for r in done if r["solved"]]
  next_length = done[-1]["length"] + tptt_protocol.protocol_from_config(config).length_step
  return SeedResult({metrics[0].label: float(max(solved)) if solved else NAN},
                    f"{'running' if running else 'stopped'} at T={next_length}", "partial")


def run_t_max(config, metrics, workdir, train_now=True):
  """Table 1: T = start, start + step, ... while solved; the largest T solved."""
  result = _protocol(config, workdir, "curriculum", train_now)
  if result is None:
    return _unfinished(config, workdir, metrics)
  last = result["runs"][-1]
  detail = (f"solved up to the largest T tried ({result['t_max']})" if last["solved"]
            else f"failed at T={last['length']}")
  return SeedResult({metrics[0].label: float(result["t_max"])}, detail)


def run_iters(config, metrics, workdir, train_now=True):
  """Table 2: the iterations to solve at `task.length` (NaN when not solved)."""
  run = _protocol(config, workdir, "single", train_now)
  if run is None:
    return _unfinished(config, workdir, metrics)
  run = run["runs"][0] if "runs" in run else run
  if not run["solved"]:
    return SeedResult({metrics[0].label: NAN}, _not_solved(run))
  return SeedResult({metrics[0].label: float(run["iterations"])})


def run_generalisation(config, metrics, workdir, train_now=True):
  """Table 4: accuracy at `protocol.test_length` after training at `protocol.train_length`."""
  run = _protocol(config, workdir, "generalisation", train_now)
  if run is None:
    return _unfinished(config, workdir, metrics)
  run = run["runs"][0] if "runs" in run else run
  m = metrics[0]
  return SeedResult({m.label: float(run["test_accuracy"]) * m.scale},
                    "" if run["solved"] else _not_solved(run))


def run_transfer(config, metrics, workdir, train_now, train_config, train_workdir):
  """Table 6: another table's trained run (`Table.trained_in`) tested at this column's
  `task.eval_length`, evaluation only (`train.evaluate_checkpoint`), one SeedResult per seed.

  When `train_now` and that run is not finished, it is trained first (in its own table's folder,
  so the other table reads it back); while it is unfinished (or another process trains it), its
  newest checkpoint is tested and the seeds are "partial" at that step. The test is cached in
  WORKDIR/transfer.json per checkpoint step.
  """
  n = config.get("num_seeds", 1)
  if train_now and _test_record(train_workdir) is None:
    try:
      logging.info("train %s (for %s)", train_workdir, workdir)
      train.train_and_evaluate(train_config, train_workdir)
    except workdir_lib.WorkdirBusy:
      logging.info("%s is trained by another process: testing its newest checkpoint",
                   train_workdir)
  latest = checkpoint.latest_step(train_workdir)
  if latest is None:
    return _no_number(metrics, n, "not started", "pending")
  running = workdir_lib.holder(train_workdir)
  if train_config.train.eval_every and latest < train_config.train.eval_every:
    # Not worth a test at long T (an hour of CPU for dense attention at T=2000): a model that
    # has not reached its own first evaluation.
    return _no_number(metrics, n, _before_first_evaluation(train_config, latest, running),
                      "partial")
  cache_path = os.path.join(workdir, "transfer.json")
  cached = workdir_lib.read_json(cache_path) if os.path.exists(cache_path) else None
  if cached is None or cached["step"] != latest:
    step, record = train.evaluate_checkpoint(train_config, config, train_workdir)
    if step is None:
      return _no_number(metrics, n, "not started", "pending")
    cached = {"step": int(step), "train_workdir": train_workdir, "test": record}
    os.makedirs(workdir, exist_ok=True)
    _write_atomic(cache_path, json.dumps(cached, indent=1))
  step, record = cached["step"], cached["test"]
  per = {m.label: [v * m.scale for v in _per_seed(record, m.key, n)] for m in metrics}
  done = step >= train_config.train.steps and _test_record(train_workdir) is not None
  if done:
    return [SeedResult({label: vs[i] for label, vs in per.items()}) for i in range(n)]
  where = f"{'running' if running else 'stopped'} at step {step} of {train_config.train.steps}"
  return [SeedResult({label: vs[i] for label, vs in per.items()}, where, "partial")
          for i in range(n)]


RUN_KINDS = {"final": run_final, "t_max": run_t_max, "iters": run_iters,
             "generalisation": run_generalisation, "transfer": run_transfer}


# ------------------------------------------------------------------------------------------------
# Tables


def _trained_run(table: table_lib.Table, row: table_lib.Row, preset: str, seeds: tuple,
                 out_dir: str):
  """A "transfer" table's trained run for `row`: `(config, workdir)` of the row of the same
  label (`render.slug`) in `table.trained_in`, at its column `table.trained_setting`, with
  `seeds` (OUT_DIR/<that table's stem>/<row>/<column>/seeds). ConfigError when the other table
  has no such row or column."""
  source = table.trained_in
  rows = [r for r in source.rows if render.slug(r.label) == render.slug(row.label)]
  settings = [s for s in source.settings(preset) if s.paper == table.trained_setting]
  if not rows or not settings:
    raise ConfigError(f"table {table.name!r} row {row.label!r}: table {source.name!r} has no row "
                      f"of that name at column {table.trained_setting!r} to test")
  config = table_lib.config_for(rows[0], settings[0], seeds[0])
  if len(seeds) > 1:
    config.num_seeds = len(seeds)
  config_lib.build(config)
  workdir = os.path.join(out_dir, source.stem(preset), render.slug(rows[0].label),
                         render.slug(settings[0].paper), "seeds" if len(seeds) > 1 else "seed0")
  return config, workdir


def run_cell(table: table_lib.Table, row: table_lib.Row, setting: table_lib.Setting, preset: str,
             run_dir: str, selection: Selection = EVERYTHING,
             out_dir: Optional[str] = None) -> TableCell:
  """All seeds of one (row, setting); never raises for a row that cannot run.

  A generic-trainer cell ("final") trains its seeds as one vmapped run (`num_seeds`) in
  RUN_DIR/seeds (RUN_DIR/seed0 with one seed); a protocol cell runs one protocol per seed in
  RUN_DIR/seed<k>; a "transfer" cell tests the run of another table (`Table.trained_in`) in
  OUT_DIR (default: RUN_DIR's grandparent's parent) and caches the test in RUN_DIR/seeds. Runs
  that `selection` does not train are read back (finished, partial or pending); a run another
  process owns is reported as running.
  """
  if row.learner is None:
    return TableCell("not in tca-jax")
  if row.learner not in learners.names():
    return TableCell("not available yet")
  run = RUN_KINDS[table.kind]
  n = table.num_seeds(preset)
  cell = TableCell("ok", {m.label: [] for m in setting.metrics})
  one_run = table.kind in ("final", "transfer")  # all seeds in one vmapped run
  if one_run:
    jobs = [(tuple(range(n)), os.path.join(run_dir, "seeds" if n > 1 else "seed0"))]
  else:
    jobs = [((seed,), os.path.join(run_dir, f"seed{seed}")) for seed in range(n)]
  for seeds, workdir in jobs:
    try:
      config = table_lib.config_for(row, setting, seeds[0])
      if len(seeds) > 1:
        config.num_seeds = len(seeds)
      config_lib.build(config)  # ConfigError before anything is written
      train_now = selection.trains(row, setting, None if len(seeds) > 1 else seeds[0])
      extra = ()
      if table.kind == "transfer":
        # RUN_DIR is OUT_DIR/<stem>/<row>/<column>.
        extra = _trained_run(table, row, preset, seeds, out_dir or os.path.dirname(
            os.path.dirname(os.path.dirname(run_dir))))
      try:
        results = run(config, setting.metrics, workdir, train_now, *extra)
      except workdir_lib.WorkdirBusy:
        results = run(config, setting.metrics, workdir, False, *extra)
    except train.Preempted:
      raise  # SIGTERM: the checkpoint is saved; the reproduction stops (and resumes when rerun)
    except ConfigError as e:
      return TableCell(f"n/a: {e}")
    except Exception as e:  # pylint: disable=broad-except
      # A missing dataset, a NaN stop: the table still gets written, with the reason.
      logging.warning("%s / %s failed: %s", row.label, setting.label, e)
      return TableCell("error: " + str(e).splitlines()[0][:200] if str(e) else
                       type(e).__name__)
    for result in (results if isinstance(results, list) else [results]):
      cell.workdirs.append(workdir)
      cell.seeds.append(result)
      cell.detail = result.detail or cell.detail
      for label, v in result.values.items():
        cell.values[label].append(v)
  return cell


def _protocol_budget(settings):
  """The protocol tables' iterations per run (`protocol.max_iters`) if every column shares it."""
  budgets = {s.config().get("protocol", {}).get("max_iters") for s in settings}
  return budgets.pop() if len(budgets) == 1 else None


def _write_atomic(path: str, text: str) -> None:
  """Several processes may write one table (each its own selection): the last complete one wins."""
  tmp = f"{path}.{os.getpid()}.tmp"
  with open(tmp, "w", encoding="utf-8") as f:
    f.write(text)
  os.replace(tmp, path)


def _csv_number(text: str) -> float:
  try:
    return float(text)
  except ValueError:
    return float("nan")


_PROGRESS = re.compile(r"at (?:step |T=)(\d+)")


def _progress(result: SeedResult) -> tuple:
  """How far one seed got, comparable across runs of the same cell: finished beats partial
  beats pending; between partial seeds, the step (generic trainer) or the T (curriculum) its
  detail names ("stopped at step 13000 of 100000", "stopped at T=180")."""
  if result.state == "done":
    return (2, 0)
  if result.state == "partial":
    match = _PROGRESS.search(result.detail or "")
    return (1, int(match.group(1)) if match else 0)
  return (0, 0)


def carry_over(cells: dict, csv_path: str) -> int:
  """Fills the seeds that got further before from the table's CSV; returns how many cells.

  Run folders are not committed and a later machine may not have them, while the table's CSV is
  committed: without this, re-rendering a table after some of its runs' folders are gone (or
  filling one row or seed of it on a fresh checkout) would replace the numbers they produced
  with "not run yet", or with a restarted run's earlier stopping point. Seed by seed, a cell that
  ran ("ok", here and in the CSV) takes the CSV's seed (value, state, detail) when that seed got
  further than the one here (`_progress`: finished > stopped at a later step or T > stopped
  earlier > not started); a seed here that got as far or further wins. A cell with any seed
  from the CSV is marked `carried`; the learning-curve figures, drawn from run folders, leave
  such seeds out.
  """
  if not os.path.exists(csv_path):
    return 0
  with open(csv_path, encoding="utf-8", newline="") as f:
    lines = list(csv.DictReader(f))
  previous: Dict[tuple, list] = {}
  for line in lines:
    previous.setdefault((line["row"], line["paper_setting"]), []).append(line)
  carried = 0
  for key, cell in cells.items():
    old = previous.get(key)
    if cell.status != "ok" or not old or old[0]["status"] != "ok":
      continue
    # One line per seed and metric, seeds in order (a pending seed's line has no seed number).
    seeds: Dict[int, SeedResult] = {}
    workdirs: Dict[int, str] = {}
    counts: Dict[str, int] = {}
    for line in old:
      seed = counts.get(line["metric"], 0)
      counts[line["metric"]] = seed + 1
      result = seeds.setdefault(seed, SeedResult({}, line["detail"], line["state"] or "pending"))
      result.values[line["metric"]] = _csv_number(line["value"])
      workdirs[seed] = line["workdir"]
    if len(seeds) != len(cell.seeds):
      continue  # another number of seeds: another configuration of the table
    took = False
    for i, before in seeds.items():
      if _progress(before) > _progress(cell.seeds[i]):
        cell.seeds[i] = before
        for label in cell.values:
          cell.values[label][i] = before.values.get(label, NAN)
        if i < len(cell.workdirs):
          cell.workdirs[i] = workdirs[i]
        took = True
    if took:
      cell.detail = cell.seeds[-1].detail
      cell.carried = True
      carried += 1
  return carried


def run_table(table: table_lib.Table, preset: str, out_dir: str = "results",
              selection: Selection = EVERYTHING) -> dict:
  """Runs the (row, setting, seed) runs `selection` picks, reads the others back, and writes
  STEM.csv, STEM.md and STEM_<setting>.png in `out_dir` (STEM = `table.stem(preset)`; the runs
  live in OUT_DIR/STEM/<row>/<setting>/).

  Returns:
    {"cells": {(row label, setting paper label): TableCell}, "csv": path, "md": path,
     "figures": [...], "seconds": float}.
  """
  table.check_preset(preset)
  if table.kind not in RUN_KINDS:
    raise ValueError(f"table {table.name!r}: kind={table.kind!r}; allowed: "
                     f"{', '.join(RUN_KINDS)}")
  if table.kind == "transfer" and table.trained_in is None:
    raise ValueError(f"table {table.name!r}: kind='transfer' needs trained_in (the table whose "
                     "runs it tests)")
  selection.check(table, preset)
  if preset == "local":
    logging.info("REDUCED RUN (preset local): %s", table.note("local"))
  start = time.time()
  settings = table.settings(preset)
  stem = table.stem(preset)
  cells = {}
  for row in table.rows:
    for setting in settings:
      run_dir = os.path.join(out_dir, stem, render.slug(row.label), render.slug(setting.paper))
      logging.info("%s: %s / %s", table.name, row.label, setting.label)
      cells[(row.label, setting.paper)] = run_cell(table, row, setting, preset, run_dir,
                                                   selection, out_dir)
  os.makedirs(out_dir, exist_ok=True)
  csv_path = os.path.join(out_dir, f"{stem}.csv")
  carried = carry_over(cells, csv_path)
  if carried:
    logging.info("%s: %d cell(s) read from %s (their run folders are not here)", table.name,
                 carried, csv_path)
  _write_atomic(csv_path, render.csv_text(table, preset, settings, cells))
  seconds = time.time() - start
  md_path = os.path.join(out_dir, f"{stem}.md")
  _write_atomic(md_path, render.markdown(table, preset, settings, cells))
  if table.kind == "final":
    figures = render.write_figures(table, settings, cells, out_dir, stem)
  elif table.kind == "transfer":
    figures = render.write_transfer_figure(table, settings, cells, out_dir, stem)
  else:
    figures = render.write_protocol_figures(table, settings, cells, out_dir, stem,
                                            budget=_protocol_budget(settings))
  return {"cells": cells, "csv": csv_path, "md": md_path, "figures": figures, "seconds": seconds}
