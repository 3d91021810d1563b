"""PNG figures written next to a run's metrics.

matplotlib is imported when a figure is drawn, not when this module is (importing `tca_jax.train`
stays light), and only through its object-oriented `Figure`: no pyplot, no global backend, so a
notebook that imports tca_jax keeps drawing inline.
"""

from __future__ import annotations

import json
import os

import numpy as np

from tca_jax import paths


def new_figure(**kwargs):
  """A matplotlib `Figure` not managed by pyplot (saved with `savefig`, freed with it)."""
  from matplotlib.figure import Figure  # pylint: disable=g-import-not-at-top
  return Figure(**kwargs)


def _cmap(name: str):
  import matplotlib  # pylint: disable=g-import-not-at-top
  return matplotlib.colormaps[name]


def plot_gradient_flow(records, path: str, title: str = ""):
  """One curve of `||dE/dh||` against the distance `T - t` per probe (log scale).

  Args:
    records: dicts with "step", "distance" (list) and "norm" (list).
    path: the PNG file to write.
  """
  fig = new_figure(figsize=(6, 4))
  ax = fig.subplots()
  cmap = _cmap("viridis")
  for i, rec in enumerate(records):
    ax.semilogy(rec["distance"], rec["norm"], color=cmap(i / max(1, len(records) - 1)),
                label=f"step {rec['step']}")
  ax.set_xlabel("distance from the loss, T - t")
  ax.set_ylabel("||dE/dh_t||")
  ax.set_title(title or "gradient flow (loss at the last step)")
  if len(records) <= 8:
    ax.legend(fontsize="small")
  fig.tight_layout()
  paths.savefig(fig, path, dpi=100)


def plot_update_angle(records, path: str, key: str = "grad_cosine/core/W_hh", window: int = 10,
                      title: str = ""):
  """TPTT Fig. 5: the angle between a learner's `W_hh` update and BPTT's, over training.

  Args:
    records: dicts with "step" and `key` (a cosine; the trainer's "diag" split logs
      "grad_cosine/core/W_hh", TPTT's training metrics "bptt_cosine_recurrent").
    path: the PNG file to write.
    key: which cosine to plot.
    window: consecutive records averaged per point; error bars are two standard deviations.
  """
  rows = [(r["step"], r[key]) for r in records if r.get(key) is not None]
  fig = new_figure(figsize=(6, 4))
  ax = fig.subplots()
  if rows:
    steps, cos = np.array(rows, dtype=float).T
    angles = np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))
    n = max(1, -(-len(angles) // window))
    chunks = np.array_split(np.arange(len(angles)), n)
    xs = [steps[c].mean() for c in chunks]
    ax.errorbar(xs, [angles[c].mean() for c in chunks],
                yerr=[2 * angles[c].std() for c in chunks], fmt="o-", ms=3, capsize=2)
  ax.axhline(90.0, color="gray", lw=0.5, ls="--")
  ax.set_xlabel("iteration")
  ax.set_ylabel("angle to the BPTT update of W_hh (degrees)")
  ax.set_title(title or "update angle against BPTT")
  fig.tight_layout()
  paths.savefig(fig, path, dpi=100)


def plot_radius_and_update_norm(steps, radius, update_norm, path: str, title: str = ""):
  """TPTT Fig. 3 (a, c): spectral radius of `W_hh` and the norm of the weight update."""
  fig = new_figure(figsize=(6, 4))
  ax = fig.subplots()
  ax.plot(steps[:len(radius)], radius, color="tab:blue", label="spectral radius of W_hh")
  ax.set_xlabel("iteration")
  ax.set_ylabel("rho(W_hh)", color="tab:blue")
  ax2 = ax.twinx()
  ax2.plot(steps[:len(update_norm)], update_norm, color="tab:red", label="||update||")
  ax2.set_ylabel("||update of W_hh||", color="tab:red")
  ax.set_title(title or "spectral radius and update norm")
  fig.tight_layout()
  paths.savefig(fig, path, dpi=100)


def plot_local_losses(steps, f_losses, g_losses, global_loss, path: str, title: str = "",
                      every: int = 1):
  """TPTT Fig. 6: per-time-step local losses (G-phase, F-phase) and the global loss.

  Args:
    steps: `[n]` iterations.
    f_losses: `[n, T]` F-phase loss per step (eq. 10), column t-1 for layer t.
    g_losses: `[n, T]` G-phase loss per step (eq. 9).
    global_loss: `[n]` the task loss E.
    every: plot every `every`-th layer (deep networks are unreadable otherwise).
  """
  f_losses, g_losses = np.asarray(f_losses), np.asarray(g_losses)
  fig = new_figure(figsize=(14, 4))
  axes = fig.subplots(1, 3)
  cmap = _cmap("viridis")
  layers = range(0, f_losses.shape[1], every)
  for ax, data, name in ((axes[0], g_losses, "G-phase cost (V_hh, c_h)"),
                         (axes[1], f_losses, "F-phase cost (W_hh, b_h)")):
    for t in layers:
      if not np.any(data[:, t]):  # an untrained term (G's first step) has no curve to show
        continue
      ax.semilogy(steps, data[:, t], color=cmap(t / max(1, data.shape[1] - 1)), lw=0.8,
                  label=f"layer {t + 1}")
    ax.set_xlabel("iteration")
    ax.set_title(name)
  axes[2].plot(steps, global_loss)
  axes[2].set_xlabel("iteration")
  axes[2].set_title("global cost E")
  if len(layers) <= 12:
    axes[1].legend(fontsize="x-small")
  fig.suptitle(title)
  fig.tight_layout()
  paths.savefig(fig, path, dpi=100)


def tptt_figures(records, out_dir: str) -> list[str]:
  """TPTT's figures from the records of a generic-trainer run (its metrics.jsonl).

  Writes OUT_DIR/angle.png (Fig. 5: the angle between the learner's and BPTT's `W_hh` updates,
  from the "diag" split's `grad_cosine/core/W_hh`, averaged over 10 diagnostics with 2-std error
  bars), OUT_DIR/radius.png (Fig. 3: the spectral radius of `W_hh` from the "diag" split and the
  update norm from the "train" split) and, when the run logged them
  (`learner.log_local_losses=True`), OUT_DIR/local_losses.png (Fig. 6).

  Args:
    records: the run's records (`metrics_io.read_metrics(workdir)`).
    out_dir: where the PNGs go (usually the run's workdir).

  Returns:
    The names of the files written, in that order (none without "diag" or "train" records).
  """
  diag = [r for r in records if r["split"] == "diag"]
  trains = [r for r in records if r["split"] == "train"]
  written = []
  if diag:
    plot_update_angle(diag, os.path.join(out_dir, "angle.png"))
    written.append("angle.png")
  if diag and trains:
    norm_key = "recurrent_update_norm" if "recurrent_update_norm" in trains[0] else "update_norm"
    # Both series on the iterations of the "train" records; the radius is held between probes.
    radius, j = [], 0
    for r in trains:
      while j + 1 < len(diag) and diag[j + 1]["step"] <= r["step"]:
        j += 1
      radius.append(diag[j].get("spectral_radius"))
    plot_radius_and_update_norm([r["step"] for r in trains], radius,
                                [r[norm_key] for r in trains], os.path.join(out_dir, "radius.png"))
    written.append("radius.png")
  if trains and "f_loss/001" in trains[0]:
    n = len([k for k in trains[0] if k.startswith("f_loss/")])
    plot_local_losses(
        [r["step"] for r in trains],
        [[r[f"f_loss/{t:03d}"] for t in range(1, n + 1)] for r in trains],
        [[r[f"g_loss/{t:03d}"] for t in range(1, n + 1)] for r in trains],
        [r["loss"] for r in trains], os.path.join(out_dir, "local_losses.png"),
        every=max(1, n // 10))
    written.append("local_losses.png")
  return written


def sab_attention_map(model, params, inputs):
  """Attention of a SAB / attention core over its memories, from a forward pass.

  Args:
    model: a `Model` whose core has `attention_map` (`sab_lstm`, `attn_lstm`).
    params: its params.
    inputs: `[T, batch, in]`.

  Returns:
    `[T, M]` numpy array: the (sparsified) attention weight of step t on memory slot i, averaged
    over the batch; slot i holds the state after step `(i + 1) * k_att` (1-based).
  """
  weights = model.core.attention_map(params["core"], inputs)  # [T, B, M]
  return np.asarray(weights.mean(axis=1))


def plot_attention_maps(records, path: str, title: str = ""):
  """One panel per record (Table 4, right, of the SAB paper): steps down, memories across.

  Args:
    records: dicts with "step" (training step) and "map" (`[T, M]` nested lists or an array).
    path: the PNG file to write.
  """
  n = len(records)
  fig = new_figure(figsize=(3.2 * n, 3.6))
  axes = fig.subplots(1, n, squeeze=False)
  for ax, rec in zip(axes[0], records):
    ax.imshow(np.asarray(rec["map"]), aspect="auto", cmap="Greys", vmin=0.0, vmax=1.0,
              interpolation="nearest")
    ax.set_title(f"step {rec['step']}", fontsize="small")
    ax.set_xlabel("memory slot")
  axes[0][0].set_ylabel("time step t")
  if title:
    fig.suptitle(title, fontsize="small")
  fig.tight_layout()
  paths.savefig(fig, path, dpi=100)


def record_attention_map(model, task, params, key, step: int, workdir: str,
                         batch_size: int = 16, panels: int = 4):
  """Trainer hook: appends the attention map at `step` and redraws `attention_map.png`.

  Does nothing for cores without an attention map or tasks that stream data from the host. Maps are kept in
  `workdir/attention_maps.json`; the figure shows up to `panels` of them, spread over training.
  """
  if not model.core.has_attention_map or task.host_data:
    return
  batch = task.sample(key, batch_size)
  path = paths.join(workdir, "attention_maps.json")
  records = []
  if paths.exists(path):
    records = [r for r in json.loads(paths.read_text(path)) if r["step"] < step]
  records.append({"step": int(step),
                  "map": np.round(sab_attention_map(model, params, batch.inputs), 4).tolist()})
  paths.write_text_atomic(path, json.dumps(records))
  shown = records
  if len(records) > panels:
    idx = np.unique(np.linspace(0, len(records) - 1, panels).round().astype(int))
    shown = [records[i] for i in idx]
  plot_attention_maps(shown, paths.join(workdir, "attention_map.png"),
                      f"attention over memories, {task.name} T={task.length}")


def _panel_grid(n: int, width: float = 4.0, height: float = 3.4):
  """A figure with `n` side-by-side panels (at most 4 a row) and the list of their axes."""
  cols = min(n, 4)
  rows = -(-n // cols)
  fig = new_figure(figsize=(width * cols, height * rows + 0.6))
  axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
  for ax in axes[n:]:
    ax.set_visible(False)
  return fig, axes[:n]


def _log_panel(ax, column: str, xlabel: str, ylabel: str):
  ax.set_yscale("log")
  ax.set_xlabel(xlabel)
  ax.set_ylabel(ylabel)
  ax.set_title(column, fontsize="small")


def _save_panels(fig, axes, title: str, path: str):
  """The legend on the first panel (one line per method), the title, and the PNG."""
  if len(axes):
    axes[0].legend(fontsize="x-small")
  fig.suptitle(title)
  fig.tight_layout()
  paths.savefig(fig, path, dpi=100)


def plot_iterations_per_length(panels, path: str, budget=None, title: str = ""):
  """A protocol curriculum (TPTT Table 1): the iterations each T took, per method and seed.

  One panel per column (task); per row (method) one colour, each seed a line over the lengths it
  ran. A solved T is a dot at its iterations; a T not solved is a cross at the iterations it ran
  (the budget, or fewer when the run aborted): the curve ends there, which is the seed's t_max.

  Args:
    panels: `{column: {row: [seed's runs, ...]}}`, a seed's runs a list of
      `(T, iterations, solved)` in curriculum order.
    path: the PNG to write.
    budget: the iterations allowed per T (a dashed line), or None.
    title: the figure's title.
  """
  fig, axes = _panel_grid(len(panels))
  colours = _cmap("tab10")
  for ax, (column, rows) in zip(axes, panels.items()):
    for i, (row, seeds) in enumerate(rows.items()):
      for j, runs in enumerate(seeds):
        if not runs:
          continue
        t, iters, solved = (np.asarray(v) for v in zip(*runs))
        ax.plot(t, iters, color=colours(i % 10), lw=1, alpha=0.8,
                label=row if j == 0 else None)
        ax.scatter(t[solved], iters[solved], color=colours(i % 10), s=12)
        ax.scatter(t[~solved], iters[~solved], color=colours(i % 10), marker="x", s=40)
    if budget:
      ax.axhline(budget, color="grey", ls="--", lw=0.8)
    _log_panel(ax, column, "sequence length T", "iterations (x: not solved)")
  _save_panels(fig, axes, title, path)


def plot_validation_curves(panels, path: str, title: str = "",
                           ylabel: str = "validation error rate"):
  """Protocol runs (TPTT Tables 2-4): the validation error against the iteration, per method
  and seed, one panel per column (task or T).

  Args:
    panels: `{column: {row: [(iterations [n], values [n]) per seed]}}`.
    path: the PNG to write.
    title: the figure's title.
    ylabel: what the values are.
  """
  fig, axes = _panel_grid(len(panels))
  colours = _cmap("tab10")
  for ax, (column, rows) in zip(axes, panels.items()):
    for i, (row, seeds) in enumerate(rows.items()):
      for j, (x, y) in enumerate(seeds):
        if len(x):
          # A solved run's last validation is 0: clip so the log scale shows where it ended.
          ax.plot(x, np.maximum(np.asarray(y, float), 1e-5), color=colours(i % 10), lw=1,
                  alpha=0.8, label=row if j == 0 else None)
    _log_panel(ax, column, "iteration", ylabel)
  _save_panels(fig, axes, title, path)
