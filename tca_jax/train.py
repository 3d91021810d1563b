"""The one generic training loop: `train_and_evaluate(config, workdir)`.

One jitted `train_step(state, batch, key) -> (state, metrics)` splits the batch into windows of
`train.update_every` steps, calls the learner once per window and applies the optax optimizer
after each, all inside one `lax.scan`. Batches come from a separately jitted sampler; keys are
`fold_in(stream, step)` of independent streams for training, evaluation, testing and
diagnostics, so a run is reproducible from its config and seed.
"""

from __future__ import annotations

import contextlib
import datetime
import math
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

from tca_jax import actions, checkpoint, distributed, diagnostics, metrics_io, paths, plotting
from tca_jax import windows
from tca_jax import config as config_lib
from tca_jax import workdir as workdir_lib
# Re-exported: the TPTT protocol and the benchmarks build their optimizer through train.
from tca_jax.optim import make_optimizer  # pylint: disable=unused-import
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


def create_train_state(setup: config_lib.Setup, optimizer, key, batch_size: int,
                       num_seeds: int = 1, init_params=None) -> TrainState:
  """The state at step 0: model and learner parameters from `key`, the optimizer's state.

  Pure (the trainer jits it; the TPTT protocol runs it eagerly). `key` splits into the model's
  and the learner's key; with `num_seeds > 1`, `key` is `[seeds, 2]` and every leaf gets a
  leading seed axis. `init_params(key) -> params` replaces `model.init` (the TPTT protocol's
  N(0, 0.1) redraw). Leaves may share buffers: copy them (`jax.tree.map(jnp.array, ...)`)
  before donating the state.
  """

  def one(key):
    k_model, k_learner = jax.random.split(key)
    params = (init_params(k_model) if init_params is not None
              else setup.model.init(k_model, setup.task.input_size))
    lparams, lstate = setup.learner.init(k_learner, setup.model, params, batch_size)
    return TrainState(jnp.asarray(0, jnp.int32), params, lparams,
                      optimizer.init((params, lparams)), lstate, jnp.asarray(-1, jnp.int32))

  return jax.vmap(one)(key) if num_seeds > 1 else one(key)


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
    # The update's norm too: an overflowed (inf) norm makes `optax.clip_by_global_norm` scale the
    # update to zero, a step that would otherwise pass silently with finite parameters.
    finite = (jnp.isfinite(loss) & _all_finite((params, lparams))
              & jnp.all(jnp.isfinite(lmetrics["update_norm"])))
    new = TrainState(state.step + 1, params, lparams, opt_state, lstate, state.bad_step)
    # A non-finite step is not applied, and neither is any step after it: the state stays at the
    # last finite one. With seeds this is per seed (the step is vmapped), which is what lets
    # `train.on_nan="freeze_seed"` train the other seeds on with no host round-trip per step.
    ok = finite & (state.bad_step < 0)
    kept = jax.tree.map(lambda n, o: jnp.where(ok, n, o), new, state)
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


def _summary(metrics, num_seeds: int, diverged=None):
  """Floats for the log and metrics.jsonl; with seeds, the mean plus `_std` and `_seeds`.

  `diverged` (`[seeds]` bool, `train.on_nan="freeze_seed"`): those seeds' values are reported as
  NaN (null in metrics.jsonl) and left out of the mean and standard deviation.
  """
  out = {}
  for k, v in metrics.items():
    v = np.asarray(v, dtype=np.float64)
    if num_seeds > 1:
      live = v if diverged is None else v[~diverged]
      if diverged is not None:
        v = np.where(diverged, np.nan, v)
      with np.errstate(invalid="ignore"):  # an inf among the seeds: the sd is NaN (null), quietly
        out[k], out[f"{k}_std"] = float(live.mean()), float(live.std())
      out[f"{k}_seeds"] = v.tolist()
    else:
      out[k] = float(v)
  return out


def _check_resumable(workdir: str, config) -> bool:
  """A workdir holding another run's config is an error (resuming it would mix two runs)."""
  return workdir_lib.check_same_config(workdir, metrics_io.to_python(config.to_dict()))


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

  The process owns `workdir` while it trains (an OS lock, `tca_jax.workdir.owned`): a second
  process on the same workdir is refused. A workdir holding another config (any field,
  `train.steps` included) is refused too.

  Raises:
    ConfigError: a config field is invalid (raised before anything is compiled or written), or
      the workdir is owned by another process or holds another config.
    NonFiniteError: the loss or the update became NaN/inf (the last good checkpoint is kept); with
      `train.on_nan="freeze_seed"` and seeds, only once every seed has (the others train on while
      a diverged seed stays frozen at its last finite state, recorded as an `event` record).
    Preempted: SIGTERM arrived; a checkpoint was saved.
  """
  setup = config_lib.build(config)
  workdir_lib.check_writable(workdir)
  # Every process of a multi-host run writes into the same workdir: process 0 owns it.
  lock = (workdir_lib.owned(workdir) if jax.process_index() == 0
          else contextlib.nullcontext())
  with lock:
    return _train_and_evaluate(config, workdir, setup)


class _Run:
  """What the loop and its actions share: the config, the workdir's writer, the key streams and
  the per-seed helpers (one seed-axis path: with `num_seeds > 1` every key and state leaf has a
  leading seed axis, and `seed0` picks seed 0 for what is measured once)."""

  def __init__(self, config, workdir: str, setup: config_lib.Setup):
    self.config, self.t, self.workdir, self.setup = config, config.train, workdir, setup
    self.num_seeds = config.get("num_seeds", 1)
    self.chief = jax.process_index() == 0
    self.host_data = setup.task.host_data
    self.writer = (metrics_io.MetricsWriter(workdir, tensorboard=self.t.get("tensorboard", True))
                   if self.chief else None)
    (self.init_key, self.train_key, self.eval_key, self.test_key,
     self.diag_key) = _stream_keys(config.seed, self.num_seeds)
    seeds = self.num_seeds > 1
    self.fold = jax.vmap(jax.random.fold_in, (0, None)) if seeds else jax.random.fold_in
    self.split = jax.vmap(jax.random.split) if seeds else jax.random.split
    self.checkpointer = None
    self.on_nan = self.t.get("on_nan") or "stop"
    # Seeds frozen after a NaN/inf (`train.on_nan="freeze_seed"`) and already recorded as such.
    self.diverged = np.zeros(self.num_seeds, bool)
    self.eval_step = (make_dataset_eval_step(setup) if self.host_data
                      else make_eval_step(setup, self.t.eval_batch_size, self.num_seeds))

  def per_seed(self, fn, *args):
    return jax.vmap(fn)(*args) if self.num_seeds > 1 else fn(*args)

  def seed0(self, tree):
    return jax.tree.map(lambda x: x[0], tree) if self.num_seeds > 1 else tree

  def write(self, step, split, metrics):
    if self.writer is not None:
      self.writer.write(step, split, metrics)

  def evaluate(self, params, split, key, num_batches):
    if self.host_data:  # seed 0 only
      metrics = evaluate_dataset(self.setup, self.eval_step, self.seed0(params), split,
                                 self.t.eval_batch_size, num_batches)
      return {k: math.nan for k in metrics} if self.diverged[0] else metrics
    return _summary(evaluate(self.eval_step, params, key, num_batches), self.num_seeds,
                    self.diverged if self.diverged.any() else None)

  def resumed(self, state):
    """Seeds the restored state holds frozen were recorded before its checkpoint was saved."""
    self.diverged = np.asarray(state.bad_step).reshape(-1) >= 0

  def check_finite(self, state):
    """Stops the run on a NaN/inf (`train.on_nan="stop"`, or when every seed has diverged);
    with "freeze_seed", records each newly diverged seed once (its state stays frozen in the
    jitted step) and lets the others train on."""
    bad = np.asarray(state.bad_step).reshape(-1)
    if not (bad >= 0).any():
      return
    seeds = self.num_seeds > 1
    if self.on_nan == "freeze_seed" and not (bad >= 0).all():
      for i in np.flatnonzero((bad >= 0) & ~self.diverged):
        seed = self.config.seed + int(i)
        self.write(int(bad[i]), "event", {"seed": seed, "event": "diverged"})
        logging.warning("seed %d: the loss or the update of learner %r became NaN/inf at step %d;"
                        " its parameters and optimizer state stay frozen at step %d and its "
                        "metrics are reported as NaN (train.on_nan='freeze_seed')", seed,
                        self.setup.learner.name, int(bad[i]), int(bad[i]) - 1)
      self.diverged = bad >= 0
      return
    t, ckpt = self.t, self.checkpointer
    first = int(np.argmin(np.where(bad >= 0, bad, np.iinfo(bad.dtype).max)))
    seed_note = f" (seed {self.config.seed + first})" if seeds else ""
    every = " (every seed has diverged)" if seeds and self.on_nan == "freeze_seed" else ""
    kept = (f"; the last good checkpoint (step {ckpt.latest_step()}) is kept"
            if ckpt is not None and ckpt.latest_step() is not None else "")
    raise NonFiniteError(
        f"training stopped{every}: the loss or the update of learner "
        f"{self.setup.learner.name!r} became NaN/inf at step {int(bad[first])}{seed_note}{kept}. "
        "Lower train.learning_rate" + (f" or train.clip_norm={t.clip_norm}" if t.clip_norm
                                       else " or set train.clip_norm (e.g. 1.0)") + ".")

  def preempted(self, step) -> Preempted:
    if self.checkpointer is None:
      return Preempted(f"SIGTERM at step {step}: nothing was saved (train.checkpoint_every=0 "
                       "turns checkpoints off); the same command starts again from step 0")
    return Preempted(f"SIGTERM at step {step}: checkpoint saved in "
                     f"{self.checkpointer.directory}; run the same command to resume")


class DiagAction(actions.PeriodicAction):
  """Before the update of step s + 1 (recorded as s): the learner's update against BPTT's on the
  same batch, the spectral radius and the gradient-flow probe (`grad_flow.json`, `.png`)."""

  def __init__(self, run: _Run, start_step: int):
    super().__init__(run.t.diag_every, on_first=True)
    self.r, self.step_fn = run, make_diag_step(run.setup)
    self.path = paths.join(run.workdir, "grad_flow.json")
    self.records = []
    if start_step and paths.exists(self.path):
      self.records = [r for r in workdir_lib.read_json(self.path) if r["step"] < start_step]

  def run(self, step, *, state, batch, **_):
    r, setup = self.r, self.r.setup
    params0 = r.seed0(state.params)
    diag, flow = self.step_fn(params0, r.seed0(state.lparams),
                              batch if r.host_data else r.seed0(batch),
                              jax.random.fold_in(r.seed0(r.diag_key), step))
    diag = metrics_io.to_python(diag)
    matrix = setup.model.core.recurrent_matrix(params0["core"])
    if matrix is not None:
      diag["spectral_radius"] = diagnostics.spectral_radius(matrix)
    r.write(step - 1, "diag", diag)
    flow = metrics_io.to_python(flow)
    self.records.append({"step": step - 1, "distance": list(range(len(flow), 0, -1)),
                         "norm": flow})
    metrics_io.write_json(self.path, self.records)
    png = paths.join(r.workdir, "grad_flow.png")
    plotting.plot_gradient_flow(
        self.records[-8:], png, f"{setup.learner.name} on {setup.task.name} (T={setup.task.length})")
    r.writer.figure("grad_flow", step - 1, png)


class LogAction(actions.PeriodicAction):
  """The training metrics of the step (a `train` record), steps per second and the ETA."""

  def __init__(self, run: _Run, start_step: int):
    super().__init__(run.t.log_every, last_step=run.t.steps)
    self.r, self.last_time, self.last_step = run, time.time(), start_step

  def run(self, step, *, state, metrics, **_):
    r = self.r
    r.check_finite(state)
    metrics = _summary(metrics, r.num_seeds, r.diverged if r.diverged.any() else None)
    now = time.time()
    rate = (step - self.last_step) / max(now - self.last_time, 1e-9)
    self.last_time, self.last_step = now, step
    metrics["steps_per_sec"] = rate
    r.write(step, "train", metrics)
    eta = datetime.timedelta(seconds=int((r.t.steps - step) / max(rate, 1e-9)))
    logging.info("step %d/%d  %s  steps/s %.1f  ETA %s", step, r.t.steps, _format(metrics),
                 rate, eta)


class EvalAction(actions.PeriodicAction):
  """Validation metrics (an `eval` record) and, for cores with memory, the attention map."""

  def __init__(self, run: _Run):
    super().__init__(run.t.eval_every, last_step=run.t.steps)
    self.r = run

  def run(self, step, *, state, **_):
    r, setup = self.r, self.r.setup
    r.check_finite(state)  # a seed diverged since the last log is reported as NaN here too
    ev = r.evaluate(state.params, "validation", r.fold(r.eval_key, step), r.t.eval_batches)
    r.write(step, "eval", ev)
    logging.info("eval at step %d: %s", step, _format(ev))
    if r.chief and not r.host_data:  # cores with memory: SAB's attention map (Table 4, right)
      plotting.record_attention_map(setup.model, setup.task, r.seed0(state.params),
                                    jax.random.fold_in(r.seed0(r.eval_key), step), step,
                                    r.workdir)
      if setup.model.core.has_attention_map:
        r.writer.figure("attention_map", step, paths.join(r.workdir, "attention_map.png"))


class CheckpointAction(actions.PeriodicAction):
  """A checkpoint every `train.checkpoint_every` steps, at the end, and when preempted."""

  def __init__(self, run: _Run):
    super().__init__(run.t.checkpoint_every, last_step=run.t.steps)
    self.r = run

  def due(self, step, *, preempted=False, **context):
    return self.r.checkpointer is not None and (preempted or super().due(step))

  def run(self, step, *, state, **_):
    # A checkpoint is only ever written from a run without a bad step, or (train.on_nan=
    # "freeze_seed") with its diverged seeds recorded and frozen at their last finite state.
    self.r.check_finite(state)
    self.r.checkpointer.save(step, state)


def evaluate_checkpoint(train_config: ml_collections.ConfigDict,
                        eval_config: ml_collections.ConfigDict, workdir: str):
  """Tests the newest checkpoint of `train_config`'s run in `workdir` on `eval_config`'s
  evaluation task: evaluation only, nothing trained or written (SAB Table 6: trained at T=100,
  tested at T = 200 ... 5000 with `task.eval_length`).

  The test draws from the key an uninterrupted run's test uses, `eval_config`'s
  `train.test_batches` batches of its `train.eval_batch_size` (fewer at very long T), so at
  `task.eval_length = task.length` with the training run's sizes it is that run's own `test`
  record. `eval_config` must build the same parameters (the same model at another length).

  Returns:
    `(step, metrics)`: the checkpoint's step and the metrics as in a `test` record (with seeds:
    the mean, `KEY_std` and `KEY_seeds`; a diverged seed's values NaN); `(None, None)` when the
    run has no checkpoint yet.

  Raises:
    ConfigError: either config is invalid, or the evaluation task reads a dataset (synthetic
      tasks only).
  """
  setup, eval_setup = config_lib.build(train_config), config_lib.build(eval_config)
  if eval_setup.task.host_data:
    raise ConfigError(f"task.name={eval_config.task.name!r}: evaluate_checkpoint tests synthetic "
                      "tasks only; allowed: tasks that sample their own batches")
  t, n = train_config.train, train_config.get("num_seeds", 1)
  optimizer = make_optimizer(t, setup.learner, setup.task.sequence_length)
  init_key, _, _, test_key, _ = _stream_keys(train_config.seed, n)
  like = jax.jit(lambda k: create_train_state(setup, optimizer, k, t.batch_size, n))(init_key)
  step, state = checkpoint.read_latest(workdir, like)
  if state is None:
    return None, None
  diverged = np.asarray(state.bad_step).reshape(-1) >= 0
  te = eval_config.train
  eval_step = make_eval_step(eval_setup, te.eval_batch_size, n)
  metrics = evaluate(eval_step, state.params, test_key, max(1, te.test_batches))
  return step, _summary(metrics, n, diverged if diverged.any() else None)


def _initial_state(r: _Run, optimizer, mesh):
  """`(start_step, state)`: the newest checkpoint that restores, else a fresh state; the records
  written after it are dropped."""
  t, setup = r.t, r.setup
  state = jax.jit(lambda k: create_train_state(setup, optimizer, k, t.batch_size, r.num_seeds))(
      r.init_key)
  # Donation needs every leaf in its own buffer (initialisers may share one zeros array).
  state = jax.tree.map(jnp.array, state)
  if mesh is not None:
    distributed.barrier("tca_jax_state")
    state = jax.device_put(state, distributed.replicated(mesh))
  n_params = sum(x.size for x in jax.tree.leaves(state.params)) // r.num_seeds
  logging.info("task %s (T=%d, %d steps/sample), %s(%d) with %d parameters, learner %s, "
               "%d seed(s), %d device(s)", setup.task.name, setup.task.length,
               setup.task.sequence_length, type(setup.model.core).__name__,
               r.config.model.hidden_size, n_params, setup.learner, r.num_seeds,
               jax.device_count())
  start_step = 0
  if r.checkpointer is not None:
    restored_step, restored = r.checkpointer.restore_latest(state)
    if restored is not None:
      start_step, state = restored_step, restored
      r.resumed(state)
  if r.chief:  # from a checkpoint: what the run had then; from scratch: none of an earlier try's
    checkpoint.truncate_records(paths.join(r.workdir, "metrics.jsonl"), start_step)
  return start_step, state


def _batches(r: _Run, start_step: int, mesh):
  """`next_batch(step, state) -> (state, batch, update_key)`: dataset tasks stream numpy batches
  from the host (from where an uninterrupted run would be; the skipped ones are not read) and
  reset a carried state at a new stream; synthetic tasks are sampled on the device."""
  t, task, model, learner = r.t, r.setup.task, r.setup.model, r.setup.learner
  local_batch = t.batch_size // jax.process_count()
  if r.host_data:
    stream = task.train_batches(r.config.seed, local_batch, start=start_step)
  else:
    sample = jax.jit(jax.vmap(task.sample, (0, None, None)) if r.num_seeds > 1 else task.sample,
                     static_argnums=(1, 2))

  def next_batch(step, state):
    keys = r.split(r.fold(r.train_key, step))
    k_batch, k_update = keys[..., 0, :], keys[..., 1, :]
    if r.host_data:
      batch, reset = next(stream)
      if reset and task.carries_state:  # a new stream (an epoch): start from a fresh state
        state = state._replace(lstate=jax.tree.map(jnp.array, r.per_seed(
            lambda p: learner.init_state(model, p, t.batch_size), state.params)))
    else:
      length = task.draw_length(jax.random.fold_in(r.seed0(k_batch), 1))
      batch = sample(distributed.process_key(k_batch), local_batch, length)
    batch = distributed.place(batch, mesh, seed_axis=r.num_seeds > 1 and not r.host_data)
    return state, batch, k_update

  return next_batch


@contextlib.contextmanager
def _sigterm_flag():
  """A list that gets an element when SIGTERM arrives (only the main thread can listen)."""
  flag, previous = [], None
  if threading.current_thread() is threading.main_thread():
    previous = signal.signal(signal.SIGTERM, lambda *_: flag.append(True))
  try:
    yield flag
  finally:
    if previous is not None:
      signal.signal(signal.SIGTERM, previous)


def _train_and_evaluate(config, workdir: str, setup: config_lib.Setup):
  t = config.train
  mesh = distributed.data_mesh(t.batch_size) if t.get("data_parallel", True) else None
  _check_resumable(workdir, config)
  r = _Run(config, workdir, setup)
  paths.makedirs(workdir)
  if r.chief:
    metrics_io.write_json(paths.join(workdir, "config.json"), config.to_dict())
    setup.task.write_artifacts(workdir)  # what else reproduces the run (pmnist's permutation)
  optimizer = make_optimizer(t, setup.learner, setup.task.sequence_length)
  r.checkpointer = checkpoint.Checkpointer(workdir) if t.checkpoint_every else None
  start_step, state = _initial_state(r, optimizer, mesh)
  next_batch = _batches(r, start_step, mesh)
  train_step = make_train_step(setup, optimizer, r.num_seeds, per_seed_batches=not r.host_data)
  before = [DiagAction(r, start_step)] if t.diag_every and r.chief else []
  start = time.time()
  after = [LogAction(r, start_step), EvalAction(r), CheckpointAction(r)]
  with _sigterm_flag() as preempted:
    try:
      for step in range(start_step + 1, t.steps + 1):
        state, batch, k_update = next_batch(step, state)
        for action in before:
          action(step, state=state, batch=batch)
        state, metrics = train_step(state, batch, k_update)
        for action in after:
          action(step, state=state, metrics=metrics, preempted=bool(preempted))
        if preempted:
          raise r.preempted(step)
    finally:
      if r.checkpointer is not None:
        r.checkpointer.close()
  test = r.evaluate(state.params, "test", r.test_key,
                    t.test_batches if r.host_data else max(1, t.test_batches))
  r.write(t.steps, "test", test)
  if r.writer is not None:
    r.writer.close()
  test["wall_s"] = time.time() - start
  logging.info("test after %d steps: %s (%.1fs)", t.steps, _format(test), test["wall_s"])
  return test
