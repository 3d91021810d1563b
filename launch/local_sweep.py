r"""Runs a grid of `experiments.train` runs on this machine, N at a time, or as a SLURM job array.

    python launch/local_sweep.py --config=experiments/configs/copy.py --base_dir=/tmp/sweep \
        --grid=learner.name=bptt,tbptt --grid=seed=0,1,2 --set=learner.truncation=5 \
        --parallel=2 [--dry_run]
    python launch/local_sweep.py ... --submit=slurm [--slurm_option=partition=gpu ...] \
        [--slurm_max_parallel=4] [--slurm_setup='source ~/venv/bin/activate'] [--dry_run]

Every grid point trains in BASE_DIR/<run name> (e.g. `learner.name=tbptt,seed=1`); runs whose
metrics.jsonl already has a `test` record are skipped, so the same command finishes a sweep that
was interrupted. SIGTERM or Ctrl-C stops the children too (each saves a checkpoint), and a run
whose workdir a live process still owns is reported busy rather than started twice. `--dry_run` prints the commands and which runs would be skipped.
`--submit=slurm` writes BASE_DIR/sweep.sbatch (one array index per grid point; only unfinished
ones in `--array`) and submits it with sbatch; with `--dry_run` it prints the script instead.
"""

import shlex
import subprocess

import os
import sys

from absl import app, flags, logging

try:
  from tca_jax.launch import slurm_array, sweep
except ImportError:  # `python launch/local_sweep.py` from a checkout that is not pip-installed
  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  from tca_jax.launch import slurm_array, sweep

_CONFIG = flags.DEFINE_string("config", None, "Config file[:preset] for every run.")
_BASE_DIR = flags.DEFINE_string("base_dir", None, "Runs go to BASE_DIR/<run name>.")
_GRID = flags.DEFINE_multi_string("grid", [], "FIELD=V1,V2,...: one grid axis (repeatable).")
_SET = flags.DEFINE_multi_string("set", [], "FIELD=VALUE for every run (repeatable).")
_PARALLEL = flags.DEFINE_integer("parallel", 1, "Runs at a time.")
_DRY_RUN = flags.DEFINE_bool("dry_run", False, "Print the commands; run nothing.")
_SUBMIT = flags.DEFINE_enum("submit", "local", ["local", "slurm"],
                            "local: run here; slurm: submit one job array (sbatch --array).")
_SLURM_OPTION = flags.DEFINE_multi_string(
    "slurm_option", [], "KEY=VALUE: an #SBATCH --KEY=VALUE line of the array job (repeatable; "
    "KEY= removes a default, KEY alone is a flag).")
_SLURM_MAX = flags.DEFINE_integer("slurm_max_parallel", None, "At most N array tasks at once.")
_SLURM_SETUP = flags.DEFINE_string("slurm_setup", "", "Shell line(s) run first in each task, "
                                   "e.g. 'source ~/venvs/tca-jax/bin/activate'.")
flags.mark_flags_as_required(["config", "base_dir"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  logging.set_verbosity(logging.INFO)
  try:
    if _PARALLEL.value < 1:
      raise ValueError(f"--parallel={_PARALLEL.value} must be an integer >= 1 (runs at a time)")
    points = sweep.expand(sweep.parse_grid(_GRID.value))
    fixed = {}
    for spec in _SET.value:
      field, values = sweep.parse_grid([spec])[0]
      if len(values) != 1:
        raise ValueError(f"--set={spec!r} takes one value; use --grid for several")
      fixed[field] = values[0]
    runs = sweep.plan(points, _CONFIG.value, _BASE_DIR.value, fixed)
  except ValueError as e:
    sys.exit(f"error: {e}")
  if _SUBMIT.value == "slurm":
    _submit_slurm(runs)
    return
  if _DRY_RUN.value:
    for run in runs:
      print(("# skip (finished): " if run.finished else "") + sweep.format_command(run))
    print(f"# {len(runs)} runs, {sum(r.finished for r in runs)} finished, "
          f"--parallel={_PARALLEL.value}")
    return
  results = sweep.execute(runs, parallel=_PARALLEL.value)
  print(sweep.summary(results))
  if any(r.status == "stopped" for r in results):
    sys.exit(143)  # stopped by a signal; its children saved checkpoints: rerun to finish
  if any(r.status in ("failed", "busy") for r in results):
    sys.exit(1)


def _submit_slurm(runs):
  try:
    options = slurm_array.parse_options(_SLURM_OPTION.value)
  except ValueError as e:
    sys.exit(f"error: {e}")
  base = sweep.paths.resolve(_BASE_DIR.value)
  script = slurm_array.array_script(runs, base, options, _SLURM_MAX.value, _SLURM_SETUP.value)
  if script is None:
    print(f"# nothing to submit: all {len(runs)} runs are finished")
    return
  path = os.path.join(base, "sweep.sbatch")
  if _DRY_RUN.value:
    print(script + f"# sbatch --parsable {shlex.quote(path)}")
    return
  os.makedirs(base, exist_ok=True)
  with open(path, "w", encoding="utf-8") as f:
    f.write(script)
  job = subprocess.run(["sbatch", "--parsable", path], check=True, capture_output=True,
                       text=True).stdout.strip()
  print(f"submitted job array {job}: {slurm_array.array_spec(runs, _SLURM_MAX.value)} "
        f"({sum(not r.finished for r in runs)} of {len(runs)} runs); script {path}")


if __name__ == "__main__":
  app.run(main)
