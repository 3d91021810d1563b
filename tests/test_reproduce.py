"""The reproduction library (`tca_jax.reproduce`: table types, runner, render) and the papers'
tables (experiments/configs/tables.py): paper data consistent with the tables' columns, the local
presets build, a tiny table runs end to end (CSV, markdown with the paper's numbers, figures, "not
available yet" rows, finished runs reused), the protocol tables run the TPTT protocol
(`tca_jax.tptt_protocol`), and flag values select runs or fail in one line."""

import csv
import dataclasses
import json
import os

import pytest

from experiments.configs import tables as rp
from tca_jax import config as config_lib
from tca_jax import reproduce
from tca_jax.registry import ConfigError
from tca_jax.reproduce import render, runner


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


ACC = reproduce.Metric("acc.", "accuracy", 100.0, ".1f")
TINY = reproduce.Table(
    name="tiny",
    title="a tiny table",
    source="nowhere, Table 0",
    rows=(reproduce.Row("BPTT", "bptt", _bptt, {("T=100", "acc."): 12.5}),
          reproduce.Row("TBPTT k=50", "tbptt", _too_long, {("T=100", "acc."): 1.0}),
          reproduce.Row("Future learner", "no_such_learner", _bptt, {("T=100", "acc."): 99.0}),
          reproduce.Row("Transformer", None, None, {("T=100", "acc."): 97.9})),
    settings=lambda preset: [reproduce.Setting("T=100", "T=10", _tiny, (ACC,))],
    seeds=(("local", 2), ("full", 1)),
    notes=(("local", "Local preset: tiny."),),
)


def test_paper_numbers_name_existing_columns():
  for table in rp.TABLES.values():
    assert set(table.presets) <= set(reproduce.PRESETS), table.name
    for preset in table.presets:
      settings = table.settings(preset)
      labels = {s.paper for s in settings}
      assert len(labels) == len(settings), table.name
    columns = {(s.paper, m.label) for s in table.settings("full") for m in s.metrics}
    for row in table.rows:
      assert row.paper or table.source is None, (table.name, row.label)
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
    c = reproduce.config_for(row, settings[0], 0)
    assert c.task.length == 10 and c.train.steps <= 500
    try:
      config_lib.build(c)
      built[row.label] = c.learner.name
    except ConfigError:
      pass
  assert built["LSTM, full BPTT"] == "bptt" and built["LSTM, TBPTT k_trunc=5"] == "tbptt"
  assert "LSTM, TBPTT k_trunc=150" not in built  # longer than the 30-step local sequence


def test_tiny_table_end_to_end(tmp_path):
  result = runner.run_table(TINY, "local", str(tmp_path))
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
  again = runner.run_table(TINY, "local", str(tmp_path))
  assert open(metrics).read() == before
  assert again["cells"][("BPTT", "T=100")].values == ok.values


def _tiny_protocol(c):
  c.learner.name = "bptt"
  c.protocol = {"max_iters": 4, "validate_every": 2, "val_samples": 16, "val_batch_size": 8,
                "target_error": 1e-4, "max_length": 20}


def _protocol_table(kind, metric):
  return reproduce.Table(
      name=f"tiny_{kind}", title="t", source="s", kind=kind,
      rows=(reproduce.Row("BPTT", "bptt", _tiny_protocol, {("T=100", metric.label): 10}),),
      settings=lambda preset: [reproduce.Setting("T=100", "T=10", _tiny, (metric,))])


def test_iters_kind_runs_the_protocol(tmp_path):
  table = _protocol_table("iters", reproduce.Metric("iterations", "iters"))
  setting = table.settings("local")[0]
  cell = runner.run_cell(table, table.rows[0], setting, "local", str(tmp_path))
  # 4 iterations of an SRN(8) never reach no mistake in 16 temporal-order samples.
  assert cell.status == "ok" and cell.detail == "not solved in 4 iterations", cell
  saved = json.loads((tmp_path / "seed0" / "protocol.json").read_text())
  assert saved["runs"][0]["reason"] == "max_iters" and "history" not in saved["runs"][0]
  records = [json.loads(l) for l in (tmp_path / "seed0" / "metrics.jsonl").read_text().splitlines()]
  assert [r["iteration"] for r in records] == [2, 4] and "val_error" in records[0]
  assert render.format_cell(cell, setting.metrics[0], 10) == "not solved in 4 iterations (10)"

  # A finished protocol run is read back, not run again: fake a solved one.
  (tmp_path / "seed0" / "protocol.json").write_text(json.dumps(
      {"solved": True, "iterations": 2, "reason": "solved", "stopped_at": 2}))
  cell = runner.run_cell(table, table.rows[0], setting, "local", str(tmp_path))
  assert cell.values == {"iterations": [2.0]} and not cell.detail


def test_t_max_and_generalisation_kinds_read_the_protocol_results(tmp_path):
  runs = [{"length": 10, "solved": True}, {"length": 20, "solved": False,
                                            "reason": "radius", "stopped_at": 4}]
  table = _protocol_table("t_max", reproduce.Metric("t_max", "t_max", 1.0, ".0f"))
  (tmp_path / "seed0").mkdir()
  (tmp_path / "seed0" / "protocol.json").write_text(json.dumps({"t_max": 10, "runs": runs}))
  cell = runner.run_cell(table, table.rows[0], table.settings("local")[0], "local",
                         str(tmp_path))
  assert cell.values == {"t_max": [10.0]} and cell.detail == "failed at T=20"

  table = _protocol_table("generalisation", reproduce.Metric("acc.", "accuracy", 100.0, ".2f"))
  (tmp_path / "seed0" / "protocol.json").write_text(json.dumps(
      {"solved": True, "test_accuracy": 0.5, "reason": "solved", "stopped_at": 2}))
  cell = runner.run_cell(table, table.rows[0], table.settings("local")[0], "local",
                         str(tmp_path))
  assert cell.values == {"acc.": [50.0]} and not cell.detail


def test_t_max_cells_say_where_the_curriculum_stopped():
  metric = rp.TPTT_TMAX.settings("local")[0].metrics[0]
  failed = runner.TableCell("ok", {"t_max": [20.0]}, [], "failed at T=30")
  assert render.format_cell(failed, metric, 120) == "20, failed at T=30 (120)"
  capped = runner.TableCell("ok", {"t_max": [20.0]}, [], "solved up to the largest T tried (20)")
  assert render.format_cell(capped, metric, 150) == ">= 20 (150)"
  labels = [s.label for s in rp.TPTT_GENERALISATION.settings("local")]
  assert labels[0] == "temporal order (train T=10, test T=20)"
  assert [s.paper for s in rp.TPTT_GENERALISATION.settings("full")] == [
      "temporal order", "3-bit temporal order", "adding", "random permutation",
      "adding (release generator and count)"]
  release = rp.TPTT_GENERALISATION.settings("full")[-1].config()
  assert (release.task.name, release.task.variant) == ("adding_pascanu", "release")
  # The protocol tables run the paper's protocol, with its constants in the full preset.
  config = reproduce.config_for(rp.TPTT_TMAX.rows[1], rp.TPTT_TMAX.settings("paper")[0], 0)
  assert (config.learner.name, config.protocol.target_error, config.protocol.max_iters) == (
      "tptt", 1e-4, 100_000)
  # The full preset: the same protocol at 20,000 iterations per T, three seeds.
  config = reproduce.config_for(rp.TPTT_TMAX.rows[1], rp.TPTT_TMAX.settings("full")[0], 2)
  assert (config.protocol.target_error, config.protocol.max_iters, config.seed) == (
      1e-4, 20_000, 2)
  assert rp.TPTT_TMAX.num_seeds("full") == 3 and rp.TPTT_TMAX.stem("paper") == "tptt_tmax_paper"
  local = reproduce.config_for(rp.TPTT_TMAX.rows[0], rp.TPTT_TMAX.settings("local")[0], 0)
  assert (local.learner.name, local.protocol.max_length, local.protocol.max_iters) == (
      "bptt", 20, 300)


def test_no_library_module_imports_experiments():
  root = os.path.join(os.path.dirname(__file__), os.pardir, "tca_jax")
  for folder, _, files in os.walk(root):
    for name in files:
      if name.endswith(".py"):
        text = open(os.path.join(folder, name), encoding="utf-8").read()
        assert "import experiments" not in text and "from experiments" not in text, name


def test_a_table_of_our_own_renders_without_paper_numbers():
  table = reproduce.Table(name="own", title="every learner", source=None,
                          rows=(reproduce.Row("BPTT", "bptt", _bptt, {}),),
                          settings=lambda preset: [reproduce.Setting("copy", "copy", _tiny,
                                                                     (ACC,))])
  settings = table.settings("local")
  cells = {("BPTT", "copy"): runner.TableCell("ok", {"acc.": [97.5]})}
  md = render.markdown(table, "local", settings, cells)
  assert "| BPTT | 97.5 |" in md and "no paper behind this table" in md
  assert "Reduced run" not in md


def test_a_selection_trains_its_seeds_and_reads_the_others_back(tmp_path):
  # Two processes fill one protocol table: this one trains seed 0 only, seed 1 stays pending.
  metric = reproduce.Metric("iterations", "iters")
  table = dataclasses.replace(_protocol_table("iters", metric), seeds=(("local", 2),))
  selection = runner.Selection(seeds=frozenset({0}))
  result = runner.run_table(table, "local", str(tmp_path), selection)
  cell = result["cells"][("BPTT", "T=100")]
  assert [r.state for r in cell.seeds] == ["done", "pending"]
  assert (tmp_path / "tiny_iters_local" / "bptt" / "t_100" / "seed0" / "protocol.json").exists()
  assert not (tmp_path / "tiny_iters_local" / "bptt" / "t_100" / "seed1").exists()
  md = open(result["md"]).read()
  assert "In progress: 1 cell(s)" in md and "1 of 2 seeds finished" in md
  rows = list(csv.DictReader(open(result["csv"])))
  assert [r["state"] for r in rows] == ["done", "pending"]
  # Render only: nothing is trained, the same table comes back.
  again = runner.run_table(table, "local", str(tmp_path), runner.Selection(train=False))
  assert [r.state for r in again["cells"][("BPTT", "T=100")].seeds] == ["done", "pending"]
  with pytest.raises(ValueError, match="--rows=nope is not in table 'tiny_iters'; allowed: bptt"):
    runner.Selection(rows=frozenset({"nope"})).check(table, "local")
  with pytest.raises(ValueError, match="--seeds=5 .* allowed: 0, 1"):
    runner.Selection(seeds=frozenset({5})).check(table, "local")


def test_a_table_keeps_the_numbers_of_runs_whose_folders_are_gone(tmp_path):
  """Run folders are not committed: re-rendering on a machine without them keeps the CSV's
  numbers (seed states and details included) instead of "not run yet", and says so."""
  import shutil  # pylint: disable=g-import-not-at-top
  metric = reproduce.Metric("iterations", "iters")
  table = dataclasses.replace(_protocol_table("iters", metric), seeds=(("local", 2),))
  first = runner.run_table(table, "local", str(tmp_path), runner.Selection(seeds=frozenset({0})))
  cell = first["cells"][("BPTT", "T=100")]
  csv_before = open(first["csv"]).read()
  shutil.rmtree(tmp_path / "tiny_iters_local")
  again = runner.run_table(table, "local", str(tmp_path), runner.Selection(train=False))
  carried = again["cells"][("BPTT", "T=100")]
  assert carried.carried and [r.state for r in carried.seeds] == ["done", "pending"]
  assert repr(carried.values["iterations"][0]) == repr(cell.values["iterations"][0])  # NaN too
  assert [r.detail for r in carried.seeds] == [r.detail for r in cell.seeds]
  assert open(again["csv"]).read() == csv_before
  md = open(again["md"]).read()
  assert "1 cell(s) are read, in whole or in part, from this table's CSV" in md
  assert "1 of 2 seeds finished" in md
  # Filling the other seed here keeps the first one's number (its folder is gone).
  fresh = runner.run_table(table, "local", str(tmp_path), runner.Selection(seeds=frozenset({1})))
  cell = fresh["cells"][("BPTT", "T=100")]
  assert cell.carried and [r.state for r in cell.seeds] == ["done", "done"]
  assert repr(cell.values["iterations"][0]) == repr(carried.values["iterations"][0])
  # A seed run again here that gets as far replaces what was carried.
  again = runner.run_table(table, "local", str(tmp_path), runner.Selection(seeds=frozenset({0})))
  assert not again["cells"][("BPTT", "T=100")].carried


def test_a_restarted_run_that_got_less_far_keeps_the_csv_numbers(tmp_path):
  """A partial seed in the CSV (stopped at step 13000) beats a restarted run here stopped at an
  earlier step, and loses to one that got further; seeds are compared one by one."""
  def result(state, detail, value):
    return runner.SeedResult({"acc.": value}, detail, state)

  def cell(*seeds):
    return runner.TableCell("ok", {"acc.": [s.values["acc."] for s in seeds]},
                            [f"wd{i}" for i in range(len(seeds))], seeds[-1].detail, list(seeds))

  metric = reproduce.Metric("acc.", "accuracy")
  table = reproduce.Table(name="tiny", title="t", source=None, rows=(reproduce.Row("A", "bptt", None, {}),),
                          settings=lambda preset: [reproduce.Setting("T=1", "T=1", dict,
                                                                     (metric,))])
  settings = table.settings("local")
  before = cell(result("partial", "stopped at step 13000 of 100000", 0.25),
                result("partial", "stopped at T=180", 170.0),
                result("done", "", 0.5))
  path = tmp_path / "tiny.csv"
  path.write_text(render.csv_text(table, "local", settings, {("A", "T=1"): before}))
  here = cell(result("partial", "stopped at step 6000 of 100000", 0.1),
              result("partial", "stopped at T=190", 180.0),
              result("pending", "not started", float("nan")))
  assert runner.carry_over({("A", "T=1"): here}, str(path)) == 1
  assert [r.detail for r in here.seeds] == ["stopped at step 13000 of 100000",
                                             "stopped at T=190", ""]
  assert here.values["acc."] == [0.25, 180.0, 0.5] and here.workdirs[1] == "wd1"
  further = cell(result("done", "", 0.9), result("done", "", 1.0), result("done", "", 0.7))
  assert runner.carry_over({("A", "T=1"): further}, str(path)) == 0
  assert further.values["acc."] == [0.9, 1.0, 0.7]


def test_an_unfinished_curriculum_is_a_lower_bound_that_says_where_it_stands(tmp_path):
  metric = reproduce.Metric("t_max", "t_max", 1.0, ".0f")
  table = dataclasses.replace(_protocol_table("t_max", metric), seeds=(("local", 2),))
  runs = tmp_path / "seed1" / "protocol_runs"
  runs.mkdir(parents=True)
  for t in (10, 20):
    (runs / f"T{t:05d}.json").write_text(json.dumps({"length": t, "solved": True}))
  (tmp_path / "seed0").mkdir()
  (tmp_path / "seed0" / "protocol.json").write_text(json.dumps(
      {"t_max": 10, "runs": [{"length": 10, "solved": True}, {"length": 20, "solved": False}]}))
  setting = table.settings("local")[0]
  cell = runner.run_cell(table, table.rows[0], setting, "local", str(tmp_path),
                         runner.Selection(train=False))
  assert [r.state for r in cell.seeds] == ["done", "partial"]
  assert cell.seeds[1].values == {"t_max": 20.0} and cell.seeds[1].detail == "stopped at T=30"
  assert render.format_cell(cell, setting.metrics[0], 120) == (
      "10 [seeds: 10, >= 20 (stopped at T=30)] (120)")


def test_flag_values_select_runs_or_fail_in_one_line():
  table = rp.TPTT_ITERS
  setting = table.settings("full")[0]
  selection = reproduce.select(table, "full", rows=["tptt_best"], seeds=["0", "2"])
  assert selection == reproduce.Selection(rows=frozenset({"tptt_best"}), seeds=frozenset({0, 2}))
  assert selection.trains(table.rows[2], setting, 2)
  assert not selection.trains(table.rows[0], setting, 2)  # another row
  assert not selection.trains(table.rows[2], setting, 1)  # another seed
  assert reproduce.select(table, "full", train=False) == reproduce.Selection(train=False)
  with pytest.raises(ValueError, match=r"^--seeds=a,1: give seed numbers, e.g. --seeds=0,1,2$"):
    reproduce.select(table, "full", seeds=["a", "1"])
  with pytest.raises(ValueError, match=r"^--columns=t_100 is not in table 'tptt_iters'; allowed: "
                     r"temporal_order, 3_bit_temporal_order, adding, random_permutation, "
                     r"adding_release_generator_and_count$"):
    reproduce.select(table, "full", columns=["t_100"])
  # A preset the table does not have is named first (sab_copy builds no "paper" columns).
  with pytest.raises(ValueError,
                     match=r"^--preset='paper' for table 'sab_copy'; allowed: local, full$"):
    reproduce.select(rp.SAB_COPY, "paper", columns=["t_100"])
  # The binary's catalogue: names and aliases; an unknown name lists both.
  assert rp.CATALOGUE.get("tptt_table2") is table and rp.CATALOGUE.get("sab_copy") is rp.SAB_COPY
  with pytest.raises(ValueError, match=r"^--table='nope'; allowed: sab_copy, .* \(aliases: "
                     r"sab_table2, .*tptt_table4\)$"):
    rp.CATALOGUE.get("nope")


def test_protocol_figures_draw_every_seed_and_only_the_last_pass_of_a_restarted_length(tmp_path):
  # A length interrupted at iteration 200 and restarted from 0 logs 100, 200 again: one curve.
  seed = tmp_path / "seed0"
  (seed / "protocol_runs").mkdir(parents=True)
  records = [{"length": 10, "iteration": i, "val_error": e}
             for i, e in ((100, 0.5), (200, 0.4), (100, 0.6), (200, 0.3), (300, 0.0))]
  (seed / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
  assert render._validation_curve(str(seed)) == ([100, 200, 300], [0.6, 0.3, 0.0])
  for t, solved in ((10, True), (20, False)):
    (seed / "protocol_runs" / f"T{t:05d}.json").write_text(json.dumps(
        {"length": t, "solved": solved, "iterations": 300 if solved else None,
         "stopped_at": 300 if solved else 4}))
  for kind, metric in (("t_max", reproduce.Metric("t_max", "t_max", 1.0, ".0f")),
                       ("iters", reproduce.Metric("iterations", "iters"))):
    table = _protocol_table(kind, metric)
    setting = table.settings("local")[0]
    cell = runner.run_cell(table, table.rows[0], setting, "local", str(tmp_path),
                           runner.Selection(train=False))
    out = tmp_path / kind
    out.mkdir()
    paths = render.write_protocol_figures(table, [setting], {(table.rows[0].label, "T=100"): cell},
                                          str(out), budget=4)
    assert [os.path.basename(p) for p in paths] == [f"{table.name}_curves.png"]
    assert os.path.getsize(paths[0]) > 1000


def test_a_transfer_table_tests_the_other_tables_trained_run(tmp_path):
  """SAB Table 6's kind: evaluation only of another table's run of the same row; at the training
  length the test is that run's own test record, exactly."""
  def trained(eval_length=None):
    c = _tiny(10)
    c.train.checkpoint_every = 5
    if eval_length:
      c.task.eval_length = eval_length
    return c

  source = reproduce.Table(
      name="src", title="s", source=None, seeds=(("local", 2), ("full", 1)),
      rows=(reproduce.Row("BPTT", "bptt", _bptt, {}),),
      settings=lambda preset: [reproduce.Setting("T=100", "T=10", trained, (ACC,))])
  transfer = reproduce.Table(
      name="tr", title="t", source=None, kind="transfer", trained_in=source,
      trained_setting="T=100", seeds=(("local", 2), ("full", 1)),
      rows=(reproduce.Row("BPTT", "bptt", _bptt, {}), reproduce.Row("Other", "bptt", _bptt, {})),
      settings=lambda preset: [reproduce.Setting(f"T={t}", f"T={t}", lambda t=t: trained(t),
                                                 (ACC,)) for t in (10, 40)])
  out = str(tmp_path)
  nothing = runner.run_table(transfer, "local", out, runner.Selection(train=False))["cells"]
  assert [r.state for r in nothing[("BPTT", "T=10")].seeds] == ["pending", "pending"]
  assert not os.path.exists(tmp_path / "src_local")
  assert nothing[("Other", "T=10")].status.startswith("n/a: table 'tr' row 'Other': table 'src'")

  cells = runner.run_table(transfer, "local", out)["cells"]  # trains src's run once, tests it
  own = runner.run_table(source, "local", out, runner.Selection(train=False))["cells"]
  assert own[("BPTT", "T=100")].finished
  assert cells[("BPTT", "T=10")].values["acc."] == own[("BPTT", "T=100")].values["acc."]
  at_40 = cells[("BPTT", "T=40")]
  assert at_40.finished and all(0.0 <= v <= 100.0 for v in at_40.values["acc."])
  cache = json.loads((tmp_path / "tr_local" / "bptt" / "t_40" / "seeds" /
                      "transfer.json").read_text())
  assert cache["step"] == 5 and cache["test"]["accuracy_seeds"] == [
      v / 100.0 for v in at_40.values["acc."]]
  assert os.path.exists(tmp_path / "tr_local.png")

  # An unfinished training run (no test record yet): its newest checkpoint, said as partial.
  metrics = tmp_path / "src_local" / "bptt" / "t_100" / "seeds" / "metrics.jsonl"
  metrics.write_text("".join(l + "\n" for l in metrics.read_text().splitlines()
                             if json.loads(l).get("split") != "test"))
  os.remove(tmp_path / "tr_local.csv")  # else its finished seeds are carried over (they got further)
  partial = runner.run_table(transfer, "local", out, runner.Selection(train=False))["cells"]
  assert [r.detail for r in partial[("BPTT", "T=40")].seeds] == ["stopped at step 5 of 5"] * 2
  assert partial[("BPTT", "T=40")].values == at_40.values


def test_a_run_stopped_before_its_first_evaluation_says_where_it_stopped(tmp_path):
  """A slow row (full self-attention at T=100) can stop before its first evaluation: the cell
  says the step it reached instead of "not run yet"."""
  c = _tiny()
  c.train.steps, c.train.eval_every = 100000, 1000
  (tmp_path / "metrics.jsonl").write_text("".join(
      json.dumps({"split": "train", "step": s, "loss": 1.0}) + "\n" for s in (100, 200)))
  seeds = runner.run_final(c, (ACC,), str(tmp_path), train_now=False)
  assert [r.state for r in seeds] == ["partial"]
  assert seeds[0].detail == ("stopped at step 200 of 100000, before its first evaluation "
                             "(step 1000)")
  cell = runner.TableCell("ok", {"acc.": [seeds[0].values["acc."]]}, [str(tmp_path)],
                          seeds[0].detail, seeds)
  assert render.format_cell(cell, ACC, 100.0) == (
      "no number yet (stopped at step 200 of 100000, before its first evaluation (step 1000)) "
      "(100.0)")
