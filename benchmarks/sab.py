r"""SAB step time and memory against the sequence length, beside TBPTT and BPTT.

    python -m benchmarks.sab [--quick] [--lengths=100,300] [--batch=32] [--hidden=128] \
        [--out=/tmp/sab_bench.json]

A "step" is one training step on one copy batch of delay T (T + 20 steps): the learner's update
of every window, then Adam after each window, jitted as one function (what `tca_jax.train` does).
Rows (k_trunc = k_top = k_att = 5, the paper's Table 2 setting):

* `sab`: `sab_lstm` + `sab` learner, whole-sequence window (the paper's offline SAB);
* `sab_online`: the same with `update_every = k_trunc` (parameters after each window, replay);
* `tbptt5`: plain LSTM + TBPTT(5), the whole sequence in one window (the same truncation);
* `bptt`: plain LSTM + full BPTT.

`step_ms` is the median of `--repeats` timed steps after two warm-up steps (each followed by
`block_until_ready`; the rows of one T are timed round-robin, so that the load of a shared
machine affects them alike); `memory_mb` is what XLA's buffer assignment gives the compiled step
(arguments + outputs + temporaries, `Compiled.memory_analysis()`), the memory the step needs.
Prints one table and writes JSON. The functions `make_step` and `measure` are importable.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time

import jax
import optax

from tca_jax import cells, learners, tasks, windows
from tca_jax.model import Model

K = 5
ROWS = ("tbptt5", "sab", "sab_online", "bptt")


def make_step(row: str, length: int, hidden: int = 128, batch: int = 32, unroll=None):
  """`(step_fn, args)`: a jittable training step of `row` on copy(T=length) and its inputs.

  `unroll`: the learner's `lax.scan` unroll (None: the backend's default, `scan_unroll`).
  """
  task = tasks.get("copy", length=length)
  steps = task.sequence_length
  update_every = 0
  if row.startswith("sab"):
    core = cells.get("sab_lstm", hidden_size=hidden, k_top=K, k_att=K,
                     max_memories=math.ceil(steps / K))
    learner = learners.get("sab", k_trunc=K, unroll=unroll)
    update_every = K if row == "sab_online" else 0
  elif row == "tbptt5":
    core = cells.get("lstm", hidden_size=hidden)
    learner = learners.get("tbptt", truncation=K, unroll=unroll)
  elif row == "bptt":
    core, learner = cells.get("lstm", hidden_size=hidden), learners.get("bptt", unroll=unroll)
  else:
    raise ValueError(f"row {row!r}; allowed: {', '.join(ROWS)}")
  model = Model(core, task.output_size)
  params = model.init(jax.random.PRNGKey(0), task.input_size)
  lparams, _ = learner.init(jax.random.PRNGKey(1), model, params, batch)
  opt = optax.adam(1e-3)
  opt_state = opt.init((params, lparams))
  data = task.sample(jax.random.PRNGKey(2), batch)

  def step(params, lparams, opt_state, data, key):
    lstate = learner.init_state(model, params, batch)

    def fn(carry, wb, i):
      params, lparams, opt_state, lstate = carry
      lstate, updates, aux = learner.update(model, params, lparams, lstate, wb, task.loss,
                                            jax.random.fold_in(key, i))
      delta, opt_state = opt.update(updates, opt_state, (params, lparams))
      params, lparams = optax.apply_updates((params, lparams), delta)
      return (params, lparams, opt_state, lstate), (aux.loss, aux.outputs, {})

    carry, loss, _, _ = windows.scan_windows(fn, (params, lparams, opt_state, lstate), data,
                                             update_every)
    return carry[:3], loss

  return step, (params, lparams, opt_state, data, jax.random.PRNGKey(3))


def compile_row(row: str, length: int, hidden: int = 128, batch: int = 32, unroll=None):
  """`(compiled_step, args, memory_mb, compile_s)` for one row at one length."""
  step, args = make_step(row, length, hidden, batch, unroll)
  t0 = time.perf_counter()
  compiled = jax.jit(step).lower(*args).compile()
  compile_s = time.perf_counter() - t0
  memory_mb = float("nan")
  try:
    ma = compiled.memory_analysis()
    memory_mb = (ma.argument_size_in_bytes + ma.output_size_in_bytes - ma.alias_size_in_bytes
                 + ma.temp_size_in_bytes) / 2**20
  except Exception:  # pylint: disable=broad-except
    pass
  for _ in range(2):  # warm-up
    jax.block_until_ready(compiled(*args))
  return compiled, args, memory_mb, compile_s


def measure_rows(rows, length: int, hidden: int = 128, batch: int = 32, repeats: int = 10):
  """Times `rows` at one length round-robin (so a shared machine's load hits them alike).

  Returns one `{"row", "T", "step_ms", "memory_mb", "compile_s"}` per row.
  """
  built = {row: compile_row(row, length, hidden, batch) for row in rows}
  times = {row: [] for row in rows}
  for _ in range(repeats):
    for row in rows:
      compiled, args, _, _ = built[row]
      t = time.perf_counter()
      jax.block_until_ready(compiled(*args))
      times[row].append(time.perf_counter() - t)
  return [{"row": row, "T": length, "step_ms": 1e3 * statistics.median(times[row]),
           "memory_mb": built[row][2], "compile_s": built[row][3]} for row in rows]


def measure(row: str, length: int, hidden: int = 128, batch: int = 32, repeats: int = 10):
  """`{"row", "T", "step_ms", "memory_mb", "compile_s"}` for one row at one length."""
  return measure_rows([row], length, hidden, batch, repeats)[0]


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--quick", action="store_true",
                      help="T in 100, 300 and 5 repeats unless --repeats says otherwise")
  parser.add_argument("--lengths", default=None, help="comma-separated T (default 100..1000)")
  parser.add_argument("--rows", default=",".join(ROWS))
  parser.add_argument("--batch", type=int, default=32)
  parser.add_argument("--hidden", type=int, default=128)
  parser.add_argument("--repeats", type=int, default=None, help="timed steps per row (default 10)")
  parser.add_argument("--online_max_t", type=int, default=300,
                      help="time sab_online only up to this T (its replays cost O(T^2))")
  parser.add_argument("--out", default="/tmp/sab_bench.json")
  a = parser.parse_args()
  lengths = [100, 300] if a.quick else [100, 200, 300, 500, 1000]
  if a.lengths:
    lengths = [int(x) for x in a.lengths.split(",")]
  repeats = a.repeats or (5 if a.quick else 10)
  results = []
  print(f"device {jax.devices()[0].platform}, batch {a.batch}, hidden {a.hidden}, "
        f"k_trunc = k_top = k_att = {K}")
  print(f"{'T':>5} {'row':>11} {'step_ms':>9} {'x tbptt5':>9} {'memory_mb':>10} {'compile_s':>9}")
  for length in lengths:
    names = [r for r in a.rows.split(",") if r != "sab_online" or length <= a.online_max_t]
    rows = measure_rows(names, length, a.hidden, a.batch, repeats)
    base = {r["row"]: r["step_ms"] for r in rows}.get("tbptt5")
    for r in rows:
      row = r["row"]
      results.append(r)
      ratio = r["step_ms"] / base if base else float("nan")
      print(f"{length:>5} {row:>11} {r['step_ms']:>9.1f} {ratio:>9.2f} {r['memory_mb']:>10.1f} "
            f"{r['compile_s']:>9.1f}", flush=True)
  with open(a.out, "w", encoding="utf-8") as f:
    json.dump({"device": jax.devices()[0].platform, "batch": a.batch, "hidden": a.hidden,
               "results": results}, f, indent=1)
  print(f"wrote {a.out}")


if __name__ == "__main__":
  main()
