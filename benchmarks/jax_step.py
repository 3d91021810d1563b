"""One tca-jax training step, built from a config exactly as `tca_jax.train` builds it, and timed.

A benchmark "step" is the trainer's `make_train_step(setup, optimizer)` (every window's learner
update, the optimizer after each window, the task's metrics and the non-finite guard) on one copy
batch, so the numbers are those of `python -m experiments.train`.
"""

from __future__ import annotations

import time
from typing import Any, Dict, Mapping, Optional

import jax
import jax.numpy as jnp

from benchmarks import common
from tca_jax import config as config_lib
from tca_jax import train as train_lib


def make_config(learner: str, cell: str, length: int, hidden: int, batch: int,
                overrides: Optional[Mapping[str, Any]] = None):
  """The default config on the copy task of delay `length`, with `overrides` ("learner.k_top")."""
  c = config_lib.default_config()
  c.task.name = "copy"
  c.task.length = length
  c.model.cell = cell
  c.model.hidden_size = hidden
  c.learner.name = learner
  c.train.batch_size = batch
  for path, value in (overrides or {}).items():
    section, field = path.split(".", 1)
    c[section][field] = value
  return c


def build_step(config, seed: int = 0):
  """`(train_step, state, batch, key)`: the jitted trainer step and its first arguments."""
  setup = config_lib.build(config)
  task, learner = setup.task, setup.learner
  k_init, k_batch, k_step = jax.random.split(jax.random.PRNGKey(seed), 3)
  optimizer = train_lib.make_optimizer(config.train, learner)
  state = train_lib.create_train_state(setup, optimizer, k_init, config.train.batch_size)
  state = jax.tree.map(jnp.array, state)  # own buffers, as the trainer does, for donation
  batch = task.sample(k_batch, config.train.batch_size)
  return train_lib.make_train_step(setup, optimizer), state, batch, k_step


def measure(config, *, steps: int = 20, warmup: int = 2, time_budget_s: Optional[float] = None,
            memory_only: bool = False, seed: int = 0,
            peak_gflops: Optional[float] = None) -> Dict[str, Any]:
  """Compiles and times one training step of `config`.

  Args:
    config: a full experiment config (see `make_config`).
    steps: steady steps whose median is reported (>= 20 for the published tables).
    warmup: untimed calls after compilation.
    time_budget_s: if the first call shows that `warmup + steps` calls would take longer, the
      row is not timed (`skipped` says why) but still has its compile time and memory.
    memory_only: compile and measure memory and FLOPs, do not run.
    seed: PRNG seed of the parameters and the batch.
    peak_gflops: the device's matmul peak; with `time_budget_s`, a step whose matmul FLOPs alone
      would need more than the budget at that peak is not even run once.

  Returns:
    A dict with `compile_s`, `step_ms` (None when not timed), `peak_mb`, `flops` (and
    `flops_high`, which differs where the step branches on data), `xla_flops`,
    `rss_peak_mb` and, on devices that report it, `device_peak_mb`.
  """
  train_step, state, batch, key = build_step(config, seed)
  row: Dict[str, Any] = {}
  start = time.perf_counter()
  compiled = train_step.lower(state, batch, key).compile()
  row["compile_s"] = time.perf_counter() - start
  row["peak_mb"] = common.compiled_memory_mb(compiled)
  row["xla_flops"] = common.xla_flops(compiled)
  row["flops"], row["flops_high"] = common.matmul_flops_bounds(train_step, state, batch, key)
  row["step_ms"] = None
  if memory_only:
    row["rss_peak_mb"] = common.rss_peak_mb()
    return row

  calls = warmup + steps
  if time_budget_s is not None and peak_gflops and row["flops"]:
    floor_s = row["flops"] / (peak_gflops * 1e9)
    if floor_s * calls > time_budget_s:
      row["skipped"] = (f"{row['flops'] / 1e9:.0f} GFLOP a step: {calls} steps need >= "
                        f"{floor_s * calls:.0f}s at the matmul peak, over the "
                        f"{time_budget_s:.0f}s budget of a row")
      row["rss_peak_mb"] = common.rss_peak_mb()
      return row

  before = common.device_memory_stats()
  holder = [state]

  def one_step():
    new_state, metrics = compiled(holder[0], batch, key)
    common.block((new_state, metrics))
    holder[0] = new_state

  start = time.perf_counter()
  one_step()
  first = time.perf_counter() - start
  if time_budget_s is not None and first * calls > time_budget_s:
    row["skipped"] = (f"one step takes {first:.1f}s; {calls} steps exceed the "
                      f"{time_budget_s:.0f}s budget of a row")
  else:
    row.update(common.median_time_ms(one_step, steps=steps, warmup=max(warmup - 1, 0)))
  after = common.device_memory_stats()
  if before and after and "peak_bytes_in_use" in after:
    row["device_peak_mb"] = (after["peak_bytes_in_use"] - before.get("bytes_in_use", 0)) / common.MB
  row["rss_peak_mb"] = common.rss_peak_mb()
  if not bool(jnp.all(holder[0].bad_step < 0)):
    row["warning"] = "the loss became non-finite during the timed steps"
  return row
