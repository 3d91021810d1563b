"""The credit-assignment matrix: every learner x every synthetic task at one budget.

    rows = run_matrix(PRESETS["local"], out_dir="results/matrix")

trains each learner of `LEARNERS` on each task of `TASKS` with the same hidden size, sequence
length, batch size, number of parameter updates and Adam learning rate (per learner where a rule
needs a smaller step), `preset.seeds` seeds in one vmapped run (`config.num_seeds`), the gradient
diagnostics every `preset.diag_every` steps, and returns one row per (learner, task):

    {"learner", "task", "status", "accuracy", "accuracy_std", "accuracy_seeds", "grad_cosine"}

`accuracy` is the task's headline test metric (the mean over seeds), `grad_cosine` the mean over
the run's diagnostics records of the cosine between the learner's update (accumulated over one
sequence at fixed parameters) and the exact BPTT gradient of that batch (`tca_jax.diagnostics`;
the diagnostics follow seed 0). `write_outputs` renders the rows as `matrix.md` (a markdown
table, learners x tasks, "accuracy (cosine)"), `matrix.csv`, and two heatmaps,
`matrix_accuracy.png` and `matrix_grad_cosine.png`.

Equal size: every learner runs on the cell it is defined for, at `preset.hidden_size` units: the
SRN for the general rules, the leaky SRN (alpha = 0.5) for RFLO, `sab_lstm` for SAB and `lru`
for `online_diag`; parameter counts therefore differ between cells (an LSTM unit has 4x an SRN
unit's weights). Every learner makes one update per sequence (`train.update_every = 0`, so the
diagnostics compare like with like); the forward-mode and trace rules still run forward in time
with memory independent of T. A combination a learner cannot run is a row with
`status = "n/a: <reason>"`; a failed run `status = "error: ..."`. A finished run (its
`metrics.jsonl` has a test record) is read back instead of trained again, so an interrupted
matrix continues where it stopped.
"""

from __future__ import annotations

import csv
import dataclasses
import math
import os
from typing import Callable, Optional

from absl import logging
import numpy as np

from tca_jax import config as config_lib
from tca_jax import metrics_io, train
from tca_jax import workdir as workdir_lib
from tca_jax.registry import ConfigError

TASKS = ("copy", "adding", "temporal_order", "temporal_order_3bit", "permutation")


@dataclasses.dataclass(frozen=True)
class Preset:
  """One budget for every cell of the matrix.

  Attributes:
    length: `task.length` of every task (copy adds its 20 recall steps).
    hidden_size: units of every cell.
    steps: parameter updates (one per sequence).
    batch_size: sequences per update.
    seeds: independent runs per cell (>= 3 for the published matrix).
    learning_rate: Adam's step for every learner not in `LEARNING_RATES`.
    diag_every: steps between gradient diagnostics (the first step always has one).
    test_batches: batches of `train.eval_batch_size` for the test metrics.
  """

  length: int
  hidden_size: int
  steps: int
  batch_size: int
  seeds: int = 3
  learning_rate: float = 3e-3
  diag_every: int = 50
  test_batches: int = 4


PRESETS = {
    # Seconds to a minute per cell on a 2-core CPU (RTRL is O(H^4) per step: at 32 units its
    # copy cell alone took 10 minutes on the shared machine, hence 16).
    "local": Preset(length=10, hidden_size=16, steps=300, batch_size=32, seeds=3, diag_every=100),
    # An accelerator's budget: long enough sequences that truncation and bias matter.
    "full": Preset(length=50, hidden_size=64, steps=3000, batch_size=64, seeds=5, diag_every=250,
                   test_batches=8),
    # For the test: seconds per cell.
    "tiny": Preset(length=10, hidden_size=4, steps=2, batch_size=4, seeds=3, diag_every=1,
                   test_batches=1),
}

# Learners whose estimates are noisy need smaller Adam steps (as experiments/configs/online.py).
LEARNING_RATES = {"uoro": 1e-3}


@dataclasses.dataclass(frozen=True)
class Entry:
  """A row of the matrix: a learner on the cell it is defined for.

  Attributes:
    label: the row's name in the table.
    learner: `learner.name`.
    apply: sets the cell and learner options on a config whose task and sizes are set.
  """

  label: str
  learner: str
  apply: Callable


def _steps_per_sequence(c) -> int:
  return c.task.length + 20 if c.task.name == "copy" else c.task.length


def _plain(cell: str, learner: str, **options):
  def apply(c):
    c.model.cell, c.learner.name = cell, learner
    for k, v in options.items():
      c.learner[k] = v
  return apply


def _tbptt(c):
  _plain("srn", "tbptt")(c)
  c.learner.truncation = max(1, _steps_per_sequence(c) // 5)  # a fifth of the sequence


def _sab(c):
  k = max(1, _steps_per_sequence(c) // 5)
  c.model.cell, c.learner.name = "sab_lstm", "sab"
  c.model.k_top, c.model.k_att, c.learner.k_trunc = 5, k, k
  c.model.max_memories = math.ceil(_steps_per_sequence(c) / k)


def _rflo(c):
  _plain("leaky_srn", "rflo")(c)
  c.model.alpha = 0.5


LEARNERS = (
    Entry("bptt", "bptt", _plain("srn", "bptt")),
    Entry("tbptt (T/5)", "tbptt", _tbptt),
    Entry("rtrl", "rtrl", _plain("srn", "rtrl")),
    Entry("uoro", "uoro", _plain("srn", "uoro")),
    Entry("kf_rtrl", "kf_rtrl", _plain("srn", "kf_rtrl")),
    Entry("snap1", "snap1", _plain("srn", "snap1")),
    Entry("eprop", "eprop", _plain("srn", "eprop")),
    Entry("rflo (leaky)", "rflo", _rflo),
    Entry("replay (sigma=0.1)", "replay", _plain("srn", "replay", sigma=0.1)),
    Entry("online_diag (lru)", "online_diag", _plain("lru", "online_diag")),
    Entry("sab (sab_lstm)", "sab", _sab),
    Entry("tptt", "tptt", _plain("srn", "tptt")),
)


def make_config(entry: Entry, task: str, preset: Preset):
  """The config of one cell of the matrix (all seeds)."""
  c = config_lib.default_config()
  c.task.name, c.task.length = task, preset.length
  c.model.hidden_size = preset.hidden_size
  entry.apply(c)
  t = c.train
  t.steps, t.batch_size = preset.steps, preset.batch_size
  t.learning_rate = LEARNING_RATES.get(entry.learner, preset.learning_rate)
  t.update_every = 0
  t.diag_every = preset.diag_every
  t.eval_every = 0
  t.log_every = max(1, preset.steps // 4)
  t.test_batches = preset.test_batches
  t.checkpoint_every = 0
  c.num_seeds = preset.seeds
  return c


def _test_record(workdir: str) -> Optional[dict]:
  if not os.path.exists(os.path.join(workdir, "metrics.jsonl")):
    return None
  tests = [r for r in metrics_io.read_metrics(workdir) if r.get("split") == "test"]
  return tests[-1] if tests else None


def _mean_cosine(workdir: str) -> float:
  values = [r["grad_cosine"] for r in metrics_io.read_metrics(workdir)
            if r.get("split") == "diag" and r.get("grad_cosine") is not None]
  return float(np.mean(values)) if values else math.nan


def run_cell(entry: Entry, task: str, preset: Preset, workdir: str) -> dict:
  """Trains (or reads back) one cell; never raises for a cell that cannot run."""
  row = {"learner": entry.label, "task": task, "status": "ok", "accuracy": math.nan,
         "accuracy_std": math.nan, "accuracy_seeds": [], "grad_cosine": math.nan}
  try:
    config = make_config(entry, task, preset)
    config_lib.build(config)  # a ConfigError before anything is written
    result = _test_record(workdir)
    if result is None:
      logging.info("matrix: train %s on %s", entry.label, task)
      result = train.train_and_evaluate(config, workdir)
  except ConfigError as e:
    row["status"] = f"n/a: {e}"
    return row
  except Exception as e:  # pylint: disable=broad-except
    # A non-finite stop or an out-of-memory cell: the matrix is still written, with the reason.
    logging.warning("matrix: %s on %s failed: %s", entry.label, task, e)
    row["status"] = "error: " + (str(e).splitlines()[0][:200] if str(e) else type(e).__name__)
    return row
  row["accuracy"] = float(result.get("accuracy", math.nan))
  row["accuracy_std"] = float(result.get("accuracy_std", 0.0))
  row["accuracy_seeds"] = list(result.get("accuracy_seeds", [row["accuracy"]]))
  row["grad_cosine"] = _mean_cosine(workdir)
  return row


def run_matrix(preset: Preset, out_dir: str, entries=LEARNERS, tasks=TASKS) -> list:
  """Every (entry, task) cell, run under `out_dir/<learner>/<task>`; writes the outputs.

  The process holds `out_dir`'s lock throughout (`workdir.owned`): a second matrix on the same
  folder stops at once with a one-line `WorkdirBusy` instead of interleaving its partial tables
  with this one's (each writes matrix.md/.csv after every cell)."""
  rows = []
  with workdir_lib.owned(out_dir, "matrix"):
    for entry in entries:
      for task in tasks:
        workdir = os.path.join(out_dir, _slug(entry.label), task)
        rows.append(run_cell(entry, task, preset, workdir))
        # After every cell: an interrupted matrix shows its progress.
        write_outputs(rows, preset, out_dir)
  return rows


def _slug(text: str) -> str:
  return "".join(ch if ch.isalnum() else "_" for ch in text).strip("_").lower()


def _grid(rows, key):
  learners = list(dict.fromkeys(r["learner"] for r in rows))
  tasks = list(dict.fromkeys(r["task"] for r in rows))
  grid = np.full((len(learners), len(tasks)), np.nan)
  for r in rows:
    grid[learners.index(r["learner"]), tasks.index(r["task"])] = r[key]
  return learners, tasks, grid


def markdown(rows, preset: Preset) -> str:
  """Learners x tasks: "accuracy +- std (cosine)", or the reason a cell did not run."""
  learners, tasks, _ = _grid(rows, "accuracy")
  by = {(r["learner"], r["task"]): r for r in rows}
  lines = [f"Test accuracy (mean +- std over {preset.seeds} seeds) and, in brackets, the mean "
           f"`grad_cosine` against BPTT; T={preset.length}, {preset.hidden_size} units, "
           f"{preset.steps} updates of batch {preset.batch_size}.", "",
           "| learner | " + " | ".join(tasks) + " |",
           "| --- |" + " --- |" * len(tasks)]
  for name in learners:
    cells = []
    for task in tasks:
      r = by.get((name, task))
      if r is None:
        cells.append("")
      elif r["status"] != "ok":
        cells.append(r["status"].split(":")[0])
      else:
        cells.append(f"{r['accuracy']:.2f} +- {r['accuracy_std']:.2f} ({r['grad_cosine']:.2f})")
    lines.append(f"| {name} | " + " | ".join(cells) + " |")
  notes = [f"- {r['learner']} / {r['task']}: {r['status']}" for r in rows if r["status"] != "ok"]
  return "\n".join(lines + ([""] + notes if notes else [])) + "\n"


def heatmap(rows, key: str, title: str, path: str):
  """One PNG: learners (rows) x tasks (columns), the value printed in each cell."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  learners, tasks, grid = _grid(rows, key)
  fig, ax = plt.subplots(figsize=(1.6 * len(tasks) + 2.5, 0.45 * len(learners) + 1.5))
  lo = -1.0 if key == "grad_cosine" else 0.0
  image = ax.imshow(np.ma.masked_invalid(grid), vmin=lo, vmax=1.0, cmap="viridis", aspect="auto")
  ax.set_xticks(range(len(tasks)), tasks, rotation=30, ha="right")
  ax.set_yticks(range(len(learners)), learners)
  for i in range(len(learners)):
    for j in range(len(tasks)):
      text = "n/a" if np.isnan(grid[i, j]) else f"{grid[i, j]:.2f}"
      ax.text(j, i, text, ha="center", va="center", color="w", fontsize=8)
  fig.colorbar(image, ax=ax)
  ax.set_title(title)
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)


def write_outputs(rows, preset: Preset, out_dir: str):
  """`matrix.md`, `matrix.csv`, `matrix_accuracy.png`, `matrix_grad_cosine.png` in `out_dir`."""
  os.makedirs(out_dir, exist_ok=True)
  with open(os.path.join(out_dir, "matrix.md"), "w") as f:
    f.write(markdown(rows, preset))
  with open(os.path.join(out_dir, "matrix.csv"), "w", newline="") as f:
    writer = csv.DictWriter(f, ["learner", "task", "status", "accuracy", "accuracy_std",
                                "grad_cosine"], extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
  heatmap(rows, "accuracy", "test accuracy", os.path.join(out_dir, "matrix_accuracy.png"))
  heatmap(rows, "grad_cosine", "mean grad_cosine vs BPTT",
          os.path.join(out_dir, "matrix_grad_cosine.png"))
