"""Writes a table's results (`experiments.runner`): CSV, markdown and learning-curve figures.

* `write_csv`: one line per run and metric (our value, the paper's, the status, the workdir);
* `markdown`: our number beside the paper's, per row and column (`format_cell`);
* `write_figures`: per column, the training loss and evaluation accuracy of every row against
  the step, read from the runs' `metrics.jsonl` (generic-trainer tables).

`cells` map `(row label, setting paper label)` to a `runner.TableCell`.
"""

from __future__ import annotations

import csv
import math
import os
import re

import numpy as np

from tca_jax import metrics_io, plotting


def slug(text: str) -> str:
  return re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_").lower()



def write_csv(table, preset, settings, cells, path):
  with open(path, "w", newline="", encoding="utf-8") as f:
    w = csv.writer(f)
    w.writerow(["table", "preset", "row", "learner", "paper_setting", "setting", "metric", "seed",
                "value", "paper", "status", "workdir"])
    for row in table.rows:
      for s in settings:
        cell = cells[(row.label, s.paper)]
        for m in s.metrics:
          paper = row.paper.get((s.paper, m.label), "")
          vals = cell.values.get(m.label) or [None]
          for seed, v in enumerate(vals):
            wd = cell.workdirs[seed] if seed < len(cell.workdirs) else ""
            w.writerow([table.name, preset, row.label, row.learner or "", s.paper, s.label,
                        m.label, seed if v is not None else "",
                        "" if v is None or (isinstance(v, float) and math.isnan(v)) else v,
                        paper, cell.status + (f" ({cell.detail})" if cell.detail else ""), wd])
  return path


def _fmt(v, fmt):
  return format(v, fmt) if isinstance(v, (int, float)) and not math.isnan(v) else "–"


def format_cell(cell, metric, paper, first: bool = True, with_paper: bool = True) -> str:
  """`ours (paper)`: ours is the mean over seeds, `± std` with several seeds. A cell that did
  not run gives its reason in its `first` column and only its kind ("n/a") in the others.
  `with_paper=False` (a table of our own, no paper behind it): `ours` only."""
  paper_s = f" ({_fmt(paper, metric.fmt)})" if paper is not None else " (–)"
  if not with_paper:
    paper_s = ""
  if cell.status != "ok":
    status = cell.status if first else cell.status.split(":")[0]
    short = status if len(status) < 90 else status[:87] + "..."
    return short.replace("|", "/") + paper_s
  vals = np.asarray(cell.values.get(metric.label, []), dtype=float)
  finite = vals[np.isfinite(vals)]
  if not finite.size:
    ours = cell.detail or "–"
  elif finite.size == 1:
    ours = _fmt(float(finite[0]), metric.fmt)
  else:
    ours = f"{_fmt(float(finite.mean()), metric.fmt)} ± {_fmt(float(finite.std()), metric.fmt)}"
  if metric.key == "t_max" and finite.size:
    ours = f">= {ours}" if cell.detail.startswith("solved up to") else f"{ours}, {cell.detail}"
  return ours + paper_s


def markdown(table, preset, settings, cells) -> str:
  lines = [f"### {table.title}", ""]
  with_paper = table.source is not None
  if preset == "local" and with_paper:
    lines += ["**Reduced run (`--preset=local`): not the paper's setting; compare the ordering of "
              "the rows, not the values.**", ""]
  command = f"Command: `python -m experiments.reproduce --table={table.name} --preset={preset}`."
  lines += [command + (f" Each cell: ours (paper). Paper numbers: {table.source}." if with_paper
                       else " Each cell: ours (no paper behind this table)."), ""]
  header = ["method"]
  for s in settings:
    for m in s.metrics:
      ours = "" if s.label == s.paper else f" [ours: {s.label}]"
      header.append(f"{s.paper} {m.label}{ours}")
  lines.append("| " + " | ".join(header) + " |")
  lines.append("|" + "---|" * len(header))
  for row in table.rows:
    out = [row.label]
    for s in settings:
      for i, m in enumerate(s.metrics):
        out.append(format_cell(cells[(row.label, s.paper)], m, row.paper.get((s.paper, m.label)),
                               first=i == 0, with_paper=with_paper))
    lines.append("| " + " | ".join(out) + " |")
  note = table.note(preset)
  if note:
    lines += ["", note]
  seeds = table.num_seeds(preset)
  lines += ["", f"{seeds} seed(s) per cell" + (" (mean ± std)." if seeds > 1 else ".") +
            " \"–\": no number (the paper left the cell empty, or the run produced none).", ""]
  return "\n".join(lines)


def _curves(workdirs, split, key):
  """Mean over runs of `key` in `split` records, on the steps they share."""
  series = []
  for wd in workdirs:
    if not os.path.exists(os.path.join(wd, "metrics.jsonl")):
      continue
    recs = [(r["step"], r[key]) for r in metrics_io.read_metrics(wd)
            if r.get("split") == split and r.get(key) is not None]
    if recs:
      series.append(dict(recs))
  if not series:
    return None
  steps = sorted(set.intersection(*(set(s) for s in series)))
  return steps, [float(np.mean([s[x] for s in series])) for x in steps]


def write_figures(table, settings, cells, out_dir):
  """One PNG per setting: training loss and evaluation accuracy against the step, per row."""
  paths = []
  for s in settings:
    fig = plotting.new_figure(figsize=(11, 4))
    ax_loss, ax_acc = fig.subplots(1, 2)
    drawn = False
    for row in table.rows:
      cell = cells[(row.label, s.paper)]
      if cell.status != "ok" or not cell.workdirs:
        continue
      loss = _curves(cell.workdirs, "train", "loss")
      acc = _curves(cell.workdirs, "eval", "accuracy")
      if loss:
        ax_loss.plot(*loss, label=row.label)
        drawn = True
      if acc:
        ax_acc.plot(*acc, label=row.label)
    if not drawn:
      continue
    ax_loss.set_yscale("log")
    ax_loss.set_xlabel("step")
    ax_loss.set_ylabel("training loss")
    ax_acc.set_xlabel("step")
    ax_acc.set_ylabel("evaluation accuracy")
    ax_acc.legend(fontsize="x-small")
    fig.suptitle(f"{table.name}: {s.label}" + (f" (paper: {s.paper})" if s.label != s.paper
                                                  else ""))
    fig.tight_layout()
    path = os.path.join(out_dir, f"{table.name}_{slug(s.label)}.png")
    fig.savefig(path, dpi=100)
    paths.append(path)
  return paths
