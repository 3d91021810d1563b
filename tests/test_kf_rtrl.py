"""KF-RTRL: unbiased for the SRN, SRN only (a one-line ConfigError otherwise), shapes."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tca_jax import config as config_lib
from tca_jax import diagnostics, learners
from tca_jax.learners.kf_rtrl import KFRTRL, KFRTRLState
from tca_jax.registry import ConfigError
from tests.online_helpers import check_unbiased, flat, setup
from tests.test_uoro import estimates


def test_kf_rtrl_is_unbiased(x64):
  model, task, params, batch = setup("srn", hidden=3, length=5, batch_size=1, input_size=2)
  exact = flat(diagnostics.bptt_gradient(model, task, params, batch))
  samples = estimates(KFRTRL(), model, task, params, batch, 4000, 2)
  check_unbiased(samples, exact)
  with pytest.raises(AssertionError):  # the check detects a bias of 20%
    check_unbiased(samples + 0.2 * exact, exact)
  assert np.max(np.abs(np.asarray(samples[0]) - np.asarray(exact))) > 1e-3


def test_kf_rtrl_shapes():
  learner = learners.get("kf_rtrl")
  assert isinstance(learner, KFRTRL) and not learner.exact
  model, task, params, batch = setup("srn", hidden=4, length=3, batch_size=2, input_size=5)
  lstate = learner.init_state(model, params, 2)
  assert isinstance(lstate, KFRTRLState)
  assert lstate.input_factor.shape == (2, 5 + 4 + 1) and lstate.unit_factor.shape == (2, 4, 4)
  update = jax.jit(learner.update, static_argnums=(0, 5))
  new, (updates, _), aux = update(model, params, {}, lstate, batch, task.loss,
                                  jax.random.PRNGKey(0))
  assert jax.tree.structure(updates) == jax.tree.structure(params)
  assert aux.outputs.shape == (3, 2, 2)
  assert all(jnp.all(jnp.isfinite(u)) for u in jax.tree.leaves((new, updates)))


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_kf_rtrl_rejects_other_cells(cell):
  c = config_lib.default_config()
  c.task.name, c.model.cell, c.learner.name = "temporal_order", cell, "kf_rtrl"
  with pytest.raises(ConfigError, match=rf"model.cell='{cell}'.*allowed: srn$"):
    config_lib.build(c)
  model, _, params, _ = setup(cell, hidden=2)
  with pytest.raises(ConfigError, match="model.cell"):
    KFRTRL().init_state(model, params, 1)
