"""Multi-device and multi-host data parallelism with JAX's own runtime.

The batch axis (axis 1 of time-major arrays; axis 2 with a leading seed axis) is sharded over a
one-dimensional mesh of every device (`NamedSharding`); parameters and optimizer state are
replicated, and `jax.jit` partitions the step (GSPMD): the gradient all-reduce is inserted by the
compiler. With several processes (TPU pods, SLURM), each process samples its own share of the
batch from its own key and `jax.make_array_from_process_local_data` assembles the global array.
"""

from __future__ import annotations

import os

from absl import logging
import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from tca_jax.registry import ConfigError

ENV_FLAG = "TCA_JAX_DISTRIBUTED"


def slurm_local_device_ids(env=None) -> list[int] | None:
  """The GPUs this process drives in a SLURM step: one task per GPU (launch/slurm.sbatch).

  JAX's own SLURM detection binds process `SLURM_LOCALID` to local GPU `SLURM_LOCALID`, which is
  right when every task of a node sees all its GPUs (`--ntasks-per-node=GPUS --gpus-per-node=GPUS`)
  and wrong when SLURM already confined the task to its own GPU (`--gpus-per-task=1` sets a
  one-entry `CUDA_VISIBLE_DEVICES`, whose only device is index 0). This covers both, explicitly.

  Args:
    env: the environment (default `os.environ`).

  Returns:
    `[SLURM_LOCALID]`, `[0]` for a task confined to one GPU, or None outside a SLURM step, on a
    TPU VM, or where `JAX_LOCAL_DEVICE_IDS` (which JAX reads itself) is set.
  """
  env = os.environ if env is None else env
  if "SLURM_LOCALID" not in env or "SLURM_STEP_NODELIST" not in env:
    return None
  if env.get("JAX_LOCAL_DEVICE_IDS") or env.get("TPU_WORKER_ID") is not None:
    return None
  visible = [d for d in env.get("CUDA_VISIBLE_DEVICES", "").split(",") if d.strip()]
  if len(visible) == 1:
    return [0]
  return [int(env["SLURM_LOCALID"])]


def maybe_initialize(config) -> bool:
  """Starts JAX's multi-host runtime when `config.distributed` or `$TCA_JAX_DISTRIBUTED` asks.

  With `distributed.coordinator_address`, `num_processes` and `process_id` set, those are used
  (e.g. several processes on one machine); otherwise `jax.distributed.initialize()` detects the
  cluster itself (Cloud TPU, SLURM, ...). Under SLURM each process drives one GPU
  (`slurm_local_device_ids`). Must run before any other JAX call.
  """
  section = config.get("distributed")
  wanted = bool(section and section.get("enabled")) or os.environ.get(ENV_FLAG) == "1"
  if not wanted:
    return False
  kwargs = {}
  if section:
    for k in ("coordinator_address", "num_processes", "process_id"):
      if section.get(k) is not None:
        kwargs[k] = section.get(k)
  if (ids := slurm_local_device_ids()) is not None:
    kwargs["local_device_ids"] = ids
  jax.distributed.initialize(**kwargs)
  logging.info("jax.distributed: process %d of %d, %d local / %d global devices",
               jax.process_index(), jax.process_count(), jax.local_device_count(),
               jax.device_count())
  return True


def barrier(name: str, timeout_s: int = 600) -> None:
  """Waits until every process reaches `name` (no-op with one process).

  Goes through the coordination service, not a collective: gloo's first collective gives up
  after 30 s, so processes that drift apart while starting up (one slowed by a busy machine)
  meet here first.
  """
  if jax.process_count() == 1:
    return
  from jax._src import distributed as jax_distributed  # pylint: disable=g-import-not-at-top
  jax_distributed.global_state.client.wait_at_barrier(name, timeout_s * 1000)


def data_mesh(batch_size: int):
  """A 1-D mesh `("data",)` over every device, or None with a single device."""
  n = jax.device_count()
  if n == 1:
    return None
  if batch_size % n:
    raise ConfigError(f"train.batch_size={batch_size} must be a multiple of the number of "
                      f"devices ({n}) for data parallelism; or set train.data_parallel=False")
  return Mesh(np.asarray(jax.devices()), ("data",))


def replicated(mesh):
  return NamedSharding(mesh, P())


def batch_sharding(mesh, seed_axis: bool):
  return NamedSharding(mesh, P(None, None, "data") if seed_axis else P(None, "data"))


def process_key(key):
  """This process's sampling key: the key itself with one process, folded with its index else."""
  if jax.process_count() == 1:
    return key
  fold = jax.random.fold_in if key.ndim == 1 else jax.vmap(jax.random.fold_in, (0, None))
  return fold(key, jax.process_index())


def place(batch, mesh, seed_axis: bool = False):
  """Puts a (process-local) batch on the mesh, sharded along its batch axis."""
  if mesh is None:
    return batch
  sharding = batch_sharding(mesh, seed_axis)
  if jax.process_count() == 1:
    return jax.device_put(batch, sharding)
  return jax.tree.map(
      lambda a: jax.make_array_from_process_local_data(sharding, np.asarray(a)), batch)
