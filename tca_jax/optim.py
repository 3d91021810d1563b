"""The optimizer and the learning-rate schedule named by `config.train`.

`make_optimizer(train_cfg, learner, sequence_length)` is the optax transformation over
`(params, lparams)`: `train.optimizer` (adam, sgd with Nesterov momentum, rmsprop), global-norm
clipping at `train.clip_norm`, and `train.schedule` counted in optimizer updates (windows).
"""

from __future__ import annotations

import optax

from tca_jax import windows


def schedule(train_cfg, peak: float, updates_per_step: int = 1):
  """`train.schedule` as an optax schedule (or the constant `peak`)."""
  if train_cfg.schedule == "constant" and not train_cfg.warmup_steps:
    return peak
  total = train_cfg.steps * updates_per_step
  warmup = train_cfg.warmup_steps * updates_per_step
  if train_cfg.schedule == "cosine":
    return optax.warmup_cosine_decay_schedule(0.0, peak, max(warmup, 1), total)
  return optax.join_schedules(
      [optax.linear_schedule(0.0, peak, warmup), optax.constant_schedule(peak)], [warmup])


def make_optimizer(train_cfg, learner, sequence_length: int | None = None
                   ) -> optax.GradientTransformation:
  """The optimizer over `(params, lparams)` named by `train.optimizer`, with clipping and the
  learning-rate schedule; learners with parameter groups (TPTT) build theirs through
  `learner.optimizer`, which calls `make(learning_rate)` once per group."""

  def make(learning_rate):
    # Counted in optimizer updates, i.e. windows: with update_every < T there are several per step.
    updates_per_step = 1
    if sequence_length and train_cfg.update_every:
      updates_per_step = windows.num_windows(sequence_length, train_cfg.update_every)
    learning_rate = schedule(train_cfg, learning_rate, updates_per_step)
    if train_cfg.optimizer == "adam":
      opt = optax.adam(learning_rate)
    elif train_cfg.optimizer == "sgd":
      opt = optax.sgd(learning_rate, momentum=train_cfg.momentum or None,
                      nesterov=bool(train_cfg.nesterov and train_cfg.momentum))
    else:
      opt = optax.rmsprop(learning_rate, momentum=train_cfg.momentum)
    if train_cfg.clip_norm:
      opt = optax.chain(optax.clip_by_global_norm(train_cfg.clip_norm), opt)
    return opt

  return learner.optimizer(make, train_cfg.learning_rate)
