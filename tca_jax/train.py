"""The one generic training loop: `train_and_evaluate(config, workdir)`.

One jitted `train_step(state, batch, key) -> (state, metrics)` splits the batch into windows of
`train.update_every` steps, calls the learner once per window and applies the optax optimizer
after each, all inside one `lax.scan`. Batches come from a separately jitted sampler; keys are
`fold_in(stream, step)` of independent streams for training, evaluation, testing and
diagnostics, so a run is reproducible from its config and seed.
"""

from __future__ import annotations

import datetime
import json
import os
import signal
import threading
import time
from typing import Any, NamedTuple

from absl import logging
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from tca_jax import checkpoint, distributed, diagnostics, metrics_io, paths, plotting, windows
from tca_jax import config as config_lib
from tca_jax.registry import ConfigError


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


def make_train_step(setup: config_lib.Setup, optimizer, num_seeds: int = 1,
                    per_seed_batches: bool = True):
  """`train_step(state, batch, key) -> (state, metrics)`, jitted, the state donated.

  With `num_seeds > 1` every argument and result has a leading seed axis (the batch too when
  `per_seed_batches`), and the seeds are trained by one vmapped step.
  """
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

  if num_seeds > 1:
    # Independent runs stacked on a leading axis; host-fed batches are shared by every seed.
    train_step = jax.vmap(train_step, in_axes=(0, 0 if per_seed_batches else None, 0))
  return jax.jit(train_step, donate_argnums=0)


def make_eval_step(setup: config_lib.Setup, batch_size: int, num_seeds: int = 1):
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

  return jax.jit(jax.vmap(eval_step) if num_seeds > 1 else eval_step)


def evaluate(eval_step, params, key, num_batches: int):
  """Means of `eval_step`'s metrics over `num_batches` batches drawn from `key`.

  With seeds (`key` of shape `[seeds, 2]`) the means are per seed, `[seeds]` arrays.
  """
  fold = jax.vmap(jax.random.fold_in, (0, None)) if key.ndim > 1 else jax.random.fold_in
  results = [eval_step(params, fold(key, i)) for i in range(num_batches)]
  return {k: sum(r[k] for r in results) / len(results) for k in results[0]}


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


class Preempted(RuntimeError):
  """SIGTERM arrived; a checkpoint was saved and the same command resumes the run."""


def _summary(metrics, num_seeds: int):
  """Floats for the log and metrics.jsonl; with seeds, the mean plus `_std` and `_seeds`."""
  out = {}
  for k, v in metrics.items():
    v = np.asarray(v, dtype=np.float64)
    if num_seeds > 1:
      out[k], out[f"{k}_std"], out[f"{k}_seeds"] = float(v.mean()), float(v.std()), v.tolist()
    else:
      out[k] = float(v)
  return out


def _flatten(tree, prefix=""):
  """{"train": {"steps": 1}} -> {"train.steps": 1}."""
  if not isinstance(tree, dict):
    return {prefix: tree}
  out = {}
  for k, v in tree.items():
    out.update(_flatten(v, f"{prefix}.{k}" if prefix else k))
  return out


def _check_resumable(workdir: str, config) -> None:
  """A workdir holding another run's config is an error (resuming it would mix two runs)."""
  path = paths.join(workdir, "config.json")
  if not paths.exists(path):
    return
  old = metrics_io.read_json(path)
  new = json.loads(json.dumps(metrics_io.to_python(config.to_dict())))
  for d in (old, new):
    d.get("train", {}).pop("steps", None)  # a run may be extended
    # How the processes are launched is not what the run is: every process of a multi-host run
    # checks the config that process 0 may already have written, with its own process_id.
    d.pop("distributed", None)
  old, new = _flatten(old), _flatten(new)
  differ = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
  if differ:
    raise ConfigError(
        f"workdir={workdir!r} holds a run with another config ({', '.join(differ)} differ); "
        "use a new --workdir to start a new run")


def _stream_keys(seed: int, num_seeds: int):
  """(init, train, eval, test, diag) keys; `[seeds, 2]` each with seeds. Seed i of a multi-seed
  run draws exactly the keys of a single run with `seed + i`."""
  if num_seeds == 1:
    return tuple(jax.random.split(jax.random.PRNGKey(seed), 5))
  keys = jax.vmap(lambda s: jax.random.split(jax.random.PRNGKey(s), 5))(
      seed + jnp.arange(num_seeds))
  return tuple(keys[:, i] for i in range(5))


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str):
  """Trains as `config` says, writing `config.json`, `metrics.jsonl` and figures to `workdir`.

  Resumes from the newest checkpoint in `workdir/checkpoints` when there is one, and then ends
  with exactly the records of an uninterrupted run. With `num_seeds > 1`, trains that many
  independent runs (seeds `seed .. seed + num_seeds - 1`) in one vmapped step. With several
  devices, the batch axis is sharded over a mesh of all of them and parameters are replicated.

  Returns:
    The final test metrics (a dict of floats), also written as the `"test"` split.

  Raises:
    ConfigError: a config field is invalid (raised before anything is compiled or written).
    NonFiniteError: the loss or the update became NaN/inf (the last good checkpoint is kept).
    Preempted: SIGTERM arrived; a checkpoint was saved.
  """
  setup = config_lib.build(config)
  task, model, learner = setup.task, setup.model, setup.learner
  t = config.train
  num_seeds = config.get("num_seeds", 1)
  if not isinstance(num_seeds, int) or num_seeds < 1:
    raise ConfigError(f"num_seeds={num_seeds!r} must be a positive integer")
  mesh = distributed.data_mesh(t.batch_size) if t.get("data_parallel", True) else None
  _check_resumable(workdir, config)
  chief = jax.process_index() == 0
  paths.makedirs(workdir)
  if chief:
    metrics_io.write_json(paths.join(workdir, "config.json"), config.to_dict())
    if hasattr(task, "write_artifacts"):  # what else reproduces the run (pmnist's permutation)
      task.write_artifacts(workdir)
  writer = (metrics_io.MetricsWriter(workdir, tensorboard=t.get("tensorboard", True))
            if chief else None)

  def write(step, split, metrics):
    if writer is not None:
      writer.write(step, split, metrics)

  per_seed = (lambda fn, *a: jax.vmap(fn)(*a)) if num_seeds > 1 else (lambda fn, *a: fn(*a))
  init_key, train_key, eval_key, test_key, diag_key = _stream_keys(config.seed, num_seeds)
  optimizer = make_optimizer(t, learner, task.sequence_length)

  def init_state(key):
    k_model, k_learner = jax.random.split(key)
    params = model.init(k_model, task.input_size)
    lparams, lstate = learner.init(k_learner, model, params, t.batch_size)
    return TrainState(jnp.asarray(0, jnp.int32), params, lparams,
                      optimizer.init((params, lparams)), lstate, jnp.asarray(-1, jnp.int32))

  state = jax.jit(lambda k: per_seed(init_state, k))(init_key)
  # Donation needs every leaf in its own buffer (initialisers may share one zeros array).
  state = jax.tree.map(jnp.array, state)
  if mesh is not None:
    distributed.barrier("tca_jax_state")
    state = jax.device_put(state, distributed.replicated(mesh))
  n_params = sum(x.size for x in jax.tree.leaves(state.params)) // num_seeds
  logging.info("task %s (T=%d, %d steps/sample), %s(%d) with %d parameters, learner %s, "
               "%d seed(s), %d device(s)", task.name, task.length, task.sequence_length,
               type(model.core).__name__, config.model.hidden_size, n_params, learner,
               num_seeds, jax.device_count())

  checkpointer = checkpoint.Checkpointer(workdir) if t.get("checkpoint_every", 0) else None
  start_step = 0
  if checkpointer is not None:
    restored_step, restored = checkpointer.restore_latest(state)
    if restored is not None:
      start_step, state = restored_step, restored
  if chief:  # from a checkpoint: what the run had then; from scratch: none of an earlier try's
    checkpoint.truncate_records(paths.join(workdir, "metrics.jsonl"), start_step)

  # Dataset tasks (tca_jax.tasks.data) feed numpy batches from the host, synthetic ones are
  # sampled on the device.
  host_data = hasattr(task, "train_batches")
  local_batch = t.batch_size // jax.process_count()
  if host_data:
    sample = None
    # From where an uninterrupted run would be (the skipped batches are not read).
    batches = task.train_batches(config.seed, local_batch, start=start_step)
  else:
    sample = jax.jit(jax.vmap(task.sample, (0, None, None)) if num_seeds > 1 else task.sample,
                     static_argnums=(1, 2))
  train_step = make_train_step(setup, optimizer, num_seeds, per_seed_batches=not host_data)
  eval_step = (make_dataset_eval_step(setup) if host_data
               else make_eval_step(setup, t.eval_batch_size, num_seeds))
  diag_step = make_diag_step(setup) if t.diag_every else None
  flow_path = paths.join(workdir, "grad_flow.json")
  flow_records = []
  if start_step and paths.exists(flow_path):
    flow_records = [r for r in metrics_io.read_json(flow_path) if r["step"] < start_step]
  matrix_fn = getattr(model.core, "recurrent_matrix", None)
  seed0 = (lambda tree: jax.tree.map(lambda x: x[0], tree)) if num_seeds > 1 else (lambda x: x)
  fold = jax.vmap(jax.random.fold_in, (0, None)) if num_seeds > 1 else jax.random.fold_in
  split = jax.vmap(jax.random.split) if num_seeds > 1 else jax.random.split

  def run_eval(params, split, key, num_batches):
    if host_data:
      return evaluate_dataset(setup, eval_step, seed0(params), split, t.eval_batch_size,
                              num_batches)
    return _summary(evaluate(eval_step, params, key, num_batches), num_seeds)

  def check_finite(state):
    bad = np.asarray(state.bad_step).reshape(-1)
    if (bad >= 0).any():
      seed_note = f" (seed {config.seed + int(np.argmax(bad >= 0))})" if num_seeds > 1 else ""
      kept = (f"; the last good checkpoint (step {checkpointer.latest_step()}) is kept"
              if checkpointer is not None and checkpointer.latest_step() is not None else "")
      raise NonFiniteError(
          f"training stopped: the loss or the update of learner {learner.name!r} became "
          f"NaN/inf at step {int(bad[bad >= 0].min())}{seed_note}{kept}. Lower "
          "train.learning_rate or set train.clip_norm.")

  preempted = []
  previous_handler = None
  if threading.current_thread() is threading.main_thread():
    previous_handler = signal.signal(signal.SIGTERM, lambda *_: preempted.append(True))
  start = time.time()
  last_log_time, last_log_step = start, start_step
  try:
    for step in range(start_step + 1, t.steps + 1):
      key = fold(train_key, step)
      keys = split(key)
      k_batch, k_update = keys[..., 0, :], keys[..., 1, :]
      if host_data:
        batch, reset = next(batches)
        if reset and task.carries_state:  # a new stream (an epoch): start from a fresh state
          state = state._replace(lstate=jax.tree.map(jnp.array, per_seed(
              lambda p: learner.init_state(model, p, t.batch_size), state.params)))
      else:
        length = task.draw_length(jax.random.fold_in(seed0(k_batch), 1))
        batch = sample(distributed.process_key(k_batch), local_batch, length)
      batch = distributed.place(batch, mesh, seed_axis=num_seeds > 1 and not host_data)

      if diag_step is not None and chief and (step == 1 or step % t.diag_every == 0):
        params0 = seed0(state.params)
        diag, flow = diag_step(params0, seed0(state.lparams),
                               seed0(batch) if not host_data else batch,
                               jax.random.fold_in(seed0(diag_key), step))
        diag = metrics_io.to_python(diag)
        if matrix_fn is not None:
          diag["spectral_radius"] = diagnostics.spectral_radius(matrix_fn(params0["core"]))
        write(step - 1, "diag", diag)
        flow = metrics_io.to_python(flow)
        flow_records.append({"step": step - 1, "distance": list(range(len(flow), 0, -1)),
                             "norm": flow})
        metrics_io.write_json(flow_path, flow_records)
        plotting.plot_gradient_flow(flow_records[-8:], paths.join(workdir, "grad_flow.png"),
                                    f"{learner.name} on {task.name} (T={task.length})")
        writer.figure("grad_flow", step - 1, paths.join(workdir, "grad_flow.png"))

      state, metrics = train_step(state, batch, k_update)

      if step % t.log_every == 0 or step == t.steps:
        metrics = _summary(metrics, num_seeds)
        check_finite(state)
        now = time.time()
        rate = (step - last_log_step) / max(now - last_log_time, 1e-9)
        last_log_time, last_log_step = now, step
        metrics["steps_per_sec"] = rate
        write(step, "train", metrics)
        eta = datetime.timedelta(seconds=int((t.steps - step) / max(rate, 1e-9)))
        logging.info("step %d/%d  %s  steps/s %.1f  ETA %s", step, t.steps, _format(metrics),
                     rate, eta)

      if t.eval_every and (step % t.eval_every == 0 or step == t.steps):
        ev = run_eval(state.params, "validation", fold(eval_key, step), t.eval_batches)
        write(step, "eval", ev)
        logging.info("eval at step %d: %s", step, _format(ev))
        if chief and not host_data:  # cores with memory: SAB's attention map (Table 4, right)
          plotting.record_attention_map(model, task, seed0(state.params),
                                        jax.random.fold_in(seed0(eval_key), step), step, workdir)
          writer.figure("attention_map", step, paths.join(workdir, "attention_map.png"))

      if checkpointer is not None and (step % t.checkpoint_every == 0 or step == t.steps
                                       or preempted):
        check_finite(state)  # a checkpoint is only ever written from a run without a bad step
        checkpointer.save(step, state)
      if preempted:
        raise Preempted(f"SIGTERM at step {step}: checkpoint saved in "
                        f"{checkpointer.directory if checkpointer else '(checkpoints off)'}; "
                        "run the same command to resume")
  finally:
    if previous_handler is not None:
      signal.signal(signal.SIGTERM, previous_handler)
    if checkpointer is not None:
      checkpointer.close()

  test = run_eval(state.params, "test", test_key, max(1, t.test_batches) if not host_data
                  else t.test_batches)
  write(t.steps, "test", test)
  if writer is not None:
    writer.close()
  test["wall_s"] = time.time() - start
  logging.info("test after %d steps: %s (%.1fs)", t.steps, _format(test), test["wall_s"])
  return test
