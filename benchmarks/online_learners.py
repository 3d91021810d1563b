r"""Time and memory per step of the forward-mode online learners against the hidden size.

    python -m benchmarks.online_learners --out=/tmp/bench_online            # H = 8 .. 256
    python -m benchmarks.online_learners --quick --out=/tmp/bench_online    # H = 8 .. 64

A tanh SRN(H) with 6 inputs and 4 outputs (temporal order's sizes), batch size 1 (the per-example
cost the O(N^k) counts refer to), float32. For each learner (`rtrl`, `snap1`, `kf_rtrl`, `uoro`,
`bptt`) and H, one jitted `learner.update` runs a window of `--window` steps, carrying the
learner state from call to call as online training does; after `--warmup` calls, `step_ms` is
the median over `--repeats` (>= 20) calls (each followed by `jax.block_until_ready`) divided by
the window length: milliseconds per time step (`min_ms`, the fastest call, is recorded too: on a
shared machine it is the less noisy of the two). Memory columns:

* `state_mb`: the learner state carried from step to step (model state + influence trace), from
  the shapes; this is what must stay in memory during online learning. For `bptt` it is the
  model state only, but its backward pass stores the window's activations (see `step_mb`).
* `step_mb`: XLA's buffer assignment for the compiled update (`memory_analysis()`: arguments +
  outputs + temporaries - aliased), the memory one call needs; not reported where the backend
  gives no analysis.

The fitted exponent k is the slope of log(step_ms) (and of log(min_ms), log(state_mb)) against
log(H) over the
sizes H >= `--fit_from` (small sizes are dominated by per-call overhead). Theory per step and
example: RTRL O(H^4) time, O(H^3) memory; KF-RTRL O(H^3) / O(H^2); SnAp-1 (SRN) and UORO
O(H^2) / O(H^2) (the parameters); BPTT O(H^2) per step, memory O(T H).
Writes `DIR/online_learners.json` with every row and the fits.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import time

from absl import app, flags
import jax
import jax.numpy as jnp
import numpy as np

from tca_jax import cells, learners, tasks
from tca_jax.model import Model
from tca_jax.types import Batch

LEARNERS = ("rtrl", "snap1", "kf_rtrl", "uoro", "bptt")
# Per step and example for the SRN: (time exponent, carried-memory exponent).
THEORY = {"rtrl": (4, 3), "snap1": (2, 2), "kf_rtrl": (3, 2), "uoro": (2, 2), "bptt": (2, 1)}
FULL_SIZES = (8, 16, 32, 64, 128, 256)
QUICK_SIZES = (8, 16, 32, 64)

_OUT = flags.DEFINE_string("out", None, "Directory for online_learners.json (optional).")
_QUICK = flags.DEFINE_bool("quick", False, "Hidden sizes 8..64 only.")
_SIZES = flags.DEFINE_list("sizes", None, "Hidden sizes (overrides --quick).")
_LEARNERS = flags.DEFINE_list("learners", list(LEARNERS), "Learners to time.")
_WINDOW = flags.DEFINE_integer("window", 8, "Time steps per update call.")
_REPEATS = flags.DEFINE_integer("repeats", 20, "Timed calls per row (median reported).")
_WARMUP = flags.DEFINE_integer("warmup", 3, "Untimed calls after compilation.")
_FIT_FROM = flags.DEFINE_integer("fit_from", 32, "Smallest H used in the exponent fits.")

INPUT_SIZE, OUTPUT_SIZE = 6, 4


def _bytes(tree) -> int:
  return sum(int(np.prod(a.shape)) * a.dtype.itemsize for a in jax.tree.leaves(tree))


def measure(name: str, hidden: int, window: int, repeats: int, warmup: int) -> dict:
  """One row: compile, warm up, then time `repeats` calls of the learner's update."""
  task = tasks.get("temporal_order", length=10)  # its loss only
  model = Model(cells.SRN(hidden), OUTPUT_SIZE)
  learner = learners.get(name)
  params = model.init(jax.random.PRNGKey(0), INPUT_SIZE)
  lparams, lstate = learner.init(jax.random.PRNGKey(1), model, params, 1)
  k_x, k_y = jax.random.split(jax.random.PRNGKey(2))
  seq = jax.random.randint(k_x, (window, 1), 0, INPUT_SIZE)
  batch = Batch(jax.nn.one_hot(seq, INPUT_SIZE), jax.random.randint(k_y, (window, 1), 0, 4),
                jnp.full((window, 1), 1.0 / window))

  def step(params, lstate, key):
    lstate, updates, aux = learner.update(model, params, lparams, lstate, batch, task.loss, key)
    return lstate, updates, aux.loss

  jitted = jax.jit(step)
  start = time.perf_counter()
  compiled = jitted.lower(params, lstate, jax.random.PRNGKey(0)).compile()
  compile_s = time.perf_counter() - start
  step_mb = None
  try:
    mem = compiled.memory_analysis()
    if mem is not None:
      step_mb = (mem.argument_size_in_bytes + mem.output_size_in_bytes
                 + mem.temp_size_in_bytes - mem.alias_size_in_bytes) / 2**20
  except Exception:  # pylint: disable=broad-except
    pass
  for i in range(warmup):
    lstate = jax.block_until_ready(compiled(params, lstate, jax.random.PRNGKey(i))[0])
  times = []
  for i in range(repeats):
    key = jax.random.PRNGKey(100 + i)
    t0 = time.perf_counter()
    out = jax.block_until_ready(compiled(params, lstate, key))
    times.append(time.perf_counter() - t0)
    lstate = out[0]
  n_params = sum(int(a.size) for a in jax.tree.leaves(params))
  return {
      "learner": name, "hidden": hidden, "params": n_params, "window": window,
      "step_ms": 1e3 * statistics.median(times) / window,
      "min_ms": 1e3 * min(times) / window,
      "state_mb": _bytes(lstate) / 2**20, "step_mb": step_mb, "compile_s": compile_s,
  }


def fit_exponent(rows, key: str, fit_from: int):
  """Slope of log(row[key]) against log(hidden) over rows with hidden >= fit_from."""
  pts = [(r["hidden"], r[key]) for r in rows if r["hidden"] >= fit_from and r[key]]
  if len(pts) < 2:
    return None
  x, y = np.log([p[0] for p in pts]), np.log([p[1] for p in pts])
  return float(np.polyfit(x, y, 1)[0])


def main(argv):
  del argv
  if _REPEATS.value < 20:
    raise app.UsageError("--repeats must be >= 20")
  sizes = [int(s) for s in _SIZES.value] if _SIZES.value else (
      QUICK_SIZES if _QUICK.value else FULL_SIZES)
  rows = []
  print(f"{'learner':8s} {'H':>4s} {'params':>7s} {'ms/step':>10s} {'min ms':>10s} "
        f"{'state MB':>10s} {'step MB':>9s} {'compile s':>9s}", flush=True)
  for name in _LEARNERS.value:
    for hidden in sizes:
      row = measure(name, hidden, _WINDOW.value, _REPEATS.value, _WARMUP.value)
      rows.append(row)
      step_mb = f"{row['step_mb']:9.2f}" if row["step_mb"] is not None else f"{'-':>9s}"
      print(f"{name:8s} {hidden:4d} {row['params']:7d} {row['step_ms']:10.3f} "
            f"{row['min_ms']:10.3f} {row['state_mb']:10.4f} {step_mb} {row['compile_s']:9.2f}",
            flush=True)
  fits = {}
  print(f"\nfitted exponents over H >= {_FIT_FROM.value} (time ~ H^k, carried state ~ H^k; "
        "theory in brackets):")
  for name in _LEARNERS.value:
    mine = [r for r in rows if r["learner"] == name]
    fits[name] = {"time": fit_exponent(mine, "step_ms", _FIT_FROM.value),
                  "time_min": fit_exponent(mine, "min_ms", _FIT_FROM.value),
                  "state": fit_exponent(mine, "state_mb", _FIT_FROM.value)}
    fmt = lambda v: "n/a" if v is None else f"{v:.2f}"
    t_k, s_k = THEORY.get(name, ("?", "?"))
    print(f"  {name:8s} time k = {fmt(fits[name]['time'])} (median), "
          f"{fmt(fits[name]['time_min'])} (min) [{t_k}]   state k = "
          f"{fmt(fits[name]['state'])} [{s_k}]")
  result = {
      "benchmark": "online_learners", "rows": rows, "fits": fits,
      "setup": {"cell": "srn (tanh)", "input_size": INPUT_SIZE, "output_size": OUTPUT_SIZE,
                "batch_size": 1, "dtype": "float32", "window": _WINDOW.value,
                "repeats": _REPEATS.value, "warmup": _WARMUP.value, "fit_from": _FIT_FROM.value},
      "machine": {"platform": platform.platform(), "processor": platform.processor(),
                  "cpu_count": os.cpu_count(), "jax": jax.__version__,
                  "backend": jax.default_backend(),
                  "device": str(jax.devices()[0].device_kind)},
  }
  if _OUT.value:
    os.makedirs(_OUT.value, exist_ok=True)
    path = os.path.join(_OUT.value, "online_learners.json")
    with open(path, "w", encoding="utf-8") as f:
      json.dump(result, f, indent=1)
    print(f"wrote {path}")


if __name__ == "__main__":
  app.run(main)
