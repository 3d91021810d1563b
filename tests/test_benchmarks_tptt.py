"""`benchmarks.tptt_iteration` on tiny shapes: the baseline learner is loaded from git. No timings."""

import json
import shutil
import subprocess

import pytest

from benchmarks import tptt_iteration


def _in_git_checkout():
  if shutil.which("git") is None:
    return False
  return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, check=False,
                        cwd=tptt_iteration.__file__.rsplit("/", 2)[0]).returncode == 0


@pytest.mark.skipif(not _in_git_checkout(), reason="needs the git history of the checkout")
def test_tptt_iteration_times_a_revision_against_this_tree(tmp_path, capsys):
  module = tptt_iteration.learner_module_at("HEAD")
  assert module.__name__ != "tca_jax.learners.tptt" and hasattr(module, "TPTT")
  out = tmp_path / "ab.json"
  tptt_iteration.main(["--base=HEAD", "--T=10", "--every=2", "--val=20", "--val_batch=10",
                       "--rounds=1", "--steps=1", "--vary=learner.unroll=1,2",
                       f"--out={out}"])
  rows = json.loads(out.read_text())["rows"]
  assert [r["candidate"] for r in rows] == ["base", "learner.unroll=1", "learner.unroll=2"]
  assert rows[0]["wall_ratio"] == 1.0 and all(r["wall_ms"] > 0 and r["cpu_ms"] > 0 for r in rows)
  assert "T=10" in capsys.readouterr().out


@pytest.mark.slow  # two more candidates to compile (~30 s on a quiet 2-core CPU)
@pytest.mark.skipif(not _in_git_checkout(), reason="needs the git history of the checkout")
def test_tptt_iteration_times_early_exit_limits(tmp_path):
  out = tmp_path / "limits.json"
  tptt_iteration.main(["--base=HEAD", "--T=10", "--every=2", "--val=20", "--val_batch=10",
                       "--rounds=1", "--steps=1", "--limits=none,1", f"--out={out}"])
  rows = json.loads(out.read_text())["rows"]
  assert [r["candidate"] for r in rows] == ["base", "limit=none", "limit=1"]
  assert all(r["wall_ms"] > 0 and r["cpu_ms"] > 0 for r in rows)
