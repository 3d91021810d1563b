"""What the forward-mode learners share: memory independent of T, configs, online learning."""

import jax
import jax.numpy as jnp
import pytest

from tca_jax import config as config_lib
from tca_jax import learners, train
from tca_jax.types import Batch
from tests.online_helpers import setup

ONLINE = ("rtrl", "uoro", "kf_rtrl", "snap1")


@pytest.mark.parametrize("name", ONLINE)
def test_carried_state_does_not_grow_with_t(name):
  learner = learners.get(name)
  model, task, params, _ = setup("srn", hidden=4, batch_size=2, input_size=3)
  lstate = learner.init_state(model, params, 2)

  def carried(length):
    batch = Batch(jnp.zeros((length, 2, 3)), jnp.zeros((length, 2, 2)), jnp.zeros((length, 2)))
    new, _, _ = jax.eval_shape(
        lambda p, s, b: learner.update(model, p, {}, s, b, task.loss, jax.random.PRNGKey(0)),
        params, lstate, batch)
    return [(a.shape, a.dtype) for a in jax.tree.leaves(new)]

  short = carried(10)
  assert short == carried(1000)
  assert short == [(a.shape, a.dtype) for a in jax.tree.leaves(lstate)]


def test_online_config_builds_every_learner():
  from experiments.configs import online  # pylint: disable=g-import-not-at-top
  for preset in online.PRESETS:
    setup_ = config_lib.build(online.get_config(preset))
    assert setup_.learner.name == preset and setup_.update_every == 1
    assert setup_.task.name == "temporal_order" and setup_.task.length == 10
  with pytest.raises(ValueError, match="preset"):
    online.get_config("nope")


@pytest.mark.slow
@pytest.mark.parametrize("name,steps", [("rtrl", 150), ("uoro", 300)])
def test_learns_temporal_order_online(tmp_path, name, steps):
  """Parameters change after every step (update_every=1): no backpropagation through time."""
  from experiments.configs import online  # pylint: disable=g-import-not-at-top
  c = online.get_config(name)
  c.train.steps = steps
  c.train.eval_every = 0
  c.train.test_batches = 2
  result = train.train_and_evaluate(c, str(tmp_path))
  assert result["accuracy"] > 0.95, result


@pytest.mark.parametrize("name", ONLINE)
def test_memory_cores_are_rejected_with_a_config_error(name):
  """Per-example traces need `[batch, ...]` state leaves; SAB's memory is `[slots, batch, ...]`."""
  c = config_lib.default_config()
  c.task.name, c.model.cell, c.learner.name = "temporal_order", "sab_lstm", name
  with pytest.raises(config_lib.ConfigError, match=r"^model.cell='sab_lstm' .*allowed: srn"):
    config_lib.build(c)
