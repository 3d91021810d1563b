"""The TPTT paper's experimental protocol (Manchev & Spratling 2020, sec. 3.1), for any learner.

* `train_until_solved`: train at one T for up to `max_iters` iterations (batch `train.batch_size`,
  20 in the paper), validating every `validate_every` (100) iterations on `val_samples` (10,000)
  fresh samples; the run is solved when the validation error rate (mistakes / `val_samples`,
  counted exactly from the task's accuracy, the fraction of sequences right) is below
  `target_error` (1e-4, i.e. no mistake in 10,000), and aborted as a failure when the
  spectral radius of the recurrent matrix `W_hh` or of TPTT's inverse `V_hh` exceeds
  `max_radius` (20) or the loss stops being finite. Returns the iterations to solve (Table 2).
* `curriculum`: T = `start_length` (10), then + `length_step` (10) while solved; `t_max` is the
  largest T solved (Table 1). Every T starts from a fresh initialisation with the same seed (the
  paper tunes the learning rates per T, so we read it as independent runs).
* `generalisation`: train at `train_length` (100) as above, then measure the accuracy on
  `val_samples` sequences of `test_length` (200) (Table 4).

It reuses the trainer's pieces (`train.make_optimizer`, `train.make_train_step`,
`train.make_eval_step`, `train.evaluate`); the only addition is a `lax.scan` that runs the
`validate_every` iterations between two validations (sampling included) in one call, which is
what makes the protocol affordable on a CPU. The radius is checked at every validation.

`init_std` (default 0.1) re-draws the input and readout weights from N(0, init_std) as the paper
does ("all synaptic weights sampled from N(0, 0.1)", the recurrent matrix orthogonal); None keeps
the model's own initialisers. `init="orthogonal"` draws them (semi-)orthogonal instead, as the
authors' release does (its "tanh-randorth" init; `init_std` is then unused).

The release's protocol (nmanchev/tptt `RNN_dtp.py`) also validates on 10 fresh batches of 1,000
every 100 iterations (as here: every validation draws fresh samples) and stops a run after
`patience` validations without a new best error (300 there; 0 = no patience stop here, the
text's protocol). A task with several lengths (`adding_pascanu` jittered) gets one length per
training batch and per validation batch, drawn uniformly, as the release's generator does; the
jitted step picks its branch with `lax.switch` (one compiled branch per length).
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import time
from typing import Any, Callable, NamedTuple, Optional, Sequence

from absl import logging
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from tca_jax import config as config_lib
from tca_jax import diagnostics, metrics_io, train
from tca_jax.cells import initializers
from tca_jax.learners.tptt import TPTT
from tca_jax.registry import ConfigError


@dataclasses.dataclass(frozen=True)
class Protocol:
  """The protocol's constants; defaults are the paper's."""

  max_iters: int = 100_000
  validate_every: int = 100
  val_samples: int = 10_000
  val_batch_size: int = 1000
  target_error: float = 1e-4
  max_radius: float = 20.0
  start_length: int = 10
  length_step: int = 10
  max_length: int = 0  # 0 = no limit
  train_length: int = 100
  test_length: int = 200
  init_std: Optional[float] = 0.1
  init: str = "normal"  # "normal" (N(0, init_std)) | "orthogonal" (the release)
  patience: int = 0  # stop after this many validations without a new best; 0 = never

  def __post_init__(self):
    for field in ("max_iters", "validate_every", "val_samples", "val_batch_size", "start_length",
                  "length_step", "train_length", "test_length"):
      v = getattr(self, field)
      if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
        raise ConfigError(f"protocol.{field}={v!r} must be a positive integer")
    if self.max_iters % self.validate_every:
      raise ConfigError(f"protocol.max_iters={self.max_iters} must be a multiple of "
                        f"protocol.validate_every={self.validate_every}")
    if self.val_samples % self.val_batch_size:
      raise ConfigError(f"protocol.val_samples={self.val_samples} must be a multiple of "
                        f"protocol.val_batch_size={self.val_batch_size}")
    if not isinstance(self.max_length, int) or self.max_length < 0:
      raise ConfigError(f"protocol.max_length={self.max_length!r} must be an integer >= 0")
    if self.init_std is not None and self.init_std <= 0:
      raise ConfigError(f"protocol.init_std={self.init_std!r} must be positive or None")
    if self.init not in ("normal", "orthogonal"):
      raise ConfigError(f"protocol.init={self.init!r} is not allowed; allowed: normal, orthogonal")
    if not isinstance(self.patience, int) or isinstance(self.patience, bool) or self.patience < 0:
      raise ConfigError(f"protocol.patience={self.patience!r} must be an integer >= 0")


def protocol_from_config(config: ml_collections.ConfigDict) -> Protocol:
  """`Protocol(**config.protocol)`; unknown fields raise `ConfigError`."""
  section = dict(config.get("protocol", {}))
  section.pop("mode", None)
  names = {f.name for f in dataclasses.fields(Protocol)}
  unknown = sorted(set(section) - names)
  if unknown:
    raise ConfigError(f"protocol.{unknown[0]} is not a protocol field; fields: "
                      f"{', '.join(sorted(names))}")
  return Protocol(**section)


def with_length(config, length, eval_length=None):
  """`config` at `task.length = length` (and `task.eval_length`): what one protocol run builds."""
  c = copy.deepcopy(config)
  with c.unlocked():
    c.task.length = length
    c.task.eval_length = eval_length
    c.train.steps = max(c.train.steps, 1)
  return c


def _init_params(setup, key, init_std, init="normal"):
  params = setup.model.init(key, setup.task.input_size)
  if init_std is None and init == "normal":
    return params
  k_in, k_out = jax.random.split(jax.random.fold_in(key, 1))

  def draw(k, a):
    if init == "orthogonal":
      return initializers.orthogonal(k, a.shape).astype(a.dtype)
    return init_std * jax.random.normal(k, a.shape, a.dtype)

  core = dict(params["core"])
  for name in ("W_xh", "W_x"):
    if name in core:
      core[name] = draw(k_in, core[name])
  readout = dict(params["readout"])
  readout["W"] = draw(k_out, readout["W"])
  return {**params, "core": core, "readout": readout}


def _radii(setup, params, lparams):
  out = {}
  matrix = setup.model.core.recurrent_matrix(params["core"])
  if matrix is not None:
    out["radius_W_hh"] = diagnostics.spectral_radius(matrix)
  if isinstance(lparams, dict) and "V_hh" in lparams:
    out["radius_V_hh"] = diagnostics.spectral_radius(lparams["V_hh"])
  return out


class Runner(NamedTuple):
  """One protocol run at one T, compiled: what `train_until_solved` loops over.

  Attributes:
    setup: the built config (`config.Setup`).
    state: the `train.TrainState` after initialisation.
    period: `period(state, start) -> (state, metrics, val)`, jitted: the `validate_every`
      iterations `start, ..., start + validate_every - 1` (a `lax.scan` over iterations, batches
      sampled inside) and then the validation on `val_samples` fresh samples drawn from
      `fold_in(val_key, start + validate_every)`, in one call. `metrics` are the iterations'
      means; `val` the validation means over the `val_samples // val_batch_size` batches, summed
      in batch order and divided as `train.evaluate` does, so the numbers are those of the
      host-side loop it replaces.
    test: `test(params) -> metrics` on `val_samples` sequences of `eval_length`, or None.
  """

  setup: Any
  state: Any
  period: Callable
  test: Optional[Callable]


def build_runner(config: ml_collections.ConfigDict, protocol: Protocol, length: int, *,
                 eval_length: Optional[int] = None, seed: Optional[int] = None) -> Runner:
  """Builds (does not run) one protocol run at `task.length = length`; see `Runner`.

  One jitted call per validation period: on a CPU a TPTT iteration (SRN(100), batch 20) is a
  few hundred microseconds of arithmetic, so host round-trips per iteration or per validation
  batch would cost as much as the work (docs/PERFORMANCE.md, "TPTT protocol").
  """
  cfg = with_length(config, length, eval_length)
  setup = config_lib.build(cfg)
  task, learner = setup.task, setup.learner
  t = cfg.train
  root = jax.random.PRNGKey(config.seed if seed is None else seed)
  init_key, train_key, val_key, test_key = jax.random.split(root, 4)
  optimizer = train.make_optimizer(t, learner, task.sequence_length)
  state = train.create_train_state(
      setup, optimizer, init_key, t.batch_size,
      init_params=lambda k: _init_params(setup, k, protocol.init_std, protocol.init))
  state = jax.tree.map(jnp.array, state)
  train_step = train.make_train_step(setup, optimizer)
  lengths = task.length_choices()
  if len(lengths) > 1 and isinstance(learner, TPTT) and learner.log_local_losses:
    # Per-step metrics have one key per step: the lengths' branches would disagree.
    raise ConfigError("learner.log_local_losses=True needs one sequence length; the task "
                      f"{task.name!r} jitters it (set task.jitter=False)")
  if len(lengths) == 1:
    val_step = train.make_eval_step(dataclasses.replace(setup, eval_task=task),
                                    protocol.val_batch_size)
  else:
    val_step = _jittered_eval_step(setup, protocol.val_batch_size, lengths)
  n_val = protocol.val_samples // protocol.val_batch_size

  def one(state, key):
    k_batch, k_update = jax.random.split(key)
    if len(lengths) == 1:
      return train_step(state, task.sample(k_batch, t.batch_size), k_update)

    def at(n, st):
      return train_step(st, task.sample(k_batch, t.batch_size, n), k_update)

    branches = [functools.partial(at, n) for n in lengths]
    return jax.lax.switch(_length_index(k_batch, len(lengths)), branches, state)

  def validate(params, key):
    results = jax.lax.map(lambda i: val_step(params, jax.random.fold_in(key, i)),
                          jnp.arange(n_val))
    # `train.evaluate`'s arithmetic: batch 0 + batch 1 + ... in order, then / n.
    out = {}
    for k, v in results.items():
      total = v[0]
      for i in range(1, n_val):
        total = total + v[i]
      out[k] = total / n_val
    return out

  @jax.jit
  def period(state, start):
    keys = jax.vmap(lambda i: jax.random.fold_in(train_key, i))(
        start + jnp.arange(protocol.validate_every))
    state, metrics = jax.lax.scan(one, state, keys)
    val = validate(state.params, jax.random.fold_in(val_key, start + protocol.validate_every))
    return state, jax.tree.map(jnp.mean, metrics), val

  test = None
  if eval_length is not None:
    test_step = train.make_eval_step(setup, protocol.val_batch_size)  # setup.eval_task: T'
    test = lambda params: train.evaluate(test_step, params, test_key, n_val)
  return Runner(setup, state, period, test)


def train_until_solved(config: ml_collections.ConfigDict, protocol: Protocol, length: int, *,
                       eval_length: Optional[int] = None, writer=None, seed: Optional[int] = None):
  """Trains at `task.length = length` until solved, failed or `max_iters`.

  Args:
    config: an experiment config (`experiments/configs/tptt.py`); `task.length` is replaced.
    protocol: the protocol constants.
    length: T.
    eval_length: if set, also test the final parameters on `val_samples` sequences of this
      length (the generalisation experiment).
    writer: optional `metrics_io.MetricsWriter`; records carry `"length": T`.
    seed: overrides `config.seed`.

  Returns:
    A dict: `length`, `solved`, `iterations` (to solve, else None), `reason` ("solved",
    "max_iters", "radius", "non-finite" or "patience"), `val_error`, `wall_s`, `history` (one dict per
    validation) and, with `eval_length`, `test_accuracy`.
  """
  runner = build_runner(config, protocol, length, eval_length=eval_length, seed=seed)
  setup, state, learner = runner.setup, runner.state, runner.setup.learner
  history, result = [], None
  best, since_best = np.inf, 0
  start_time = time.time()
  for it in range(protocol.validate_every, protocol.max_iters + 1, protocol.validate_every):
    state, metrics, val = runner.period(state, it - protocol.validate_every)
    record = {"length": length, **metrics_io.to_python(metrics)}
    if int(state.bad_step) >= 0:
      result = ("non-finite", it)
    else:
      val = metrics_io.to_python(val)
      record.update({f"val_{k}": v for k, v in val.items()})
      # Count the mistakes: 1 in 10,000 is an error rate of 1e-4, not "below 1e-4" after a
      # float32 mean rounds it down.
      errors = int(round((1.0 - val["accuracy"]) * protocol.val_samples))
      record["val_errors"] = errors
      record["val_error"] = errors / protocol.val_samples
      record.update(_radii(setup, state.params, state.lparams))
      since_best = 0 if record["val_error"] < best else since_best + 1
      best = min(best, record["val_error"])
      if record["val_error"] < protocol.target_error:
        result = ("solved", it)
      elif max(record.get("radius_W_hh", 0.0), record.get("radius_V_hh", 0.0)) > \
          protocol.max_radius:
        result = ("radius", it)
      elif protocol.patience and since_best >= protocol.patience:
        result = ("patience", it)
    record["iteration"] = it
    history.append(record)
    if writer is not None:
      writer.write(it, "train", record)
    if it % (10 * protocol.validate_every) == 0 or result is not None:
      logging.info("T=%d it %d: loss %.4g val_error %s", length, it, record.get("loss", np.nan),
                   record.get("val_error"))
    if result is not None:
      break
  reason, it = result if result is not None else ("max_iters", protocol.max_iters)
  out = {
      "length": length,
      "learner": learner.name,
      "solved": reason == "solved",
      "iterations": it if reason == "solved" else None,
      "reason": reason,
      "stopped_at": it,
      "val_error": history[-1].get("val_error"),
      "wall_s": time.time() - start_time,
      "history": history,
  }
  if eval_length is not None:
    test = runner.test(state.params)
    out["test_length"] = eval_length
    out["test_accuracy"] = test["accuracy"]
    if writer is not None:
      writer.write(it, "test", {"length": eval_length, "train_length": length, **test})
  logging.info("T=%d: %s after %d iterations (val error %s)", length, reason, it,
               out["val_error"])
  return out


def _length_index(key, n: int):
  """Which of `n` equally likely lengths a batch drawn from `key` has."""
  return jax.random.randint(jax.random.fold_in(key, 1), (), 0, n)


def _jittered_eval_step(setup, batch_size: int, lengths: tuple):
  """`eval_step(params, key) -> metrics` on a fresh batch whose length is drawn from `lengths`
  (`train.make_eval_step` with the length drawn per batch)."""
  task, model = setup.task, setup.model

  def at(n, params, key):
    batch = task.sample(key, batch_size, n)
    dtype = jax.tree.leaves(params)[0].dtype
    _, outputs = model.unroll(params, model.initial_state(batch_size, dtype), batch.inputs)
    return task.metrics(outputs, batch)

  def eval_step(params, key):
    branches = [functools.partial(at, n) for n in lengths]
    return jax.lax.switch(_length_index(key, len(lengths)), branches, params, key)

  return jax.jit(eval_step)


def curriculum(config: ml_collections.ConfigDict, protocol: Protocol, writer=None,
               done: Sequence[dict] = (), on_run: Optional[Callable[[dict], None]] = None):
  """T = start, start + step, ... while solved. Returns `{"t_max", "runs": [per-T results]}`.

  Every T's run starts from its own fresh draw of `config.seed` (nothing carries from one T to
  the next), so an interrupted curriculum resumes exactly at T granularity: `done` holds the
  results of the lengths already finished (`start`, `start + step`, ... in order) and the
  curriculum goes on after the last. `on_run(run)` is called as each T finishes (the binary
  saves it, so a killed protocol loses at most the T it was training).
  """
  runs = list(done)
  for i, run in enumerate(runs):
    if run["length"] != protocol.start_length + i * protocol.length_step:
      raise ValueError(f"the finished runs are not T = {protocol.start_length}, "
                       f"{protocol.start_length + protocol.length_step}, ...: "
                       f"{[r['length'] for r in runs]}")

  def finished(run):
    return not run["solved"] or bool(protocol.max_length and run["length"] >= protocol.max_length)

  while not (runs and finished(runs[-1])):
    length = runs[-1]["length"] + protocol.length_step if runs else protocol.start_length
    run = train_until_solved(config, protocol, length, writer=writer)
    runs.append(run)
    if on_run is not None:
      on_run(run)
  solved = [r["length"] for r in runs if r["solved"]]
  return {"t_max": max(solved) if solved else 0, "runs": runs}


def generalisation(config: ml_collections.ConfigDict, protocol: Protocol, writer=None):
  """Train at `train_length` (until solved or `max_iters`), test at `test_length` (Table 4)."""
  return train_until_solved(config, protocol, protocol.train_length,
                            eval_length=protocol.test_length, writer=writer)
