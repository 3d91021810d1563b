"""experiments/reproduce.py's library: paper data consistent with the tables' columns, the local
presets build, and a tiny table runs end to end (CSV, markdown with the paper's numbers, figures,
"not available yet" rows, finished runs reused)."""

import csv
import json
import os

import pytest

from tca_jax import config as config_lib
from tca_jax import reproduce as rp
from tca_jax.registry import ConfigError


def _tiny(length=10):
  c = config_lib.default_config()
  c.task.name = "temporal_order"
  c.task.length = length
  c.model.cell = "srn"
  c.model.hidden_size = 8
  c.train.steps = 5
  c.train.batch_size = 4
  c.train.log_every = 1
  c.train.eval_every = 2
  c.train.eval_batches = 1
  c.train.eval_batch_size = 8
  c.train.test_batches = 1
  c.train.checkpoint_every = 0
  return c


def _bptt(c):
  c.learner.name = "bptt"


def _too_long(c):
  c.learner.name = "tbptt"
  c.learner.truncation = 50


ACC = rp.Metric("acc.", "accuracy", 100.0, ".1f")
TINY = rp.Table(
    name="tiny",
    title="a tiny table",
    source="nowhere, Table 0",
    rows=(rp.Row("BPTT", "bptt", _bptt, {("T=100", "acc."): 12.5}),
          rp.Row("TBPTT k=50", "tbptt", _too_long, {("T=100", "acc."): 1.0}),
          rp.Row("Future learner", "no_such_learner", _bptt, {("T=100", "acc."): 99.0}),
          rp.Row("Transformer", None, None, {("T=100", "acc."): 97.9})),
    settings=lambda preset: [rp.Setting("T=100", "T=10", _tiny, (ACC,))],
    seeds=(("local", 2), ("full", 1)),
    notes=(("local", "Local preset: tiny."),),
)


def test_paper_numbers_name_existing_columns():
  for table in rp.TABLES.values():
    for preset in rp.PRESETS:
      settings = table.settings(preset)
      labels = {s.paper for s in settings}
      assert len(labels) == len(settings), table.name
    columns = {(s.paper, m.label) for s in table.settings("full") for m in s.metrics}
    for row in table.rows:
      assert row.paper, (table.name, row.label)
      assert set(row.paper) <= columns, (table.name, row.label, set(row.paper) - columns)
  # Spot checks against the papers' text.
  copy = {r.label: r.paper for r in rp.SAB_COPY.rows}
  assert copy["LSTM, full BPTT"][("T=200", "acc.")] == 56.0
  assert copy["SAB k_trunc=5, k_top=5"][("T=300", "acc.")] == 99.9
  tmax = {r.label: r.paper for r in rp.TPTT_TMAX.rows}
  assert tmax["TPTT"][("random permutation", "t_max")] == 300
  assert rp.get_table("sab_table2") is rp.SAB_COPY
  with pytest.raises(ValueError, match="allowed"):
    rp.get_table("nope")


def test_local_copy_rows_build():
  settings = rp.SAB_COPY.settings("local")
  assert [s.label for s in settings] == ["T=10"]
  built = {}
  for row in rp.SAB_COPY.rows:
    c = rp._config_for(row, settings[0], 0)  # pylint: disable=protected-access
    assert c.task.length == 10 and c.train.steps <= 500
    try:
      config_lib.build(c)
      built[row.label] = c.learner.name
    except ConfigError:
      pass
  assert built["LSTM, full BPTT"] == "bptt" and built["LSTM, TBPTT k_trunc=5"] == "tbptt"
  assert "LSTM, TBPTT k_trunc=150" not in built  # longer than the 30-step local sequence


def test_tiny_table_end_to_end(tmp_path):
  result = rp.run_table(TINY, "local", str(tmp_path))
  cells = result["cells"]
  ok = cells[("BPTT", "T=100")]
  assert ok.status == "ok" and len(ok.values["acc."]) == 2
  assert all(0.0 <= v <= 100.0 for v in ok.values["acc."])
  assert cells[("TBPTT k=50", "T=100")].status.startswith("n/a: learner.truncation=50")
  assert cells[("Future learner", "T=100")].status == "not available yet"
  assert cells[("Transformer", "T=100")].status == "not in tca-jax"

  md = open(result["md"]).read()
  assert "Reduced run" in md and "Local preset: tiny." in md
  assert "| T=100 acc. [ours: T=10] |" in md
  bptt_line = next(l for l in md.splitlines() if l.startswith("| BPTT |"))
  assert " ± " in bptt_line and bptt_line.rstrip(" |").endswith("(12.5)")
  assert "not available yet (99.0)" in md and "not in tca-jax (97.9)" in md

  rows = list(csv.DictReader(open(result["csv"])))
  bptt = [r for r in rows if r["row"] == "BPTT"]
  assert [r["seed"] for r in bptt] == ["0", "1"] and bptt[0]["paper"] == "12.5"
  assert float(bptt[0]["value"]) == pytest.approx(ok.values["acc."][0])
  assert result["figures"] and os.path.getsize(result["figures"][0]) > 1000

  # A second call reads the finished runs back instead of training them again.
  metrics = os.path.join(ok.workdirs[0], "metrics.jsonl")
  before = open(metrics).read()
  again = rp.run_table(TINY, "local", str(tmp_path))
  assert open(metrics).read() == before
  assert again["cells"][("BPTT", "T=100")].values == ok.values


def test_iters_kind_reports_the_first_solving_step(tmp_path):
  table = rp.Table(name="tiny_iters", title="t", source="s",
                   rows=(rp.Row("BPTT", "bptt", _bptt, {("T=100", "iterations"): 10}),),
                   settings=lambda preset: [rp.Setting("T=100", "T=10", _tiny,
                                                       (rp.Metric("iterations", "iters"),))],
                   kind="iters")
  # A finished run (its test record written) is read back, not trained: fake one.
  seed0 = tmp_path / "seed0"
  seed0.mkdir()
  records = [{"step": 2, "split": "eval", "accuracy": 0.5},
             {"step": 4, "split": "eval", "accuracy": 0.995},
             {"step": 5, "split": "test", "accuracy": 0.99}]
  (seed0 / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in records) + "\n")
  cell = rp.run_cell(table, table.rows[0], table.settings("local")[0], "local", str(tmp_path))
  assert cell.status == "ok" and cell.values == {"iterations": [4.0]} and not cell.detail
  records[1]["accuracy"] = records[2]["accuracy"] = 0.9
  (seed0 / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in records) + "\n")
  cell = rp.run_cell(table, table.rows[0], table.settings("local")[0], "local", str(tmp_path))
  assert cell.detail == "not solved in 5 iterations"
  assert rp.format_cell(cell, table.settings("local")[0].metrics[0], 10) == (
      "not solved in 5 iterations (10)")


def test_t_max_cells_say_where_the_curriculum_stopped():
  metric = rp.TPTT_TMAX.settings("local")[0].metrics[0]
  failed = rp.Cell("ok", {"t_max": [20.0]}, [], "failed at T=30")
  assert rp.format_cell(failed, metric, 120) == "20, failed at T=30 (120)"
  capped = rp.Cell("ok", {"t_max": [20.0]}, [], "solved up to the largest T tried (20)")
  assert rp.format_cell(capped, metric, 150) == ">= 20 (150)"
  labels = [s.label for s in rp.TPTT_GENERALISATION.settings("local")]
  assert labels[0] == "temporal order (train T=10, test T=20)"
  assert [s.paper for s in rp.TPTT_GENERALISATION.settings("full")] == [
      "temporal order", "3-bit temporal order", "adding", "random permutation"]
