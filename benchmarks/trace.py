r"""Where a compiled training step spends its time: the profiler's device events, summed by name.

    python -m benchmarks.trace [--rows=sab,tbptt5] [--T=300] [--unroll=1] [--steps=5] \
        [--top=25] [--out=/tmp/trace.json]
    python -m benchmarks.trace --compare=jax_bptt,jax_rtrl64,jax_tptt [--steps=5] [--top=25]

`--compare` traces candidates of `benchmarks.compare` (issue 17's table, its full shapes) by
their names there (`jax_bptt`, `jax_bptt_native`, `jax_bptt_big`, `jax_sab`, `jax_tbptt5`,
`jax_rtrl64`, `jax_rtrl64_native`, `jax_rtrl128`, `jax_rtrl_b1`, `jax_tptt`, `jax_tptt_full`,
...), so that each row's time can be split into what bounds it: per call, the wall time, the
events' self times (the XLA threads' busy time: a GEMM's own time, a loop thunk's per-iteration
cost), their count and the top names; wall minus events is time no XLA thread was running a
thunk (dispatch, the executor's scheduling, waiting on a thread pool, Python).

Compiles the training step of each `benchmarks.sab` row (copy task, batch 32, hidden 128,
k_trunc = k_top = k_att = 5), runs it `--steps` times under `jax.profiler.trace` and sums the
trace's events by name. On a GPU the events are the kernels on the device's streams; on the CPU
they are XLA's thunks (fusions, dots, ...) on its worker threads. Only leaf events count: an
event that contains another on the same thread (a `while` loop around its body's thunks) is left
out, so that the total is not counted twice. Per row it prints the total event time per step,
the number of events per step and per time step of the sequence (on a GPU, the kernel launches a
recurrent step costs), and the `--top` names.

This is how docs/PERFORMANCE.md found that SAB's step on an H100 was 66.6 kernels per time step
against TBPTT's 31, about 1.5 us each (launch-bound), and which of them were conditionals.
`--unroll=1` keeps one set of names per loop body (an unrolled body has a name per copy).
"""

from __future__ import annotations

import argparse
import collections
import glob
import gzip
import json
import os
import tempfile
import time
from typing import Dict, List, Sequence

import jax

from benchmarks import sab


def _wanted_by_thread(trace: dict, device: str) -> Dict[tuple, List[dict]]:
  """The complete events of XLA's threads (cpu) or the device's streams (gpu), per thread,
  sorted by start (an enclosing event before the events it contains)."""
  events = trace["traceEvents"]
  processes = {e["pid"]: e["args"]["name"] for e in events
               if e.get("ph") == "M" and e.get("name") == "process_name"}
  threads = {(e["pid"], e["tid"]): e["args"]["name"] for e in events
             if e.get("ph") == "M" and e.get("name") == "thread_name"}

  def wanted(e):
    # The CPU's executor bookkeeping (its `ThunkExecutor::Execute` spans, waits on the thread pool)
    # and its zero-length "end: <op>" markers, which would make every op look like a container.
    name = e["name"]
    if name.startswith("end: ") or name.startswith("ThunkExecutor") or "::Await" in name:
      return False
    if device == "cpu":
      return str(threads.get((e["pid"], e["tid"]), "")).startswith("tf_XLA")
    return str(processes.get(e["pid"], "")).startswith("/device:")

  by_thread: Dict[tuple, List[dict]] = collections.defaultdict(list)
  for e in events:
    if e.get("ph") == "X" and "dur" in e and wanted(e):
      by_thread[(e["pid"], e["tid"])].append(e)
  for thread_events in by_thread.values():
    thread_events.sort(key=lambda e: (e["ts"], -e["dur"]))
  return by_thread


def _nest(thread_events: List[dict]):
  """Yields `(event, children_dur, is_leaf)` for the sorted events of one thread, where
  `children_dur` sums the durations of the events directly inside it."""
  stack: List[list] = []  # [event, children_dur, is_leaf]
  for e in thread_events:
    while stack and stack[-1][0]["ts"] + stack[-1][0]["dur"] <= e["ts"]:
      yield tuple(stack.pop())
    if stack:
      stack[-1][1] += e["dur"]
      stack[-1][2] = False  # e lies inside the open event: that one is a container
    stack.append([e, 0.0, True])
  while stack:
    yield tuple(stack.pop())


def leaf_events(trace: dict, device: str) -> List[dict]:
  """The complete (`ph == "X"`) events of `trace` that contain no other event of their thread.

  Args:
    trace: a Chrome/Perfetto trace (`{"traceEvents": [...]}`), as `jax.profiler.trace(...,
      create_perfetto_trace=True)` writes it.
    device: "gpu": events of processes named `/device:...` (kernels and copies on the streams);
      "cpu": events of XLA's threads (`tf_XLA...`), which is where the CPU runs a step's thunks.
  """
  return [e for thread_events in _wanted_by_thread(trace, device).values()
          for e, _, is_leaf in _nest(thread_events) if is_leaf]


def self_time_events(trace: dict, device: str) -> List[dict]:
  """Every wanted event of `trace` (as `leaf_events`), its `dur` replaced by its self time: its
  duration less that of the events directly inside it on its thread.

  On the CPU a large fusion (a YNNPACK GEMM) contains the events of the work it hands to its
  thread pool, and a `while` thunk contains its body's: counting leaves only drops the GEMM's
  own time and the loop's per-iteration cost, which is what bounds small recurrent steps. The
  self times add up to the threads' busy time, each part under the name that spent it."""
  out = []
  for thread_events in _wanted_by_thread(trace, device).values():
    for e, children, _ in _nest(thread_events):
      out.append(dict(e, dur=max(e["dur"] - children, 0.0)))
  return out


def summarize(events: Sequence[dict], steps: int, time_steps: int) -> dict:
  """Per-step totals and `rows` of `{"name", "ms_per_step", "count_per_step", "us_each"}`."""
  sums: Dict[str, list] = collections.defaultdict(lambda: [0.0, 0])
  for e in events:
    entry = sums[e["name"]]
    entry[0] += e["dur"]
    entry[1] += 1
  rows = [{"name": name, "ms_per_step": dur / 1e3 / steps, "count_per_step": count / steps,
           "us_each": dur / count} for name, (dur, count) in sums.items()]
  rows.sort(key=lambda r: -r["ms_per_step"])
  count = sum(r["count_per_step"] for r in rows)
  return {"ms_per_step": sum(r["ms_per_step"] for r in rows), "events_per_step": count,
          "events_per_time_step": count / time_steps, "rows": rows}


def trace_step(compiled, args, steps: int, device: str, time_steps: int) -> dict:
  """Runs `compiled(*args)` `steps` times under the profiler; `summarize` of its leaf events."""
  return trace_calls(lambda: jax.block_until_ready(compiled(*args)), steps, device, time_steps)


def trace_calls(run, steps: int, device: str, time_steps: int, self_time: bool = False) -> dict:
  """Runs the zero-argument `run` (one call, to completion) `steps` times under the profiler;
  `summarize` of its leaf events (`self_time`: of every event's self time, `self_time_events`),
  with `wall_ms_per_step` (the calls' wall time, traced)."""
  with tempfile.TemporaryDirectory() as logdir:
    with jax.profiler.trace(logdir, create_perfetto_trace=True):
      start = time.perf_counter()
      for _ in range(steps):
        run()
      wall = (time.perf_counter() - start) / steps * 1e3
    files = glob.glob(os.path.join(logdir, "**", "*.trace.json.gz"), recursive=True)
    if not files:
      raise RuntimeError(f"jax.profiler wrote no *.trace.json.gz under {logdir}")
    with gzip.open(files[0], "rt", encoding="utf-8") as f:
      trace = json.load(f)
  events = (self_time_events if self_time else leaf_events)(trace, device)
  result = summarize(events, steps, time_steps)
  result["wall_ms_per_step"] = wall
  return result


def trace_compare(names: Sequence[str], steps: int, device: str) -> Dict[str, dict]:
  """`trace_calls` of `benchmarks.compare`'s candidates `names` (all rows' full shapes), each
  after two warm-up calls, summed by self time (`self_time_events`); the counts per call are also
  given per unit of the candidate (its `per`: time steps or iterations)."""
  from benchmarks import compare  # pylint: disable=g-import-not-at-top
  builders, _ = compare.plan(list(compare.ROWS), compare.Shapes(), None, echo=lambda *_: None)
  unknown = [n for n in names if n not in builders]
  if unknown:
    raise SystemExit(f"--compare: unknown {', '.join(unknown)}; allowed: "
                     f"{', '.join(sorted(builders))}")
  results = {}
  for name in names:
    candidate = builders[name]()
    candidate.fn()
    candidate.fn()
    results[name] = trace_calls(candidate.fn, steps, device, candidate.per, self_time=True)
  return results


def _print(name: str, result: dict, device: str, top: int, unit: str) -> None:
  wall = result.get("wall_ms_per_step")
  print(f"{name} on {device}: {result['ms_per_step']:.2f} ms of events per call"
        + (f" (wall {wall:.2f} ms)" if wall else "")
        + f", {result['events_per_step']:.0f} events per call = "
        f"{result['events_per_time_step']:.1f} per {unit}")
  for r in result["rows"][:top]:
    print(f"  {r['ms_per_step']:8.3f} ms {r['count_per_step']:8.0f}x {r['us_each']:8.1f} us  "
          f"{r['name'][:80]}")


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--rows", default="sab,tbptt5", help=f"of {', '.join(sab.ROWS)}")
  parser.add_argument("--T", type=int, default=300, help="copy delay (T + 20 steps)")
  parser.add_argument("--hidden", type=int, default=128)
  parser.add_argument("--batch", type=int, default=32)
  parser.add_argument("--unroll", type=int, default=None, help="default: the backend's")
  parser.add_argument("--steps", type=int, default=5, help="traced steps (after 2 warm-up)")
  parser.add_argument("--top", type=int, default=25)
  parser.add_argument("--out", default="/tmp/trace.json")
  parser.add_argument("--compare", default="",
                      help="comma-separated benchmarks.compare candidates to trace instead")
  a = parser.parse_args(argv)
  device = "cpu" if jax.default_backend() == "cpu" else "gpu"
  if a.compare:
    results = trace_compare(a.compare.split(","), a.steps, device)
    for name, result in results.items():
      _print(name, result, device, a.top, "time step or iteration")
    with open(a.out, "w", encoding="utf-8") as f:
      json.dump({"device": device, "steps": a.steps, "results": results}, f, indent=1)
    return
  rows = a.rows.split(",")
  unknown = [r for r in rows if r not in sab.ROWS]
  if unknown:
    parser.error(f"--rows: unknown {', '.join(unknown)}; allowed: {', '.join(sab.ROWS)}")
  results = {}
  for row in rows:
    compiled, args, _, _ = sab.compile_row(row, a.T, a.hidden, a.batch, a.unroll)
    time_steps = a.T + 20
    result = trace_step(compiled, args, a.steps, device, time_steps)
    results[row] = result
    _print(f"{row} T={a.T}", result, device, a.top, "time step")
  with open(a.out, "w", encoding="utf-8") as f:
    json.dump({"device": device, "T": a.T, "hidden": a.hidden, "batch": a.batch,
               "unroll": a.unroll, "steps": a.steps, "results": results}, f, indent=1)
  print(f"wrote {a.out}")


if __name__ == "__main__":
  main()
