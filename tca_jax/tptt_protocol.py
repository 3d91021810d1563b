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

With `validation="early_exit"` (the default) a validation stops after the first of its batches
at which its mistakes already decide that the run is not solved (with `patience`: nor a new
best); the stops, hence Tables 1 and 2, are those of the full validation (`"full"`), and a cut
validation's records cover the samples it checked (`val_samples_checked`; `_Tracker.record`).
While a run is far from solved a validation is then one batch instead of ten
(docs/PERFORMANCE.md, "TPTT protocol: the validation's early exit").

It reuses the trainer's pieces (`train.make_optimizer`, `train.make_train_step`,
`train.make_eval_step`, `train.evaluate`); the only addition is a `lax.scan` that runs the
`validate_every` iterations between two validations (sampling included) in one call, which is
what makes the protocol affordable on a CPU. The radius is checked at every validation.

`init_std` (default 0.1) re-draws the input and readout weights from N(0, init_std) as the paper
does ("all synaptic weights sampled from N(0, 0.1)", the recurrent matrix orthogonal); None keeps
the model's own initialisers. `init="orthogonal"` draws them (semi-)orthogonal instead, as the
authors' release does (its "tanh-randorth" init; `init_std` is then unused).

Several seeds: `train_until_solved`, `curriculum` and `generalisation` take `seeds=(s0, s1, ...)`
and run them side by side in one jitted call per period (`build_runner(seed=seeds)`), each seed
with its own initialisation, data, validation and stop; a stopped seed leaves the batch. Seed s's
result is the single run's with seed s (bit for bit with `batching="loop"`, the CPU default).

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
from typing import Any, Callable, Mapping, NamedTuple, Optional, Sequence

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


VALIDATIONS = ("early_exit", "full")


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
  # "early_exit": stop a validation as soon as its mistakes decide that the run is not solved
  # (and, with patience, sets no new best); "full": every validation checks all `val_samples`.
  # The stops are the same either way (see `build_runner`); only the records of the cut
  # validations differ (they cover the samples checked).
  validation: str = "early_exit"

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
    if self.validation not in VALIDATIONS:
      raise ConfigError(f"protocol.validation={self.validation!r} is not allowed; allowed: "
                        f"{', '.join(VALIDATIONS)}")

  def unsolved_errors(self) -> int:
    """The fewest validation mistakes that leave a run unsolved: the least integer e with
    `e / val_samples >= target_error` (1 for the paper's 1e-4 on 10,000 samples)."""
    e = max(0, int(np.ceil(self.target_error * self.val_samples)) - 2)
    while e <= self.val_samples and e / self.val_samples < self.target_error:
      e += 1
    return e


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
    state: the `train.TrainState` after initialisation; with seeds (`build_runner(seed=(s, ...))`)
      every leaf has a leading seed axis, seed i's slice being the single run's initial state.
    period: jitted. One seed: `period(state, start) -> (state, metrics, val)`, the
      `validate_every` iterations `start, ..., start + validate_every - 1` (a `lax.scan` over
      iterations, batches sampled inside) and then the validation on `val_samples` fresh samples
      drawn from `fold_in(val_key, start + validate_every)`, in one call. `metrics` are the
      iterations' means; `val` the validation means over the `val_samples // val_batch_size`
      batches, summed in batch order and divided as `train.evaluate` does, so the numbers are
      those of the host-side loop it replaces, and `val["samples_checked"]`.
      `period(state, start, limit)` (int32 `limit`): the early-exit validation, the same
      batches in the same order up to the first at which the mistakes so far (`(1 - accuracy)
      * val_batch_size` a batch) reach `limit`; `val` holds the means over the batches checked. With seeds: `period(state, start, keys, active)`,
      the same per seed (vmapped or side by side: `build_runner`'s `batching`): `keys`
      `[S, 4, 2]` (rows of `Runner.keys`), `active` `[S]` bool, optional `limits` `[S]` int32
      (each seed's early-exit limit; None: full validations); an inactive seed's state comes
      back unchanged (its params, optimizer state and step exactly as passed), and every output
      has the leading `[S]` axis. `S` may be any subset of
      the runner's seeds (a smaller batch compiles once more).
    test: `test(params, key=None) -> metrics` on `val_samples` sequences of `eval_length` drawn
      from `key` (default: the single run's test key; with seeds pass `keys[i, 3]`), or None.
    keys: with seeds, `[S, 4, 2]`: seed i's (init, train, val, test) keys, those of the single
      run with that seed; None for one seed.
  """

  setup: Any
  state: Any
  period: Callable
  test: Optional[Callable]
  keys: Any = None


def _seed_tuple(seeds) -> tuple:
  """`seeds` as a tuple of distinct ints, or a `ConfigError`."""
  seeds = tuple(seeds)
  if not seeds or any(isinstance(s, bool) or not isinstance(s, (int, np.integer)) for s in seeds):
    raise ConfigError(f"seeds={seeds!r} must be a non-empty sequence of integers")
  if len(set(seeds)) != len(seeds):
    raise ConfigError(f"seeds={seeds!r} has a repeated seed")
  return tuple(int(s) for s in seeds)


def build_runner(config: ml_collections.ConfigDict, protocol: Protocol, length: int, *,
                 eval_length: Optional[int] = None, seed=None,
                 batching: Optional[str] = None) -> Runner:
  """Builds (does not run) one protocol run at `task.length = length`; see `Runner`.

  One jitted call per validation period: on a CPU a TPTT iteration (SRN(100), batch 20) is a
  few hundred microseconds of arithmetic, so host round-trips per iteration or per validation
  batch would cost as much as the work (docs/PERFORMANCE.md, "TPTT protocol").

  Args:
    config, protocol, length, eval_length: as `train_until_solved`.
    seed: an int (default `config.seed`): one run, unbatched state. A sequence of ints: that many
      independent runs in one jitted computation (leading seed axis), seed i initialised and fed
      exactly as the single run with seed `seeds[i]`.
    batching: how several seeds share the period: "vmap" (one batched computation) or "loop"
      (each seed's unbatched computation, side by side in the same jitted call); None: "loop"
      on a CPU, where XLA's batched reductions change the last bits and the vmapped period
      costs more than the seeds side by side (docs/PERFORMANCE.md, "TPTT protocol: several
      seeds in one call"), "vmap" on an accelerator. "loop" is bit for bit the single runs.
  """
  if batching is None:
    batching = "loop" if jax.default_backend() == "cpu" else "vmap"
  if batching not in ("vmap", "loop"):
    raise ConfigError(f"batching={batching!r} is not allowed; allowed: vmap, loop")
  cfg = with_length(config, length, eval_length)
  setup = config_lib.build(cfg)
  task, learner = setup.task, setup.learner
  t = cfg.train
  seeds = None if seed is None or isinstance(seed, (int, np.integer)) else _seed_tuple(seed)
  optimizer = train.make_optimizer(t, learner, task.sequence_length)

  def init_state(init_key):
    state = train.create_train_state(
        setup, optimizer, init_key, t.batch_size,
        init_params=lambda k: _init_params(setup, k, protocol.init_std, protocol.init))
    return jax.tree.map(jnp.array, state)

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
    out["samples_checked"] = jnp.asarray(protocol.val_samples, jnp.int32)
    return out

  def validate_until(params, key, limit):
    """`validate`'s batches in the same order, stopping after the first batch at which the
    mistakes so far reach `limit` (at least one batch is checked); the means are over the
    batches checked. The mistakes of a batch are `(1 - accuracy) * val_batch_size` (what the host
    counts); a margin of 0.25 mistake below `limit` covers the float sums, so a stop here means
    that the full validation's rounded count is >= `limit` too (mistakes only add up)."""
    def wrong(m):
      return (1 - m["accuracy"]) * protocol.val_batch_size

    def cond(carry):
      i, _, mistakes = carry
      return (i < n_val) & (mistakes < limit.astype(mistakes.dtype) - 0.25)

    def body(carry):
      i, total, mistakes = carry
      m = val_step(params, jax.random.fold_in(key, i))
      return i + 1, jax.tree.map(jnp.add, total, m), mistakes + wrong(m)

    first = val_step(params, jax.random.fold_in(key, 0))
    n, total, _ = jax.lax.while_loop(cond, body, (jnp.asarray(1, jnp.int32), first, wrong(first)))
    out = {k: v / n.astype(v.dtype) for k, v in total.items()}
    out["samples_checked"] = n * protocol.val_batch_size
    return out

  def seed_period(state, start, train_key, val_key, limit=None):
    keys = jax.vmap(lambda i: jax.random.fold_in(train_key, i))(
        start + jnp.arange(protocol.validate_every))
    state, metrics = jax.lax.scan(one, state, keys)
    key = jax.random.fold_in(val_key, start + protocol.validate_every)
    if limit is None:
      val = validate(state.params, key)
    else:
      val = validate_until(state.params, key, jnp.asarray(limit, jnp.int32))
    return state, jax.tree.map(jnp.mean, metrics), val

  test_step = None
  if eval_length is not None:
    test_step = train.make_eval_step(setup, protocol.val_batch_size)  # setup.eval_task: T'

  if seeds is None:
    root = jax.random.PRNGKey(config.seed if seed is None else int(seed))
    init_key, train_key, val_key, test_key = jax.random.split(root, 4)
    period = jax.jit(lambda state, start, limit=None:
                     seed_period(state, start, train_key, val_key, limit))
    test = None
    if test_step is not None:
      test = lambda params, key=test_key: train.evaluate(test_step, params, key, n_val)
    return Runner(setup, init_state(init_key), period, test)

  # Each seed's keys and initial state as the single run draws them (eagerly, one by one: the
  # same ops on the same keys), stacked on a leading seed axis.
  keys = jnp.stack([jax.random.split(jax.random.PRNGKey(s), 4) for s in seeds])
  state = _stack([init_state(keys[i, 0]) for i in range(len(seeds))])

  @jax.jit
  def period(state, start, keys, active, limits=None):
    if keys.shape[0] == 1 or batching == "loop":
      # Each seed's own unbatched computation (also for one seed: no size-1 batch dimension
      # for XLA to treat differently), so a seed's numbers are its single run's.
      new, metrics, val = _stack([
          seed_period(_index(state, i), start, keys[i, 1], keys[i, 2],
                      None if limits is None else limits[i])
          for i in range(keys.shape[0])])
    elif limits is None:
      new, metrics, val = jax.vmap(seed_period, in_axes=(0, None, 0, 0))(
          state, start, keys[:, 1], keys[:, 2])
    else:
      new, metrics, val = jax.vmap(seed_period, in_axes=(0, None, 0, 0, 0))(
          state, start, keys[:, 1], keys[:, 2], limits)
    # A stopped seed keeps its state exactly: the period's work on it is discarded.
    new = jax.tree.map(
        lambda n, o: jnp.where(active.reshape(active.shape + (1,) * (n.ndim - 1)), n, o),
        new, state)
    return new, metrics, val

  test = None
  if test_step is not None:
    test = lambda params, key: train.evaluate(test_step, params, key, n_val)
  return Runner(setup, state, period, test, keys)


def _stack(trees):
  return jax.tree.map(lambda *xs: jnp.stack(xs), *trees)


def _index(tree, i):
  return jax.tree.map(lambda x: x[i], tree)


class _Tracker:
  """One seed's host-side bookkeeping in `train_until_solved`: its history and stop rule."""

  def __init__(self, seed, writer):
    self.seed, self.writer = seed, writer
    self.history, self.result = [], None
    self.best, self.since_best = np.inf, 0
    self.best_errors = None  # the mistakes of the best (full) validation so far

  def limit(self, protocol) -> int:
    """The mistakes at which this seed's next validation may stop (`protocol.validation=
    "early_exit"`): as many as leave the run unsolved, and with a patience stop also as many as
    the best validation so far (fewer would be a new best; before any validation, no stop)."""
    limit = protocol.unsolved_errors()
    if protocol.patience:
      best = protocol.val_samples + 1 if self.best_errors is None else self.best_errors
      limit = max(limit, best)
    return limit

  def record(self, protocol, setup, length, it, metrics, val, bad_step, params, lparams):
    """Appends the validation at iteration `it` (this seed's host values) and decides the stop.

    A validation cut short (`val_samples_checked < val_samples`, early exit) reached its limit
    of mistakes, so the full validation would have had at least as many: not solved and no new
    best, as the full one decides. Its `val_errors` are the mistakes among the samples checked
    and `val_error` their rate (`val_errors / val_samples_checked`), `val_accuracy` and
    `val_loss` the means over the batches checked.
    """
    record = {"length": length, **metrics_io.to_python(metrics)}
    if int(bad_step) >= 0:
      self.result = ("non-finite", it)
    else:
      val = metrics_io.to_python(val)
      record.update({f"val_{k}": v for k, v in val.items()})
      checked = int(val.get("samples_checked", protocol.val_samples))
      complete = checked == protocol.val_samples
      # Count the mistakes: 1 in 10,000 is an error rate of 1e-4, not "below 1e-4" after a
      # float32 mean rounds it down.
      errors = int(round((1.0 - val["accuracy"]) * checked))
      record["val_errors"] = errors
      record["val_error"] = errors / checked
      record.update(_radii(setup, params, lparams))
      new_best = complete and record["val_error"] < self.best
      self.since_best = 0 if new_best else self.since_best + 1
      if new_best:
        self.best, self.best_errors = record["val_error"], errors
      if complete and record["val_error"] < protocol.target_error:
        self.result = ("solved", it)
      elif max(record.get("radius_W_hh", 0.0), record.get("radius_V_hh", 0.0)) > \
          protocol.max_radius:
        self.result = ("radius", it)
      elif protocol.patience and self.since_best >= protocol.patience:
        self.result = ("patience", it)
    record["iteration"] = it
    self.history.append(record)
    if self.writer is not None:
      self.writer.write(it, "train", record)
    if it % (10 * protocol.validate_every) == 0 or self.result is not None:
      logging.info("T=%d seed %d it %d: loss %.4g val_error %s", length, self.seed, it,
                   record.get("loss", np.nan), record.get("val_error"))


def _writer_for(writer, seed, tagged: bool):
  """Seed `seed`'s writer: `writer[seed]` from a mapping; a shared writer's records carry `seed`
  when `tagged` (the caller passed `seeds=`)."""
  if writer is None:
    return None
  if isinstance(writer, Mapping):
    return writer.get(seed)
  if not tagged:
    return writer

  class _Tagged:
    def write(self, step, split, metrics):
      return writer.write(step, split, {"seed": seed, **metrics})

  return _Tagged()


def train_until_solved(config: ml_collections.ConfigDict, protocol: Protocol, length: int, *,
                       eval_length: Optional[int] = None, writer=None, seed: Optional[int] = None,
                       seeds: Optional[Sequence[int]] = None,
                       on_run: Optional[Callable[[int, dict], None]] = None,
                       batching: Optional[str] = None):
  """Trains at `task.length = length` until solved, failed or `max_iters`.

  With `seeds`, the seeds are trained together in one jitted computation per validation
  period (`build_runner(seed=seeds)`); each keeps its own initialisation, data and
  validation stream, and stop rule. A seed that stops (solved, radius, non-finite, patience) is
  dropped from the batch from the next period on (the period recompiles once for the smaller
  batch), so it neither changes nor costs anything after its stop; the loop ends when every seed
  has stopped or at `max_iters`. Seed s's result equals `train_until_solved(..., seed=s)`'s, its
  history and final parameters included: bit for bit with `batching="loop"`, to rounding with
  "vmap" (tests/test_tptt_seeds.py).

  Args:
    config: an experiment config (`experiments/configs/tptt.py`); `task.length` is replaced.
    protocol: the protocol constants.
    length: T.
    eval_length: if set, also test the final parameters on `val_samples` sequences of this
      length (the generalisation experiment).
    writer: optional `metrics_io.MetricsWriter`; records carry `"length": T`. With `seeds`, a
      mapping seed -> writer, or one writer whose records also carry `"seed"`.
    seed: overrides `config.seed` (one run).
    seeds: several runs in one computation; exclusive with `seed`.
    on_run: with `seeds`, `on_run(seed, result)` is called as each seed stops (before the others
      finish), so a caller can save it.
    batching: "vmap", "loop" or None (by platform): see `build_runner`.

  Returns:
    A dict: `length`, `solved`, `iterations` (to solve, else None), `reason` ("solved",
    "max_iters", "radius", "non-finite" or "patience"), `stopped_at`, `val_error`, `wall_s`,
    `history` (one dict per validation) and, with `eval_length`, `test_accuracy`. With `seeds`,
    `{seed: that dict}` in the order of `seeds`.
  """
  if seeds is None:
    seed = config.seed if seed is None else seed
    return _train_seeds(config, protocol, length, (seed,), eval_length, writer, None,
                        tagged=False, batching=batching)[seed]
  if seed is not None:
    raise ValueError("pass seed= (one run) or seeds= (several), not both")
  return _train_seeds(config, protocol, length, _seed_tuple(seeds), eval_length, writer, on_run,
                      tagged=True, batching=batching)


def _train_seeds(config, protocol, length, seeds, eval_length, writer, on_run, tagged,
                 batching=None):
  """`train_until_solved` for a tuple of seeds: `{seed: result}`; `tagged`: a shared writer's
  records carry `seed`."""
  runner = build_runner(config, protocol, length, eval_length=eval_length, seed=seeds,
                        batching=batching)
  setup, learner = runner.setup, runner.setup.learner
  trackers = [_Tracker(s, _writer_for(writer, s, tagged)) for s in seeds]
  state, keys = runner.state, runner.keys
  live = list(range(len(seeds)))  # batch row -> index into `seeds`
  results = {}
  start_time = time.time()

  def finish(i, seed_state, reason, it):
    tr = trackers[i]
    out = {
        "length": length,
        "learner": learner.name,
        "solved": reason == "solved",
        "iterations": it if reason == "solved" else None,
        "reason": reason,
        "stopped_at": it,
        "val_error": tr.history[-1].get("val_error"),
        "wall_s": time.time() - start_time,
        "history": tr.history,
    }
    if eval_length is not None:
      test = runner.test(seed_state.params, runner.keys[i, 3])
      out["test_length"] = eval_length
      out["test_accuracy"] = test["accuracy"]
      if tr.writer is not None:
        tr.writer.write(it, "test", {"length": eval_length, "train_length": length, **test})
    logging.info("T=%d seed %d: %s after %d iterations (val error %s)", length, tr.seed, reason,
                 it, out["val_error"])
    results[tr.seed] = out
    if on_run is not None:
      on_run(tr.seed, out)

  for it in range(protocol.validate_every, protocol.max_iters + 1, protocol.validate_every):
    active = jnp.ones((len(live),), bool)
    limits = None
    if protocol.validation == "early_exit":
      limits = jnp.asarray([trackers[i].limit(protocol) for i in live], jnp.int32)
    state, metrics, val = runner.period(state, it - protocol.validate_every, keys, active, limits)
    metrics, val = jax.device_get((metrics, val))
    host = jax.device_get(state)
    stopped = []
    for row, i in enumerate(live):
      seed_state = _index(host, row)
      trackers[i].record(protocol, setup, length, it, _index(metrics, row), _index(val, row),
                         seed_state.bad_step, seed_state.params, seed_state.lparams)
      if trackers[i].result is not None:
        finish(i, seed_state, *trackers[i].result)
        stopped.append(row)
    if stopped:
      keep = [row for row in range(len(live)) if row not in stopped]
      if not keep:
        break
      # Drop the stopped seeds: the next period compiles for the smaller batch.
      index = np.asarray(keep)
      state = jax.tree.map(lambda x: x[index], state)
      keys = keys[index]
      live = [live[row] for row in keep]
  else:
    host = jax.device_get(state)
    for row, i in enumerate(live):
      finish(i, _index(host, row), "max_iters", protocol.max_iters)
  return {s: results[s] for s in seeds}


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
               done=(), on_run: Optional[Callable] = None, *,
               seeds: Optional[Sequence[int]] = None, batching: Optional[str] = None):
  """T = start, start + step, ... while solved. Returns `{"t_max", "runs": [per-T results]}`.

  Every T's run starts from its own fresh draw of the seed (nothing carries from one T to the
  next), so an interrupted curriculum resumes exactly at T granularity: `done` holds the results
  of the lengths already finished (`start`, `start + step`, ... in order) and the curriculum goes
  on after the last. `on_run(run)` is called as each T finishes (the binary saves it, so a killed
  protocol loses at most the T it was training).

  With `seeds` (several independent curricula): the seeds advance through T together, each
  T's remaining seeds trained in one computation (`train_until_solved(seeds=...)`); a seed
  that fails a T (or reaches `max_length`) leaves, its `t_max` fixed, and the next T runs the
  others. `done` is then `{seed: [its finished runs]}` (seeds missing start at `start_length`);
  seeds resumed at different T are run lowest T first and join the others when they meet.
  `on_run(seed, run)` is called as each seed's T finishes. Seed s's curriculum equals the
  single-seed curriculum with `config.seed = s`. Returns `{seed: {"t_max", "runs"}}`.
  """
  if seeds is None:
    out = _curriculum_seeds(config, protocol, (config.seed,), writer, {config.seed: done},
                            None if on_run is None else lambda seed, run: on_run(run),
                            tagged=False, batching=batching)
    return out[config.seed]
  seeds = _seed_tuple(seeds)
  done = dict(done or {})
  unknown = sorted(set(done) - set(seeds))
  if unknown:
    raise ValueError(f"done has runs of seeds {unknown} that are not in seeds={seeds}")
  return _curriculum_seeds(config, protocol, seeds, writer, done, on_run, batching=batching)


def _curriculum_seeds(config, protocol, seeds, writer, done, on_run, tagged=True,
                      batching=None):
  runs = {s: list(done.get(s, ())) for s in seeds}
  for s, rs in runs.items():
    for i, run in enumerate(rs):
      if run["length"] != protocol.start_length + i * protocol.length_step:
        raise ValueError(f"the finished runs of seed {s} are not T = {protocol.start_length}, "
                         f"{protocol.start_length + protocol.length_step}, ...: "
                         f"{[r['length'] for r in rs]}")

  def finished(run):
    return not run["solved"] or bool(protocol.max_length and run["length"] >= protocol.max_length)

  def next_length(s):
    rs = runs[s]
    if rs and finished(rs[-1]):
      return None
    return rs[-1]["length"] + protocol.length_step if rs else protocol.start_length

  def saved(seed, run):
    runs[seed].append(run)
    if on_run is not None:
      on_run(seed, run)

  while True:
    pending = {s: next_length(s) for s in seeds if next_length(s) is not None}
    if not pending:
      break
    length = min(pending.values())
    group = tuple(s for s in seeds if pending.get(s) == length)
    _train_seeds(config, protocol, length, group, None, writer, saved, tagged, batching)
  out = {}
  for s in seeds:
    solved = [r["length"] for r in runs[s] if r["solved"]]
    out[s] = {"t_max": max(solved) if solved else 0, "runs": runs[s]}
  return out


def generalisation(config: ml_collections.ConfigDict, protocol: Protocol, writer=None, *,
                   seeds: Optional[Sequence[int]] = None,
                   on_run: Optional[Callable[[int, dict], None]] = None,
                   batching: Optional[str] = None):
  """Train at `train_length` (until solved or `max_iters`), test at `test_length` (Table 4).

  With `seeds`: the seeds in one computation (`train_until_solved(seeds=...)`), `{seed:
  result}`; each seed's test runs as it stops, then `on_run(seed, result)`.
  """
  if seeds is None:
    return train_until_solved(config, protocol, protocol.train_length,
                              eval_length=protocol.test_length, writer=writer,
                              batching=batching)
  return train_until_solved(config, protocol, protocol.train_length,
                            eval_length=protocol.test_length, writer=writer, seeds=seeds,
                            on_run=on_run, batching=batching)
