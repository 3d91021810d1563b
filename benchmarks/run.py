r"""Speed and memory of every registered learner and cell, against the device peak and PyTorch.

    python -m benchmarks.run --quick --out=bench_out      # < 10 min on a 2-core CPU
    python -m benchmarks.run --out=bench_out              # the full grid of the issue

Writes `OUT/quick.json` (or `OUT/full.json`): the machine, the measured matmul peak, and one row
per measurement naming `learner`, `cell`, `T` (the copy task's delay; a sample has T + 20 steps),
`hidden`, `batch` and `options`, with `step_ms`, `compile_s`, `peak_mb`, `gflops`,
`frac_of_peak`, `torch_ms` and `torch_ratio` (tca-jax step time / PyTorch step time, PyTorch
with as many threads as XLA uses) where a PyTorch reference exists, and `torch_ms_1thread` /
`torch_ratio_1thread` (PyTorch on one thread); prints one table. See `benchmarks/common.py` for what each number
means and docs/PERFORMANCE.md for measured tables.

Learners and cells are discovered from the registries (`tca_jax.learners.names()`,
`tca_jax.cells.names()`): one that is not registered (yet) is skipped; one whose config does not
validate, or whose step is too slow for the row's time budget, is reported with a note.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
import traceback
from typing import Any, Dict, List, Optional, Tuple

from absl import logging

from benchmarks import common, jax_step, torch_ref
from tca_jax import cells as cells_lib
from tca_jax import config as config_lib
from tca_jax import learners as learners_lib
from tca_jax.registry import ConfigError

# Learners that learn online: they update after every step (`train.update_every = 1`), as the
# DESIGN's online mode, and carry per-step influence information that grows fast with H.
ONLINE = ("rtrl", "uoro", "kf_rtrl", "snap1")
# Forward-mode learners whose cost grows like H^3 or H^4: benchmarked at small sizes.
EXPENSIVE = ("rtrl", "kf_rtrl")

# Per-learner options and preferred cells, tried in order (the first cell that is registered).
PRESETS: Dict[str, Dict[str, Any]] = {
    "bptt": {"cells": ("lstm",), "options": {}},
    "tbptt": {"cells": ("lstm",), "options": {"learner.truncation": 10}},
    "sab": {"cells": ("sab_lstm",), "options": {}},
    # RTRL-family learners: the SRN, where SnAp-1 has its closed-form step; KF-RTRL is SRN-only.
    "rtrl": {"cells": ("srn",), "options": {}},
    "kf_rtrl": {"cells": ("srn",), "options": {}},
    "snap1": {"cells": ("srn",), "options": {}},
    "uoro": {"cells": ("lstm", "srn"), "options": {}},
    "tptt": {"cells": ("srn",), "options": {}},
    "tptt_hx": {"cells": ("srn",), "options": {}},
}


@dataclasses.dataclass(frozen=True)
class Spec:
  """One row to measure."""

  learner: str
  cell: str
  T: int  # pylint: disable=invalid-name
  hidden: int
  batch: int
  options: Tuple[Tuple[str, Any], ...] = ()
  group: str = "learners"
  memory_only: bool = False
  torch: Optional[str] = None  # the PyTorch reference ("lstm_bptt", "sab"), if any

  def config(self):
    return jax_step.make_config(self.learner, self.cell, self.T, self.hidden, self.batch,
                                dict(self.options))


def _preset(learner: str) -> Tuple[Tuple[str, ...], Dict[str, Any]]:
  preset = PRESETS.get(learner, {"cells": ("lstm", "srn"), "options": {}})
  options = dict(preset["options"])
  if learner in ONLINE:
    options.setdefault("train.update_every", 1)
  return preset["cells"], options


def _cell_for(learner: str, available_cells) -> Optional[str]:
  for cell in _preset(learner)[0]:
    if cell in available_cells:
      return cell
  return None


def _opts(d: Dict[str, Any]) -> Tuple[Tuple[str, Any], ...]:
  return tuple(sorted(d.items()))


def plan(quick: bool, learner_names=None, cell_names=None) -> List[Spec]:
  """The rows to measure, for the learners and cells registered now."""
  learner_names = list(learner_names if learner_names is not None else learners_lib.names())
  cell_names = list(cell_names if cell_names is not None else cells_lib.names())
  specs: List[Spec] = []
  have = lambda l: l in learner_names

  # 1. BPTT on the LSTM against torch.nn.LSTM.
  if have("bptt") and "lstm" in cell_names:
    if quick:
      grid = [(100, 128, 32), (300, 128, 32), (100, 256, 128)]
    else:
      grid = [(t, h, b) for t in (100, 300, 1000) for h in (128, 256, 1000) for b in (32, 128)]
    specs += [Spec("bptt", "lstm", t, h, b, group="bptt_lstm", torch="lstm_bptt")
              for t, h, b in grid]
    # scan unroll factors (the learner option), at the first shape.
    specs += [Spec("bptt", "lstm", 100, 128, 32, _opts({"learner.unroll": u}), group="unroll")
              for u in ((2, 4) if quick else (2, 4, 8))]

  # 2. Every cell with BPTT.
  if have("bptt"):
    for cell in cell_names:
      # Memory cores (sab_lstm, attn_lstm) are measured with their own learners, or in full.
      if cell == "lstm" or cell.startswith("sab") or (quick and cell.startswith("attn")):
        continue
      hs = (128,) if quick else (128, 256)
      specs += [Spec("bptt", cell, 100, h, 32, group="cells") for h in hs]

  # 3. Memory against T: BPTT, remat BPTT, TBPTT (and SAB), compiled only (XLA's buffer sizes).
  mem_learners = [("bptt", "lstm", {}), ("bptt", "lstm", {"learner.remat": True}),
                  ("tbptt", "lstm", {"learner.truncation": 10}),
                  # TBPTT(k, k): an update after every block, so one block is differentiated.
                  ("tbptt", "lstm", {"learner.truncation": 10, "train.update_every": 10})]
  if have("sab"):
    cell = _cell_for("sab", cell_names)
    if cell:
      mem_learners.append(("sab", cell, _preset("sab")[1]))
  for name, cell, options in mem_learners:
    if not have(name) or cell not in cell_names:
      continue
    for t in (100, 300, 1000):
      specs.append(Spec(name, cell, t, 128, 32, _opts(options), group="memory",
                        memory_only=True))

  # 4. Every other learner at a shape it can afford.
  for name in learner_names:
    if name == "bptt":
      continue
    cell = _cell_for(name, cell_names)
    if cell is None:
      specs.append(Spec(name, _preset(name)[0][0], 0, 0, 0, group="missing"))
      continue
    _, options = _preset(name)
    torch_kind = "sab" if name == "sab" else None
    if name in EXPENSIVE:
      shapes = [(10, 32, 8)] if quick else [(10, h, 8) for h in (16, 32, 64, 128)]
    elif name in ONLINE:
      shapes = [(30, 64, 16)] if quick else [(100, h, 32) for h in (32, 64, 128, 256)]
    else:
      shapes = [(100, 128, 32)] if quick else [(t, h, 32) for t in (100, 300)
                                                for h in (128, 256)]
    specs += [Spec(name, cell, t, h, b, _opts(options), torch=torch_kind) for t, h, b in shapes]
  if have("bptt") and "lstm" in cell_names:
    specs.append(Spec("bptt", "lstm", 100, 128, 32, _opts({"learner.remat": True})))
  return specs


def _time_torch(fn, steps: int, budget: float) -> Tuple[Optional[float], Optional[str]]:
  start = time.perf_counter()
  fn()
  first = time.perf_counter() - start
  if first * (steps + 2) > budget:
    return None, f"one PyTorch step takes {first:.1f}s (over the row budget)"
  return common.median_time_ms(fn, steps=steps, warmup=1)["step_ms"], None


def _torch_ms(spec: Spec, cache: Dict, steps: int, budget: float, sab_options) -> Dict[str, Any]:
  """PyTorch's step time with JAX's thread count (`torch_ms`) and with one (`torch_ms_1thread`).

  One thread as well because OpenMP's spinning threads suffer most when the CPU is shared.
  """
  key = (spec.torch, spec.T, spec.hidden, spec.batch, tuple(sorted(sab_options.items())))
  if key in cache:
    return cache[key]
  out: Dict[str, Any] = {}
  threads = torch_ref.get_threads()
  try:
    fn = torch_ref.make_step(spec.torch, spec.T, spec.hidden, spec.batch, sab_options=sab_options)
    out["torch_ms"], note = _time_torch(fn, steps, budget)
    if note:
      out["torch_skipped"] = note
    if threads > 1 and torch_ref.default_device() == "cpu":  # a GPU step uses no CPU threads
      torch_ref.set_threads(1)
      try:
        out["torch_ms_1thread"], note = _time_torch(fn, steps, budget)
      finally:
        torch_ref.set_threads(threads)
  except Exception as e:  # pylint: disable=broad-except
    out["torch_error"] = f"{type(e).__name__}: {e}"
  cache[key] = out
  return out


def _sab_options(spec: Spec) -> Dict[str, int]:
  """The SAB hyper-parameters of the tca-jax config, for the PyTorch loop."""
  setup = config_lib.build(spec.config())
  out = {}
  for obj in (setup.learner, setup.model.core):
    for name in ("k_top", "k_att", "k_trunc"):
      value = getattr(obj, name, None)
      if isinstance(value, int) and name not in out:
        out[name] = value
  return out


def measure(spec: Spec, *, steps: int, budget: float, peak_gflops: float,
            use_torch: bool, torch_cache: Dict) -> Dict[str, Any]:
  """One row: the spec's identity plus its numbers (or a note saying why there are none)."""
  row: Dict[str, Any] = {
      "framework": "tca-jax", "group": spec.group, "learner": spec.learner, "cell": spec.cell,
      "T": spec.T, "hidden": spec.hidden, "batch": spec.batch, "options": dict(spec.options),
      "step_ms": None, "compile_s": None, "peak_mb": None, "gflops": None,
      "frac_of_peak": None, "torch_ms": None, "torch_ratio": None,
  }
  if spec.group == "missing":
    row["skipped"] = f"no registered cell among {_preset(spec.learner)[0]} for this learner"
    return row
  try:
    result = jax_step.measure(spec.config(), steps=steps, time_budget_s=budget,
                              memory_only=spec.memory_only, peak_gflops=peak_gflops)
  except ConfigError as e:
    row["skipped"] = f"config not valid here: {e}"
    return row
  except Exception as e:  # pylint: disable=broad-except
    logging.warning("row %s failed:\n%s", spec, traceback.format_exc())
    row["error"] = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"[:300]
    return row
  row.update(result)
  if row["step_ms"] is not None and row.get("flops"):
    row["gflops"] = row["flops"] / (row["step_ms"] * 1e-3) / 1e9
    row["frac_of_peak"] = row["gflops"] / peak_gflops
  if spec.torch and use_torch and row["step_ms"] is not None:
    sab = _sab_options(spec) if spec.torch == "sab" else {}
    row.update(_torch_ms(spec, torch_cache, steps, budget, sab))
    if sab:
      row["torch_options"] = sab
    if row.get("torch_ms"):
      row["torch_ratio"] = row["step_ms"] / row["torch_ms"]
    if row.get("torch_ms_1thread"):
      row["torch_ratio_1thread"] = row["step_ms"] / row["torch_ms_1thread"]
  return row


def _fmt(x, spec="{:.3g}"):
  return "-" if x is None else spec.format(x)


def format_table(rows: List[Dict[str, Any]]) -> str:
  """The rows as one fixed-width text table."""
  head = ("learner", "cell", "T", "H", "B", "options", "step_ms", "compile_s", "peak_mb",
          "GFLOP/s", "%peak", "torch_ms", "ratio", "ratio_1t", "note")
  lines = []
  for r in rows:
    opts = ",".join(f"{k.split('.')[-1]}={v}" for k, v in r["options"].items()) or "-"
    note = r.get("skipped") or r.get("error") or r.get("torch_skipped") or r.get("warning") or ""
    if r.get("group") == "memory" and not note:
      note = "memory only"
    frac = None if r["frac_of_peak"] is None else 100 * r["frac_of_peak"]
    lines.append((r["learner"], r["cell"], str(r["T"]), str(r["hidden"]), str(r["batch"]), opts,
                  _fmt(r["step_ms"], "{:.1f}"), _fmt(r["compile_s"], "{:.2f}"),
                  _fmt(r["peak_mb"], "{:.1f}"), _fmt(r["gflops"], "{:.2f}"),
                  _fmt(frac, "{:.1f}"), _fmt(r["torch_ms"], "{:.1f}"),
                  _fmt(r["torch_ratio"], "{:.2f}"), _fmt(r.get("torch_ratio_1thread"), "{:.2f}"),
                  note[:70]))
  widths = [max(len(h), *(len(l[i]) for l in lines)) if lines else len(h)
            for i, h in enumerate(head)]
  out = ["  ".join(h.ljust(w) for h, w in zip(head, widths))]
  out.append("  ".join("-" * w for w in widths))
  out += ["  ".join(c.ljust(w) for c, w in zip(l, widths)) for l in lines]
  return "\n".join(out)


def format_markdown(rows: List[Dict[str, Any]]) -> str:
  """The timed rows as a markdown table (for docs/PERFORMANCE.md)."""
  out = ["| learner | cell | T | H | B | options | step ms (median) | step ms (min) | compile s | "
         "peak MiB | GFLOP/s | % of peak | torch ms | ratio | torch ms (1 thread) | "
         "ratio (1 thread) |", "|" + " --- |" * 16]
  for r in rows:
    if r.get("group") == "memory":
      continue
    opts = ", ".join(f"{k.split('.')[-1]}={v}" for k, v in r["options"].items()) or "-"
    frac = None if r["frac_of_peak"] is None else 100 * r["frac_of_peak"]
    cells = [r["learner"], r["cell"], str(r["T"]), str(r["hidden"]), str(r["batch"]), opts,
             _fmt(r["step_ms"], "{:.1f}"), _fmt(r.get("step_ms_min"), "{:.1f}"),
             _fmt(r["compile_s"], "{:.1f}"), _fmt(r["peak_mb"], "{:.1f}"),
             _fmt(r["gflops"], "{:.1f}"), _fmt(frac, "{:.0f}"), _fmt(r["torch_ms"], "{:.1f}"),
             _fmt(r["torch_ratio"], "{:.2f}"), _fmt(r.get("torch_ms_1thread"), "{:.1f}"),
             _fmt(r.get("torch_ratio_1thread"), "{:.2f}")]
    note = r.get("skipped") or r.get("error")
    if note:
      cells[6] = f"({note})"
    out.append("| " + " | ".join(cells) + " |")
  return "\n".join(out)


def format_memory_markdown(rows: List[Dict[str, Any]]) -> str:
  """The memory rows as a markdown table: peak MiB per learner (columns) and T (rows)."""
  series: Dict[str, Dict[int, float]] = {}
  for r in rows:
    if r.get("group") == "memory" and r.get("peak_mb"):
      opts = ", ".join(f"{k.split('.')[-1]}={v}" for k, v in r["options"].items())
      series.setdefault(f"{r['learner']} ({r['cell']}{'; ' + opts if opts else ''})", {})[
          r["T"]] = r["peak_mb"]
  ts = sorted({t for s in series.values() for t in s})
  out = ["| learner | " + " | ".join(f"T={t}" for t in ts) + " |", "|" + " --- |" * (len(ts) + 1)]
  for name, s in series.items():
    out.append(f"| {name} | " + " | ".join(_fmt(s.get(t), "{:.1f}") for t in ts) + " |")
  return "\n".join(out)


def run(quick: bool, out_dir: str, *, steps: int = 20, budget: Optional[float] = None,
        use_torch: bool = True, specs: Optional[List[Spec]] = None,
        peak_n: Optional[int] = None, echo=print) -> Dict[str, Any]:
  """Measures `specs` (default: `plan(quick)`), writes `out_dir/{quick,full}.json`, returns it."""
  budget = budget if budget is not None else (40.0 if quick else 300.0)
  use_torch = use_torch and torch_ref.available()
  threads = common.jax_threads()
  torch_threads = torch_ref.set_threads(threads) if use_torch else None
  peak = common.matmul_peak_gflops(n=peak_n or 1536)
  specs = plan(quick) if specs is None else specs
  result = {
      "mode": "quick" if quick else "full",
      "command": " ".join([os.path.basename(sys.executable), "-m", "benchmarks.run"] + sys.argv[1:]),
      "machine": common.machine_info(),
      "matmul_peak_gflops": peak,
      "jax_threads": threads,
      "torch_version": torch_ref.version() if use_torch else None,
      "torch_device": torch_ref.default_device() if use_torch else None,
      "torch_threads": torch_threads,
      "learners": list(learners_lib.names()),
      "cells": list(cells_lib.names()),
      "rows": [],
  }
  echo(f"device {result['machine'].get('cpu_model', result['machine']['device'])}, "
       f"{threads} threads (torch {torch_threads}), matmul peak {peak:.1f} GFLOP/s; "
       f"{len(specs)} rows")
  os.makedirs(out_dir, exist_ok=True)
  path = os.path.join(out_dir, f"{result['mode']}.json")
  torch_cache: Dict = {}
  start = time.time()
  for i, spec in enumerate(specs):
    row = measure(spec, steps=steps, budget=budget, peak_gflops=peak, use_torch=use_torch,
                  torch_cache=torch_cache)
    result["rows"].append(row)
    echo(f"[{i + 1}/{len(specs)} {time.time() - start:.0f}s] {spec.learner}/{spec.cell} "
         f"T={spec.T} H={spec.hidden} B={spec.batch} {dict(spec.options) or ''}: "
         f"step {_fmt(row['step_ms'], '{:.1f}')} ms, compile {_fmt(row['compile_s'], '{:.1f}')} s"
         + (f", torch {row['torch_ms']:.1f} ms" if row.get("torch_ms") else "")
         + (f" ({row.get('skipped') or row.get('error')})" if row.get("skipped") or
            row.get("error") else ""))
    with open(path, "w", encoding="utf-8") as f:  # rewritten after each row: partial runs count
      json.dump(result, f, indent=1, default=float)
  result["wall_s"] = time.time() - start
  result["machine"]["load_avg_1m_end"] = os.getloadavg()[0]
  # The peak again, the best of both: on a shared CPU one measurement may catch a busy moment.
  peak = common.matmul_peak_gflops(n=peak_n or 1536, fresh=True)
  if peak > result["matmul_peak_gflops"]:
    result["matmul_peak_gflops"] = peak
    for row in result["rows"]:
      if row["gflops"] is not None:
        row["frac_of_peak"] = row["gflops"] / peak
  with open(path, "w", encoding="utf-8") as f:
    json.dump(result, f, indent=1, default=float)
  echo(format_table(result["rows"]))
  echo(f"{len(result['rows'])} rows in {result['wall_s']:.0f}s -> {path}")
  return result


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--quick", action="store_true", help="small grid, < 10 min on 2 cores")
  parser.add_argument("--out", default="bench_out", help="directory for the JSON")
  parser.add_argument("--steps", type=int, default=20, help="timed steps per row (>= 20)")
  parser.add_argument("--budget", type=float, default=None,
                      help="seconds one row may take (default 40 quick, 300 full)")
  parser.add_argument("--no-torch", action="store_true", help="skip the PyTorch references")
  parser.add_argument("--markdown", default=None,
                      help="print the markdown tables of an existing JSON and exit")
  parser.add_argument("--only", default=None,
                      help="comma-separated learners (or groups) to run, e.g. bptt,sab")
  args = parser.parse_args(argv)
  if args.markdown:
    with open(args.markdown, encoding="utf-8") as f:
      rows = json.load(f)["rows"]
    print(format_markdown(rows) + "\n\n" + format_memory_markdown(rows))
    return
  specs = plan(args.quick)
  if args.only:
    keep = set(args.only.split(","))
    specs = [s for s in specs if s.learner in keep or s.group in keep]
  run(args.quick, args.out, steps=args.steps, budget=args.budget, use_torch=not args.no_torch,
      specs=specs)


if __name__ == "__main__":
  main()
