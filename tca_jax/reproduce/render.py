"""Writes a table's results (`tca_jax.reproduce.runner`): CSV, markdown and learning-curve figures.

* `csv_text`: one line per run and metric (our value, the paper's, the status, the workdir);
* `markdown`: our number beside the paper's, per row and column (`format_cell`);
* `write_figures`: per column, the training loss and evaluation accuracy of every row against
  the step, read from the runs' `metrics.jsonl` (generic-trainer tables);
* `write_protocol_figures`: the TPTT protocol tables' learning curves, every seed drawn: the
  iterations each T took (Table 1's curricula) or the validation error against the iteration.

`cells` map `(row label, setting paper label)` to a `runner.TableCell`.
"""

from __future__ import annotations

import csv
import io
import math
import os
import re

import numpy as np

from tca_jax import metrics_io, plotting, protocol_workdir


# The binary that writes these tables, named in each markdown (named only: never imported here).
COMMAND = "python -m experiments.reproduce"


def slug(text: str) -> str:
  return re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_").lower()


def csv_text(table, preset, settings, cells) -> str:
  """One line per seed and metric: our value, the paper's, the cell's status, the seed's state
  ("done", "partial", "pending") and detail, the workdir."""
  out = io.StringIO()
  w = csv.writer(out, lineterminator="\n")
  w.writerow(["table", "preset", "row", "learner", "paper_setting", "setting", "metric", "seed",
              "value", "paper", "status", "state", "detail", "workdir"])
  for row in table.rows:
    for s in settings:
      cell = cells[(row.label, s.paper)]
      for m in s.metrics:
        paper = row.paper.get((s.paper, m.label), "")
        vals = cell.values.get(m.label) or [None]
        for seed, v in enumerate(vals):
          wd = cell.workdirs[seed] if seed < len(cell.workdirs) else ""
          seed_result = cell.seeds[seed] if seed < len(cell.seeds) else None
          w.writerow([table.name, preset, row.label, row.learner or "", s.paper, s.label,
                      m.label, seed if v is not None else "",
                      "" if v is None or (isinstance(v, float) and math.isnan(v)) else v,
                      paper, cell.status, seed_result.state if seed_result else "",
                      seed_result.detail if seed_result else cell.detail, wd])
  return out.getvalue()


def _fmt(v, fmt):
  return format(v, fmt) if isinstance(v, (int, float)) and not math.isnan(v) else "–"


def _seed_t_max(result, label, fmt) -> str:
  """One seed's t_max: "90", ">= 130" (solved up to the cap), ">= 130 (stopped at T=140)"."""
  v = result.values.get(label, float("nan"))
  if result.state == "pending":
    return "–"
  if result.state == "partial":
    return (f">= {_fmt(v, fmt)} ({result.detail})" if not math.isnan(v) else
            f"– ({result.detail})")
  return f">= {_fmt(v, fmt)}" if result.detail.startswith("solved up to") else _fmt(v, fmt)


def format_cell(cell, metric, paper, first: bool = True, with_paper: bool = True) -> str:
  """`ours (paper)`: ours is the mean over the finished seeds, `± std` with several; a cell whose
  seeds are not all finished says how many are and where the others stand, and a t_max cell lists
  its seeds. A cell that did not run gives its reason in its `first` column and only its kind
  ("n/a") in the others. `with_paper=False` (a table of our own, no paper behind it): `ours`
  only."""
  paper_s = f" ({_fmt(paper, metric.fmt)})" if paper is not None else " (–)"
  if not with_paper:
    paper_s = ""
  if cell.status != "ok":
    status = cell.status if first else cell.status.split(":")[0]
    short = status if len(status) < 90 else status[:87] + "..."
    return short.replace("|", "/") + paper_s
  vals = np.asarray(cell.values.get(metric.label, []), dtype=float)
  states = [r.state for r in cell.seeds] or ["done"] * len(vals)
  done = np.asarray([st == "done" for st in states], dtype=bool)
  finite = vals[done & np.isfinite(vals)]
  if not finite.size:
    ours = (cell.detail or "–") if done.all() else "–"
  elif finite.size == 1:
    ours = _fmt(float(finite[0]), metric.fmt)
  else:
    ours = f"{_fmt(float(finite.mean()), metric.fmt)} ± {_fmt(float(finite.std()), metric.fmt)}"
  if metric.key == "t_max" and cell.seeds and (len(cell.seeds) > 1 or not done.all()):
    per_seed = ", ".join(_seed_t_max(r, metric.label, metric.fmt) for r in cell.seeds)
    ours = (f"{ours} [seeds: {per_seed}]" if finite.size else f"[seeds: {per_seed}]")
  elif metric.key == "t_max" and finite.size:
    ours = f">= {ours}" if cell.detail.startswith("solved up to") else f"{ours}, {cell.detail}"
  elif all(st == "pending" for st in states):
    ours = "not run yet"
  elif not done.any():
    # Every seed is partial (a run stopped or still going): its last evaluation, marked so.
    partial = vals[np.isfinite(vals)]
    where = "; ".join(sorted({r.detail for r in cell.seeds if r.state != "done"}))
    so_far = (_fmt(float(partial.mean()), metric.fmt) if partial.size == 1 else
              f"{_fmt(float(partial.mean()), metric.fmt)} ± {_fmt(float(partial.std()), metric.fmt)}"
              ) if partial.size else "–"
    ours = f"{so_far} so far ({where})" if partial.size else f"no number yet ({where})"
  elif not done.all():
    others = sorted({r.detail for r in cell.seeds if r.state != "done"})
    ours = (f"{ours} [{int(done.sum())} of {len(done)} seeds finished; the others: "
            f"{'; '.join(others)}]")
  return ours + paper_s


def markdown(table, preset, settings, cells) -> str:
  lines = [f"### {table.title}", ""]
  with_paper = table.source is not None
  if preset == "local" and with_paper:
    lines += ["**Reduced run (`--preset=local`): not the paper's setting; compare the ordering of "
              "the rows, not the values.**", ""]
  command = f"Command: `{COMMAND} --table={table.name} --preset={preset}`."
  unfinished = sum(not c.finished for c in cells.values() if c.status == "ok")
  if unfinished:
    lines += [f"**In progress: {unfinished} cell(s) have seeds that are not finished; their "
              "numbers are lower bounds or partial, as each cell says. Rerun the command to go "
              "on (finished runs are read back).**", ""]
  carried = sum(getattr(c, "carried", False) for c in cells.values())
  if carried:
    lines += [f"{carried} cell(s) are read, in whole or in part, from this table's CSV as "
              "written before: those seeds got further in an earlier session than any run on "
              "the machine that wrote this file (their run folders are not here), so their "
              "learning curves are not in the figures.", ""]
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


def write_figures(table, settings, cells, out_dir, stem=None):
  """One PNG per setting (OUT_DIR/STEM_<setting>.png): training loss and evaluation accuracy
  against the step, per row."""
  stem = stem or table.name
  paths = []
  for s in settings:
    fig = plotting.new_figure(figsize=(11, 4))
    ax_loss, ax_acc = fig.subplots(1, 2)
    drawn = False
    for row in table.rows:
      cell = cells[(row.label, s.paper)]
      # A carried cell's numbers come from an earlier run than any curve left in its folder.
      if cell.status != "ok" or not cell.workdirs or getattr(cell, "carried", False):
        continue
      workdirs = list(dict.fromkeys(cell.workdirs))  # vmapped seeds share one workdir
      loss = _curves(workdirs, "train", "loss")
      acc = _curves(workdirs, "eval", "accuracy")
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
    path = os.path.join(out_dir, f"{stem}_{slug(s.paper)}.png")
    fig.savefig(path, dpi=100)
    paths.append(path)
  return paths


def _validation_curve(workdir, length=None):
  """`(iterations, val_error)` of a protocol seed's run at `length` (its last length if None).

  A T interrupted and restarted from its beginning appends its records again: only the last
  pass (after the iteration count last went down) is kept.
  """
  records = [r for r in metrics_io.read_records(os.path.join(workdir, "metrics.jsonl"))
             if "val_error" in r and "iteration" in r]
  if length is None and records:
    length = records[-1].get("length")
  xs, ys = [], []
  for r in records:
    if r.get("length") != length:
      continue
    if xs and r["iteration"] <= xs[-1]:
      xs, ys = [], []
    xs.append(r["iteration"])
    ys.append(r["val_error"])
  return xs, ys


def write_protocol_figures(table, settings, cells, out_dir, stem=None, budget=None):
  """The protocol tables' figure, OUT_DIR/STEM_curves.png, one panel per column, every seed:
  for a curriculum (kind "t_max") the iterations each T took (`plotting.
  plot_iterations_per_length`), else the validation error against the iteration at the run's
  training length (`plotting.plot_validation_curves`). Returns the paths written ([] if no
  seed has anything to draw)."""
  stem = stem or table.name
  panels, drawn = {}, False
  for s in settings:
    rows = {}
    for row in table.rows:
      cell = cells[(row.label, s.paper)]
      if cell.status != "ok":
        continue
      seeds = []
      for wd in dict.fromkeys(cell.workdirs):
        if table.kind == "t_max":
          runs = protocol_workdir.finished_lengths(os.path.join(wd, protocol_workdir.RUNS_DIR))
          seeds.append([(r["length"], r["iterations"] or r["stopped_at"], bool(r["solved"]))
                        for r in runs])
        else:
          seeds.append(_validation_curve(wd))
        drawn = drawn or bool(seeds[-1] and seeds[-1][0])
      rows[row.label] = seeds
    panels[s.label] = rows
  if not drawn:
    return []
  path = os.path.join(out_dir, f"{stem}_curves.png")
  title = f"{table.title} (every seed)"
  if table.kind == "t_max":
    plotting.plot_iterations_per_length(panels, path, budget=budget, title=title)
  else:
    plotting.plot_validation_curves(panels, path, title=title)
  return [path]


def write_transfer_figure(table, settings, cells, out_dir, stem=None):
  """One PNG (OUT_DIR/STEM.png) for a "transfer" table: each row's first metric against the
  column's test length, mean and standard deviation over the seeds (solid, the step its model
  reached in the legend when unfinished) and the paper's (dashed). Columns are ordered as the
  table gives them; their labels are the x ticks."""
  stem = stem or table.name
  fig = plotting.new_figure(figsize=(7, 4))
  ax = fig.subplots()
  x = np.arange(len(settings))
  drawn = False
  for i, row in enumerate(table.rows):
    color = f"C{i}"
    means, sds, where = [], [], ""
    for s in settings:
      cell, m = cells[(row.label, s.paper)], s.metrics[0]
      vs = np.asarray([v for v in cell.values.get(m.label, []) if not math.isnan(v)])
      means.append(vs.mean() if cell.status == "ok" and vs.size else np.nan)
      sds.append(vs.std() if cell.status == "ok" and vs.size else np.nan)
      if cell.status == "ok" and not cell.finished and cell.detail:
        where = f" ({cell.detail})"
    if not np.isnan(means).all():
      ax.errorbar(x, means, yerr=sds, color=color, marker="o", capsize=3,
                  label=f"{row.label}{where}")
      drawn = True
    paper = [row.paper.get((s.paper, s.metrics[0].label), np.nan) for s in settings]
    ax.plot(x, paper, color=color, linestyle="--", marker="x", alpha=0.6,
            label=f"{row.label}, paper")
  if not drawn:
    return []
  ax.set_xticks(x, [s.label for s in settings])
  ax.set_xlabel("test length")
  ax.set_ylabel(settings[0].metrics[0].label)
  ax.legend(fontsize="x-small")
  ax.set_title(table.title, fontsize="small")
  fig.tight_layout()
  path = os.path.join(out_dir, f"{stem}.png")
  fig.savefig(path, dpi=100)
  return [path]
