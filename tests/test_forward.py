"""The shared forward-mode machinery: flattening, Jacobian products, the unit map."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tca_jax.learners import forward_mode
from tests.online_helpers import setup


@pytest.mark.parametrize("cell", ["srn", "lstm", "gru"])
def test_flat_core_products_match_dense_jacobians(x64, cell):
  model, _, params, batch = setup(cell, hidden=3, batch_size=2, input_size=2)
  state = jax.tree.map(lambda a: a + 0.3, model.initial_state(2, jnp.float64))
  flat = forward_mode.FlatCore(model.core, params["core"], state)
  s_size, p_size = forward_mode.sizes(model, params)
  assert (flat.state_size, flat.num_params) == (s_size, p_size)
  assert s_size == (6 if cell == "lstm" else 3)
  s = flat.flatten_state(state)
  assert s.shape == (2, s_size)
  back = flat.unflatten_state(s)
  assert all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(back), jax.tree.leaves(state)))
  x = batch.inputs[0]
  tangents = jax.random.normal(jax.random.PRNGKey(0), (2, s_size, 4), jnp.float64)
  v = tangents[..., 0]

  @jax.jit  # one compilation instead of op-by-op dispatch
  def compute(core_params, state, x):
    flat = forward_mode.FlatCore(model.core, core_params, state)
    s, th = flat.flatten_state(state), flat.theta
    new, features = flat.batched_step(th, s, x)
    return dict(
        new=new, features=features, ref=model.core.step(core_params, state, x),
        flat_ref=flat.flatten_state(model.core.step(core_params, state, x)[0]),
        jac_s=forward_mode.state_jacobian(flat, th, s, x),  # [B, S, S]
        jac_p=forward_mode.param_jacobian(flat, th, s, x),  # [B, S, P]
        jac_p_fwd=forward_mode.param_jacobian(flat, th, s, x, "forward"),
        jvp=forward_mode.state_jvp(flat, th, s, x, tangents),
        jvp_vec=forward_mode.state_jvp_vector(flat, th, s, x, v),
        vjp=forward_mode.param_vjp(flat, th, s, x, v))

  r = compute(params["core"], state, x)
  np.testing.assert_allclose(r["new"], r["flat_ref"], rtol=1e-12)
  np.testing.assert_allclose(r["features"], r["ref"][1], rtol=1e-12)
  jac_s, jac_p = r["jac_s"], r["jac_p"]
  np.testing.assert_allclose(r["jac_p_fwd"], jac_p, rtol=1e-10, atol=1e-14)
  np.testing.assert_allclose(r["jvp"], jac_s @ tangents, rtol=1e-10, atol=1e-14)
  np.testing.assert_allclose(r["jvp_vec"], jnp.einsum("bij,bj->bi", jac_s, v), rtol=1e-10,
                             atol=1e-14)
  np.testing.assert_allclose(r["vjp"], jnp.einsum("bi,bip->bp", v, jac_p), rtol=1e-10,
                             atol=1e-14)
  # Every parameter moves only its own unit's state entries in one step (SnAp-1's pattern),
  # except the GRU's reset gate, which reaches every unit through U_n.
  unit = forward_mode.unit_index(params["core"], 3)
  assert unit.shape == (p_size,)
  rows = np.arange(s_size) % 3
  off_pattern = np.abs(np.asarray(jac_p)) * (rows[None, :, None] != unit[None, None, :])
  if cell == "gru":
    assert off_pattern.max() > 0
  else:
    assert off_pattern.max() == 0
