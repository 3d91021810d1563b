"""The trainer and the command-line contract: files, metrics, diagnostics, bad input, NaN stop."""

import dataclasses
import json
import os
import signal
import subprocess
import sys

import jax
import numpy as np
import pytest

from tca_jax import checkpoint
from tca_jax import config as config_lib
from tca_jax import metrics_io, train
from tca_jax.registry import ConfigError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def tiny_config(**overrides):
  c = config_lib.default_config()
  c.task.name = "temporal_order"
  c.task.length = 10
  c.model.cell = "srn"
  c.model.hidden_size = 8
  c.train.steps = 6
  c.train.batch_size = 4
  c.train.log_every = 3
  c.train.eval_every = 3
  c.train.eval_batches = 1
  c.train.eval_batch_size = 8
  c.train.test_batches = 1
  for dotted, value in overrides.items():
    section, field = dotted.split("__")
    c[section][field] = value
  return c


def test_run_writes_the_contract_files(tmp_path):
  c = tiny_config(train__diag_every=3, learner__name="tbptt", learner__truncation=3,
                  train__update_every=5)
  result = train.train_and_evaluate(c, str(tmp_path))
  assert set(result) >= {"loss", "accuracy"}
  assert json.load(open(tmp_path / "config.json"))["learner"]["truncation"] == 3
  records = metrics_io.read_metrics(str(tmp_path))
  splits = [r["split"] for r in records]
  assert splits.count("train") == 2 and splits.count("eval") == 2 and splits[-1] == "test"
  for r in records:
    assert isinstance(r["step"], int)
  train_rec = next(r for r in records if r["split"] == "train")
  assert {"loss", "accuracy", "steps_per_sec", "update_norm"} <= set(train_rec)
  diag = [r for r in records if r["split"] == "diag"]
  # Measured before the update of steps 1, 3 and 6, i.e. after 0, 2 and 5 updates.
  assert [d["step"] for d in diag] == [0, 2, 5]
  assert -1.0 <= diag[0]["grad_cosine"] < 1.0 - 1e-6  # truncation loses credit
  assert "grad_cosine/core/W_hh" in diag[0] and diag[0]["spectral_radius"] > 0
  flow = json.load(open(tmp_path / "grad_flow.json"))
  assert len(flow[0]["norm"]) == 10 and flow[0]["distance"][0] == 10
  assert (tmp_path / "grad_flow.png").stat().st_size > 1000


def test_bptt_diagnostic_cosine_is_one(tmp_path):
  # An LSTM: its recurrent weights are not one square matrix, so no spectral radius is logged.
  c = tiny_config(train__diag_every=100, train__steps=1, model__cell="lstm")
  train.train_and_evaluate(c, str(tmp_path))
  diag = [r for r in metrics_io.read_metrics(str(tmp_path)) if r["split"] == "diag"][0]
  assert diag["grad_cosine"] == pytest.approx(1.0, abs=1e-5)
  assert diag["grad_norm_ratio"] == pytest.approx(1.0, abs=1e-4)
  assert "spectral_radius" not in diag


def test_same_seed_same_run(tmp_path):
  a = train.train_and_evaluate(tiny_config(), str(tmp_path / "a"))
  b = train.train_and_evaluate(tiny_config(), str(tmp_path / "b"))
  other = tiny_config()
  other.seed = 1
  c = train.train_and_evaluate(other, str(tmp_path / "c"))
  assert a["loss"] == b["loss"] and a["loss"] != c["loss"]


@pytest.mark.parametrize("field,value,message", [
    ("task.name", "nope", "task.name='nope' is not a known task; allowed: copy, adding"),
    ("model.cell", "rnn", "model.cell='rnn' is not a known cell; allowed: srn, lstm, gru"),
    ("learner.name", "magic", "learner.name='magic' is not a known learner; allowed: bptt"),
    ("model.hidden_size", 0, "model.hidden_size=0 must be a positive number"),
    ("task.length", -3, "task.length=-3"),
    ("train.learning_rate", 0.0, "train.learning_rate=0.0 must be a positive number"),
    ("train.optimizer", "adagrad", "train.optimizer='adagrad' is not allowed; allowed: adam"),
    ("train.update_every", 99, "train.update_every=99 must be an integer in [0, 10]"),
])
def test_bad_input_fails_before_anything_is_written(field, value, message, tmp_path):
  c = tiny_config()
  section, name = field.split(".")
  c[section][name] = value
  with pytest.raises(ConfigError) as e:
    train.train_and_evaluate(c, str(tmp_path / "run"))
  assert message in str(e.value)
  assert "\n" not in str(e.value)
  assert not (tmp_path / "run").exists()


def test_truncation_longer_than_the_sequence(tmp_path):
  c = tiny_config(learner__name="tbptt", learner__truncation=11)
  with pytest.raises(ConfigError, match=r"learner.truncation=11 must be an integer in \[1, 10\]"):
    train.train_and_evaluate(c, str(tmp_path / "run"))
  assert not (tmp_path / "run").exists()


def test_nan_stops_the_run_with_a_message(tmp_path):
  c = tiny_config(train__learning_rate=1e38, train__clip_norm=0.0,
                  train__optimizer="sgd", train__momentum=0.0)
  with pytest.raises(train.NonFiniteError, match=r"learner 'bptt' became NaN/inf at step \d"):
    train.train_and_evaluate(c, str(tmp_path))


def test_an_overflowed_update_norm_stops_the_run(tmp_path, monkeypatch):
  """Finite updates whose global norm overflows float32 (inf) would be clipped to a zero update
  and the run would go on unchanged: it stops like a NaN, at the first such step."""
  make = train.make_train_step

  class Overflowing:  # the configured learner, its updates scaled past float32's norm range
    def __init__(self, learner):
      self.learner = learner

    def __getattr__(self, name):
      return getattr(self.learner, name)

    def update(self, *args, **kwargs):
      lstate, updates, aux = self.learner.update(*args, **kwargs)
      return lstate, jax.tree.map(lambda u: u * 1e30, updates), aux

  def overflowing_make(setup, *args, **kwargs):
    return make(dataclasses.replace(setup, learner=Overflowing(setup.learner)), *args, **kwargs)

  monkeypatch.setattr(train, "make_train_step", overflowing_make)
  c = tiny_config(train__checkpoint_every=1)
  with pytest.raises(train.NonFiniteError, match=r"NaN/inf at step 1"):
    train.train_and_evaluate(c, str(tmp_path))


def test_nan_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
  make = train.make_train_step

  def poisoning_make(*args, **kwargs):
    step_fn = make(*args, **kwargs)

    def step(state, batch, key):
      if int(state.step) == 3:  # step 4 sees a NaN input
        batch = batch._replace(inputs=batch.inputs * np.nan)
      return step_fn(state, batch, key)
    return step

  monkeypatch.setattr(train, "make_train_step", poisoning_make)
  c = tiny_config(train__checkpoint_every=1)
  with pytest.raises(train.NonFiniteError,
                     match=r"NaN/inf at step 4; the last good checkpoint \(step 3\) is kept"):
    train.train_and_evaluate(c, str(tmp_path))
  checkpointer = checkpoint.Checkpointer(str(tmp_path))
  assert checkpointer.latest_step() == 3


def test_binary_reports_config_errors_in_one_line(tmp_path):
  out = subprocess.run(
      [sys.executable, "-m", "experiments.train", "--config=experiments/configs/copy.py",
       f"--workdir={tmp_path / 'run'}", "--config.learner.name=tbptt",
       "--config.learner.truncation=500"],
      cwd=ROOT, capture_output=True, text=True, timeout=300)
  assert out.returncode != 0
  assert out.stderr.strip().splitlines()[-1] == (
      "error: config.learner.truncation=500 must be an integer in [1, 30] "
      "(the sequence has 30 steps)")
  assert not (tmp_path / "run").exists()


def test_every_config_file_builds():
  import glob  # pylint: disable=g-import-not-at-top
  import importlib.util  # pylint: disable=g-import-not-at-top
  for path in sorted(glob.glob(os.path.join(ROOT, "experiments", "configs", "*.py"))):
    if path.endswith("__init__.py"):
      continue
    spec = importlib.util.spec_from_file_location("cfg", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not hasattr(module, "get_config"):
      continue
    config = module.get_config()
    try:
      config_lib.build(config)
    except ConfigError as e:
      # Dataset configs may only fail because their data is not prepared on this machine.
      assert "is not prepared" in str(e) or "tensorflow" in str(e).lower(), (path, e)


def _records(workdir, drop=("steps_per_sec",)):
  return [{k: v for k, v in r.items() if k not in drop and k != "wall_s"}
          for r in metrics_io.read_metrics(str(workdir))]


def test_resume_ends_with_the_metrics_of_an_uninterrupted_run(tmp_path, monkeypatch):
  full = tiny_config(train__checkpoint_every=2, train__diag_every=2)
  train.train_and_evaluate(full, str(tmp_path / "full"))

  # Preempt the second run with SIGTERM during step 4; it saves a checkpoint and stops.
  make = train.make_train_step

  def preempting_make(*args, **kwargs):
    step_fn = make(*args, **kwargs)

    def step(state, batch, key):
      if int(state.step) == 3:
        os.kill(os.getpid(), signal.SIGTERM)
      return step_fn(state, batch, key)
    return step

  monkeypatch.setattr(train, "make_train_step", preempting_make)
  with pytest.raises(train.Preempted, match="SIGTERM at step 4"):
    train.train_and_evaluate(full, str(tmp_path / "resumed"))
  monkeypatch.setattr(train, "make_train_step", make)
  # Running the same command again resumes from step 4.
  result = train.train_and_evaluate(full, str(tmp_path / "resumed"))
  assert _records(tmp_path / "resumed") == _records(tmp_path / "full")
  assert result["loss"] == _records(tmp_path / "full")[-1]["loss"]
  assert json.load(open(tmp_path / "resumed" / "grad_flow.json")) == json.load(
      open(tmp_path / "full" / "grad_flow.json"))


def test_resume_refuses_another_config(tmp_path):
  train.train_and_evaluate(tiny_config(train__checkpoint_every=3), str(tmp_path))
  with pytest.raises(ConfigError, match=r"holds a run with another config \(model.hidden_size"):
    train.train_and_evaluate(tiny_config(train__checkpoint_every=3, model__hidden_size=9),
                             str(tmp_path))



def test_rerun_without_checkpoints_starts_a_fresh_metrics_file(tmp_path):
  # The same command twice in one workdir with checkpoints off trains twice from step 0; the
  # records must be the second run's, not both runs' appended.
  c = tiny_config()
  train.train_and_evaluate(c, str(tmp_path))
  first = _records(tmp_path)
  train.train_and_evaluate(c, str(tmp_path))
  assert _records(tmp_path) == first


def test_resume_check_ignores_how_processes_are_launched(tmp_path):
  # Process 0 of a multi-host run writes config.json with process_id=0; process 1, slower to
  # start, then checks its own config (process_id=1) against it: the same run.
  c0 = tiny_config()
  c0.distributed.process_id, c0.distributed.num_processes = 0, 2
  metrics_io.write_json(str(tmp_path / "config.json"), c0.to_dict())
  c1 = tiny_config()
  c1.distributed.process_id, c1.distributed.num_processes = 1, 2
  train._check_resumable(str(tmp_path), c1)  # no error
  c1.model.hidden_size += 1
  with pytest.raises(ConfigError, match="model.hidden_size"):
    train._check_resumable(str(tmp_path), c1)


def test_seeds_in_parallel_match_sequential_runs(tmp_path):
  c = tiny_config()
  c.num_seeds = 3
  result = train.train_and_evaluate(c, str(tmp_path / "vmap"))
  singles = []
  for i in range(3):
    one = tiny_config()
    one.seed = i
    singles.append(train.train_and_evaluate(one, str(tmp_path / f"seed{i}"))["loss"])
  np.testing.assert_allclose(result["loss_seeds"], singles, rtol=1e-4)
  assert result["loss"] == pytest.approx(np.mean(singles), rel=1e-4)
  assert result["loss_std"] == pytest.approx(np.std(singles), rel=1e-3, abs=1e-6)


# ------------------------------------------------------------------ train.on_nan="freeze_seed"


class _Killed(RuntimeError):
  pass


_MAKE = train.make_train_step


def _poisoned_make(monkeypatch, seed_index, at_step, states, crash_at=None):
  """Patches `train.make_train_step`: seed `seed_index`'s inputs become NaN at step `at_step`
  (its loss, the update and the new parameters are NaN), every state after a step is kept (host
  copies) in `states`, and a `_Killed` error at step `crash_at` stands for a kill."""

  def poisoning_make(*args, **kwargs):
    step_fn = _MAKE(*args, **kwargs)

    def step(state, batch, key):
      step = int(np.asarray(state.step).reshape(-1)[0]) + 1
      if step == crash_at:
        raise _Killed(f"killed during step {crash_at}")
      if seed_index is not None and step == at_step:
        batch = batch._replace(inputs=batch.inputs.at[seed_index].multiply(np.nan))
      state, metrics = step_fn(state, batch, key)
      states.append(jax.device_get(state))
      return state, metrics
    return step

  monkeypatch.setattr(train, "make_train_step", poisoning_make)


def _seed(tree, i):
  return jax.tree.map(lambda x: np.asarray(x)[i], tree)


def _assert_trees_equal(a, b):
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
    np.testing.assert_array_equal(x, y)


def freeze_config(**overrides):
  c = tiny_config(train__on_nan="freeze_seed", train__checkpoint_every=2, **overrides)
  c.num_seeds = 3
  return c


@pytest.fixture(scope="module")
def freeze_runs(tmp_path_factory):
  """Three seeds in float64, run without a NaN ("clean") and with seed 1's inputs NaN at step 4
  ("poisoned"): `(dirs, clean states, poisoned states, (clean, poisoned) test results)`."""
  root = tmp_path_factory.mktemp("freeze")
  clean, poisoned = [], []
  with jax.enable_x64(True), pytest.MonkeyPatch.context() as mp:
    _poisoned_make(mp, None, None, clean)
    reference = train.train_and_evaluate(freeze_config(), str(root / "clean"))
    _poisoned_make(mp, 1, 4, poisoned)
    result = train.train_and_evaluate(freeze_config(), str(root / "poisoned"))
  return root, clean, poisoned, (reference, result)


def test_freeze_seed_trains_the_other_seeds_on(freeze_runs):
  from tca_jax.reproduce import runner  # pylint: disable=g-import-not-at-top
  root, clean, poisoned, (reference, result) = freeze_runs
  assert jax.tree.leaves(poisoned[-1].params)[0].dtype == np.float64
  np.testing.assert_array_equal(poisoned[-1].bad_step, [-1, 4, -1])
  for i in (0, 2):  # the other seeds: exactly the run without the NaN
    _assert_trees_equal(_seed(poisoned[-1].params, i), _seed(clean[-1].params, i))
    _assert_trees_equal(_seed(poisoned[-1].opt_state, i), _seed(clean[-1].opt_state, i))
  # The diverged seed: frozen at its last finite state, after step 3.
  _assert_trees_equal(_seed(poisoned[-1].params, 1), _seed(clean[2].params, 1))
  _assert_trees_equal(_seed(poisoned[-1].opt_state, 1), _seed(clean[2].opt_state, 1))
  records = metrics_io.read_metrics(str(root / "poisoned"))
  events = [r for r in records if r["split"] == "event"]
  assert events == [{"step": 4, "split": "event", "seed": 1, "event": "diverged"}]
  # Its metrics are NaN (null) from then on; the mean and sd are the other seeds'.
  test = runner._test_record(str(root / "poisoned"))
  last_train = [r for r in records if r["split"] == "train"][-1]
  for rec in (test, last_train):
    assert rec["loss_seeds"][1] is None and rec["accuracy_seeds"][1] is None
    others = [rec["loss_seeds"][0], rec["loss_seeds"][2]]
    assert rec["loss"] == pytest.approx(np.mean(others), rel=1e-12)
    assert rec["loss_std"] == pytest.approx(np.std(others), rel=1e-12, abs=1e-15)
  assert [test["loss_seeds"][i] for i in (0, 2)] == [reference["loss_seeds"][i] for i in (0, 2)]
  assert result["loss"] == test["loss"] and np.isnan(result["loss_seeds"][1])
  # Before the NaN, the records are the clean run's.
  before = lambda rs: [r for r in rs if r["step"] < 4]
  assert before(_records(root / "poisoned")) == before(_records(root / "clean"))


def test_freeze_seed_resumes_frozen_after_a_kill(freeze_runs, tmp_path, monkeypatch, x64):
  root, _, full, _ = freeze_runs
  # Killed during step 5, after the checkpoint of step 4 (which holds seed 1 frozen).
  _poisoned_make(monkeypatch, 1, 4, [], crash_at=5)
  with pytest.raises(_Killed):
    train.train_and_evaluate(freeze_config(), str(tmp_path))
  assert checkpoint.Checkpointer(str(tmp_path)).latest_step() == 4
  resumed = []
  _poisoned_make(monkeypatch, None, None, resumed)  # no NaN after the resume
  train.train_and_evaluate(freeze_config(), str(tmp_path))
  assert _records(tmp_path) == _records(root / "poisoned")
  _assert_trees_equal(resumed[-1].params, full[-1].params)
  _assert_trees_equal(resumed[-1].opt_state, full[-1].opt_state)
  np.testing.assert_array_equal(resumed[-1].bad_step, [-1, 4, -1])


def test_freeze_seed_stops_when_every_seed_diverged(tmp_path, monkeypatch):
  _poisoned_make(monkeypatch, slice(None), 4, [])
  with pytest.raises(train.NonFiniteError,
                     match=r"stopped \(every seed has diverged\): .* at step 4 \(seed 0\); the "
                           r"last good checkpoint \(step 2\) is kept"):
    train.train_and_evaluate(freeze_config(train__eval_every=0), str(tmp_path))


def test_stop_is_the_default_and_names_the_seed(tmp_path, monkeypatch):
  _poisoned_make(monkeypatch, 2, 4, [])
  c = freeze_config(train__eval_every=0)
  c.train.on_nan = None
  with pytest.raises(train.NonFiniteError, match=r"at step 4 \(seed 2\); the last good "
                                                 r"checkpoint \(step 2\) is kept"):
    train.train_and_evaluate(c, str(tmp_path))


def test_on_nan_is_validated(tmp_path):
  with pytest.raises(ConfigError) as e:
    train.train_and_evaluate(tiny_config(train__on_nan="skip"), str(tmp_path / "run"))
  assert str(e.value) == "train.on_nan='skip' is not allowed; allowed: stop, freeze_seed"
  assert not (tmp_path / "run").exists()
