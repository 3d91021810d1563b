"""PNG figures written next to a run's metrics (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top,wrong-import-position


def plot_gradient_flow(records, path: str, title: str = ""):
  """One curve of `||dE/dh||` against the distance `T - t` per probe (log scale).

  Args:
    records: dicts with "step", "distance" (list) and "norm" (list).
    path: the PNG file to write.
  """
  fig, ax = plt.subplots(figsize=(6, 4))
  cmap = plt.get_cmap("viridis")
  for i, rec in enumerate(records):
    ax.semilogy(rec["distance"], rec["norm"], color=cmap(i / max(1, len(records) - 1)),
                label=f"step {rec['step']}")
  ax.set_xlabel("distance from the loss, T - t")
  ax.set_ylabel("||dE/dh_t||")
  ax.set_title(title or "gradient flow (loss at the last step)")
  if len(records) <= 8:
    ax.legend(fontsize="small")
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)


def plot_curves(xs, series: dict, path: str, xlabel: str = "step", ylabel: str = "",
                title: str = "", logy: bool = False):
  """Several named curves over the same x values."""
  fig, ax = plt.subplots(figsize=(6, 4))
  for name, ys in series.items():
    (ax.semilogy if logy else ax.plot)(xs[:len(ys)], ys, label=name)
  ax.set_xlabel(xlabel)
  ax.set_ylabel(ylabel)
  ax.set_title(title)
  ax.legend(fontsize="small")
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)
