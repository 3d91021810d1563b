"""`model.frozen` (zero updates from every learner), the echo state network and the orthogonal
RNN."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from tca_jax import cells, config as config_lib, diagnostics, learners
from tca_jax.learners.frozen import Frozen
from tca_jax.model import Model
from tca_jax.registry import ConfigError

# A cell each learner supports, and a parameter of it to freeze.
CELL_FOR = {"sab": ("sab_lstm", "core/lstm/W_h"), "online_diag": ("lru", "core/layers/0/nu_log")}


def _build(name, cell, frozen, length=6):
  c = config_lib.default_config()
  c.task.name, c.task.length = "adding", length
  c.model.cell, c.model.hidden_size, c.model.frozen = cell, 4, frozen
  c.learner.name = name
  if name == "tbptt":
    c.learner.truncation = 2
  if name == "sab":
    c.model.k_top, c.model.k_att, c.learner.k_trunc = 2, 2, 2
  return c, config_lib.build(c)


@pytest.mark.parametrize("name", learners.names())
def test_frozen_parameters_get_exactly_zero_updates_from_every_learner(name):
  cell, path = CELL_FOR.get(name, ("srn", "core/W_hh"))
  c, setup = _build(name, cell, f"{path},readout/b")
  assert isinstance(setup.learner, Frozen) and setup.learner.name == name
  model, learner, task = setup.model, setup.learner, setup.task
  key = jax.random.PRNGKey(0)
  params = model.init(key, task.input_size)
  lparams, lstate = learner.init(key, model, params, 3)
  batch = task.sample(key, 3)
  _, (updates, _), _ = jax.jit(learner.update, static_argnums=(0, 5))(
      model, params, lparams, lstate, batch, task.loss, key)
  names = diagnostics_names(updates)
  for n, u in zip(names, jax.tree.leaves(updates)):
    if n in (path, "readout/b"):
      assert float(jnp.max(jnp.abs(u))) == 0.0, n
  assert float(jnp.abs(updates["readout"]["W"]).max()) > 0  # the rest still learns


def diagnostics_names(tree):
  return [diagnostics.leaf_name(p) for p, _ in jax.tree_util.tree_flatten_with_path(tree)[0]]


def test_diagnostics_compare_with_the_bptt_gradient_of_the_trained_parameters():
  """With frozen parameters the reference is BPTT's gradient of the others: BPTT's cosine is 1."""
  _, setup = _build("bptt", "esn", "")
  model, learner, task = setup.model, setup.learner, setup.task
  key = jax.random.PRNGKey(0)
  params = model.init(key, task.input_size)
  batch = task.sample(key, 3)
  m = diagnostics.update_vs_bptt(learner, model, task, params, {}, batch, key, 0)
  assert m["grad_cosine"] == pytest.approx(1.0, abs=1e-5)
  assert m["grad_norm_ratio"] == pytest.approx(1.0, abs=1e-5)


def test_bad_frozen_path():
  with pytest.raises(ConfigError, match="model.frozen"):
    _build("bptt", "srn", "core/W_xx")


def test_esn_spectral_radius_and_only_input_and_readout_learn(tmp_path):
  cell = cells.get("esn", hidden_size=32, spectral_radius=0.8)
  w = cell.init(jax.random.PRNGKey(0), 3)["W_hh"]
  assert abs(diagnostics.spectral_radius(w) - 0.8) < 1e-5
  _, setup = _build("bptt", "esn", None)
  assert setup.learner.paths == ("core/W_hh",)
  # A few Adam steps through the trainer's own step: W_hh does not move, W_xh does.
  from tca_jax import train  # pylint: disable=g-import-not-at-top
  c, setup = _build("rtrl", "esn", None)
  c.train.steps = 3
  model, task = setup.model, setup.task
  optimizer = train.make_optimizer(c.train, setup.learner, task.sequence_length)
  params = model.init(jax.random.PRNGKey(1), task.input_size)
  lparams, lstate = setup.learner.init(jax.random.PRNGKey(1), model, params, 8)
  opt_state = optimizer.init((params, lparams))
  start = params
  for i in range(3):
    batch = task.sample(jax.random.PRNGKey(10 + i), 8)
    _, updates, _ = setup.learner.update(model, params, lparams, lstate, batch, task.loss,
                                         jax.random.PRNGKey(i))
    steps, opt_state = optimizer.update(updates, opt_state, (params, lparams))
    params, lparams = optax.apply_updates((params, lparams), steps)
  assert jnp.array_equal(params["core"]["W_hh"], start["core"]["W_hh"])
  assert not jnp.array_equal(params["core"]["W_xh"], start["core"]["W_xh"])


def test_orthogonal_rnn_stays_orthogonal_through_training():
  model = Model(cells.get("orthogonal", hidden_size=16), 2)
  params = model.init(jax.random.PRNGKey(0), 3)
  core = model.core
  xs = jax.random.normal(jax.random.PRNGKey(1), (20, 4, 3))
  ys = jax.random.normal(jax.random.PRNGKey(2), (20, 4, 2))
  loss = lambda p: jnp.mean((model.unroll(p, model.initial_state(4), xs)[1] - ys) ** 2)
  opt = optax.adam(0.05)
  opt_state = opt.init(params)
  start = core.recurrent_matrix(params["core"])
  for _ in range(5):
    grads = jax.grad(loss)(params)
    steps, opt_state = opt.update(grads, opt_state)
    params = optax.apply_updates(params, steps)
    w = core.recurrent_matrix(params["core"])
    np.testing.assert_allclose(w @ w.T, np.eye(16), atol=1e-6)
  assert float(jnp.abs(w - start).max()) > 1e-2  # it moved
