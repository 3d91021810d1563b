r"""Creates a Cloud TPU VM (or queued resource) and runs `experiments.train` on all its workers.

    python launch/tpu_vm.py --name=tca --zone=us-central2-b --accelerator_type=v4-32 \
        --repo=https://github.com/tca-jax/tca-jax.git \
        --config=experiments/configs/copy.py:sab_t100 \
        --workdir=/tmp/runs/copy_t100 --set=learner.name=tbptt --set=learner.truncation=20 \
        [--queued] [--spot] [--stages=create,setup,run,delete] [--dry_run]

`--dry_run` prints the gcloud commands. Without it they run one after another (a queued resource
is polled until ACTIVE first); `--stages` picks which (e.g. `--stages=run` on an existing VM).
Every worker runs the same command with TCA_JAX_DISTRIBUTED=1: `jax.distributed.initialize()`
detects the pod, and each host feeds its own shard of the batch.
"""

import os
import shlex
import subprocess
import sys
import time

from absl import app, flags, logging

try:
  from tca_jax.launch import tpu_vm
except ImportError:  # `python launch/tpu_vm.py` from a checkout that is not pip-installed
  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  from tca_jax.launch import tpu_vm

_NAME = flags.DEFINE_string("name", None, "TPU VM name.")
_ZONE = flags.DEFINE_string("zone", None, "GCP zone, e.g. us-central2-b.")
_PROJECT = flags.DEFINE_string("project", None, "GCP project (default: gcloud's).")
_TYPE = flags.DEFINE_string("accelerator_type", "v4-8", "e.g. v4-8, v4-32, v5litepod-16.")
_VERSION = flags.DEFINE_string("runtime_version", None,
                               "TPU VM image; default: the one for the accelerator's generation "
                               "(v6e v2-alpha-tpuv6e, v5p v2-alpha-tpuv5, v5e/v5litepod "
                               "v2-alpha-tpuv5-lite, v4 and older tpu-ubuntu2204-base).")
_QUEUED = flags.DEFINE_bool("queued", False, "Create through queued resources.")
_SPOT = flags.DEFINE_bool("spot", False, "Spot capacity (preemptible).")
_REPO = flags.DEFINE_string("repo", None, "Git URL of your tca-jax repository, cloned on every "
                            "worker (required: there is no right default).")
_BRANCH = flags.DEFINE_string("branch", "main", "Branch or tag to check out.")
_CONFIG = flags.DEFINE_string("config", "experiments/configs/copy.py", "Config file[:preset].")
_WORKDIR = flags.DEFINE_string("workdir", None, "Run directory on the workers.")
_SET = flags.DEFINE_multi_string("set", [], "FIELD=VALUE config override (repeatable).")
_STAGES = flags.DEFINE_list("stages", ["create", "setup", "run"],
                            f"Subset of {','.join(tpu_vm.STAGES)}.")
_DRY_RUN = flags.DEFINE_bool("dry_run", False, "Print the gcloud commands; run nothing.")
_WAIT = flags.DEFINE_integer("wait_minutes", 120, "Longest wait for a queued resource.")
flags.mark_flags_as_required(["name", "zone", "workdir", "repo"])


def _wait_active(argv, minutes):
  deadline = time.time() + 60 * minutes
  while time.time() < deadline:
    state = subprocess.run(argv, check=True, capture_output=True, text=True).stdout.strip()
    logging.info("queued resource state: %s", state)
    if state == "ACTIVE":
      return
    if state in ("FAILED", "SUSPENDED"):
      sys.exit(f"error: queued resource is {state}")
    time.sleep(30)
  sys.exit(f"error: queued resource not ACTIVE after {minutes} minutes")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  logging.set_verbosity(logging.INFO)
  spec = tpu_vm.TPUSpec(name=_NAME.value, zone=_ZONE.value, accelerator_type=_TYPE.value,
                        runtime_version=_VERSION.value, project=_PROJECT.value,
                        queued=_QUEUED.value, spot=_SPOT.value, repo=_REPO.value,
                        branch=_BRANCH.value)
  try:
    cmds = tpu_vm.commands(spec, _STAGES.value, _CONFIG.value, _WORKDIR.value, _SET.value)
  except ValueError as e:
    sys.exit(f"error: {e}")
  wait = tpu_vm.wait_command(spec) if spec.queued else None
  for stage, cmd in cmds:
    if _DRY_RUN.value:
      note = "  # repeat until it prints ACTIVE" if cmd == wait else ""
      print(f"# {stage}\n{shlex.join(cmd)}{note}")
      continue
    logging.info("%s: %s", stage, shlex.join(cmd))
    if cmd == wait:
      _wait_active(cmd, _WAIT.value)
    else:
      subprocess.run(cmd, check=True)


if __name__ == "__main__":
  app.run(main)
