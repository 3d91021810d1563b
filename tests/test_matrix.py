"""The credit-assignment matrix on the tiny preset: every learner x two tasks, 3 seeds, the
table and both heatmaps written; a combination a learner cannot run is a row, not a crash."""

import dataclasses
import math
import os

import pytest

from tca_jax import config as config_lib, learners, matrix


def test_every_matrix_entry_builds_on_every_task():
  names = {e.learner for e in matrix.LEARNERS}
  for name in ("rflo", "eprop", "online_diag", "replay"):
    assert name in names
  assert names <= set(learners.names())
  for preset in matrix.PRESETS.values():
    for entry in matrix.LEARNERS:
      for task in matrix.TASKS:
        c = matrix.make_config(entry, task, preset)
        assert c.num_seeds == preset.seeds and c.train.update_every == 0
        config_lib.build(c)


@pytest.mark.slow
def test_tiny_matrix_writes_table_and_heatmaps(tmp_path):
  entries = [e for e in matrix.LEARNERS if e.learner in ("bptt", "eprop")]
  preset = dataclasses.replace(matrix.PRESETS["tiny"])
  rows = matrix.run_matrix(preset, str(tmp_path), entries=entries,
                           tasks=("adding", "temporal_order"))
  assert len(rows) == 4 and all(r["status"] == "ok" for r in rows), rows
  for r in rows:
    assert len(r["accuracy_seeds"]) == 3 and 0 <= r["accuracy"] <= 1
    assert -1 - 1e-6 <= r["grad_cosine"] <= 1 + 1e-6
  bptt = [r for r in rows if r["learner"] == "bptt"]
  assert all(abs(r["grad_cosine"] - 1) < 1e-4 for r in bptt)  # BPTT against itself
  for name in ("matrix.md", "matrix.csv", "matrix_accuracy.png", "matrix_grad_cosine.png"):
    assert os.path.getsize(tmp_path / name) > 0
  table = (tmp_path / "matrix.md").read_text()
  assert "| eprop |" in table and "temporal_order" in table
  # Read back, not retrained: the same rows.
  again = matrix.run_matrix(preset, str(tmp_path), entries=entries,
                            tasks=("adding", "temporal_order"))
  assert [r["accuracy"] for r in again] == [r["accuracy"] for r in rows]


def test_a_second_matrix_on_the_same_folder_is_refused(tmp_path):
  from tca_jax import workdir  # pylint: disable=g-import-not-at-top
  with workdir.owned(str(tmp_path), "matrix"):
    with pytest.raises(workdir.WorkdirBusy, match="in use by another matrix"):
      matrix.run_matrix(matrix.PRESETS["tiny"], str(tmp_path), entries=matrix.LEARNERS[:1],
                        tasks=("adding",))
  assert sorted(os.listdir(tmp_path)) == [workdir.LOCK_FILE]  # nothing was run or written


def test_a_cell_that_cannot_run_is_a_row(tmp_path):
  bad = matrix.Entry("eprop (gru)", "eprop", matrix._plain("gru", "eprop"))
  row = matrix.run_cell(bad, "adding", matrix.PRESETS["tiny"], str(tmp_path / "x"))
  assert row["status"].startswith("n/a: model.cell") and math.isnan(row["accuracy"])
  assert not os.path.exists(tmp_path / "x")
