r"""Figures for docs/PERFORMANCE.md from the benchmarks' JSON.

    python -m benchmarks.plots --bench=bench_out/quick.json \
        [--online=bench_out/online_learners.json] --out=docs

* `perf_memory_vs_T.png`: `peak_mb` (XLA's buffer assignment of one training step) against T
  for BPTT, remat BPTT, TBPTT and SAB (the `memory` rows of `benchmarks.run`).
* `perf_online_time_vs_hidden.png`: milliseconds per time step against H for the online
  learners, from `benchmarks.online_learners`' JSON (rows with `learner`, `hidden`, `step_ms`;
  `min_ms`, the fastest call, is plotted where every row has it).
"""

from __future__ import annotations

import argparse
import json
import os
from collections import defaultdict

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top,wrong-import-position


def _label(row) -> str:
  opts = row.get("options") or {}
  if opts.get("learner.remat"):
    return f"{row['learner']} remat ({row['cell']})"
  extra = ",".join(f"{k.split('.')[-1]}={v}" for k, v in opts.items())
  return f"{row['learner']} ({row['cell']}{', ' + extra if extra else ''})"


def memory_vs_t(bench: dict, path: str) -> bool:
  """Writes the memory figure; False if the JSON has no memory rows."""
  series = defaultdict(list)
  shape = None
  for r in bench["rows"]:
    if r.get("group") == "memory" and r.get("peak_mb"):
      series[_label(r)].append((r["T"], r["peak_mb"]))
      shape = (r["hidden"], r["batch"])
  if not series:
    return False
  fig, ax = plt.subplots(figsize=(5.5, 4))
  styles = ["o-", "s--", "^-.", "v:", "D-", "x--"]
  for i, (label, pts) in enumerate(sorted(series.items())):
    pts.sort()
    ax.plot([p[0] for p in pts], [p[1] for p in pts], styles[i % len(styles)], label=label,
            alpha=0.85)
  ax.set_xscale("log")
  ax.set_yscale("log")
  ax.set_xlabel("copy-task delay T (a sample has T + 20 steps)")
  ax.set_ylabel("memory of one training step (MiB)")
  ax.set_title(f"Memory against T (H={shape[0]}, batch {shape[1]})")
  ax.grid(True, which="both", alpha=0.3)
  ax.legend(fontsize=7, loc="upper left")
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)
  return True


def online_time_vs_hidden(online: dict, path: str) -> bool:
  """Writes the online-learner timing figure; False if there are no rows."""
  # The fastest of the timed calls where recorded: on a shared CPU it is the less noisy number.
  key = "min_ms" if all("min_ms" in r for r in online.get("rows", [])) else "step_ms"
  series = defaultdict(list)
  for r in online.get("rows", []):
    if r.get(key):
      series[r["learner"]].append((r["hidden"], r[key]))
  if not series:
    return False
  fig, ax = plt.subplots(figsize=(5.5, 4))
  for label, pts in sorted(series.items()):
    pts.sort()
    ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-", label=label)
  ax.set_xscale("log", base=2)
  ax.set_yscale("log")
  ax.set_xlabel("hidden size H (tanh SRN)")
  ax.set_ylabel("ms per time step (batch 1, " + ("fastest call)" if key == "min_ms" else
                                                  "median)"))
  ax.set_title("Online learners: time against H")
  ax.grid(True, which="both", alpha=0.3)
  ax.legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)
  return True


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--bench", required=True, help="quick.json or full.json of benchmarks.run")
  parser.add_argument("--online", default=None, help="online_learners.json (optional)")
  parser.add_argument("--out", default="docs")
  args = parser.parse_args(argv)
  os.makedirs(args.out, exist_ok=True)
  with open(args.bench, encoding="utf-8") as f:
    bench = json.load(f)
  if memory_vs_t(bench, os.path.join(args.out, "perf_memory_vs_T.png")):
    print(f"wrote {os.path.join(args.out, 'perf_memory_vs_T.png')}")
  if args.online and os.path.exists(args.online):
    with open(args.online, encoding="utf-8") as f:
      online = json.load(f)
    if online_time_vs_hidden(online, os.path.join(args.out, "perf_online_time_vs_hidden.png")):
      print(f"wrote {os.path.join(args.out, 'perf_online_time_vs_hidden.png')}")


if __name__ == "__main__":
  main()
