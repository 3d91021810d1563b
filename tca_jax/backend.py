"""Choices made per backend at trace time: one place for what differs between the CPU and a
GPU/TPU. The measurements behind each default are in docs/PERFORMANCE.md.

* `per_backend(value, field, cpu, accelerator)`: a positive-int option whose unset value depends
  on the backend (`learner.unroll`, SAB's `learner.forward_chunks`);
* `scan_unroll(unroll)`: the `lax.scan` unroll factor (1 on the CPU, 8 on a GPU or TPU, where
  each loop iteration costs kernel launches);
* `only_where(pred, fn, otherwise)`: a `lax.cond` on the CPU (skips `fn`'s work), a select on a
  GPU or TPU (a conditional inside a scan costs kernels of its own at every step).

Each is decided from `jax.default_backend()` while tracing, never inside the computation.
"""

from __future__ import annotations

from typing import Callable, Optional

import jax
import jax.numpy as jnp

from tca_jax.registry import ConfigError


def on_cpu() -> bool:
  return jax.default_backend() == "cpu"


def per_backend(value: Optional[int], field: str, cpu: int, accelerator: int) -> int:
  """A positive-int option whose unset value (None) depends on the backend.

  Returns `value` if set (an integer >= 1, else a `ConfigError` naming `field`), otherwise `cpu`
  on the CPU and `accelerator` on a GPU or TPU.
  """
  if value is not None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
      raise ConfigError(f"{field}={value!r} must be an integer >= 1 (or unset)")
    return value
  return cpu if on_cpu() else accelerator


def scan_unroll(unroll: Optional[int]) -> int:
  """The `lax.scan` unroll factor for a learner's `unroll` option; None: 1 on the CPU (unrolling
  was slower there), 8 on a GPU or TPU (fewer loop iterations, fewer kernel launches)."""
  return per_backend(unroll, "learner.unroll", cpu=1, accelerator=8)


def only_where(pred, fn: Callable[[], jax.Array], otherwise: jax.Array) -> jax.Array:
  """`fn()` if the scalar `pred` holds, else `otherwise`; `fn` runs only when needed on the CPU.

  On the CPU a `lax.cond` skips `fn`'s work on the steps that do not need it. On a GPU or TPU a
  conditional inside a scan costs kernels of its own at every step, more than a small `fn`: there
  it is a select, `fn` running at every step. (Under `vmap` with a batched `pred` a cond becomes a
  select anyway.)
  """
  if on_cpu():
    return jax.lax.cond(pred, fn, lambda: otherwise)
  return jnp.where(pred, fn(), otherwise)
