"""The leaky SRN: alpha = 1 is the SRN exactly; a hand-checked leaky step; BPTT by finite
differences."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from tca_jax import cells, config as config_lib
from tca_jax.model import Model
from tca_jax.registry import ConfigError


def test_alpha_one_is_the_srn_exactly(key):
  leaky = Model(cells.get("leaky_srn", hidden_size=5, alpha=1.0), 3)
  srn = Model(cells.get("srn", hidden_size=5), 3)
  params = srn.init(key, 4)
  assert jax.tree.all(jax.tree.map(jnp.array_equal, leaky.init(key, 4), params))
  xs = jax.random.normal(key, (7, 2, 4))
  a = leaky.unroll(params, leaky.initial_state(2), xs)
  b = srn.unroll(params, srn.initial_state(2), xs)
  assert jax.tree.all(jax.tree.map(jnp.array_equal, a, b))


def test_leaky_step_by_hand(x64):
  cell = cells.LeakySRN(hidden_size=2, alpha=0.25)
  params = {"W_xh": jnp.array([[1.0, -1.0]]), "W_hh": jnp.array([[0.5, 0.0], [0.25, 2.0]]),
            "b_h": jnp.array([0.1, 0.2])}
  h, _ = cell.step(params, jnp.array([[1.0, 2.0]]), jnp.array([[3.0]]))
  np.testing.assert_allclose(h, 0.75 * np.array([[1.0, 2.0]]) + 0.25 * np.tanh([[4.1, 1.2]]),
                             rtol=1e-12)


def test_leaky_gradients(x64, key):
  model = Model(cells.get("leaky_srn", hidden_size=3, alpha=0.3), 2)
  params = model.init(key, 2)
  xs = jax.random.normal(key, (5, 1, 2))
  f = lambda p: jnp.sum(model.unroll(p, model.initial_state(1), xs)[1] ** 2)
  check_grads(f, (params,), order=1, modes=["rev"])


@pytest.mark.parametrize("alpha", [0.0, 1.5, -0.1])
def test_bad_alpha(alpha):
  c = config_lib.default_config()
  c.model.cell, c.model.alpha = "leaky_srn", alpha
  with pytest.raises(ConfigError, match="model.alpha"):
    config_lib.build(c)
