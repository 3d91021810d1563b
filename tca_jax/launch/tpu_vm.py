"""The gcloud commands that run `experiments.train` on a Cloud TPU VM (one host or a pod slice).

Stages, in order (any subset):

* `create`: `gcloud compute tpus tpu-vm create` (on-demand or `--spot`), or with `queued=True`
  `gcloud compute tpus queued-resources create` followed by polling its state until ACTIVE;
* `setup`: on every worker (`ssh --worker=all`), clone or update the repository and
  `pip install -e ".[gcs]" "jax[tpu]"` (gcsfs and the GCS client for gs:// workdirs);
* `run`: on every worker, the same `python -m experiments.train ...` command with
  `TCA_JAX_DISTRIBUTED=1`, so each host calls `jax.distributed.initialize()`, which detects the
  TPU pod itself (`tca_jax.distributed.maybe_initialize`); each host feeds its own batch shard;
* `delete`: delete the VM (or the queued resource, with `--force`).

The functions only build argument lists; `launch/tpu_vm.py` prints or runs them.
"""

from __future__ import annotations

import dataclasses
import shlex
from typing import Sequence

STAGES = ("create", "setup", "run", "delete")
# tca_jax.distributed.ENV_FLAG, spelled out so that this module imports nothing heavy (no jax).
DISTRIBUTED_ENV = "TCA_JAX_DISTRIBUTED"


@dataclasses.dataclass(frozen=True)
class TPUSpec:
  """Where and what to run.

  Attributes:
    name: the TPU VM (node) name; the queued resource is `NAME-qr`.
    zone: e.g. "us-central2-b".
    accelerator_type: e.g. "v4-8" (one host) or "v4-32" (four hosts: a pod slice).
    runtime_version: the TPU VM image; None = the one Google lists for the accelerator's
      generation (`runtime_for`).
    project: the GCP project; None = gcloud's default.
    queued: create through queued resources (waits for capacity) instead of directly.
    spot: spot (preemptible) capacity; the trainer checkpoints on SIGTERM.
    repo: git URL cloned on every worker by `setup` (required: your fork or the project's).
    branch: the branch (or tag) checked out.
    remote_dir: the checkout's directory on the workers.
    python: the interpreter on the workers.
  """

  name: str
  zone: str
  accelerator_type: str = "v4-8"
  runtime_version: str | None = None
  project: str | None = None
  queued: bool = False
  spot: bool = False
  repo: str = ""
  branch: str = "main"
  remote_dir: str = "tca-jax"
  python: str = "python3"

  @property
  def queued_name(self) -> str:
    return f"{self.name}-qr"

  @property
  def runtime(self) -> str:
    return self.runtime_version or runtime_for(self.accelerator_type)


# Google's TPU VM software versions per generation (cloud.google.com/tpu/docs/runtimes): the
# v5e/v5p/v6e images carry the libtpu those chips need; v4 and older use the plain Ubuntu base.
RUNTIMES = (("v6e", "v2-alpha-tpuv6e"), ("v5litepod", "v2-alpha-tpuv5-lite"),
            ("v5e", "v2-alpha-tpuv5-lite"), ("v5p", "v2-alpha-tpuv5"),
            ("v4", "tpu-ubuntu2204-base"), ("v3", "tpu-ubuntu2204-base"),
            ("v2", "tpu-ubuntu2204-base"))


def runtime_for(accelerator_type: str) -> str:
  """The runtime image for an accelerator type such as "v5litepod-16" or "v6e-8".

  Raises:
    ValueError: an accelerator type of no known generation.
  """
  generation = accelerator_type.split("-", 1)[0].lower()
  for prefix, image in RUNTIMES:
    if generation == prefix:
      return image
  raise ValueError(f"--accelerator_type={accelerator_type}: unknown TPU generation; allowed: "
                   f"{', '.join(p for p, _ in RUNTIMES)} (e.g. v5litepod-16), or pass "
                   "--runtime_version")


def _common(spec: TPUSpec) -> list[str]:
  return [f"--zone={spec.zone}"] + ([f"--project={spec.project}"] if spec.project else [])


def create_commands(spec: TPUSpec) -> list[list[str]]:
  """The create command; with `queued`, also the `describe` polled until the state is ACTIVE."""
  if spec.queued:
    create = ["gcloud", "compute", "tpus", "queued-resources", "create", spec.queued_name,
              f"--node-id={spec.name}", f"--accelerator-type={spec.accelerator_type}",
              f"--runtime-version={spec.runtime}"] + _common(spec)
    if spec.spot:
      create.append("--spot")
    return [create, wait_command(spec)]
  create = ["gcloud", "compute", "tpus", "tpu-vm", "create", spec.name,
            f"--accelerator-type={spec.accelerator_type}", f"--version={spec.runtime}"]
  create += _common(spec)
  if spec.spot:
    create.append("--spot")
  return [create]


def wait_command(spec: TPUSpec) -> list[str]:
  """Prints the queued resource's state (ACCEPTED, PROVISIONING, ..., ACTIVE)."""
  return ["gcloud", "compute", "tpus", "queued-resources", "describe", spec.queued_name,
          "--format=value(state.state)"] + _common(spec)


def ssh_command(spec: TPUSpec, remote: str) -> list[str]:
  """`remote` (one shell line) on every worker of the TPU VM."""
  return ["gcloud", "compute", "tpus", "tpu-vm", "ssh", spec.name, "--worker=all",
          f"--command={remote}"] + _common(spec)


def setup_command(spec: TPUSpec) -> list[str]:
  d, py = shlex.quote(spec.remote_dir), spec.python
  remote = (f"(test -d {d} || git clone --branch {shlex.quote(spec.branch)} "
            f"{shlex.quote(spec.repo)} {d}) && cd {d} && git fetch -q && "
            f"git checkout -q {shlex.quote(spec.branch)} && git pull -q && "
            f"{py} -m pip install -q -e \".[gcs]\" \"jax[tpu]\"")
  return ssh_command(spec, remote)


def run_command(spec: TPUSpec, config: str, workdir: str,
                overrides: Sequence[str] = ()) -> list[str]:
  """The same `experiments.train` command on every worker, multi-host runtime switched on.

  Args:
    config: the config file[:preset], relative to the checkout on the workers.
    workdir: the run's directory on every worker (a shared path such as a mounted bucket keeps
      one copy of the checkpoints; a local path gives each host its own).
    overrides: `FIELD=VALUE` strings, passed as `--config.FIELD=VALUE`.
  """
  args = [spec.python, "-m", "experiments.train", f"--config={config}", f"--workdir={workdir}"]
  args += [f"--config.{o[len('config.'):] if o.startswith('config.') else o}" for o in overrides]
  remote = f"cd {shlex.quote(spec.remote_dir)} && {DISTRIBUTED_ENV}=1 {shlex.join(args)}"
  return ssh_command(spec, remote)


def delete_commands(spec: TPUSpec) -> list[list[str]]:
  if spec.queued:
    return [["gcloud", "compute", "tpus", "queued-resources", "delete", spec.queued_name,
             "--force", "--quiet"] + _common(spec)]
  return [["gcloud", "compute", "tpus", "tpu-vm", "delete", spec.name, "--quiet"]
          + _common(spec)]


def commands(spec: TPUSpec, stages: Sequence[str], config: str, workdir: str,
             overrides: Sequence[str] = ()) -> list[tuple[str, list[str]]]:
  """`[(stage, argv), ...]` for the stages asked, in the order of `STAGES`.

  Raises:
    ValueError: an unknown stage or accelerator generation, or `setup` without a repository.
  """
  if not spec.repo and "setup" in stages:
    raise ValueError("--repo is required: the git URL every worker clones (e.g. your fork)")
  spec.runtime  # pylint: disable=pointless-statement  # an unknown generation fails here
  unknown = [s for s in stages if s not in STAGES]
  if unknown:
    raise ValueError(f"--stages={','.join(stages)}: unknown {unknown}; allowed: "
                     f"{', '.join(STAGES)}")
  out = []
  for stage in STAGES:
    if stage not in stages:
      continue
    if stage == "create":
      out += [("create", c) for c in create_commands(spec)]
    elif stage == "setup":
      out.append(("setup", setup_command(spec)))
    elif stage == "run":
      out.append(("run", run_command(spec, config, workdir, overrides)))
    else:
      out += [("delete", c) for c in delete_commands(spec)]
  return out
