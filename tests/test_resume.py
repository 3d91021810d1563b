"""Long runs across sessions: register, classify (finished / running / unfinished), restart."""

import json
import os
import subprocess
import sys
import time

import pytest

from tca_jax.launch import resume
from tca_jax.launch.sweep import PACKAGE_ROOT


def _runs(tmp_path):
  runs = str(tmp_path / "runs")
  out = str(tmp_path / "out.txt")
  # Exits 3 without a test record: a crash, so unfinished again afterwards.
  todo = [sys.executable, "-c", f"open({out!r}, 'w').write('resumed'); raise SystemExit(3)"]
  for name in ("done", "alive", "todo", "protocol"):
    resume.register(runs, name, todo if name == "todo" else ["true", name])
  with open(os.path.join(runs, "done", "metrics.jsonl"), "w", encoding="utf-8") as f:
    f.write(json.dumps({"step": 10, "split": "train"}) + "\n")
    f.write(json.dumps({"step": 10, "split": "test", "accuracy": 1.0}) + "\n")
  with open(os.path.join(runs, "protocol", "protocol.json"), "w", encoding="utf-8") as f:
    f.write("{}")
  with open(os.path.join(runs, "alive", resume.PID_FILE), "w", encoding="utf-8") as f:
    f.write(str(os.getpid()))  # this test's process: alive
  os.makedirs(os.path.join(runs, "not_a_run"))  # no launch.json: ignored
  return runs, out


def test_scan_dry_run_and_restart(tmp_path):
  runs, out = _runs(tmp_path)
  statuses = {r.name: r.status for r in resume.scan(runs)}
  assert statuses == {"alive": "running", "done": "finished", "protocol": "finished",
                      "todo": "unfinished"}
  planned = resume.resume_all(runs, dry_run=True)
  assert all(pid is None for _, pid in planned) and not os.path.exists(out)

  started = {r.name: pid for r, pid in resume.resume_all(runs)}
  assert [n for n, pid in started.items() if pid is not None] == ["todo"]
  pid = started["todo"]
  with open(os.path.join(runs, "todo", resume.PID_FILE), encoding="utf-8") as f:
    assert int(f.read()) == pid
  deadline = time.time() + 30
  while resume.status(os.path.join(runs, "todo")) == "running" and time.time() < deadline:
    time.sleep(0.05)
  os.waitpid(pid, 0)  # reap our child
  with open(out, encoding="utf-8") as f:
    assert f.read() == "resumed"
  assert "# started" in open(os.path.join(runs, "todo", "log.txt"), encoding="utf-8").read()
  # It wrote no test record and exited 3, so it is unfinished again (a real run resumes from
  # its checkpoint).
  assert resume.status(os.path.join(runs, "todo")) == "unfinished"
  with open(os.path.join(runs, "todo", resume.EXIT_FILE), encoding="utf-8") as f:
    assert f.read().strip() == "3"


def test_a_command_that_exits_0_is_finished(tmp_path):
  # A table reproduction keeps its results elsewhere: its clean exit is what says it is done.
  runs = str(tmp_path / "runs")
  resume.register(runs, "table", ["true"])
  (run,) = resume.scan(runs)
  pid = resume.start(run)
  deadline = time.time() + 30
  while resume.status(run.workdir) != "finished" and time.time() < deadline:
    time.sleep(0.05)
  try:
    os.waitpid(pid, 0)  # reap our child, unless subprocess's own cleanup already did
  except ChildProcessError:
    pass
  assert resume.status(run.workdir) == "finished"


def test_register_checks():
  with pytest.raises(ValueError, match="plain directory name"):
    resume.register("/tmp/x", "a/b", ["true"])
  with pytest.raises(ValueError, match="command is empty"):
    resume.register("/tmp/x", "a", [])


def test_register_refuses_another_command(tmp_path):
  runs = str(tmp_path)
  resume.register(runs, "r", ["true", "1"])
  assert resume.register(runs, "r", ["true", "1"]).endswith("r")  # the same command: fine
  with pytest.raises(ValueError, match="another command"):
    resume.register(runs, "r", ["true", "2"])


def test_binary_dry_run(tmp_path):
  runs, out = _runs(tmp_path)
  env = dict(os.environ, PYTHONPATH=PACKAGE_ROOT)
  res = subprocess.run([sys.executable, "-m", "experiments.resume_runs", f"--runs_dir={runs}",
                        "--dry_run"], capture_output=True, text=True, env=env, cwd=PACKAGE_ROOT,
                       check=True, timeout=120)
  lines = {line.split()[0]: line for line in res.stdout.splitlines() if line[:1] != "#"}
  assert "would start" in lines["todo"] and "finished" in lines["done"]
  assert "running" in lines["alive"]
  assert "4 runs" in res.stdout and "1 unfinished" in res.stdout and not os.path.exists(out)
