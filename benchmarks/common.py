"""Timing, memory and FLOP helpers shared by the benchmarks.

What each number means (docs/PERFORMANCE.md repeats this):

* `compile_s`: wall time of `jit(...).lower(...).compile()` (tracing, lowering and XLA
  compilation) of one training step.
* `step_ms`: the median over >= 20 steady steps, after warm-up steps, of one call of the compiled
  step followed by `jax.block_until_ready` on everything it returns.
* `peak_mb`: the size XLA's buffer assignment gives the compiled step (`memory_analysis()`:
  arguments + outputs - donated aliases + temporaries), on every backend. That is the memory the
  step itself needs, exact and noise-free, which is what the memory-against-T figures compare.
  On a device that reports memory statistics (GPU, TPU) the `peak_bytes_in_use` reached while
  the step runs, less the bytes in use before, is recorded as `device_peak_mb`; the CPU reports
  none, so there the process's resident-set high-water mark (which also holds the Python
  runtime, JAX and every earlier row) is recorded as `rss_peak_mb`.
* `gflops`: matrix-multiply FLOPs of one step (2 M N K per `dot_general`), counted on the step's
  jaxpr with every `scan` body multiplied by its length, divided by the step time. XLA's own
  `cost_analysis()` counts the body of a loop once whatever its trip count, so it undercounts a
  recurrent network by a factor of about T; it is recorded as `xla_flops` for reference. Where
  the step branches on data (`cond`: SAB replays a block only when its memories got credit) the
  count is a range: `flops` takes the cheapest branch of every `cond` (a lower bound, so `gflops`
  never overstates the rate) and `flops_high` the costliest.
* `frac_of_peak`: `gflops` over the measured peak of the device (`matmul_peak_gflops`: the best
  rate of a large float32 matrix product).
"""

from __future__ import annotations

import math
import os
import resource
import statistics
import sys
import time
from typing import Any, Callable, Dict, Optional, Tuple

import jax
import jax.numpy as jnp
import numpy as np

MB = float(1 << 20)


def block(tree):
  """`jax.block_until_ready` on every array leaf of `tree`."""
  return jax.block_until_ready(tree)


def median_time_ms(fn: Callable[[], Any], steps: int = 20, warmup: int = 2) -> Dict[str, float]:
  """Times `fn()` (which must block until its work is done) `steps` times after `warmup` calls.

  Returns:
    `{"step_ms": median, "step_ms_min": min, "step_ms_iqr": interquartile range, "steps": n}`.
  """
  for _ in range(warmup):
    fn()
  times = []
  for _ in range(steps):
    start = time.perf_counter()
    fn()
    times.append((time.perf_counter() - start) * 1e3)
  q = np.percentile(times, [25, 75])
  return {"step_ms": statistics.median(times), "step_ms_min": min(times),
          "step_ms_iqr": float(q[1] - q[0]), "steps": steps}


def rss_peak_mb() -> float:
  """The process's resident-set high-water mark so far (ru_maxrss: KiB on Linux, bytes on mac)."""
  peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
  return peak / MB if sys.platform == "darwin" else peak / 1024.0


def device_memory_stats(device=None) -> Optional[dict]:
  """`device.memory_stats()` where the backend reports it (GPU/TPU), else None (the CPU)."""
  device = device or jax.devices()[0]
  try:
    return device.memory_stats()
  except Exception:  # pylint: disable=broad-except
    return None


def compiled_memory_mb(compiled) -> Optional[float]:
  """Bytes XLA's buffer assignment reserves for one call of `compiled`, in MiB (None if unknown).

  Arguments + outputs - aliased (donated) buffers + temporaries: the live set at the program's
  peak is at most this, and for a training step it is what grows with T.
  """
  try:
    m = compiled.memory_analysis()
  except Exception:  # pylint: disable=broad-except
    return None
  if m is None:
    return None
  total = (m.argument_size_in_bytes + m.output_size_in_bytes - m.alias_size_in_bytes
           + m.temp_size_in_bytes)
  return total / MB


def xla_flops(compiled) -> Optional[float]:
  """`compiled.cost_analysis()["flops"]` (loop bodies counted once), or None."""
  try:
    ca = compiled.cost_analysis()
  except Exception:  # pylint: disable=broad-except
    return None
  if isinstance(ca, (list, tuple)):
    ca = ca[0] if ca else None
  if not ca or "flops" not in ca:
    return None
  return float(ca["flops"])


def _dot_flops(eqn) -> float:
  lhs, rhs = (v.aval for v in eqn.invars[:2])
  (lc, rc), (lb, rb) = eqn.params["dimension_numbers"]
  contract = math.prod(lhs.shape[d] for d in lc)
  batch = math.prod(lhs.shape[d] for d in lb)
  free_l = math.prod(s for d, s in enumerate(lhs.shape) if d not in lc and d not in lb)
  free_r = math.prod(s for d, s in enumerate(rhs.shape) if d not in rc and d not in rb)
  return 2.0 * batch * free_l * free_r * contract


def _sub_jaxprs(eqn):
  """The jaxprs an equation calls, with how many times each runs (cond: "branches")."""
  p = eqn.params
  name = eqn.primitive.name
  if name == "scan":
    return [(p["jaxpr"], p["length"])]
  if name == "cond":
    return [("branches", p["branches"])]
  if name == "while":
    # The trip count is not static: count the body once and the condition not at all.
    return [("while", p["body_jaxpr"])]
  out = []
  for key in ("jaxpr", "call_jaxpr", "fun_jaxpr"):
    if key in p and p[key] is not None:
      out.append((p[key], 1))
  return out


def matmul_flop_bounds(jaxpr) -> Tuple[float, float]:
  """`(low, high)` matrix-multiply FLOPs of a (closed) jaxpr, scan bodies times their length.

  The two differ where the program branches on data: `cond` counts its cheapest branch in `low`
  and its costliest in `high` (SAB's replay of a block runs only when its memories got credit);
  a `while` body counts once in `high`, not at all in `low`.
  """
  jaxpr = getattr(jaxpr, "jaxpr", jaxpr)
  low = high = 0.0
  for eqn in jaxpr.eqns:
    if eqn.primitive.name == "dot_general":
      f = _dot_flops(eqn)
      low, high = low + f, high + f
      continue
    for sub, times in _sub_jaxprs(eqn):
      if sub == "branches":
        bounds = [matmul_flop_bounds(b) for b in times]
        low += min(b[0] for b in bounds)
        high += max(b[1] for b in bounds)
      elif sub == "while":
        high += matmul_flop_bounds(times)[1]
      else:
        l, h = matmul_flop_bounds(sub)
        low, high = low + times * l, high + times * h
  return low, high


def count_matmul_flops(jaxpr) -> float:
  """Matrix-multiply FLOPs of a jaxpr without data-dependent control flow (see the bounds)."""
  return matmul_flop_bounds(jaxpr)[1]


def matmul_flops(fn: Callable, *args) -> float:
  """Matrix-multiply FLOPs of one call `fn(*args)`, counted on its jaxpr (the upper bound)."""
  return count_matmul_flops(jax.make_jaxpr(fn)(*args))


def matmul_flops_bounds(fn: Callable, *args) -> Tuple[float, float]:
  """`(low, high)` matrix-multiply FLOPs of one call `fn(*args)` (see `matmul_flop_bounds`)."""
  return matmul_flop_bounds(jax.make_jaxpr(fn)(*args))


_PEAK_CACHE: Dict[Any, float] = {}


def matmul_peak_gflops(n: int = 2048, repeats: int = 20, dtype=jnp.float32,
                       fresh: bool = False) -> float:
  """The best measured rate of an `[n, n] @ [n, n]` product on the default device, in GFLOP/s.

  The best of `repeats` calls: on a shared machine the median would measure the other load.
  """
  cache_key = (jax.devices()[0].platform, n, jnp.dtype(dtype).name)
  if cache_key in _PEAK_CACHE and not fresh:
    return _PEAK_CACHE[cache_key]
  ka, kb = jax.random.split(jax.random.PRNGKey(0))
  a = jax.random.normal(ka, (n, n), dtype)
  b = jax.random.normal(kb, (n, n), dtype)
  dot = jax.jit(jnp.dot)
  block(dot(a, b))
  best = float("inf")
  for _ in range(repeats):
    start = time.perf_counter()
    block(dot(a, b))
    best = min(best, time.perf_counter() - start)
  peak = max(2.0 * n ** 3 / best / 1e9, _PEAK_CACHE.get(cache_key, 0.0))
  _PEAK_CACHE[cache_key] = peak
  return peak


def machine_info() -> Dict[str, Any]:
  """Where the numbers were taken: CPU model, core count, JAX backend and versions."""
  info = {
      "platform": jax.devices()[0].platform,
      "device": str(jax.devices()[0].device_kind),
      "jax": jax.__version__,
      "python": sys.version.split()[0],
      "cpu_count": os.cpu_count(),
      "cpu_affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
  }
  try:
    with open("/proc/cpuinfo", encoding="utf-8") as f:
      for line in f:
        if line.startswith("model name"):
          info["cpu_model"] = line.split(":", 1)[1].strip()
          break
  except OSError:
    pass
  try:
    info["load_avg_1m"] = os.getloadavg()[0]
  except OSError:
    pass
  return info


def jax_threads() -> int:
  """The number of CPU threads XLA's CPU backend uses (one per core it may run on)."""
  if hasattr(os, "sched_getaffinity"):
    return len(os.sched_getaffinity(0))
  return os.cpu_count() or 1
