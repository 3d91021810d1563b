"""Runs a paper table (`experiments.tables`): its rows x columns x seeds, one run kind per table.

    result = run_table(tables.SAB_COPY, preset="local", out_dir="results")

writes `results/NAME.csv`, `results/NAME.md` and figures (`experiments.render`). Runs live in
`results/NAME/<row>/<column>/seed<k>`; a finished run is read back instead of trained again
(the generic trainer's `test` record, or the protocol's `protocol.json`), so an interrupted
reproduction continues where it stopped.

Rows whose learner is not registered (`tca_jax.learners.names()`) are listed as "not available
yet"; rows the paper has but tca-jax does not implement (the Transformer) as "not in tca-jax"; a
configuration that is invalid at the local scale (a truncation longer than the local sequence) as
"n/a" with the reason.

Run kinds (`RUN_KINDS`, named by `Table.kind`): each is `kind(config, metrics, workdir) ->
(values, detail)`, `values` mapping a metric label to its number for one seed:

* "final": `train.train_and_evaluate` and the test metrics;
* "t_max", "iters", "generalisation": the TPTT paper's protocol (`tca_jax.tptt_protocol`) with the
  config's `protocol` section: the largest T solved (Table 1), the iterations to solve at
  `task.length` (Table 2), the accuracy at `protocol.test_length` after training at
  `protocol.train_length` (Table 4).
"""

from __future__ import annotations

import dataclasses
import json
import os
import time

from absl import logging

from experiments import render, tables
from tca_jax import config as config_lib
from tca_jax import learners, metrics_io, tptt_protocol, train
from tca_jax.registry import ConfigError

NAN = float("nan")


@dataclasses.dataclass
class TableCell:
  """What one (row, setting) of a table produced."""

  status: str  # "ok", "not available yet", "not in tca-jax", "n/a: ...", "error: ..."
  values: dict = dataclasses.field(default_factory=dict)  # metric label -> [per seed]
  workdirs: list = dataclasses.field(default_factory=list)
  detail: str = ""  # e.g. "not solved in 300 iterations"


# ------------------------------------------------------------------------------------------------
# Run kinds


def _test_record(workdir: str):
  path = os.path.join(workdir, "metrics.jsonl")
  if not os.path.exists(path):
    return None
  tests = [r for r in metrics_io.read_metrics(workdir) if r.get("split") == "test"]
  return tests[-1] if tests else None


def run_final(config, metrics, workdir):
  """Test metrics of the generic trainer's run in `workdir`: read back when finished."""
  result = _test_record(workdir)
  if result is None:
    # An interrupted run resumes from its latest checkpoint (the trainer truncates its records).
    logging.info("train %s", workdir)
    result = train.train_and_evaluate(config, workdir)
  else:
    logging.info("reuse %s (finished)", workdir)
  values = {}
  for m in metrics:
    v = result.get(m.key)
    values[m.label] = NAN if v is None else float(v) * m.scale
  return values, ""


def _protocol_run(config, workdir, run):
  """`run(protocol, writer)`'s result, cached in WORKDIR/protocol.json (without the history)."""
  path = os.path.join(workdir, "protocol.json")
  if os.path.exists(path):
    logging.info("reuse %s (finished)", workdir)
    with open(path, encoding="utf-8") as f:
      return json.load(f)
  protocol = tptt_protocol.protocol_from_config(config)
  os.makedirs(workdir, exist_ok=True)
  metrics_file = os.path.join(workdir, "metrics.jsonl")
  if os.path.exists(metrics_file):  # an interrupted protocol run starts again
    os.remove(metrics_file)
  result = run(protocol, metrics_io.MetricsWriter(workdir))
  result = _without_history(result)
  metrics_io.write_json(path, result)
  return result


def _without_history(result: dict) -> dict:
  out = {k: v for k, v in result.items() if k != "history"}
  if "runs" in out:
    out["runs"] = [_without_history(r) for r in out["runs"]]
  return out


def _not_solved(run: dict) -> str:
  if run["reason"] == "max_iters":
    return f"not solved in {run['stopped_at']} iterations"
  return f"stopped at iteration {run['stopped_at']} ({run['reason']})"


def run_t_max(config, metrics, workdir):
  """Table 1: T = start, start + step, ... while solved; the largest T solved."""
  result = _protocol_run(config, workdir, lambda p, w: tptt_protocol.curriculum(config, p, w))
  last = result["runs"][-1]
  detail = (f"solved up to the largest T tried ({result['t_max']})" if last["solved"]
            else f"failed at T={last['length']}")
  return {metrics[0].label: float(result["t_max"])}, detail


def run_iters(config, metrics, workdir):
  """Table 2: the iterations to solve at `task.length` (NaN when not solved)."""
  run = _protocol_run(config, workdir, lambda p, w: tptt_protocol.train_until_solved(
      config, p, config.task.length, writer=w))
  if not run["solved"]:
    return {metrics[0].label: NAN}, _not_solved(run)
  return {metrics[0].label: float(run["iterations"])}, ""


def run_generalisation(config, metrics, workdir):
  """Table 4: accuracy at `protocol.test_length` after training at `protocol.train_length`."""
  run = _protocol_run(config, workdir, lambda p, w: tptt_protocol.generalisation(config, p, w))
  m = metrics[0]
  return {m.label: float(run["test_accuracy"]) * m.scale}, "" if run["solved"] else (
      _not_solved(run))


RUN_KINDS = {"final": run_final, "t_max": run_t_max, "iters": run_iters,
             "generalisation": run_generalisation}


# ------------------------------------------------------------------------------------------------
# Tables


def run_cell(table: tables.Table, row: tables.Row, setting: tables.Setting, preset: str,
             run_dir: str) -> TableCell:
  """All seeds of one (row, setting); never raises for a row that cannot run."""
  if row.learner is None:
    return TableCell("not in tca-jax")
  if row.learner not in learners.names():
    return TableCell("not available yet")
  run = RUN_KINDS[table.kind]
  cell = TableCell("ok", {m.label: [] for m in setting.metrics})
  for seed in range(table.num_seeds(preset)):
    try:
      config = tables.config_for(row, setting, seed)
      config_lib.build(config)  # ConfigError before anything is written
      workdir = os.path.join(run_dir, f"seed{seed}")
      values, detail = run(config, setting.metrics, workdir)
    except ConfigError as e:
      return TableCell(f"n/a: {e}")
    except Exception as e:  # pylint: disable=broad-except
      # A missing dataset, a NaN stop: the table still gets written, with the reason.
      logging.warning("%s / %s failed: %s", row.label, setting.label, e)
      return TableCell("error: " + str(e).splitlines()[0][:200] if str(e) else
                       type(e).__name__)
    cell.workdirs.append(workdir)
    cell.detail = detail or cell.detail
    for label, v in values.items():
      cell.values[label].append(v)
  return cell


def run_table(table: tables.Table, preset: str, out_dir: str = "results") -> dict:
  """Runs every (row, setting), writes NAME.csv, NAME.md and NAME_<setting>.png in `out_dir`.

  Returns:
    {"cells": {(row label, setting paper label): TableCell}, "csv": path, "md": path,
     "figures": [...], "seconds": float}.
  """
  if preset not in tables.PRESETS:
    raise ValueError(f"--preset={preset!r}; allowed: {', '.join(tables.PRESETS)}")
  if table.kind not in RUN_KINDS:
    raise ValueError(f"table {table.name!r}: kind={table.kind!r}; allowed: "
                     f"{', '.join(RUN_KINDS)}")
  if preset == "local":
    logging.info("REDUCED RUN (preset local): %s", table.note("local"))
  start = time.time()
  settings = table.settings(preset)
  cells = {}
  for row in table.rows:
    for setting in settings:
      run_dir = os.path.join(out_dir, table.name, render.slug(row.label),
                           render.slug(setting.label))
      logging.info("%s: %s / %s", table.name, row.label, setting.label)
      cells[(row.label, setting.paper)] = run_cell(table, row, setting, preset, run_dir)
  os.makedirs(out_dir, exist_ok=True)
  csv_path = render.write_csv(table, preset, settings, cells,
                              os.path.join(out_dir, f"{table.name}.csv"))
  seconds = time.time() - start
  md_path = os.path.join(out_dir, f"{table.name}.md")
  with open(md_path, "w", encoding="utf-8") as f:
    f.write(render.markdown(table, preset, settings, cells))
  figures = render.write_figures(table, settings, cells, out_dir) if table.kind == "final" else []
  return {"cells": cells, "csv": csv_path, "md": md_path, "figures": figures, "seconds": seconds}
