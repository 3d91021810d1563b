"""Replay BPTT: noiseless full replay is BPTT exactly; no step replayed is TBPTT(1) exactly;
noise biases the gradient by an amount that grows with sigma."""

import jax
import numpy as np
import pytest

from tca_jax import config as config_lib, diagnostics, learners
from tca_jax.learners.bptt import TBPTT
from tca_jax.learners.replay import Replay
from tca_jax.registry import ConfigError
from tests.online_helpers import rel_error, setup

_accumulated = jax.jit(diagnostics.accumulated_update, static_argnums=(0, 1, 2, 7))


@pytest.mark.parametrize("cell", ["srn", "lstm", "leaky_srn"])
def test_noiseless_full_replay_is_bptt(x64, cell):
  model, task, params, batch = setup(cell, hidden=3)
  for update_every in (2, batch.length):  # per window, as the bptt learner's update
    reference, _ = _accumulated(learners.get("bptt"), model, task, params, {}, batch,
                                jax.random.PRNGKey(0), update_every)
    update, _ = _accumulated(Replay(), model, task, params, {}, batch, jax.random.PRNGKey(0),
                             update_every)
    assert rel_error(update, reference) < 1e-12
  # Over the whole sequence: the exact gradient.
  assert rel_error(update, diagnostics.bptt_gradient(model, task, params, batch)) < 1e-12


def test_nothing_replayed_is_tbptt_1(x64):
  model, task, params, batch = setup("lstm", hidden=3)
  tbptt, _ = _accumulated(TBPTT(truncation=1), model, task, params, {}, batch,
                          jax.random.PRNGKey(0), batch.length)
  update, _ = _accumulated(Replay(fraction=1e-12), model, task, params, {}, batch,
                           jax.random.PRNGKey(0), batch.length)
  assert rel_error(update, tbptt) < 1e-12


def test_noise_bias_grows_with_sigma(x64):
  model, task, params, batch = setup("srn", hidden=4, length=8)
  reference = diagnostics.bptt_gradient(model, task, params, batch)
  errors = []
  for sigma in (1e-6, 1e-3, 1e-1):
    update, _ = _accumulated(Replay(sigma=sigma), model, task, params, {}, batch,
                             jax.random.PRNGKey(0), batch.length)
    errors.append(rel_error(update, reference))
  assert 0 < errors[0] < 1e-4 and errors[0] < errors[1] < errors[2]
  # Different keys give different replays; the same key gives the same one.
  a, _ = _accumulated(Replay(sigma=0.1), model, task, params, {}, batch, jax.random.PRNGKey(1), 8)
  b, _ = _accumulated(Replay(sigma=0.1), model, task, params, {}, batch, jax.random.PRNGKey(1), 8)
  assert rel_error(a, b) == 0 and rel_error(a, update) > 0


@pytest.mark.parametrize("field,value", [("sigma", -1.0), ("fraction", 0.0), ("fraction", 1.5)])
def test_bad_options(field, value):
  c = config_lib.default_config()
  c.learner.name = "replay"
  c.learner[field] = value
  with pytest.raises(ConfigError, match=f"learner.{field}"):
    config_lib.build(c)


def test_noisy_replay_learns_temporal_order(tmp_path):
  from experiments.configs import online  # pylint: disable=g-import-not-at-top
  from tca_jax import train  # pylint: disable=g-import-not-at-top
  c = online.get_config("bptt")  # temporal order T=10, SRN(32), 300 steps
  c.learner.name, c.learner.sigma, c.learner.fraction = "replay", 0.05, 0.8
  c.train.update_every = 0
  c.train.eval_every, c.train.log_every, c.train.test_batches = 0, 1000, 2
  assert train.train_and_evaluate(c, str(tmp_path / "replay"))["accuracy"] >= 0.95
