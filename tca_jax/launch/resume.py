"""Long runs that outlive a working session: register, then restart every unfinished one.

A run lives in `RUNS_DIR/<name>` (the repository's `runs/`, git-ignored, by default). `register`
writes `RUNS_DIR/<name>/launch.json` with the command that (re)starts it; that command must resume
from the run's own checkpoints when started again in the same workdir, as `experiments.train`
does. `scan` classifies every registered run:

* "finished": a `test` record is in its `metrics.jsonl` (the trainer's last write,
  `sweep.is_finished`), or the run wrote `protocol.json` (the TPTT protocol's last write);
* "finished" also: the command ended by itself with exit status 0 (RUNS_DIR/<name>/exit_code; a
  table reproduction, whose results live elsewhere, ends this way);
* "running": the process id in its `pid` file is alive (started by `start` on this machine);
* "unfinished": everything else (killed with its session, crashed, never started).

`start` runs a command in the background, detached from the caller (its own session), with
stdout and stderr appended to `RUN_DIR/log.txt` and its process id in `RUN_DIR/pid`, so the
caller may exit. `resume_all` starts every unfinished run; `experiments/resume_runs.py` is the
binary around it (with `--dry_run`).
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import time
from typing import Sequence

from tca_jax.launch import sweep

MANIFEST = "launch.json"
EXIT_FILE = "exit_code"  # the command's exit status, written when it ends by itself
PID_FILE = "pid"
STATUSES = ("finished", "running", "unfinished")


@dataclasses.dataclass(frozen=True)
class RunInfo:
  name: str
  workdir: str  # absolute
  command: tuple  # argv that (re)starts the run
  status: str  # one of STATUSES


def register(runs_dir: str, name: str, command: Sequence[str]) -> str:
  """Writes `RUNS_DIR/<name>/launch.json` for `command` (argv); returns the run directory.

  Raises:
    ValueError: `name` is not a plain directory name, `command` is empty, or the run is already
      registered with another command.
  """
  if not name or os.sep in name or name in (".", ".."):
    raise ValueError(f"run name {name!r} must be a plain directory name")
  if not command:
    raise ValueError(f"run {name!r}: the command is empty")
  workdir = os.path.abspath(os.path.join(runs_dir, name))
  path = os.path.join(workdir, MANIFEST)
  if os.path.exists(path):
    old = _read_manifest(workdir)["command"]
    if list(old) != list(command):
      raise ValueError(f"run {name!r} is registered with another command ({path}); use a new "
                       "name for a new run")
    return workdir
  os.makedirs(workdir, exist_ok=True)
  with open(path, "w", encoding="utf-8") as f:
    json.dump({"command": list(command), "cwd": os.getcwd(), "registered": time.time()}, f,
              indent=1)
  return workdir


def _read_manifest(workdir: str) -> dict:
  with open(os.path.join(workdir, MANIFEST), encoding="utf-8") as f:
    return json.load(f)


def _alive(pid: int) -> bool:
  try:
    os.kill(pid, 0)  # signal 0: existence check only
  except ProcessLookupError:
    return False
  except PermissionError:  # exists, owned by someone else
    return True
  # A zombie (exited, not yet reaped by its parent) is not running.
  try:
    with open(f"/proc/{pid}/stat", encoding="utf-8") as f:
      return f.read().split(")")[-1].split()[0] != "Z"
  except OSError:
    return True


def _exited_cleanly(workdir: str) -> bool:
  try:
    with open(os.path.join(workdir, EXIT_FILE), encoding="utf-8") as f:
      return f.read().strip() == "0"
  except OSError:
    return False


def status(workdir: str) -> str:
  """"finished", "running" or "unfinished" (see the module docstring)."""
  if (sweep.is_finished(workdir) or os.path.exists(os.path.join(workdir, "protocol.json"))
      or _exited_cleanly(workdir)):
    return "finished"
  pid_path = os.path.join(workdir, PID_FILE)
  if os.path.exists(pid_path):
    try:
      with open(pid_path, encoding="utf-8") as f:
        pid = int(f.read().strip())
    except ValueError:
      pid = None
    if pid is not None and _alive(pid):
      return "running"
  return "unfinished"


def scan(runs_dir: str) -> list[RunInfo]:
  """Every registered run under `runs_dir` (sorted by name) with its status."""
  if not os.path.isdir(runs_dir):
    return []
  out = []
  for name in sorted(os.listdir(runs_dir)):
    workdir = os.path.abspath(os.path.join(runs_dir, name))
    if os.path.exists(os.path.join(workdir, MANIFEST)):
      out.append(RunInfo(name, workdir, tuple(_read_manifest(workdir)["command"]),
                         status(workdir)))
  return out


def start(run: RunInfo, env: dict | None = None) -> int:
  """Starts `run.command` in the background in its own session; returns the process id.

  The child's cwd is the directory the run was registered from (relative paths in the command
  keep their meaning); `PYTHONPATH` gets this package's root so `python -m experiments...` finds
  it from any checkout.
  """
  cwd = _read_manifest(run.workdir).get("cwd") or os.getcwd()
  child_env = dict(os.environ if env is None else env)
  child_env["PYTHONPATH"] = os.pathsep.join(
      p for p in (sweep.PACKAGE_ROOT, child_env.get("PYTHONPATH")) if p)
  with open(os.path.join(run.workdir, "log.txt"), "ab") as log:
    log.write(f"\n# started {time.strftime('%Y-%m-%d %H:%M:%S')}: "
              f"{' '.join(run.command)}\n".encode())
    log.flush()
    exit_file = os.path.join(run.workdir, EXIT_FILE)
    if os.path.exists(exit_file):
      os.remove(exit_file)
    # A shell around the command records its exit status (0: finished) unless the whole process
    # group is killed, which leaves the run unfinished, as it is.
    wrapped = ["sh", "-c", f'"$@"; echo $? > "{exit_file}"', "sh", *run.command]
    proc = subprocess.Popen(wrapped, cwd=cwd, stdout=log, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, env=child_env, start_new_session=True)
  with open(os.path.join(run.workdir, PID_FILE), "w", encoding="utf-8") as f:
    f.write(str(proc.pid))
  return proc.pid


def resume_all(runs_dir: str, dry_run: bool = False, env: dict | None = None
               ) -> list[tuple[RunInfo, int | None]]:
  """Starts every unfinished run under `runs_dir`; returns `(run, pid or None)` for every run
  (None: finished, already running, or `dry_run`)."""
  out = []
  for run in scan(runs_dir):
    pid = None
    if run.status == "unfinished" and not dry_run:
      pid = start(run, env)
    out.append((run, pid))
  return out
