"""Every experiment recipe, written once; the config files and the paper tables compose them.

* Base configs (a task, a model, an optimizer): `quick_lstm` (CPU-sized LSTM + BPTT + Adam),
  `tptt_srn` (the TPTT paper's SRN and optimizer), `paper_srn` (its BPTT baseline as a training
  run), `sab_paper` (the SAB paper's LSTM(128) + Adam setup).
* Methods (functions `apply(c)` that change a config in place, the same objects the paper tables
  use as rows): `lstm_bptt`, `attn_bptt`, `lstm_tbptt(k)`, `sab(k_trunc, k_top, ...)`.
* `override(c, {"section.field": value})` and `choose(family, preset, presets)` for presets written
  as explicit dicts.

Sizes that depend on the sequence (the attention memory) are read from the built task
(`tasks.get(...).sequence_length`, e.g. T + 20 for copy), not recomputed here.
"""

import math
from typing import Callable, Optional

import ml_collections

from tca_jax import tasks
from tca_jax.config import default_config
from tca_jax.tasks import synthetic

Apply = Callable[[ml_collections.ConfigDict], None]


def override(c: ml_collections.ConfigDict, values: dict) -> ml_collections.ConfigDict:
  """Sets `c[section][field] = value` for every `"section.field": value` of `values`."""
  for field, value in values.items():
    section, key = field.split(".")
    c[section][key] = value
  return c


def choose(family: str, preset: str, presets: dict):
  """`presets[preset]()`, or a ValueError naming the allowed presets."""
  if preset not in presets:
    raise ValueError(f"{family} config preset {preset!r}; allowed: {', '.join(presets)}")
  return presets[preset]()


def sequence_steps(c: ml_collections.ConfigDict) -> int:
  """Steps per sequence at the longest length the run sees (training or evaluation), as the
  built task counts them (copy: T + 20)."""
  length = max(c.task.length, c.task.get("eval_length") or 0)
  if tasks.REGISTRY.factory(c.task.name).__module__ != synthetic.__name__:
    return length  # a dataset reader (one input per step); building it would open the data
  return tasks.get(c.task.name, length=length).sequence_length


# ------------------------------------------------------------------------------------------------
# Base configs


def quick_lstm(task: str, length: int, steps: int):
  """A CPU-sized LSTM(64) + BPTT + Adam run of `task` at T=`length`."""
  c = default_config()
  c.task.name = task
  c.task.length = length
  c.model.cell = "lstm"
  c.model.hidden_size = 64
  c.learner.name = "bptt"
  c.train.steps = steps
  c.train.batch_size = 32
  c.train.learning_rate = 3e-3
  c.train.eval_every = 250
  return c


def tptt_srn(task: str, learning_rate: float):
  """The TPTT paper's model and optimizer (sec. 3.1): SRN(100) tanh with orthogonal `W_hh`, BPTT,
  batch 20, SGD with Nesterov momentum 0.9 and no clipping, up to 100,000 iterations from T=10."""
  c = default_config()
  c.task.name = task
  c.task.length = 10
  c.model.cell = "srn"
  c.model.hidden_size = 100
  c.model.activation = "tanh"
  c.model.recurrent_init = "orthogonal"
  c.learner.name = "bptt"
  c.train.optimizer = "sgd"
  c.train.momentum = 0.9
  c.train.nesterov = True
  c.train.clip_norm = 0.0
  c.train.batch_size = 20
  c.train.learning_rate = learning_rate
  c.train.steps = 100_000
  return c


def paper_srn(task: str, learning_rate: float):
  """The TPTT paper's BPTT baseline as a training run, validated every 100 iterations."""
  c = tptt_srn(task, learning_rate)
  c.train.eval_every = 100
  return c


def sab_paper(task: str, length: int, eval_length: Optional[int] = None):
  """The SAB paper's copy / adding setup (Section 4): LSTM(128), Adam 1e-3; batch 32 (the paper
  gives none), 100,000 steps, evaluated every 1000."""
  c = default_config()
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
  return c


# ------------------------------------------------------------------------------------------------
# Methods: apply(c) in place


def lstm_bptt(c):
  """LSTM trained with full BPTT."""
  c.model.cell = "lstm"
  c.learner.name = "bptt"


def attn_bptt(c):
  """LSTM + full (dense) self-attention over every past state, trained with full BPTT."""
  c.model.cell = "attn_lstm"
  c.model.max_memories = sequence_steps(c)
  c.learner.name = "bptt"


def lstm_tbptt(k: int) -> Apply:
  """LSTM trained with TBPTT(k)."""
  def apply(c):
    c.model.cell = "lstm"
    c.learner.name = "tbptt"
    c.learner.truncation = k
  return apply


def sab(k_trunc: int, k_top: int, k_att: Optional[int] = None,
        mental_updates: bool = True, credit: str = "exact") -> Apply:
  """SAB-augmented LSTM trained by `sab`. k_att defaults to k_trunc (the paper's Tables 3 and 5
  set them equal; Tables 2 and 4 do not give k_att); k_top=0 is dense attention ("k_top = all").
  The memory holds one slot per k_att steps of the longest sequence the run sees.

  `credit` (`model.sab_credit`): the recipes reproduce the paper's numbers, so they use what
  produced them: the exact derivative of Algorithm 1, as the authors' release computes it. Sec.
  3.2's text (`"paper"`, the config's default) holds the threshold constant, and at T=100 that
  drives the gradient to overflow when the selected memories nearly tie with the threshold
  (docs/RESULTS.md, "Why sab_t100_s3 hit a NaN")."""
  def apply(c):
    k = k_att or k_trunc
    c.model.sab_credit = credit
    c.model.cell = "sab_lstm"
    c.model.k_top = k_top
    c.model.k_att = k
    c.model.max_memories = max(1, math.ceil(sequence_steps(c) / k))
    c.learner.name = "sab"
    c.learner.k_trunc = k_trunc
    c.learner.mental_updates = mental_updates
  return apply
