"""How noisy or partial replay degrades BPTT: `grad_cosine` and final accuracy against the replay
noise sigma and the replayed fraction, on the copy task (the `replay` learner).

    rows = sweep(out_dir="results/replay_sweep")   # trains one run per (sigma, fraction)
    plot(rows, "docs/replay_sweep.png")

Every run is the copy task at `length`, an LSTM of `hidden_size` units, Adam, `steps` updates of
one sequence each, `seeds` seeds (`config.num_seeds`); `grad_cosine` is the mean over the run's
diagnostics records (the replayed gradient against the exact BPTT gradient of the same batch at
the same parameters). A finished run is read back instead of trained again.
"""

from __future__ import annotations

import math
import os

import numpy as np

from tca_jax import config as config_lib
from tca_jax import metrics_io, train

SIGMAS = (0.0, 0.01, 0.03, 0.1, 0.3, 1.0)
FRACTIONS = (1.0, 0.9, 0.7, 0.5, 0.3)


def make_config(sigma: float, fraction: float, length: int, hidden_size: int, steps: int,
                seeds: int):
  c = config_lib.default_config()
  c.task.name, c.task.length, c.task.loss_on = "copy", length, "last10"
  c.model.cell, c.model.hidden_size = "lstm", hidden_size
  c.learner.name, c.learner.sigma, c.learner.fraction = "replay", sigma, fraction
  t = c.train
  t.steps, t.batch_size, t.learning_rate = steps, 32, 3e-3
  t.update_every, t.diag_every, t.eval_every = 0, max(1, steps // 5), 0
  t.log_every, t.test_batches, t.checkpoint_every = max(1, steps // 4), 4, 0
  c.num_seeds = seeds
  return c


def _run(config, workdir):
  if os.path.exists(os.path.join(workdir, "metrics.jsonl")):
    tests = [r for r in metrics_io.read_metrics(workdir) if r.get("split") == "test"]
    if tests:
      return tests[-1]
  return train.train_and_evaluate(config, workdir)


def sweep(out_dir: str, sigmas=SIGMAS, fractions=FRACTIONS, length: int = 10,
          hidden_size: int = 64, steps: int = 600, seeds: int = 3) -> list:
  """One run per sigma (fraction 1) and per fraction (sigma 0). Returns rows
  `{"sigma", "fraction", "accuracy", "accuracy_std", "grad_cosine"}`."""
  settings = [(s, 1.0) for s in sigmas] + [(0.0, f) for f in fractions if f != 1.0]
  rows = []
  for sigma, fraction in settings:
    workdir = os.path.join(out_dir, f"sigma{sigma:g}_fraction{fraction:g}")
    result = _run(make_config(sigma, fraction, length, hidden_size, steps, seeds), workdir)
    cosines = [r["grad_cosine"] for r in metrics_io.read_metrics(workdir)
               if r.get("split") == "diag"]
    rows.append({"sigma": sigma, "fraction": fraction, "accuracy": result["accuracy"],
                 "accuracy_std": result.get("accuracy_std", 0.0),
                 "grad_cosine": float(np.mean(cosines)) if cosines else math.nan})
  return rows


def plot(rows, path: str):
  """Two panels (against sigma at full replay; against the fraction at sigma 0), each with
  `grad_cosine` and final accuracy."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  fig, axes = plt.subplots(1, 2, figsize=(9, 3.5))
  noise = sorted((r for r in rows if r["fraction"] == 1.0), key=lambda r: r["sigma"])
  gaps = sorted((r for r in rows if r["sigma"] == 0.0), key=lambda r: -r["fraction"])
  for ax, part, key, label in ((axes[0], noise, "sigma", "replay noise sigma"),
                               (axes[1], gaps, "fraction", "fraction of steps replayed")):
    x = [max(r[key], 1e-3) if key == "sigma" else r[key] for r in part]
    ax.plot(x, [r["grad_cosine"] for r in part], "o-", label="grad_cosine vs BPTT")
    ax.errorbar(x, [r["accuracy"] for r in part], [r["accuracy_std"] for r in part], fmt="s--",
                label="test accuracy")
    if key == "sigma":
      ax.set_xscale("log")
    else:
      ax.invert_xaxis()
    ax.set_xlabel(label)
    ax.set_ylim(-0.05, 1.05)
    ax.grid(alpha=0.3)
  axes[0].legend(loc="lower left", fontsize=8)
  fig.suptitle("replay BPTT on copy")
  fig.tight_layout()
  os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
  fig.savefig(path, dpi=100)
  plt.close(fig)
