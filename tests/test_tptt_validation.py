"""The TPTT protocol's early-exit validation (`protocol.validation="early_exit"`, the default).

A validation stops after the first batch at which its mistakes reach the limit that decides the
run is not solved (with a patience stop: nor a new best). The decisions (solved or not, the
iteration of the stop, the patience count) must be those of the full validation on the same
samples, and a validation that is not cut must give the full validation's numbers.
"""

import dataclasses
import json

import jax
import numpy as np
import pytest

from tca_jax import protocol_workdir, train, tptt_protocol
from tca_jax import workdir as workdir_lib
from tca_jax.registry import ConfigError


def _config(**protocol):
  from experiments.configs import tptt as tptt_config  # pylint: disable=g-import-not-at-top
  c = tptt_config.get_config("temporal_order")
  c.model.hidden_size = 8
  # T=10: 137, 75, 3, 0, ... mistakes in 200 at iterations 20, 40, 60, 80, ... (float32).
  c.protocol.max_iters, c.protocol.validate_every = 120, 20
  c.protocol.val_samples, c.protocol.val_batch_size = 200, 50
  c.protocol.update(protocol)
  return c


def test_protocol_validation_field_and_limits():
  with pytest.raises(ConfigError, match=r"^protocol.validation='some' is not allowed; "
                     r"allowed: early_exit, full$"):
    tptt_protocol.Protocol(validation="some")
  assert tptt_protocol.Protocol().validation == "early_exit"
  # The fewest mistakes that leave a run unsolved: error = mistakes / samples >= target.
  for target, samples, want in ((1e-4, 10_000, 1), (0.0, 200, 0), (0.02, 200, 4),
                                (0.7, 200, 140), (1e-4, 200, 1), (0.015, 200, 3)):
    p = tptt_protocol.Protocol(target_error=target, val_samples=samples, val_batch_size=samples)
    assert p.unsolved_errors() == want, (target, samples)
    assert want / samples >= target and (want == 0 or (want - 1) / samples < target)


def test_tracker_decides_as_the_full_validation(monkeypatch):
  """The host side: a cut validation (fewer samples checked) is neither solved nor a new best;
  the patience limit follows the best full validation."""
  p = tptt_protocol.Protocol(val_samples=200, val_batch_size=50, target_error=1e-4, patience=2)
  tr = tptt_protocol._Tracker(0, None)
  assert tr.limit(p) == 201  # no best yet: a full validation
  setup = None

  def record(it, wrong, checked):
    val = {"accuracy": 1 - wrong / checked, "loss": 0.5, "samples_checked": checked}
    tr.record(p, setup, 10, it, {"loss": 1.0}, val, -1, None, None)
    return tr.history[-1]

  monkeypatch.setattr(tptt_protocol, "_radii", lambda *a: {})  # no model here
  rec = record(20, 30, 200)
  assert (rec["val_errors"], rec["val_error"], rec["val_samples_checked"]) == (30, 0.15, 200)
  assert tr.limit(p) == 30 and tr.since_best == 0
  rec = record(40, 31, 50)  # cut: >= 30 mistakes in the first batch, no new best
  assert (rec["val_errors"], rec["val_error"]) == (31, 0.62)
  assert tr.since_best == 1 and tr.result is None and tr.best == 0.15
  record(60, 2, 200)
  assert tr.since_best == 0 and tr.limit(p) == 2
  record(80, 2, 100)
  record(100, 3, 50)
  assert tr.result == ("patience", 100)
  tr2 = tptt_protocol._Tracker(0, None)
  tr2.record(p, setup, 10, 20, {}, {"accuracy": 1.0, "samples_checked": 50}, -1, None, None)
  assert tr2.result is None  # 0 mistakes in a cut validation is not "solved"
  tr2.record(p, setup, 10, 40, {}, {"accuracy": 1.0, "samples_checked": 200}, -1, None, None)
  assert tr2.result == ("solved", 40)


def test_early_exit_period_stops_where_the_mistakes_decide(x64):
  """The device side, float64: for each limit the period checks the batches up to the first at
  which the mistakes reach it, in the full validation's order and on its samples, and its means
  are those batches' means; without a stop it is the full validation."""
  c = _config()
  protocol = tptt_protocol.protocol_from_config(c)
  runner = tptt_protocol.build_runner(c, protocol, 10)
  setup = runner.setup
  eval_step = train.make_eval_step(dataclasses.replace(setup, eval_task=setup.task), 50)
  _, _, val_key, _ = jax.random.split(jax.random.PRNGKey(c.seed), 4)
  state = runner.state
  seen_cut = seen_full = False
  for start in (0, 20):
    new, metrics, full = runner.period(state, start)
    assert int(full["samples_checked"]) == 200
    key = jax.random.fold_in(val_key, start + 20)
    batches = [eval_step(new.params, jax.random.fold_in(key, i)) for i in range(4)]
    wrong = np.cumsum([round((1 - float(b["accuracy"])) * 50) for b in batches])
    for limit in (0, 1, 3, int(wrong[-1]), int(wrong[-1]) + 1, 201):
      got_state, got_metrics, val = runner.period(state, start, limit)
      for a, b in zip(jax.tree.leaves((got_state, got_metrics)), jax.tree.leaves((new, metrics))):
        np.testing.assert_array_equal(a, b)
      n = 1 + next((i for i in range(3) if wrong[i] >= limit), 3)
      assert int(val["samples_checked"]) == 50 * n, (start, limit, wrong)
      # A cut validation: the full one has at least `limit` mistakes (not solved, no new best).
      assert n == 4 or wrong[-1] >= limit
      seen_cut |= n < 4
      seen_full |= n == 4 and limit > 0
      want = {k: sum(b[k] for b in batches[:n]) / n for k in batches[0]}
      for k in want:
        # The task's accuracy is float32 (a mean of bools); the loss is float64.
        rtol = 1e-12 if val[k].dtype == np.float64 else 1e-6
        np.testing.assert_allclose(val[k], want[k], rtol=rtol, atol=rtol * 1e-2, err_msg=k)
        if n == 4:
          np.testing.assert_allclose(val[k], full[k], rtol=rtol, atol=rtol * 1e-2, err_msg=k)
    state = new
  assert seen_cut and seen_full


@pytest.mark.slow
@pytest.mark.parametrize("target,patience", [(1e-4, 0), (0.02, 0), (0.0, 2)])
def test_early_exit_runs_make_the_full_runs_decisions(target, patience):
  """float32 runs that solve at 80 (1e-4: the first three validations are cut), at 60 (0.02:
  3 mistakes allowed, the third validation checked in full) and never (0.0, patience 2: stops at
  120 on patience): the same stops, iterations and per-validation decisions as "full"."""
  runs = {}
  for mode in ("full", "early_exit"):
    c = _config(target_error=target, patience=patience, validation=mode)
    runs[mode] = tptt_protocol.train_until_solved(c, tptt_protocol.protocol_from_config(c), 10)
  full, early = runs["full"], runs["early_exit"]
  for k in ("solved", "iterations", "reason", "stopped_at"):
    assert early[k] == full[k], k
  assert (full["reason"], full["stopped_at"]) == {
      (1e-4, 0): ("solved", 80), (0.02, 0): ("solved", 60), (0.0, 2): ("patience", 120)}[
          (target, patience)]
  assert len(early["history"]) == len(full["history"])
  cut = 0
  for e, f in zip(early["history"], full["history"]):
    assert e["iteration"] == f["iteration"] and e["loss"] == f["loss"]
    assert e["radius_W_hh"] == f["radius_W_hh"]
    if e["val_samples_checked"] == 200:
      assert e["val_errors"] == f["val_errors"]
      np.testing.assert_allclose(e["val_accuracy"], f["val_accuracy"], rtol=1e-6)
    else:
      cut += 1
      assert f["val_errors"] >= e["val_errors"] > 0 or target == 0.0
  assert cut >= 2


def test_old_workdir_config_without_the_field_resumes(tmp_path):
  """A protocol workdir written before `protocol.validation` existed holds the default; asking
  for "full" there is refused (a new --workdir), like any other changed field."""
  c = _config()
  saved = json.loads(json.dumps(c.to_dict()))
  del saved["protocol"]["validation"]
  (tmp_path / "config.json").write_text(json.dumps(saved))
  config = c.to_dict()
  assert workdir_lib.check_same_config(str(tmp_path), config,
                                       defaults=protocol_workdir.protocol_defaults())
  with pytest.raises(ConfigError, match="protocol.validation"):
    workdir_lib.check_same_config(str(tmp_path), config)
  config["protocol"]["validation"] = "full"
  with pytest.raises(ConfigError, match="protocol.validation: 'early_exit' there, 'full' asked"):
    workdir_lib.check_same_config(str(tmp_path), config,
                                  defaults=protocol_workdir.protocol_defaults())
