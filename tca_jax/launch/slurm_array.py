"""A sweep's grid as one SLURM job array: one array index per grid point, finished runs skipped.

    runs = sweep.plan(sweep.expand(sweep.parse_grid(["seed=0,1,2"])), "cfg.py", "/shared/sweep")
    script = array_script(runs, options={"partition": "gpu"})
    # sbatch BASE/sweep.sbatch

The same runs as the local sweep (`tca_jax.launch.sweep.plan`): the same workdirs and commands.
Index i is the i-th grid point of the whole grid, so a run keeps its index when the sweep is
submitted again; `--array` lists only the unfinished ones, and each task checks again before it
starts (a run finished by an earlier submission meanwhile is skipped, not retrained). An
unfinished run resumes from its checkpoint; the job gets SIGTERM 120 s before its time limit,
checkpoints, and is requeued.
"""

from __future__ import annotations

import os
import shlex
from typing import Mapping, Sequence

from tca_jax.launch import sweep

# One single-process run per array task (data parallelism inside one run is launch/slurm.sbatch's
# job); override any of these with `options`.
DEFAULT_OPTIONS = {
    "job-name": "tca-sweep",
    "ntasks": "1",
    "gpus-per-task": "1",
    "cpus-per-task": "4",
    "time": "24:00:00",
    "signal": "TERM@120",
    "requeue": None,
}


def array_spec(runs: Sequence[sweep.Run], max_parallel: int | None = None) -> str | None:
  """`--array` of the unfinished runs' indices, e.g. "0,2-4%2"; None when every run finished."""
  todo = [i for i, run in enumerate(runs) if not run.finished]
  if not todo:
    return None
  parts, start = [], todo[0]
  for prev, cur in zip(todo, todo[1:] + [None]):
    if cur != prev + 1:
      parts.append(str(start) if start == prev else f"{start}-{prev}")
      start = cur
  return ",".join(parts) + (f"%{max_parallel}" if max_parallel else "")


def array_script(runs: Sequence[sweep.Run], log_dir: str, options: Mapping[str, str | None] = (),
                 max_parallel: int | None = None, setup: str = "") -> str | None:
  """The sbatch script of the job array (None when there is nothing left to run).

  Args:
    runs: `sweep.plan(...)`, in grid order; the finished ones get no index in `--array`.
    log_dir: where SLURM writes each task's `slurm-JOB_INDEX.out` (the run's own output goes to
      its `workdir/log.txt`, as in the local sweep).
    options: `#SBATCH --KEY=VALUE` lines replacing or adding to `DEFAULT_OPTIONS` (None: a flag
      without a value; an empty string removes the option).
    max_parallel: at most this many tasks at once (`--array=...%N`).
    setup: shell lines run before the training command (e.g. activating an environment).
  """
  spec = array_spec(runs, max_parallel)
  if spec is None:
    return None
  merged = dict(DEFAULT_OPTIONS, **dict(options))
  lines = ["#!/bin/bash", f"# tca-jax sweep: {len(runs)} runs, "
           f"{sum(r.finished for r in runs)} finished before submission"]
  lines.append(f"#SBATCH --array={spec}")
  lines.append(f"#SBATCH --output={os.path.join(log_dir, 'slurm-%A_%a.out')}")
  for key, value in merged.items():
    if value == "":
      continue
    lines.append(f"#SBATCH --{key}" + ("" if value is None else f"={value}"))
  lines += ["", "set -euo pipefail", f"cd {shlex.quote(sweep.PACKAGE_ROOT)}",
            f"export PYTHONPATH={shlex.quote(sweep.PACKAGE_ROOT)}${{PYTHONPATH:+:${{PYTHONPATH}}}}"]
  if setup:
    lines.append(setup)
  lines += ["", 'case "${SLURM_ARRAY_TASK_ID}" in']
  for i, run in enumerate(runs):
    lines.append(f"  {i}) WORKDIR={shlex.quote(run.workdir)}; "
                 f"CMD=({' '.join(shlex.quote(a) for a in run.command)}) ;;")
  lines += ['  *) echo "no run with index ${SLURM_ARRAY_TASK_ID}" >&2; exit 2 ;;', "esac", ""]
  python = shlex.quote(runs[0].command[0])
  lines += [
      "# Finished meanwhile (an earlier submission, a requeue after the end): nothing to do.",
      f"if {python} -c 'import sys; from tca_jax.launch import sweep; "
      "sys.exit(0 if sweep.is_finished(sys.argv[1]) else 1)' \"${WORKDIR}\"; then",
      '  echo "skip (finished): ${WORKDIR}"',
      "  exit 0",
      "fi",
      'mkdir -p "${WORKDIR}"',
      'echo "run ${SLURM_ARRAY_TASK_ID}: ${CMD[*]}"',
      'exec "${CMD[@]}" >> "${WORKDIR}/log.txt" 2>&1',
  ]
  return "\n".join(lines) + "\n"


def parse_options(specs: Sequence[str]) -> dict[str, str | None]:
  """`["partition=gpu", "exclusive", "gpus-per-task="]` -> `{"partition": "gpu", ...}`.

  Raises:
    ValueError: an empty option name.
  """
  out = {}
  for spec in specs:
    key, sep, value = spec.partition("=")
    key = key.strip().lstrip("-")
    if not key:
      raise ValueError(f"--slurm_option={spec!r} must look like KEY=VALUE (e.g. partition=gpu)")
    out[key] = value if sep else None
  return out
