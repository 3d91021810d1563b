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
import math
import os
from typing import Any

from absl import logging
import jax
import ml_collections
from ml_collections.config_dict import placeholder

from tca_jax import cells, learners, tasks
from tca_jax.model import Model
from tca_jax.registry import ConfigError, check_choice, check_positive

OPTIMIZERS = ("adam", "sgd", "rmsprop")
SCHEDULES = ("constant", "cosine")
ON_NAN = ("stop", "freeze_seed")


def default_config() -> ml_collections.ConfigDict:
  """Copy task, T=10, LSTM(128) trained with BPTT and Adam."""
  c = ml_collections.ConfigDict()
  c.seed = 0

  c.task = ml_collections.ConfigDict()
  c.task.name = "copy"
  c.task.length = 10
  c.task.eval_length = placeholder(int)  # evaluate/test at another T (transfer); None = length
  c.task.loss_on = placeholder(str)  # copy: "all" | "last10"
  c.task.jitter = placeholder(bool)  # adding_pascanu; None = task.variant's
  # temporal_order(_3bit), adding_pascanu, permutation: "paper" (the TPTT text) | "release"
  c.task.variant = placeholder(str)
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
  # Parameters no learner updates: comma-separated paths, e.g. "core/W_hh,readout/b" (the esn
  # cell adds its core/W_hh itself).
  c.model.frozen = placeholder(str)
  c.model.alpha = placeholder(float)  # leaky_srn: leak rate dt/tau in (0, 1]; 1 = srn
  c.model.spectral_radius = placeholder(float)  # esn: rho of the fixed W_hh
  c.model.num_layers = placeholder(int)  # lru: stacked layers (LRU + mixing MLP)
  c.model.r_min = placeholder(float)  # lru: initial |lambda| ring [r_min, r_max]
  c.model.r_max = placeholder(float)
  c.model.max_phase = placeholder(float)  # lru: initial phases U[0, max_phase]
  c.model.sab_credit = placeholder(str)  # "paper" (selected memories only) | "exact"

  c.learner = ml_collections.ConfigDict()
  c.learner.name = "bptt"
  c.learner.remat = placeholder(bool)  # bptt, tbptt
  c.learner.unroll = placeholder(int)  # bptt, tbptt, sab: lax.scan unroll
  c.learner.fused = placeholder(bool)  # bptt, tbptt: the lstm as one op with a hand VJP
  c.learner.truncation = placeholder(int)  # tbptt
  c.learner.k_trunc = placeholder(int)  # sab: sequential truncation (and mental-update reach)
  c.learner.mental_updates = placeholder(bool)  # sab: False = memories are leaves (Table 4)
  c.learner.backward = placeholder(str)  # sab: "replay" (default, online-capable) | "autodiff"
  c.learner.immediate = placeholder(str)  # rtrl: "reverse" | "forward" (d s_t/d theta)
  c.learner.eps = placeholder(float)  # uoro, kf_rtrl: stabiliser of the scalings
  c.learner.structured = placeholder(bool)  # snap1, rtrl: closed-form step for the srn
  # rtrl, bptt, tbptt: "auto" | "native" (jax.ffi CPU kernels with BLAS) | "xla"
  c.learner.kernel = placeholder(str)
  # snap1: "textbook" (default) | "full_jacobian"; tptt, tptt_hx: "paper" (default) | "release"
  c.learner.variant = placeholder(str)
  c.learner.alpha_i = placeholder(float)  # tptt, tptt_hx: first-target step (eq. 3)
  c.learner.alpha_f = placeholder(float)  # tptt, tptt_hx: model lr; None = train.learning_rate
  c.learner.alpha_g = placeholder(float)  # tptt, tptt_hx: lr of the inverse G (eq. 9)
  c.learner.sigma = placeholder(float)  # tptt, tptt_hx: G-phase noise std (sec. 3.1.2); replay
  c.learner.fraction = placeholder(float)  # replay: probability a step is replayed
  c.learner.p_g = placeholder(float)  # tptt, tptt_hx: G-phase probability (sec. 3.1.3)
  # tptt, tptt_hx: the release's choices one by one (None = learner.variant's)
  c.learner.g_terms = placeholder(str)  # "eq9" (t = 1..T-1) | "all" (release) | "targets"
  c.learner.phases = placeholder(str)  # with p_g < 1: "either" | "g_optional" (release)
  c.learner.targets_after_g = placeholder(bool)
  c.learner.inverse_init = placeholder(str)  # "normal" (N(0, 0.1)) | "orthogonal" (release)
  c.learner.experimental = placeholder(bool)  # tptt, tptt_hx: allow lstm/gru (experimental)
  c.learner.log_local_losses = placeholder(bool)  # tptt, tptt_hx: per-step local losses
  c.learner.feedback = placeholder(str)  # rflo, eprop: "symmetric" (readout^T) | "random"

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
  # What a NaN/inf loss or update does: None or "stop" (stop, naming the step and seed; the last
  # good checkpoint is kept) | "freeze_seed" (num_seeds > 1: that seed keeps its last finite
  # state, is recorded once and reported as NaN; the others train on; stop when all diverged).
  # A placeholder rather than "stop" so that workdirs written before the field stay resumable.
  c.train.on_nan = placeholder(str)

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


def _is_int(value) -> bool:
  return isinstance(value, int) and not isinstance(value, bool)


def _check_int(value, field: str, low: int, what: str = "") -> None:
  if not _is_int(value) or value < low:
    raise ConfigError(f"{field}={value!r} must be an integer >= {low}{what}")


def _check_number(value, field: str, low: float, high: float | None = None, what: str = ""):
  ok = (isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        and value >= low and (high is None or value < high))
  if not ok:
    where = f"in [{low}, {high})" if high is not None else f">= {low}"
    raise ConfigError(f"{field}={value!r} must be a finite number {where}{what}")


def _check_train(t) -> None:
  """Every `train.*` field, each in its own terms (steps before the fields bounded by it)."""
  _check_int(t.steps, "train.steps", 1)
  if not _is_int(t.warmup_steps) or not 0 <= t.warmup_steps < t.steps:
    raise ConfigError(f"train.warmup_steps={t.warmup_steps!r} must be an integer in "
                      f"[0, train.steps={t.steps})")
  check_choice(t.optimizer, "train.optimizer", OPTIMIZERS)
  check_choice(t.schedule, "train.schedule", SCHEDULES)
  for field in ("batch_size", "eval_batch_size", "log_every"):
    _check_int(t[field], f"train.{field}", 1)
  if not (isinstance(t.learning_rate, (int, float)) and not isinstance(t.learning_rate, bool)
          and math.isfinite(t.learning_rate) and t.learning_rate > 0):
    raise ConfigError(f"train.learning_rate={t.learning_rate!r} must be a positive number, finite")
  _check_number(t.momentum, "train.momentum", 0.0, 1.0, " (0 disables momentum)")
  if not isinstance(t.nesterov, bool):
    raise ConfigError(f"train.nesterov={t.nesterov!r} must be True or False")
  _check_number(t.clip_norm, "train.clip_norm", 0.0, what=" (0 disables clipping)")
  for field in ("eval_every", "diag_every", "eval_batches", "test_batches", "checkpoint_every"):
    _check_int(t[field], f"train.{field}", 0, " (0 disables it)")
  if t.get("on_nan") is not None:
    check_choice(t.on_nan, "train.on_nan", ON_NAN)
  if not isinstance(t.get("data_parallel", True), bool):
    raise ConfigError(f"train.data_parallel={t.data_parallel!r} must be True or False")


def machine_memory_bytes() -> int | None:
  """Memory of the default device: an accelerator's limit, else the host's physical memory."""
  try:
    stats = jax.local_devices()[0].memory_stats() or {}
  except Exception:  # pylint: disable=broad-except  (backends without memory stats)
    stats = {}
  if stats.get("bytes_limit"):
    return int(stats["bytes_limit"])
  try:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
  except (ValueError, OSError, AttributeError):
    return None


def memory_estimate_bytes(config, task, eval_task) -> int:
  """A lower bound on the memory of one training or evaluation step, from shapes alone.

  A step holds at least its batch (inputs `[T, B, in]`, targets and mask) and the outputs
  `[T, B, out]`, plus with BPTT-like learners the hidden states `[T, B, H]`; evaluation holds the
  same at `train.eval_batch_size` and the evaluation length. Nothing is traced or compiled (asking
  XLA would compile the step first, which is what a too-large T makes fail slowly).
  """
  itemsize = 8 if jax.config.jax_enable_x64 else 4
  hidden = config.model.hidden_size * config.get("num_seeds", 1)
  per_step = task.input_size + task.output_size + 2 + hidden
  train_bytes = config.train.batch_size * task.sequence_length * per_step
  eval_bytes = config.train.eval_batch_size * eval_task.sequence_length * (
      eval_task.input_size + eval_task.output_size + 2)
  return itemsize * max(train_bytes, eval_bytes)


def check_memory(config, task, eval_task) -> None:
  """Refuses, with the estimate, a step whose lower-bound memory exceeds the machine's."""
  need = memory_estimate_bytes(config, task, eval_task)
  have = machine_memory_bytes()
  if have is not None and need > have:
    raise ConfigError(
        f"task.length={config.task.length!r}: one step needs at least {need / 2**30:.1f} GiB "
        f"(batch x sequence of {task.sequence_length} steps x features; train.batch_size="
        f"{config.train.batch_size}, train.eval_batch_size={config.train.eval_batch_size}) and "
        f"this machine has {have / 2**30:.1f} GiB; lower task.length or the batch sizes")
  if have is not None and need > have / 2:
    logging.warning("one step needs at least %.1f GiB of the machine's %.1f GiB", need / 2**30,
                    have / 2**30)
def _frozen_paths(config, model, task) -> tuple:
  """`model.frozen` plus the cell's declared `frozen_params`, checked against the params."""
  frozen = config.model.get("frozen") or ""
  if not isinstance(frozen, str):
    raise ConfigError(f"model.frozen={frozen!r} must be comma-separated parameter paths")
  paths = tuple("core/" + p for p in model.core.frozen_params)
  paths += tuple(p.strip() for p in frozen.split(",") if p.strip())
  if paths:
    shapes = jax.eval_shape(lambda k: model.init(k, task.input_size), jax.random.PRNGKey(0))
    learners.frozen.check_paths(paths, shapes)
  return paths


def build(config: ml_collections.ConfigDict) -> Setup:
  """Validates `config` and builds the task, model and learner; raises `ConfigError`.

  Checks every field, every learner x cell x task combination (declared by the learner:
  `Learner.validate_model`, `Learner.validate`) and the step's memory, before anything is
  compiled or written.
  """
  for section in ("task", "model", "learner", "train"):
    if section not in config:
      raise ConfigError(f"config.{section} is missing; see tca_jax.config.default_config()")
  _check_int(config.get("seed", 0), "seed", 0)
  _check_int(config.get("num_seeds", 1), "num_seeds", 1)
  _check_train(config.train)
  eval_length = config.task.get("eval_length")
  if eval_length is not None:
    _check_int(eval_length, "task.eval_length", 1, " (or unset: evaluate at task.length)")
  task = tasks.get(config.task.name, **_options(config.task, ("name", "eval_length")))
  eval_task = task
  if eval_length is not None:
    eval_task = tasks.get(config.task.name, **dict(
        _options(config.task, ("name", "eval_length")), length=config.task.eval_length))
  check_positive(config.model.hidden_size, "model.hidden_size")
  core = cells.get(config.model.cell, **_options(config.model, ("cell", "frozen")))
  # The three interfaces, checked once here rather than probed later (tasks.base.Task,
  # cells.base.Cell, learners.base.Learner: each gives defaults for its optional members).
  model = Model(core, task.output_size)
  learner = learners.get(config.learner.name, **_options(config.learner, ("name",)))
  for obj, base, field in ((task, tasks.Task, "task.name"), (core, cells.Cell, "model.cell"),
                           (learner, learners.Learner, "learner.name")):
    if not isinstance(obj, base):
      raise ConfigError(f"{field}: {type(obj).__name__} does not subclass "
                        f"{base.__module__}.{base.__name__}, the interface the trainer uses")
  if isinstance(core, cells.FlaxCell) and not learner.generic_cells:
    generic = [n for n in learners.names() if learners.REGISTRY.factory(n).generic_cells]
    raise ConfigError(f"model.cell='flax' is not supported by learner {learner.name!r}, which "
                      f"needs the cell's internals; allowed learners: {', '.join(generic)}")
  learner.validate_cell(config.model.cell)
  frozen = _frozen_paths(config, model, task)
  if frozen:
    learner = learners.Frozen(learner, frozen)

  t = config.train
  length = task.sequence_length
  if not isinstance(t.update_every, int) or not 0 <= t.update_every <= length:
    raise ConfigError(
        f"train.update_every={t.update_every!r} must be an integer in [0, {length}] "
        f"(0 = the whole sequence of {length} steps)")
  learner.validate(length, t.update_every or length)
  learner.validate_model(model)  # learners defined for some cells only refuse the others here
  check_memory(config, task, eval_task)
  return Setup(task, eval_task, model, learner, t.update_every)
