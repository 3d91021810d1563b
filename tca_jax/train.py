"""The one generic training loop: `train_and_evaluate(config, workdir)`.

One jitted `train_step(state, batch, key) -> (state, metrics)` splits the batch into windows of
`train.update_every` steps, calls the learner once per window and applies the optax optimizer
after each, all inside one `lax.scan`. Batches come from a separately jitted sampler; keys are
`fold_in(stream, step)` of independent streams for training, evaluation, testing and
diagnostics, so a run is reproducible from its config and seed.
"""

from __future__ import annotations

import datetime
import os
import time
from typing import Any, NamedTuple

from absl import logging
import jax
import jax.numpy as jnp
import ml_collections
import optax

from tca_jax import config as config_lib
from tca_jax import diagnostics, metrics_io, plotting, windows


class TrainState(NamedTuple):
  step: jax.Array  # int32 scalar: updates applied so far (counted in sequences)
  params: Any
  lparams: Any
  opt_state: Any
  lstate: Any  # carried between batches only by tasks that carry state
  bad_step: jax.Array  # int32: first step whose loss or update was not finite, -1 if none


class NonFiniteError(FloatingPointError):
  """Training produced a NaN or inf; the state kept is that of the last finite step."""


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


def _all_finite(tree):
  leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)]
  return jnp.all(jnp.stack(leaves)) if leaves else jnp.asarray(True)


def make_train_step(setup: config_lib.Setup, optimizer):
  """`train_step(state, batch, key) -> (state, metrics)`, jitted, the state donated."""
  task, model, learner = setup.task, setup.model, setup.learner

  def window_fn(carry, wb, index, key):
    params, lparams, opt_state, lstate = carry
    lstate, updates, aux = learner.update(model, params, lparams, lstate, wb, task.loss,
                                          jax.random.fold_in(key, index))
    steps, opt_state = optimizer.update(updates, opt_state, (params, lparams))
    params, lparams = optax.apply_updates((params, lparams), steps)
    metrics = dict(aux.metrics, update_norm=diagnostics.global_norm(updates))
    return (params, lparams, opt_state, lstate), (aux.loss, aux.outputs, metrics)

  def train_step(state: TrainState, batch, key):
    lstate = state.lstate
    if not task.carries_state:
      lstate = learner.init_state(model, state.params, batch.batch_size)
    carry = (state.params, state.lparams, state.opt_state, lstate)
    carry, loss, outputs, lmetrics = windows.scan_windows(
        lambda c, wb, i: window_fn(c, wb, i, key), carry, batch, setup.update_every)
    params, lparams, opt_state, lstate = carry
    metrics = dict(task.metrics(outputs, batch), **lmetrics)
    metrics["learner_loss"] = loss
    finite = jnp.isfinite(loss) & _all_finite((params, lparams))
    new = TrainState(state.step + 1, params, lparams, opt_state, lstate, state.bad_step)
    # A non-finite step is not applied: the state stays at the last finite one.
    kept = jax.tree.map(lambda n, o: jnp.where(finite, n, o), new, state)
    bad = jnp.where((state.bad_step < 0) & ~finite, state.step + 1, state.bad_step)
    return kept._replace(step=state.step + 1, bad_step=bad), metrics

  return jax.jit(train_step, donate_argnums=0)


def make_eval_step(setup: config_lib.Setup, batch_size: int):
  """`eval_step(params, key) -> metrics` on a fresh batch, the model run from its initial state.

  Evaluation uses `setup.eval_task`, which differs from the training task only in its length
  when `task.eval_length` is set (train at T=100, test at T=1000).
  """
  task, model = setup.eval_task, setup.model

  def eval_step(params, key):
    batch = task.sample(key, batch_size)
    dtype = jax.tree.leaves(params)[0].dtype
    _, outputs = model.unroll(params, model.initial_state(batch_size, dtype), batch.inputs)
    return task.metrics(outputs, batch)

  return jax.jit(eval_step)


def evaluate(eval_step, params, key, num_batches: int):
  """Means of `eval_step`'s metrics over `num_batches` batches drawn from `key`."""
  results = [eval_step(params, jax.random.fold_in(key, i)) for i in range(num_batches)]
  return {k: float(sum(r[k] for r in results) / len(results)) for k in results[0]}


def make_dataset_eval_step(setup: config_lib.Setup):
  """`eval_step(params, state, batch) -> (state, metrics)` for tasks that read a dataset."""
  task, model = setup.eval_task, setup.model

  def eval_step(params, state, batch):
    state, outputs = model.unroll(params, state, batch.inputs)
    return state, task.metrics(outputs, batch)

  return jax.jit(eval_step)


def evaluate_dataset(setup: config_lib.Setup, eval_step, params, split: str, batch_size: int,
                     num_batches: int):
  """Metrics over the first `num_batches` batches of a dataset split (0: the whole split).

  Means are weighted by batch size. A task that carries state (language models) carries it
  across the whole split, from the initial state at its start; others start every batch afresh.
  """
  task, model = setup.eval_task, setup.model
  dtype = jax.tree.leaves(params)[0].dtype
  totals, count, state = {}, 0, None
  for i, batch in enumerate(task.eval_batches(split, batch_size)):
    if num_batches and i >= num_batches:
      break
    if state is None or not task.carries_state:
      state = model.initial_state(batch.batch_size, dtype)
    state, metrics = eval_step(params, state, batch)
    for k, v in metrics.items():
      totals[k] = totals.get(k, 0.0) + float(v) * batch.batch_size
    count += batch.batch_size
  return {k: v / count for k, v in totals.items()}


def make_diag_step(setup: config_lib.Setup):
  """`diag(params, lparams, batch, key) -> (metrics, flow [T])`, jitted once."""
  task, model, learner = setup.task, setup.model, setup.learner

  def diag(params, lparams, batch, key):
    metrics = diagnostics.update_vs_bptt(learner, model, task, params, lparams, batch, key,
                                         setup.update_every)
    return metrics, diagnostics.gradient_flow(model, task, params, batch)

  return jax.jit(diag)


def _format(metrics, keys=("loss", "accuracy", "bpc")):
  return " ".join(f"{k} {metrics[k]:.4g}" for k in keys if k in metrics)


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str):
  """Trains as `config` says, writing `config.json`, `metrics.jsonl` and figures to `workdir`.

  Returns:
    The final test metrics (a dict of floats), also written as the `"test"` split.

  Raises:
    ConfigError: a config field is invalid (raised before anything is compiled or written).
    NonFiniteError: the loss or the update became NaN/inf.
  """
  setup = config_lib.build(config)
  task, model, learner = setup.task, setup.model, setup.learner
  t = config.train
  os.makedirs(workdir, exist_ok=True)
  metrics_io.write_json(os.path.join(workdir, "config.json"), config.to_dict())
  if hasattr(task, "write_artifacts"):  # what else reproduces the run (pmnist's permutation)
    task.write_artifacts(workdir)
  writer = metrics_io.MetricsWriter(workdir)

  root = jax.random.PRNGKey(config.seed)
  init_key, train_key, eval_key, test_key, diag_key = jax.random.split(root, 5)
  k_model, k_learner = jax.random.split(init_key)
  params = model.init(k_model, task.input_size)
  lparams, lstate = learner.init(k_learner, model, params, t.batch_size)
  optimizer = make_optimizer(t, learner, task.sequence_length)
  state = TrainState(jnp.asarray(0, jnp.int32), params, lparams,
                     optimizer.init((params, lparams)), lstate, jnp.asarray(-1, jnp.int32))
  # Donation needs every leaf in its own buffer (initialisers may share one zeros array).
  state = jax.tree.map(jnp.array, state)
  n_params = sum(x.size for x in jax.tree.leaves(params))
  logging.info("task %s (T=%d, %d steps/sample), %s(%d) with %d parameters, learner %s",
               task.name, task.length, task.sequence_length, type(model.core).__name__,
               config.model.hidden_size, n_params, learner)

  # Dataset tasks (tca_jax.tasks.data) feed numpy batches from the host, synthetic ones are
  # sampled on the device.
  host_data = hasattr(task, "train_batches")
  sample = None if host_data else jax.jit(task.sample, static_argnums=(1, 2))
  batches = task.train_batches(config.seed, t.batch_size) if host_data else None
  train_step = make_train_step(setup, optimizer)
  eval_step = (make_dataset_eval_step(setup) if host_data
               else make_eval_step(setup, t.eval_batch_size))
  diag_step = make_diag_step(setup) if t.diag_every else None
  flow_records = []
  matrix_fn = getattr(model.core, "recurrent_matrix", None)

  start = time.time()
  last_log_time, last_log_step = start, 0
  for step in range(1, t.steps + 1):
    key = jax.random.fold_in(train_key, step)
    k_batch, k_update = jax.random.split(key)
    if host_data:
      batch, reset = next(batches)
      if reset and task.carries_state:  # a new stream (an epoch): start from a fresh state
        state = state._replace(lstate=jax.tree.map(
            jnp.array, learner.init_state(model, state.params, t.batch_size)))
    else:
      batch = sample(k_batch, t.batch_size, task.draw_length(jax.random.fold_in(k_batch, 1)))

    if diag_step is not None and (step == 1 or step % t.diag_every == 0):
      diag, flow = diag_step(state.params, state.lparams, batch, jax.random.fold_in(diag_key, step))
      diag = metrics_io.to_python(diag)
      if matrix_fn is not None:
        diag["spectral_radius"] = diagnostics.spectral_radius(matrix_fn(state.params["core"]))
      writer.write(step - 1, "diag", diag)
      flow = metrics_io.to_python(flow)
      flow_records.append({"step": step - 1, "distance": list(range(len(flow), 0, -1)),
                           "norm": flow})
      metrics_io.write_json(os.path.join(workdir, "grad_flow.json"), flow_records)
      plotting.plot_gradient_flow(flow_records[-8:], os.path.join(workdir, "grad_flow.png"),
                                  f"{learner.name} on {task.name} (T={task.length})")

    state, metrics = train_step(state, batch, k_update)

    if step % t.log_every == 0 or step == t.steps:
      metrics = {k: float(v) for k, v in metrics.items()}
      bad = int(state.bad_step)
      if bad >= 0:
        raise NonFiniteError(
            f"training stopped: the loss or the update of learner {learner.name!r} became "
            f"NaN/inf at step {bad}; the state kept is that of step {bad - 1}. Lower "
            "train.learning_rate or set train.clip_norm.")
      now = time.time()
      rate = (step - last_log_step) / max(now - last_log_time, 1e-9)
      last_log_time, last_log_step = now, step
      metrics["steps_per_sec"] = rate
      writer.write(step, "train", metrics)
      eta = datetime.timedelta(seconds=int((t.steps - step) / max(rate, 1e-9)))
      logging.info("step %d/%d  %s  steps/s %.1f  ETA %s", step, t.steps, _format(metrics),
                   rate, eta)

    if t.eval_every and (step % t.eval_every == 0 or step == t.steps):
      if host_data:
        ev = evaluate_dataset(setup, eval_step, state.params, "validation", t.eval_batch_size,
                              t.eval_batches)
      else:
        ev = evaluate(eval_step, state.params, jax.random.fold_in(eval_key, step), t.eval_batches)
      writer.write(step, "eval", ev)
      logging.info("eval at step %d: %s", step, _format(ev, tuple(ev)))

  if host_data:
    test = evaluate_dataset(setup, eval_step, state.params, "test", t.eval_batch_size,
                            t.test_batches)
  else:
    test = evaluate(eval_step, state.params, test_key, max(1, t.test_batches))
  writer.write(t.steps, "test", test)
  test["wall_s"] = time.time() - start
  logging.info("test after %d steps: %s (%.1fs)", t.steps, _format(test, tuple(test)),
               test["wall_s"])
  return test
