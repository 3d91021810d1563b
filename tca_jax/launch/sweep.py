"""A local sweep: a grid over config fields, run as `experiments.train` subprocesses.

    points = expand(parse_grid(["learner.name=bptt,tbptt", "seed=0,1,2"]))
    runs = plan(points, config="experiments/configs/copy.py", base_dir="/tmp/sweep")
    results = execute(runs, parallel=2)

Each grid point is one run in `BASE/<run name>` (the name lists the point's fields, e.g.
`learner.name=bptt,seed=0`), launched as `python -m experiments.train --config=...
--workdir=BASE/<name> --config.FIELD=VALUE ...` with its output in `BASE/<name>/log.txt`. A run
whose `metrics.jsonl` already holds a `test` record is finished and skipped, so re-running a sweep
after a crash or a preemption only runs what is left (unfinished runs are started again in their
workdir, where the trainer resumes from its checkpoint when it has one).

The sweep owns its children: SIGTERM or SIGINT to the sweep is forwarded to every running child
(each saves a checkpoint and exits), the sweep waits for them and exits; on Linux a child also gets
SIGTERM if the sweep dies without a word (kill -9). A run whose workdir is owned by a live process
(an earlier sweep's child, or any trainer: `tca_jax.workdir.holder`) is reported "busy" and not
started, so a rerun never doubles a child.

Values stay strings: `--config.FIELD=VALUE` is parsed by ml_collections against the field's type,
exactly as if typed on the command line.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
from typing import Sequence

from absl import logging

from tca_jax import paths
from tca_jax import workdir as workdir_lib

# The checkout (or site-packages) holding tca_jax and experiments: children find both through it.
PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_UNSAFE = re.compile(r"[^A-Za-z0-9._=,+-]")


@dataclasses.dataclass(frozen=True)
class Run:
  """One grid point: its name, workdir and the command that trains it."""

  name: str
  workdir: str
  command: tuple[str, ...]
  finished: bool  # a `test` record is already in workdir/metrics.jsonl


@dataclasses.dataclass(frozen=True)
class Result:
  name: str
  status: str  # "skipped" (finished before), "done", "failed", "busy" (owned), "stopped"
  returncode: int
  seconds: float


def parse_grid(specs: Sequence[str]) -> list[tuple[str, list[str]]]:
  """`["learner.name=bptt,tbptt", "seed=0,1"]` -> `[("learner.name", ["bptt", "tbptt"]), ...]`.

  Raises:
    ValueError: a spec is not `FIELD=V1[,V2...]`, has an empty value or repeats a field.
  """
  grid, seen = [], set()
  for spec in specs:
    field, sep, values = spec.partition("=")
    field = field.strip()
    if field.startswith("config."):
      field = field[len("config."):]
    vals = [v.strip() for v in values.split(",")]
    if not sep or not field or not all(vals):
      raise ValueError(f"--grid={spec!r} must look like FIELD=V1,V2,... (e.g. seed=0,1,2)")
    if field in seen:
      raise ValueError(f"--grid field {field!r} is given twice")
    seen.add(field)
    grid.append((field, vals))
  return grid


def expand(grid: Sequence[tuple[str, Sequence[str]]]) -> list[dict[str, str]]:
  """The cartesian product of the grid, the last field varying fastest; `[{}]` for no grid."""
  fields = [f for f, _ in grid]
  return [dict(zip(fields, combo)) for combo in itertools.product(*(v for _, v in grid))]


def run_name(point: dict[str, str]) -> str:
  """`{"learner.name": "bptt", "seed": "0"}` -> `learner.name=bptt,seed=0` (path-safe)."""
  name = ",".join(f"{k}={v}" for k, v in point.items()) or "run"
  return _UNSAFE.sub("_", name)


def is_finished(workdir: str) -> bool:
  """True when `workdir/metrics.jsonl` holds a `test` record (the trainer's last write)."""
  path = paths.join(workdir, "metrics.jsonl")
  if not paths.exists(path):
    return False
  for line in paths.read_text(path).splitlines():
    try:
      if json.loads(line).get("split") == "test":
        return True
    except json.JSONDecodeError:  # a line cut short by a kill
      continue
  return False


def _die_with_parent():
  """In the child before exec: SIGTERM when the sweep dies (Linux prctl PR_SET_PDEATHSIG)."""
  try:
    import ctypes  # pylint: disable=g-import-not-at-top
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)
  except (OSError, AttributeError):  # not Linux: forwarding from the handlers still works
    pass


def train_command(config: str, workdir: str, overrides: dict[str, str],
                  python: str = sys.executable, module: str = "experiments.train") -> list[str]:
  """`python -m experiments.train --config=CONFIG --workdir=DIR --config.K=V ...`."""
  cmd = [python, "-m", module, f"--config={config}", f"--workdir={workdir}"]
  cmd += [f"--config.{k}={v}" for k, v in overrides.items()]
  return cmd


def _absolute_config(config: str) -> str:
  # "path.py:preset": only the path part is a file; children may run in another directory.
  path, sep, preset = config.partition(":")
  return os.path.abspath(path) + sep + preset


def plan(points: Sequence[dict[str, str]], config: str, base_dir: str,
         fixed: dict[str, str] | None = None, python: str = sys.executable) -> list[Run]:
  """One `Run` per grid point; `fixed` overrides go to every run (the grid wins on a clash)."""
  names = [run_name(p) for p in points]
  if len(set(names)) != len(names):
    raise ValueError(f"grid points share a run name: {names}")
  runs = []
  for point, name in zip(points, names):
    workdir = paths.resolve(paths.join(base_dir, name))  # gs://... stays a URL
    overrides = dict(fixed or {}, **point)
    runs.append(Run(name, workdir, tuple(train_command(_absolute_config(config), workdir,
                                                       overrides, python)),
                    is_finished(workdir)))
  return runs


def format_command(run: Run) -> str:
  return shlex.join(run.command)


def _child_env(parallel: int) -> dict[str, str]:
  env = dict(os.environ)
  env["PYTHONPATH"] = os.pathsep.join(p for p in (PACKAGE_ROOT, env.get("PYTHONPATH")) if p)
  if parallel > 1:
    # Several processes on one GPU: none may grab 75% of its memory up front.
    env.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
  return env


def execute(runs: Sequence[Run], parallel: int = 1, poll_seconds: float = 0.2) -> list[Result]:
  """Runs the unfinished `runs`, at most `parallel` at a time; finished ones are skipped.

  Each child writes stdout and stderr to `workdir/log.txt` (appended, so a resumed run keeps the
  earlier log). Returns one `Result` per run, in the order of `runs`.
  """
  if not isinstance(parallel, int) or parallel < 1:
    raise ValueError(f"--parallel={parallel!r} must be an integer >= 1")
  results: dict[str, Result] = {}
  pending = []
  for run in runs:
    if run.finished:
      logging.info("skip %s: finished (a test record is in its metrics.jsonl)", run.name)
      results[run.name] = Result(run.name, "skipped", 0, 0.0)
    else:
      pending.append(run)
  env = _child_env(parallel)
  active: list[tuple[Run, subprocess.Popen, float, object]] = []
  stop = []

  def forward(signum, frame):
    del frame
    if not stop:
      logging.warning("signal %d: stopping %d running child(ren); they save a checkpoint",
                      signum, len(active))
    stop.append(signum)
    for _, proc, _, _ in active:
      if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)

  previous = {}
  if threading.current_thread() is threading.main_thread():
    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGTERM, signal.SIGINT)}
  try:
    _loop(pending, active, results, env, parallel, poll_seconds, stop)
  finally:
    for sig, handler in previous.items():
      signal.signal(sig, handler)
  if stop:
    for run in pending:
      results[run.name] = Result(run.name, "stopped", 0, 0.0)
  return [results[run.name] for run in runs]


def _loop(pending, active, results, env, parallel, poll_seconds, stop):
  while (pending and not stop) or active:
    while pending and len(active) < parallel and not stop:
      run = pending.pop(0)
      owner = workdir_lib.holder(run.workdir)
      if owner is not None:
        logging.error("busy %s: its workdir is owned by %s; not starting a second process",
                      run.name, owner)
        results[run.name] = Result(run.name, "busy", 0, 0.0)
        continue
      os.makedirs(run.workdir, exist_ok=True)
      log = open(os.path.join(run.workdir, "log.txt"), "ab")  # pylint: disable=consider-using-with
      logging.info("start %s: %s", run.name, format_command(run))
      proc = subprocess.Popen(run.command, stdout=log, stderr=subprocess.STDOUT, env=env,
                              preexec_fn=_die_with_parent if sys.platform == "linux" else None)
      active.append((run, proc, time.time(), log))
    time.sleep(poll_seconds)
    still = []
    for run, proc, start, log in active:
      code = proc.poll()
      if code is None:
        still.append((run, proc, start, log))
        continue
      log.close()
      seconds = time.time() - start
      status = "done" if code == 0 else "stopped" if stop and code == 143 else "failed"
      (logging.info if code == 0 else logging.error)(
          "%s %s after %.1fs (exit %d; log in %s/log.txt)", status, run.name, seconds, code,
          run.workdir)
      results[run.name] = Result(run.name, status, code, seconds)
    active[:] = still


def summary(results: Sequence[Result]) -> str:
  counts = {s: sum(r.status == s for r in results)
            for s in ("done", "skipped", "failed", "busy", "stopped")}
  lines = [f"{r.status:8s} {r.name}" + (f" ({r.seconds:.1f}s)" if r.status != "skipped" else "")
           for r in results]
  lines.append(", ".join(f"{n} {s}" for s, n in counts.items()))
  return "\n".join(lines)
