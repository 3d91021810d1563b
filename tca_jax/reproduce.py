"""Reproduces a paper table: its rows x columns x seeds through `train.train_and_evaluate`.

    results = run_table(TABLES["sab_copy"], preset="local", out_dir="results")

writes `results/NAME.csv` (one line per run and metric), `results/NAME.md` (our number beside the
paper's, per row and column) and `results/NAME_<column>.png` (learning curves read from every
run's `metrics.jsonl`). Runs live in `results/NAME/<row>/<column>/seed<k>`; a run whose
`metrics.jsonl` already holds its `test` record is read back instead of trained again, so an
interrupted reproduction continues where it stopped.

Presets:

* `full`: the paper's settings (its T, model size, optimizer, batch) with `seeds` seeds and as many
  steps as the paper's training budget (which is days of accelerator time for some tables);
* `local`: a reduced run that finishes on a 2-core CPU in minutes: shorter sequences (the copy
  task at T=10 where the paper has T=100, ...), smaller models, a few hundred steps and one seed.
  Its numbers show the ordering of the methods at a small scale, not the paper's values; the
  markdown and the log say so.

Rows whose learner is not registered (`tca_jax.learners.names()`) are listed as "not available
yet"; rows the paper has but tca-jax does not implement (the Transformer) as "not in tca-jax"; a
configuration that is invalid at the local scale (a truncation longer than the local sequence) as
"n/a" with the reason.

Table kinds: "final" (test metrics after training), "t_max" (TPTT Table 1: T = 10, 20, ... while
the task is solved; the largest T solved) and "iters" (TPTT Table 2: the first evaluation step at
which the task counts as solved).

The paper numbers below are copied from the text of the papers in shared/papers:
SAB = Ke et al. 2018, "Sparse Attentive Backtracking" (002_3b798f9e3d8734d4.txt);
TPTT = Manchev & Spratling 2020, "Target Propagation in Recurrent Neural Networks"
(003_6ae924555f030f5d.txt).
"""

from __future__ import annotations

import csv
import dataclasses
import math
import os
import re
import time
from typing import Callable, Optional

from absl import logging
import ml_collections
import numpy as np

from tca_jax import config as config_lib
from tca_jax import learners, metrics_io, plotting, train
from tca_jax.registry import ConfigError

PRESETS = ("local", "full")
NAN = float("nan")


@dataclasses.dataclass(frozen=True)
class Metric:
  """One number per run: `key` of the test metrics, times `scale`, printed as the paper does."""

  label: str  # the paper's column label ("acc.", "CE10", "BPC", "t_max")
  key: str  # "accuracy", "ce_last10", "ce", "loss", "bpc"; "t_max" / "iters" for those kinds
  scale: float = 1.0  # 100 for percentages
  fmt: str = ".3g"


@dataclasses.dataclass(frozen=True)
class Setting:
  """A column group of the table: the paper's setting and the config we run for it."""

  paper: str  # the paper's column group ("T=100", "PTB", "temporal order")
  label: str  # ours: the same as `paper` in the full preset, the reduced one in the local preset
  config: Callable[[], ml_collections.ConfigDict]
  metrics: tuple


@dataclasses.dataclass(frozen=True)
class Row:
  """A method: a learner and how it changes the column's config (`apply(config)` in place)."""

  label: str
  learner: Optional[str]  # None: the paper's row has no tca-jax counterpart
  apply: Optional[Callable[[ml_collections.ConfigDict], None]]
  paper: dict  # {(setting.paper, metric.label): number}; absent = no number in the paper


@dataclasses.dataclass(frozen=True)
class Table:
  name: str
  title: str
  source: str  # where the paper numbers come from
  rows: tuple
  settings: Callable[[str], list]  # preset -> [Setting]
  kind: str = "final"  # "final" | "t_max" | "iters"
  seeds: tuple = (("local", 1), ("full", 3))
  notes: tuple = ()  # (preset, text) pairs shown under the table

  def num_seeds(self, preset: str) -> int:
    return dict(self.seeds)[preset]

  def note(self, preset: str) -> str:
    return " ".join(text for p, text in self.notes if p in (preset, "all"))


# ------------------------------------------------------------------------------------------------
# Row builders (the SAB paper's models; the TPTT paper's SRN comes from experiments/configs/tptt.py)


def _steps(c) -> int:
  """Steps per sequence at the longest length the run sees (training or evaluation)."""
  length = max(c.task.length, c.task.get("eval_length") or 0)
  return length + 20 if c.task.name == "copy" else length


def lstm_bptt(c):
  c.model.cell = "lstm"
  c.learner.name = "bptt"


def attn_bptt(c):
  """LSTM + full (dense) self-attention over every past state, trained with full BPTT."""
  c.model.cell = "attn_lstm"
  c.model.max_memories = _steps(c)
  c.learner.name = "bptt"


def lstm_tbptt(k: int):
  def apply(c):
    c.model.cell = "lstm"
    c.learner.name = "tbptt"
    c.learner.truncation = k
  return apply


def sab(k_trunc: int, k_top: int, k_att: Optional[int] = None, mental_updates: bool = True):
  """SAB-augmented LSTM trained by `sab`; k_att defaults to k_trunc (the paper's Tables 3 and 5
  set them equal; Tables 2 and 4 do not give k_att). k_top=0: dense attention ("k_top = all")."""
  def apply(c):
    k = k_att or k_trunc
    c.model.cell = "sab_lstm"
    c.model.k_top = k_top
    c.model.k_att = k
    c.model.max_memories = max(1, math.ceil(_steps(c) / k))
    c.learner.name = "sab"
    c.learner.k_trunc = k_trunc
    c.learner.mental_updates = mental_updates
  return apply


def _learner_of(apply) -> str:
  c = config_lib.default_config()
  c.task.length = 100
  apply(c)
  return c.learner.name


def _row(label, apply, paper, learner=None):
  return Row(label, learner or (_learner_of(apply) if apply else None), apply, paper)


# ------------------------------------------------------------------------------------------------
# Base configs per column


def _sab_synthetic(task: str, length: int, preset: str, eval_length: Optional[int] = None):
  """The SAB paper's copy / adding setup: LSTM(128), Adam 1e-3 (Section 4), batch 32 (not given
  in the paper; sab_copy.py's choice). Local: LSTM(64), Adam 1e-2 with a cosine decay, 300 steps,
  the copy loss on the 10 recall steps only (it learns in far fewer steps than the loss on all
  T + 20 steps; the CE columns are still measured on all steps)."""
  c = config_lib.default_config()
  c.task.name = task
  c.task.length = length
  if eval_length:
    c.task.eval_length = eval_length
  c.model.cell = "lstm"
  c.model.hidden_size = 128
  c.train.optimizer = "adam"
  c.train.batch_size = 32
  c.train.learning_rate = 1e-3
  c.train.steps = 100_000
  c.train.eval_every = 1000
  c.train.log_every = 100
  if preset == "local":
    c.model.hidden_size = 64
    c.train.steps = 300
    c.train.learning_rate = 1e-2
    c.train.schedule = "cosine"
    c.train.warmup_steps = 20
    c.train.eval_every = 50
    c.train.log_every = 25
    c.train.eval_batches = 1
    c.train.eval_batch_size = 128
    c.train.test_batches = 4
    if task == "copy":
      c.task.loss_on = "last10"
  return c


def _config_file(module: str, preset: str):
  import importlib  # pylint: disable=g-import-not-at-top
  return importlib.import_module(f"experiments.configs.{module}").get_config(preset)


def _dataset(module: str, preset: str):
  """A dataset column (PTB, Text8, pMNIST, CIFAR10): the config file's default preset for the
  full run, its `quick` preset (a few hundred steps) locally. Needs the prepared dataset."""
  def make():
    return _config_file(module, "quick" if preset == "local" else "bptt")
  return make


_TPTT_TASKS = (("temporal order", "temporal_order"),
               ("3-bit temporal order", "temporal_order_3bit"),
               ("adding", "adding"), ("random permutation", "permutation"))


def _tptt_config(task: str, variant: str, preset: str, length: int,
                 eval_length: Optional[int] = None):
  """experiments/configs/tptt.py (the paper's SRN(100), SGD + Nesterov, batch 20, the learning
  rates of Tables 1, 2, A2), evaluated on 10,000 samples every 100 iterations (Section 3.1).
  Local: 300 iterations, evaluated on 512 samples every 50."""
  c = _config_file("tptt", task + variant)
  c.task.length = length
  if eval_length:
    c.task.eval_length = eval_length
  c.train.eval_every = 100
  c.train.eval_batches = 10
  c.train.eval_batch_size = 1000
  c.train.test_batches = 10
  c.train.log_every = 100
  if preset == "local":
    c.train.steps = 300
    c.train.eval_every = 50
    c.train.log_every = 25
    c.train.eval_batches = 2
    c.train.eval_batch_size = 256
    c.train.test_batches = 2
  return c


_TPTT_KEY = {"temporal_order": "temporal_order", "temporal_order_3bit": "temporal_order_3bit",
             "adding_pascanu": "adding", "permutation": "permutation"}


def tptt_variant(variant: str):
  """A TPTT-paper row: the learner section and learning rate of tptt.py's `TASK + variant` preset
  ("_bptt", "" for TPTT, "_fast" for Table 2's fastest TPTT rates, "_hx" for TPTT_hx)."""
  def apply(c):
    ref = _config_file("tptt", _TPTT_KEY[c.task.name] + variant)
    c.learner = ref.learner
    c.train.learning_rate = ref.train.learning_rate
  return apply


# ------------------------------------------------------------------------------------------------
# SAB tables

_ACC = Metric("acc.", "accuracy", 100.0, ".1f")
_CE10 = Metric("CE10", "ce_last10", 1.0, ".3g")
_CE = Metric("CE", "ce", 1.0, ".3g")
_COPY = (_ACC, _CE10, _CE)
# The adding task's loss is the MSE at the last step; the SAB paper calls its adding number "CE".
_ADD_CE = Metric("CE", "loss", 1.0, ".3g")
_BPC = Metric("BPC", "bpc", 1.0, ".3f")


def _copy_settings(preset):
  lengths = {"local": (("T=100", 10),), "full": (("T=100", 100), ("T=200", 200), ("T=300", 300))}
  return [Setting(paper, f"T={t}", lambda t=t: _sab_synthetic("copy", t, preset), _COPY)
          for paper, t in lengths[preset]]


# SAB Table 2 (copy; accuracy in % on the last 10 characters, CE10 on them, CE on all steps).
# The text extraction prints the k_trunc=150 row under the "SAB" label; its k_top is "-", so it
# is an LSTM trained with TBPTT(150), as in the paper's layout.
SAB_COPY = Table(
    name="sab_copy",
    title="SAB Table 2: copy task, test accuracy (last 10 digits, %) and cross-entropy",
    source="Ke et al. 2018 (SAB), Table 2",
    rows=(
        _row("LSTM, full BPTT", lstm_bptt, {
            ("T=100", "acc."): 99.8, ("T=100", "CE10"): 0.030, ("T=100", "CE"): 0.002,
            ("T=200", "acc."): 56.0, ("T=200", "CE10"): 1.07, ("T=200", "CE"): 0.046,
            ("T=300", "acc."): 35.9, ("T=300", "CE10"): 0.197, ("T=300", "CE"): 0.047}),
        _row("LSTM + full self-attn., BPTT", attn_bptt, {
            ("T=100", "acc."): 100.0, ("T=100", "CE10"): 0.0008, ("T=100", "CE"): 0.0000,
            ("T=200", "acc."): 100.0, ("T=200", "CE10"): 0.001, ("T=200", "CE"): 0.000,
            ("T=300", "acc."): 100.0, ("T=300", "CE10"): 0.002, ("T=300", "CE"): 7.5e-5}),
        _row("LSTM, TBPTT k_trunc=1", lstm_tbptt(1), {
            ("T=100", "acc."): 20.6, ("T=100", "CE10"): 1.984, ("T=100", "CE"): 0.165,
            ("T=300", "acc."): 14.0, ("T=300", "CE10"): 2.077, ("T=300", "CE"): 0.065}),
        _row("LSTM, TBPTT k_trunc=5", lstm_tbptt(5), {
            ("T=100", "acc."): 31.0, ("T=100", "CE10"): 1.737, ("T=100", "CE"): 0.145,
            ("T=200", "acc."): 17.1, ("T=200", "CE10"): 2.03, ("T=200", "CE"): 0.092}),
        _row("LSTM, TBPTT k_trunc=10", lstm_tbptt(10), {
            ("T=100", "acc."): 29.6, ("T=100", "CE10"): 1.772, ("T=100", "CE"): 0.148,
            ("T=200", "acc."): 20.2, ("T=200", "CE10"): 1.98, ("T=200", "CE"): 0.090}),
        _row("LSTM, TBPTT k_trunc=20", lstm_tbptt(20), {
            ("T=100", "acc."): 30.5, ("T=100", "CE10"): 1.714, ("T=100", "CE"): 0.143,
            ("T=200", "acc."): 35.8, ("T=200", "CE10"): 1.61, ("T=200", "CE"): 0.073,
            ("T=300", "acc."): 25.7, ("T=300", "CE10"): 1.848, ("T=300", "CE"): 0.197}),
        _row("LSTM, TBPTT k_trunc=150", lstm_tbptt(150), {
            ("T=200", "acc."): 35.0, ("T=200", "CE10"): 1.596, ("T=200", "CE"): 0.073,
            ("T=300", "acc."): 24.4, ("T=300", "CE10"): 1.857, ("T=300", "CE"): 0.058}),
        _row("SAB k_trunc=1, k_top=1", sab(1, 1), {
            ("T=100", "acc."): 57.9, ("T=100", "CE10"): 1.041, ("T=100", "CE"): 0.087,
            ("T=200", "acc."): 39.9, ("T=200", "CE10"): 1.516, ("T=200", "CE"): 0.069,
            ("T=300", "acc."): 43.1, ("T=300", "CE10"): 0.231, ("T=300", "CE"): 0.045}),
        _row("SAB k_trunc=1, k_top=5", sab(1, 5), {
            ("T=100", "acc."): 100.0, ("T=100", "CE10"): 0.001, ("T=100", "CE"): 0.000,
            ("T=300", "acc."): 89.1, ("T=300", "CE10"): 0.383, ("T=300", "CE"): 0.012}),
        _row("SAB k_trunc=5, k_top=5", sab(5, 5), {
            ("T=100", "acc."): 100.0, ("T=100", "CE10"): 0.000, ("T=100", "CE"): 0.000,
            ("T=200", "acc."): 100.0, ("T=200", "CE10"): 0.000, ("T=200", "CE"): 0.000,
            ("T=300", "acc."): 99.9, ("T=300", "CE10"): 0.007, ("T=300", "CE"): 0.001}),
        _row("SAB k_trunc=10, k_top=10", sab(10, 10), {
            ("T=100", "acc."): 100.0, ("T=100", "CE10"): 0.000, ("T=100", "CE"): 0.001,
            ("T=200", "acc."): 100.0, ("T=200", "CE10"): 0.000, ("T=200", "CE"): 0.000}),
    ),
    settings=_copy_settings,
    notes=(("local", "Local preset: the copy task at T=10 (30 steps per sequence) where the paper "
            "has T=100, LSTM(64) instead of LSTM(128), 300 Adam steps (lr 1e-2, cosine decay, "
            "batch 32) with the loss on the 10 recall steps, one seed, tested on 512 sequences. "
            "Truncations longer than the 30-step sequence are n/a, and so is k_top=10 (a 30-step "
            "sequence holds 3 memories at k_att=10). With the loss on the recall steps only, "
            "the outputs elsewhere are untrained: our CE over all steps is not comparable to the "
            "paper's."),
           ("full", "Full preset: T = 100, 200, 300, LSTM(128), Adam 1e-3, batch 32, 100,000 "
            "steps, 3 seeds (mean ± std)."),),
)


def _adding_settings(preset):
  lengths = {"local": (("T=200", 20),), "full": (("T=200", 200), ("T=400", 400))}
  return [Setting(paper, f"T={t}", lambda t=t: _sab_synthetic("adding", t, preset), (_ADD_CE,))
          for paper, t in lengths[preset]]


# SAB Table 3, left (adding; the k_trunc=100 row is printed under "SAB" but has k_top "-").
SAB_ADDING = Table(
    name="sab_adding",
    title="SAB Table 3 (left): adding task, test loss (MSE at the last step; the paper's \"CE\")",
    source="Ke et al. 2018 (SAB), Table 3 (left)",
    rows=(
        _row("LSTM, full BPTT", lstm_bptt, {("T=200", "CE"): 4.59e-6, ("T=400", "CE"): 1.554e-7}),
        _row("LSTM + full self-attn., BPTT", attn_bptt,
             {("T=200", "CE"): 5.541e-8, ("T=400", "CE"): 4.972e-7}),
        _row("LSTM, TBPTT k_trunc=20", lstm_tbptt(20), {("T=200", "CE"): 1.1e-3}),
        _row("LSTM, TBPTT k_trunc=50", lstm_tbptt(50), {("T=200", "CE"): 3.0e-4}),
        _row("LSTM, TBPTT k_trunc=100", lstm_tbptt(100), {("T=400", "CE"): 6.8e-4}),
        _row("SAB k_trunc=5, k_top=5", sab(5, 5), {("T=200", "CE"): 4.26e-5}),
        _row("SAB k_trunc=5, k_top=10", sab(5, 10), {("T=400", "CE"): 2.30e-4}),
        _row("SAB k_trunc=10, k_top=10", sab(10, 10),
             {("T=200", "CE"): 2.0e-6, ("T=400", "CE"): 1.001e-5}),
    ),
    settings=_adding_settings,
    notes=(("local", "Local preset: T=20 where the paper has T=200, LSTM(64), 300 Adam steps, one "
            "seed. Truncations longer than 20 are n/a."),),
)


def _lm_settings(preset):
  return [Setting("PTB", "PTB", _dataset("ptb_char", preset), (_BPC,)),
          Setting("Text8", "Text8", _dataset("text8", preset), (_BPC,))]


SAB_LM = Table(
    name="sab_lm",
    title="SAB Table 3 (right): character-level language modelling, test BPC",
    source="Ke et al. 2018 (SAB), Table 3 (right)",
    rows=(
        _row("LSTM, full BPTT", lstm_bptt, {("PTB", "BPC"): 1.36, ("Text8", "BPC"): 1.42}),
        _row("LSTM, TBPTT k_trunc=1", lstm_tbptt(1), {("PTB", "BPC"): 1.47}),
        _row("LSTM, TBPTT k_trunc=5", lstm_tbptt(5),
             {("PTB", "BPC"): 1.44, ("Text8", "BPC"): 1.56}),
        _row("LSTM, TBPTT k_trunc=20", lstm_tbptt(20), {("PTB", "BPC"): 1.40}),
        _row("SAB k_trunc=10, k_top=5, k_att=10", sab(10, 5, 10),
             {("PTB", "BPC"): 1.42, ("Text8", "BPC"): 1.47}),
        _row("SAB k_trunc=10, k_top=10, k_att=10", sab(10, 10, 10),
             {("PTB", "BPC"): 1.40, ("Text8", "BPC"): 1.45}),
        _row("SAB k_trunc=20, k_top=5, k_att=20", sab(20, 5, 20),
             {("PTB", "BPC"): 1.39, ("Text8", "BPC"): 1.45}),
        _row("SAB k_trunc=20, k_top=10, k_att=20", sab(20, 10, 20),
             {("PTB", "BPC"): 1.37, ("Text8", "BPC"): 1.44}),
    ),
    settings=_lm_settings,
    notes=(("all", "Needs the prepared datasets (docs/DATASETS.md); without them the runs are "
            "listed with the loading error."),
           ("local", "Local preset: the config files' `quick` presets (a few hundred steps)."),),
)


def _ablation_settings(preset):
  copy_t, add_t = (10, 20) if preset == "local" else (100, 200)
  return [Setting("copy T=100", f"copy T={copy_t}",
                  lambda: _sab_synthetic("copy", copy_t, preset), _COPY),
          Setting("adding T=200", f"adding T={add_t}",
                  lambda: _sab_synthetic("adding", add_t, preset), (_ADD_CE,))]


SAB_ABLATION = Table(
    name="sab_ablation",
    title="SAB Table 4 (left): ablations, no mental updates (MU) and dense attention",
    source="Ke et al. 2018 (SAB), Table 4 (left)",
    rows=(
        _row("SAB no MU, k_trunc=1, k_top=1", sab(1, 1, mental_updates=False), {
            ("copy T=100", "acc."): 49.0, ("copy T=100", "CE10"): 1.252,
            ("copy T=100", "CE"): 0.104, ("adding T=200", "CE"): 2.171e-6}),
        _row("SAB no MU, k_trunc=5, k_top=5", sab(5, 5, mental_updates=False), {
            ("copy T=100", "acc."): 98.3, ("copy T=100", "CE10"): 0.042,
            ("copy T=100", "CE"): 0.0036}),
        _row("SAB no MU, k_trunc=10, k_top=10", sab(10, 10, mental_updates=False), {
            ("copy T=100", "acc."): 99.6, ("copy T=100", "CE10"): 0.022,
            ("copy T=100", "CE"): 0.0018}),
        _row("SAB k_trunc=5, k_top=all (dense)", sab(5, 0), {
            ("copy T=100", "acc."): 40.5, ("copy T=100", "CE10"): 1.529,
            ("copy T=100", "CE"): 0.127}),
    ),
    settings=_ablation_settings,
    notes=(("local", "Local preset: copy T=10 and adding T=20, LSTM(64), 300 Adam steps, one "
            "seed."),),
)


def _image_settings(preset):
  return [Setting("pMNIST", "pMNIST", _dataset("pmnist", preset), (_ACC,)),
          Setting("CIFAR10", "CIFAR10", _dataset("cifar10", preset), (_ACC,))]


SAB_IMAGE = Table(
    name="sab_image",
    title="SAB Table 5: permuted MNIST and pixel CIFAR10, test accuracy (%)",
    source="Ke et al. 2018 (SAB), Table 5",
    rows=(
        _row("LSTM, full BPTT", lstm_bptt, {("pMNIST", "acc."): 90.3, ("CIFAR10", "acc."): 58.3}),
        _row("LSTM, TBPTT k_trunc=300", lstm_tbptt(300), {("CIFAR10", "acc."): 51.3}),
        _row("SAB k_trunc=20, k_top=5, k_att=20", sab(20, 5, 20), {("pMNIST", "acc."): 89.8}),
        _row("SAB k_trunc=20, k_top=10, k_att=20", sab(20, 10, 20), {("pMNIST", "acc."): 90.9}),
        _row("SAB k_trunc=50, k_top=10, k_att=50", sab(50, 10, 50), {("pMNIST", "acc."): 94.2}),
        _row("SAB k_trunc=16, k_top=10, k_att=16", sab(16, 10, 16), {("CIFAR10", "acc."): 64.5}),
        Row("Transformer (Vaswani et al. 2017)", None, None,
            {("pMNIST", "acc."): 97.9, ("CIFAR10", "acc."): 62.2}),
    ),
    settings=_image_settings,
    notes=(("all", "Needs the prepared datasets (docs/DATASETS.md)."),
           ("local", "Local preset: the config files' `quick` presets."),),
)


def _transfer_settings(preset):
  pairs = {"local": ((100, 10), (200, 20), (300, 30), (400, 40)),
           "full": ((100, 100), (200, 200), (300, 300), (400, 400), (2000, 2000), (5000, 5000))}
  train_t = 10 if preset == "local" else 100
  return [Setting(f"T={p}", f"T={t}",
                  lambda t=t: _sab_synthetic("copy", train_t, preset, eval_length=t), (_ACC,))
          for p, t in pairs[preset]]


# SAB Table 6. The SAB row's k_trunc, k_top are not given for this table: (5, 5) as in sab_copy.py.
SAB_TRANSFER = Table(
    name="sab_transfer",
    title="SAB Table 6: transfer, trained on copy T=100, last-10 accuracy (%) at longer T",
    source="Ke et al. 2018 (SAB), Table 6",
    rows=(
        _row("LSTM, full BPTT", lstm_bptt, {("T=100", "acc."): 99, ("T=200", "acc."): 34,
                                            ("T=300", "acc."): 25, ("T=400", "acc."): 21,
                                            ("T=2000", "acc."): 12, ("T=5000", "acc."): 12}),
        _row("LSTM + self-attn., BPTT", attn_bptt, {
            ("T=100", "acc."): 100, ("T=200", "acc."): 52, ("T=300", "acc."): 28,
            ("T=400", "acc."): 20, ("T=2000", "acc."): 12}),  # T=5000: "OOM" in the paper
        _row("SAB k_trunc=5, k_top=5", sab(5, 5), {
            ("T=100", "acc."): 99, ("T=200", "acc."): 95, ("T=300", "acc."): 83,
            ("T=400", "acc."): 75, ("T=2000", "acc."): 47, ("T=5000", "acc."): 41}),
    ),
    settings=_transfer_settings,
    notes=(("all", "Each column trains the same model (same seed, same training stream) and "
            "tests it at that column's T (`task.eval_length`)."),
           ("local", "Local preset: trained at T=10 and tested at T = 10, 20, 30, 40 where the "
            "paper trains at 100 and tests at 100 ... 5000; LSTM(64), 300 Adam steps, one seed."),),
)


# ------------------------------------------------------------------------------------------------
# TPTT tables


def _tptt_settings(preset, length, eval_length=None):
  def make(paper, task, t, e):
    def config():
      return _tptt_config(task, "", preset, t, e)
    lengths = f"T={t}" if e is None else f"train T={t}, test T={e}"
    return Setting(paper, paper if preset == "full" else f"{paper} ({lengths})", config, ())
  out = []
  for paper, task in _TPTT_TASKS:
    t = length(task) if callable(length) else length
    out.append(make(paper, task, t, eval_length))
  return out


_T_MAX = Metric("t_max", "t_max", 1.0, ".0f")
_ITERS = Metric("iterations", "iters", 1.0, ".0f")
_ACC2 = Metric("acc.", "accuracy", 100.0, ".2f")


def _with_metrics(settings, metrics):
  return [dataclasses.replace(s, metrics=metrics) for s in settings]


TPTT_TMAX = Table(
    name="tptt_tmax",
    title="TPTT Table 1 (and Table A1): maximal sequence length solved, t_max",
    source="Manchev & Spratling 2020 (TPTT), Table 1; TPTT_hx from Table A1",
    rows=(
        _row("BPTT (SRN, orthogonal init)", tptt_variant("_bptt"), {
            ("temporal order", "t_max"): 120, ("3-bit temporal order", "t_max"): 70,
            ("adding", "t_max"): 90, ("random permutation", "t_max"): 70}, learner="bptt"),
        _row("TPTT", tptt_variant(""), {
            ("temporal order", "t_max"): 150, ("3-bit temporal order", "t_max"): 150,
            ("adding", "t_max"): 60, ("random permutation", "t_max"): 300}, learner="tptt"),
        _row("TPTT_hx", tptt_variant("_hx"), {
            ("temporal order", "t_max"): 210, ("3-bit temporal order", "t_max"): 160,
            ("adding", "t_max"): 60, ("random permutation", "t_max"): 800}, learner="tptt_hx"),
    ),
    settings=lambda preset: _with_metrics(_tptt_settings(preset, 10), (_T_MAX,)),
    kind="t_max",
    seeds=(("local", 1), ("full", 1)),
    notes=(("all", "T = 10, 20, ... until a length is not solved; solved = the validation error "
            "reaches the criterion at some evaluation. Learning rates per task from Table 1 "
            "(BPTT, TPTT) and Table A2/A3 (TPTT_hx), as in experiments/configs/tptt.py."),
           ("full", "Criterion: error < 1e-4 on 10,000 validation samples, checked every 100 "
            "iterations, at most 100,000 iterations per T."),
           ("local", "Local preset: T = 10, 20 only, 300 iterations per T, criterion accuracy >= "
            "99% on 512 samples every 50 iterations; the paper's small BPTT learning rates "
            "(1e-5) cannot solve anything in 300 iterations."),),
)

_TPTT_BPTT_TMAX = {"temporal_order": 120, "temporal_order_3bit": 70, "adding": 90,
                   "permutation": 70}

TPTT_ITERS = Table(
    name="tptt_iters",
    title="TPTT Table 2: iterations until convergence at T = t_max of BPTT",
    source="Manchev & Spratling 2020 (TPTT), Table 2",
    rows=(
        _row("BPTT best", tptt_variant("_bptt"), {
            ("temporal order", "iterations"): 46_500,
            ("3-bit temporal order", "iterations"): 56_000,
            ("adding", "iterations"): 18_000, ("random permutation", "iterations"): 12_200},
            learner="bptt"),
        _row("TPTT common model", tptt_variant(""), {
            ("temporal order", "iterations"): 1_600, ("3-bit temporal order", "iterations"): 1_300,
            ("random permutation", "iterations"): 12_700}, learner="tptt"),
        _row("TPTT best", tptt_variant("_fast"), {
            ("temporal order", "iterations"): 1_600, ("3-bit temporal order", "iterations"): 800,
            ("random permutation", "iterations"): 700}, learner="tptt"),
    ),
    settings=lambda preset: _with_metrics(_tptt_settings(
        preset, (lambda task: _TPTT_BPTT_TMAX[task]) if preset == "full" else 10), (_ITERS,)),
    kind="iters",
    seeds=(("local", 1), ("full", 1)),
    notes=(("all", "The first evaluation at which the task counts as solved (the paper checks "
            "every 100 iterations); \"not solved\" when it never does. BPTT uses the Table 1 "
            "learning rates (the paper's \"BPTT best\" rates are not given)."),
           ("local", "Local preset: T=10, 300 iterations, criterion accuracy >= 99%."),),
)

TPTT_GENERALISATION = Table(
    name="tptt_generalisation",
    title="TPTT Table 4: trained at T=100, accuracy (%) at T=200",
    source="Manchev & Spratling 2020 (TPTT), Table 4",
    rows=(
        _row("BPTT", tptt_variant("_bptt"), {
            ("temporal order", "acc."): 26.67, ("3-bit temporal order", "acc."): 13.65,
            ("adding", "acc."): 65.63, ("random permutation", "acc."): 51.52}, learner="bptt"),
        _row("TPTT (common model)", tptt_variant(""), {
            ("temporal order", "acc."): 45.76, ("3-bit temporal order", "acc."): 28.36,
            ("adding", "acc."): 66.23, ("random permutation", "acc."): 100.00}, learner="tptt"),
    ),
    settings=lambda preset: _with_metrics(
        _tptt_settings(preset, 100 if preset == "full" else 10,
                       200 if preset == "full" else 20), (_ACC2,)),
    notes=(("all", "The TPTT row uses the common model (alpha_i=0.1, alpha_f=0.01, alpha_g=0.001) "
            "for every task, as the paper's caption says; adding keeps its Table 1 rates in "
            "tptt.py."),
           ("local", "Local preset: trained at T=10 for 300 iterations, tested at T=20."),),
)

TABLES = {t.name: t for t in (SAB_COPY, SAB_ADDING, SAB_LM, SAB_ABLATION, SAB_IMAGE,
                              SAB_TRANSFER, TPTT_TMAX, TPTT_ITERS, TPTT_GENERALISATION)}
ALIASES = {"sab_table2": "sab_copy", "sab_table3": "sab_adding", "sab_table3_lm": "sab_lm",
           "sab_table4": "sab_ablation", "sab_table5": "sab_image", "sab_table6": "sab_transfer",
           "tptt_table1": "tptt_tmax", "tptt_table2": "tptt_iters",
           "tptt_table4": "tptt_generalisation"}


def get_table(name: str) -> Table:
  """The table called `name` (or an alias such as `sab_table2`); ValueError lists the names."""
  name = ALIASES.get(name, name)
  if name not in TABLES:
    raise ValueError(f"--table={name!r}; allowed: {', '.join(TABLES)} (aliases: "
                     f"{', '.join(ALIASES)})")
  return TABLES[name]


# ------------------------------------------------------------------------------------------------
# Running


@dataclasses.dataclass
class Cell:
  """What one (row, setting) produced."""

  status: str  # "ok", "not available yet", "not in tca-jax", "n/a: ...", "error: ..."
  values: dict = dataclasses.field(default_factory=dict)  # metric label -> [per seed]
  workdirs: list = dataclasses.field(default_factory=list)
  detail: str = ""  # e.g. "not solved in 300 iterations"


def slug(text: str) -> str:
  return re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_").lower()


def _test_record(workdir: str):
  path = os.path.join(workdir, "metrics.jsonl")
  if not os.path.exists(path):
    return None
  tests = [r for r in metrics_io.read_metrics(workdir) if r.get("split") == "test"]
  return tests[-1] if tests else None


def _train(config, workdir: str) -> dict:
  """Test metrics of the run in `workdir`: read back when finished, trained otherwise."""
  done = _test_record(workdir)
  if done is not None:
    logging.info("reuse %s (finished)", workdir)
    return done
  # An interrupted run resumes from its latest checkpoint (the trainer truncates its records).
  logging.info("train %s", workdir)
  return train.train_and_evaluate(config, workdir)


def _solved_at(workdir: str, key: str, threshold: float):
  for r in metrics_io.read_metrics(workdir):
    if r.get("split") in ("eval", "test") and r.get(key) is not None and r[key] >= threshold:
      return r["step"]
  return None


def _config_for(row: Row, setting: Setting, seed: int):
  c = setting.config()
  row.apply(c)
  c.seed = seed
  return c


def _criterion(preset: str) -> float:
  """Accuracy that counts as solved: the paper's error < 1e-4, or 99% in the local preset."""
  return 0.99 if preset == "local" else 1.0 - 1e-4


def run_cell(table: Table, row: Row, setting: Setting, preset: str, run_dir: str) -> Cell:
  """All seeds of one (row, setting); never raises for a row that cannot run."""
  if row.learner is None:
    return Cell("not in tca-jax")
  if row.learner not in learners.names():
    return Cell("not available yet")
  cell = Cell("ok", {m.label: [] for m in setting.metrics})
  for seed in range(table.num_seeds(preset)):
    try:
      if table.kind == "t_max":
        value, workdir, detail = _run_t_max(table, row, setting, preset, seed, run_dir)
        cell.values["t_max"].append(value)
        cell.detail = detail
        cell.workdirs.append(workdir)
        continue
      config = _config_for(row, setting, seed)
      config_lib.build(config)  # ConfigError before anything is written
      workdir = os.path.join(run_dir, f"seed{seed}")
      result = _train(config, workdir)
      cell.workdirs.append(workdir)
      if table.kind == "iters":
        step = _solved_at(workdir, "accuracy", _criterion(preset))
        cell.values["iterations"].append(NAN if step is None else float(step))
        if step is None:
          cell.detail = f"not solved in {config.train.steps} iterations"
        continue
      for m in setting.metrics:
        v = result.get(m.key)
        cell.values[m.label].append(NAN if v is None else float(v) * m.scale)
    except ConfigError as e:
      return Cell(f"n/a: {e}")
    except Exception as e:  # pylint: disable=broad-except
      # A missing dataset, a NaN stop: the table still gets written, with the reason.
      logging.warning("%s / %s failed: %s", row.label, setting.label, e)
      return Cell("error: " + str(e).splitlines()[0][:200] if str(e) else type(e).__name__)
  return cell


def _run_t_max(table, row, setting, preset, seed, run_dir):
  lengths = (range(10, 21, 10) if preset == "local" else range(10, 100_001, 10))
  best, last_dir = 0, None
  for t in lengths:
    config = _config_for(row, setting, seed)
    config.task.length = t
    if preset == "full":
      config.train.steps = 100_000
    config_lib.build(config)
    last_dir = os.path.join(run_dir, f"T{t}", f"seed{seed}")
    _train(config, last_dir)
    if _solved_at(last_dir, "accuracy", _criterion(preset)) is None:
      return float(best), last_dir, f"failed at T={t}"
    best = t
  return float(best), last_dir, f"solved up to the largest T tried ({best})"


def run_table(table: Table, preset: str, out_dir: str = "results") -> dict:
  """Runs every (row, setting), writes NAME.csv, NAME.md and NAME_<setting>.png in `out_dir`.

  Returns:
    {"cells": {(row label, setting paper label): Cell}, "csv": path, "md": path, "figures": [...],
     "seconds": float}.
  """
  if preset not in PRESETS:
    raise ValueError(f"--preset={preset!r}; allowed: {', '.join(PRESETS)}")
  if preset == "local":
    logging.info("REDUCED RUN (preset local): %s", table.note("local"))
  start = time.time()
  settings = table.settings(preset)
  cells = {}
  for row in table.rows:
    for setting in settings:
      run_dir = os.path.join(out_dir, table.name, slug(row.label), slug(setting.label))
      logging.info("%s: %s / %s", table.name, row.label, setting.label)
      cells[(row.label, setting.paper)] = run_cell(table, row, setting, preset, run_dir)
  os.makedirs(out_dir, exist_ok=True)
  csv_path = write_csv(table, preset, settings, cells, os.path.join(out_dir, f"{table.name}.csv"))
  seconds = time.time() - start
  md_path = os.path.join(out_dir, f"{table.name}.md")
  with open(md_path, "w", encoding="utf-8") as f:
    f.write(markdown(table, preset, settings, cells))
  figures = write_figures(table, settings, cells, out_dir)
  return {"cells": cells, "csv": csv_path, "md": md_path, "figures": figures, "seconds": seconds}


# ------------------------------------------------------------------------------------------------
# Output


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


def format_cell(cell: Cell, metric: Metric, paper, first: bool = True) -> str:
  """`ours (paper)`: ours is the mean over seeds, `± std` with several seeds. A cell that did
  not run gives its reason in its `first` column and only its kind ("n/a") in the others."""
  paper_s = f" ({_fmt(paper, metric.fmt)})" if paper is not None else " (–)"
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
  if preset == "local":
    lines += ["**Reduced run (`--preset=local`): not the paper's setting; compare the ordering of "
              "the rows, not the values.**", ""]
  lines += [f"Command: `python -m experiments.reproduce --table={table.name} --preset={preset}`."
            f" Each cell: ours (paper). Paper numbers: {table.source}.", ""]
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
                               first=i == 0))
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
