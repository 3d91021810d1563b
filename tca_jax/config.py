"""The default experiment config and the builder that turns a config into objects.

Every config file in `experiments/configs/` starts from `default_config()` and changes fields.
Options that belong to one task, cell or learner are typed placeholders (None = that object's own
default), so `--config.learner.truncation=5` works on the command line for every config. Only
options that are set are passed on, and an option the chosen object does not take is an error.

`build(config)` validates everything and raises `ConfigError` (one line naming the field and the
allowed values) before anything is compiled or written.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import ml_collections
from ml_collections.config_dict import placeholder

from tca_jax import cells, learners, tasks
from tca_jax.model import Model
from tca_jax.registry import ConfigError, check_choice, check_positive

OPTIMIZERS = ("adam", "sgd", "rmsprop")
SCHEDULES = ("constant", "cosine")


def default_config() -> ml_collections.ConfigDict:
  """Copy task, T=10, LSTM(128) trained with BPTT and Adam."""
  c = ml_collections.ConfigDict()
  c.seed = 0

  c.task = ml_collections.ConfigDict()
  c.task.name = "copy"
  c.task.length = 10
  c.task.eval_length = placeholder(int)  # evaluate/test at another T (transfer); None = length
  c.task.loss_on = placeholder(str)  # copy: "all" | "last10"
  c.task.jitter = placeholder(bool)  # adding_pascanu
  # Real datasets (docs/DATASETS.md): seq_mnist, pmnist, cifar10, ptb_char, text8, tiny_shakespeare.
  c.task.data_dir = placeholder(str)  # TFDS data dir; None = $TFDS_DATA_DIR, ~/tensorflow_datasets
  # ptb_char, text8: build offline from the files here; seq_mnist, pmnist, cifar10: read the
  # standard files here with numpy (no TFDS, no TensorFlow). docs/DATASETS.md lists them.
  c.task.manual_dir = placeholder(str)
  c.task.download = placeholder(bool)  # build a missing dataset by downloading it
  c.task.permutation_seed = placeholder(int)  # pmnist
  c.task.validation_size = placeholder(int)  # image tasks: train images held out (default 5000)
  c.task.reset = placeholder(str)  # char LMs: carried state reset at "epoch" | "never" | "batch"

  c.model = ml_collections.ConfigDict()
  c.model.cell = "lstm"
  c.model.hidden_size = 128
  c.model.activation = placeholder(str)  # srn: "tanh" | "relu"
  c.model.recurrent_init = placeholder(str)  # "orthogonal" | "normal" | "identity"
  c.model.init_scale = placeholder(float)
  c.model.forget_bias = placeholder(float)  # lstm
  c.model.flax_cell = placeholder(str)  # flax: e.g. "flax.linen.OptimizedLSTMCell"
  # sab_lstm, attn_lstm (the SAB paper's k_top and k_att live on the core: they shape the forward
  # pass that evaluation also runs). k_top=0: dense softmax attention (Table 4's "k_top = all").
  c.model.k_top = placeholder(int)
  c.model.k_att = placeholder(int)
  c.model.max_memories = placeholder(int)  # memory slots; size as ceil(T_seq / k_att)
  c.model.attention_size = placeholder(int)
  c.model.sparsify = placeholder(str)  # "paper" | "release"

  c.learner = ml_collections.ConfigDict()
  c.learner.name = "bptt"
  c.learner.remat = placeholder(bool)  # bptt, tbptt
  c.learner.unroll = placeholder(int)  # bptt, tbptt, sab: lax.scan unroll
  c.learner.truncation = placeholder(int)  # tbptt
  c.learner.k_trunc = placeholder(int)  # sab: sequential truncation (and mental-update reach)
  c.learner.mental_updates = placeholder(bool)  # sab: False = memories are leaves (Table 4)
  c.learner.backward = placeholder(str)  # sab: "replay" (default, online-capable) | "autodiff"
  c.learner.immediate = placeholder(str)  # rtrl: "reverse" | "forward" (d s_t/d theta)
  c.learner.eps = placeholder(float)  # uoro, kf_rtrl: stabiliser of the scalings
  c.learner.structured = placeholder(bool)  # snap1: closed-form O(P) step for the srn
  c.learner.alpha_i = placeholder(float)  # tptt, tptt_hx: first-target step (eq. 3)
  c.learner.alpha_f = placeholder(float)  # tptt, tptt_hx: model lr; None = train.learning_rate
  c.learner.alpha_g = placeholder(float)  # tptt, tptt_hx: lr of the inverse G (eq. 9)
  c.learner.sigma = placeholder(float)  # tptt, tptt_hx: G-phase noise std (sec. 3.1.2)
  c.learner.p_g = placeholder(float)  # tptt, tptt_hx: G-phase probability (sec. 3.1.3)
  c.learner.experimental = placeholder(bool)  # tptt, tptt_hx: allow lstm/gru (experimental)
  c.learner.log_local_losses = placeholder(bool)  # tptt, tptt_hx: per-step local losses

  c.train = ml_collections.ConfigDict()
  c.train.steps = 1000
  c.train.batch_size = 64
  c.train.optimizer = "adam"
  c.train.learning_rate = 1e-3
  c.train.schedule = "constant"  # or "cosine": decay to 0 over train.steps after warmup
  c.train.warmup_steps = 0
  c.train.momentum = 0.9  # sgd (Nesterov when train.nesterov) and rmsprop
  c.train.nesterov = True
  c.train.clip_norm = 1.0  # global-norm clipping; 0 disables it
  c.train.update_every = 0  # steps per window; 0 = the whole sequence
  c.train.log_every = 50
  c.train.eval_every = 200
  c.train.eval_batches = 4  # dataset tasks: 0 = the whole validation split (test_batches too)
  c.train.eval_batch_size = 256
  c.train.test_batches = 8
  c.train.diag_every = 0  # 0 disables the gradient diagnostics
  c.train.checkpoint_every = 500  # orbax checkpoints in DIR/checkpoints; 0 disables them
  c.train.tensorboard = True  # TensorBoard event files beside metrics.jsonl (tensorboardX)
  c.train.data_parallel = True  # shard the batch over all devices when there are several

  c.num_seeds = 1  # > 1: that many independent runs (seed, seed + 1, ...) in one vmapped step
  c.distributed = ml_collections.ConfigDict()
  c.distributed.enabled = False  # or $TCA_JAX_DISTRIBUTED=1: jax.distributed.initialize()
  c.distributed.coordinator_address = placeholder(str)  # e.g. "10.0.0.1:1234"; None = detect
  c.distributed.num_processes = placeholder(int)
  c.distributed.process_id = placeholder(int)
  return c


@dataclasses.dataclass(frozen=True)
class Setup:
  """Everything a config resolves to."""

  task: Any
  eval_task: Any  # the task at `task.eval_length` (the same task when that is unset)
  model: Model
  learner: Any
  update_every: int  # 0 = whole sequence


def _options(section: ml_collections.ConfigDict, skip: tuple) -> dict:
  return {k: v for k, v in section.items() if k not in skip and v is not None}


def build(config: ml_collections.ConfigDict) -> Setup:
  """Validates `config` and builds the task, model and learner; raises `ConfigError`."""
  for section in ("task", "model", "learner", "train"):
    if section not in config:
      raise ConfigError(f"config.{section} is missing; see tca_jax.config.default_config()")
  task = tasks.get(config.task.name, **_options(config.task, ("name", "eval_length")))
  eval_task = task
  if config.task.get("eval_length") is not None:
    eval_task = tasks.get(config.task.name, **dict(
        _options(config.task, ("name", "eval_length")), length=config.task.eval_length))
  check_positive(config.model.hidden_size, "model.hidden_size")
  core = cells.get(config.model.cell, **_options(config.model, ("cell",)))
  model = Model(core, task.output_size)
  learner = learners.get(config.learner.name, **_options(config.learner, ("name",)))

  t = config.train
  check_choice(t.optimizer, "train.optimizer", OPTIMIZERS)
  check_choice(t.schedule, "train.schedule", SCHEDULES)
  if not isinstance(t.warmup_steps, int) or not 0 <= t.warmup_steps < t.steps:
    raise ConfigError(f"train.warmup_steps={t.warmup_steps!r} must be an integer in "
                      f"[0, train.steps={t.steps})")
  for field in ("steps", "batch_size", "learning_rate", "eval_batch_size", "log_every"):
    check_positive(t[field], f"train.{field}")
  for field in ("eval_every", "diag_every", "eval_batches", "test_batches"):
    if not isinstance(t[field], int) or t[field] < 0:
      raise ConfigError(f"train.{field}={t[field]!r} must be an integer >= 0 (0 disables it)")
  if t.clip_norm < 0:
    raise ConfigError(f"train.clip_norm={t.clip_norm!r} must be >= 0 (0 disables clipping)")
  length = task.sequence_length
  if not isinstance(t.update_every, int) or not 0 <= t.update_every <= length:
    raise ConfigError(
        f"train.update_every={t.update_every!r} must be an integer in [0, {length}] "
        f"(0 = the whole sequence of {length} steps)")
  learner.validate(length, t.update_every or length)
  if isinstance(core, cells.FlaxCell) and not learner.generic_cells:
    generic = [n for n in learners.names() if learners.REGISTRY.factory(n).generic_cells]
    raise ConfigError(f"model.cell='flax' is not supported by learner {learner.name!r}, which "
                      f"needs the cell's internals; allowed learners: {', '.join(generic)}")
  # Learners defined for some cells only (tptt) check the model here, before compiling.
  if hasattr(learner, "validate_model"):
    learner.validate_model(model)
  return Setup(task, eval_task, model, learner, t.update_every)
