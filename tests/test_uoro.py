"""UORO: unbiased (the mean of many estimates converges to the BPTT gradient), shapes."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tca_jax import diagnostics, learners
from tca_jax.learners.uoro import UORO, UOROState
from tca_jax.registry import ConfigError
from tests.online_helpers import check_unbiased, flat, setup


def estimates(learner, model, task, params, batch, n, update_every):
  """`[n, P]`: n independent accumulated updates (one key each), flattened."""
  def one(key):
    update, _ = diagnostics.accumulated_update(learner, model, task, params, {}, batch, key,
                                               update_every)
    return flat(update)
  return jax.jit(jax.vmap(one))(jax.random.split(jax.random.PRNGKey(42), n))


@pytest.mark.parametrize("cell", ["srn", "lstm"])
def test_uoro_is_unbiased(x64, cell):
  # The LSTM's state is a pytree (h, c): s~ covers both.
  model, task, params, batch = setup(cell, hidden=3 if cell == "srn" else 2, length=5,
                                     batch_size=1, input_size=2)
  exact = flat(diagnostics.bptt_gradient(model, task, params, batch))
  # Windows of 2 steps: the rank-one factors cross window boundaries.
  samples = estimates(UORO(), model, task, params, batch, 4000, 2)
  check_unbiased(samples, exact)
  with pytest.raises(AssertionError):  # the check detects a bias of 20%
    check_unbiased(samples + 0.2 * exact, exact)
  # It is an estimate, not the gradient itself.
  assert np.max(np.abs(np.asarray(samples[0]) - np.asarray(exact))) > 1e-3


def test_uoro_shapes_and_registry():
  learner = learners.get("uoro", eps=1e-6)
  assert isinstance(learner, UORO) and not learner.exact
  model, task, params, batch = setup("lstm", hidden=3, length=4, batch_size=2, input_size=5)
  lstate = learner.init_state(model, params, 2)
  p = sum(a.size for a in jax.tree.leaves(params["core"]))
  assert isinstance(lstate, UOROState)
  assert lstate.state_factor.shape == (2, 6) and lstate.param_factor.shape == (2, p)
  update = jax.jit(learner.update, static_argnums=(0, 5))
  new, (updates, _), aux = update(model, params, {}, lstate, batch, task.loss,
                                  jax.random.PRNGKey(0))
  assert jax.tree.structure(updates) == jax.tree.structure(params)
  assert aux.outputs.shape == (4, 2, 2)
  assert all(jnp.all(jnp.isfinite(u)) for u in jax.tree.leaves((new, updates)))
  assert jnp.all(jnp.abs(new.state_factor) > 0)
  # Different keys, different estimates; the same key, the same estimate.
  _, (other, _), _ = update(model, params, {}, lstate, batch, task.loss, jax.random.PRNGKey(1))
  _, (same, _), _ = update(model, params, {}, lstate, batch, task.loss, jax.random.PRNGKey(0))
  assert not np.allclose(flat(other), flat(updates))
  np.testing.assert_array_equal(flat(same), flat(updates))
  with pytest.raises(ConfigError, match="learner.eps"):
    learners.get("uoro", eps=-1.0)
