r"""Restarts every unfinished long run from its checkpoint, in the background.

Register and start a run (everything after `--` is its command; it must resume when started
again in the same workdir, as `experiments.train` does):

    python -m experiments.resume_runs --new=sab_t100_s3 -- \
        python -m experiments.train --config=experiments/configs/sab_copy.py:t100 \
        --workdir=runs/sab_t100_s3 --config.num_seeds=3

In a later session (every process of the earlier one has ended), restart what is unfinished:

    python -m experiments.resume_runs [--runs_dir=runs] [--dry_run]

Runs live in `RUNS_DIR/<name>` (default `runs/`, git-ignored); each is "finished" (a `test`
record in its metrics.jsonl, or a protocol.json), "running" (its pid is alive) or "unfinished"
(restarted here). Output goes to `RUNS_DIR/<name>/log.txt`. See `tca_jax.launch.resume`.
"""

import sys

from absl import app, flags

from tca_jax.launch import resume

_RUNS_DIR = flags.DEFINE_string("runs_dir", "runs", "Directory holding one folder per run.")
_NEW = flags.DEFINE_string("new", None, "Register a run of this name with the command after "
                           "`--`, and start it unless it is finished or running.")
_DRY_RUN = flags.DEFINE_bool("dry_run", False, "Print what would be started; start nothing.")


def main(argv):
  command = argv[1:]
  try:
    if _NEW.value is not None:
      resume.register(_RUNS_DIR.value, _NEW.value, command)
    elif command:
      raise app.UsageError(f"a command ({command}) is only taken with --new=NAME")
    started = resume.resume_all(_RUNS_DIR.value, dry_run=_DRY_RUN.value)
  except ValueError as e:
    sys.exit(f"error: {e}")
  for run, pid in started:
    if pid is not None:
      action = f"started (pid {pid})"
    elif run.status == "unfinished":
      action = "would start"
    else:
      action = run.status
    print(f"{run.name:32s} {action:20s} {' '.join(run.command)}")
  counts = {s: sum(r.status == s for r, _ in started) for s in resume.STATUSES}
  print(f"# {len(started)} runs in {_RUNS_DIR.value}: " +
        ", ".join(f"{n} {s}" for s, n in counts.items()))


if __name__ == "__main__":
  app.run(main)
