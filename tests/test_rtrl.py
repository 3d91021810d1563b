"""Exact RTRL: equal to BPTT in float64, a hand-derived influence matrix, shapes."""

import jax
from jax.flatten_util import ravel_pytree
import jax.numpy as jnp
import numpy as np
import pytest

from tca_jax import cells, diagnostics, learners
from tca_jax.learners.rtrl import RTRL, RTRLState
from tca_jax.model import Model
from tca_jax.registry import ConfigError
from tca_jax.types import Batch
from tests.online_helpers import rel_error, setup


# One compilation serves both loss placements (the mask is data).
_accumulated = jax.jit(diagnostics.accumulated_update, static_argnums=(0, 1, 2, 7))
_bptt = jax.jit(diagnostics.bptt_gradient, static_argnums=(0, 1))


@pytest.mark.parametrize("cell", ["srn", "lstm", "gru"])
def test_accumulated_rtrl_equals_bptt(x64, cell):
  for loss_on in ("all", "last"):
    model, task, params, batch = setup(cell, loss_on=loss_on)
    reference = _bptt(model, task, params, batch)
    for update_every in (1, batch.length):
      update, lupdate = _accumulated(RTRL(), model, task, params, {}, batch,
                                     jax.random.PRNGKey(0), update_every)
      assert rel_error(update, reference) < 1e-8, (cell, loss_on, update_every)
      assert lupdate == {}


def test_forward_immediate_equals_reverse(x64):
  model, task, params, batch = setup("lstm", hidden=3)
  reference = diagnostics.bptt_gradient(model, task, params, batch)
  update, _ = diagnostics.accumulated_update(
      RTRL(immediate="forward"), model, task, params, {}, batch, jax.random.PRNGKey(0), 2)
  assert rel_error(update, reference) < 1e-8


def test_two_unit_srn_influence_by_hand(x64):
  """M_2 = d h_2 / d theta of a 2-unit tanh SRN, h_0 = 0, one input, derived by hand:

  h_1 = tanh(a_1), a_1 = x_1 W_xh + b;  D_1 = 1 - h_1^2
  h_2 = tanh(a_2), a_2 = x_2 W_xh + h_1 W_hh + b;  D_2 = 1 - h_2^2
  d h_2[j] / d W_xh[0, l] = D_2[j] (x_2 [j = l] + W_hh[l, j] D_1[l] x_1)
  d h_2[j] / d b[l]       = D_2[j] ([j = l] + W_hh[l, j] D_1[l])
  d h_2[j] / d W_hh[i, l] = D_2[j] h_1[i] [j = l]      (h_0 = 0: W_hh has no effect at step 1)
  """
  w_xh = np.array([[0.5, -0.3]])
  w_hh = np.array([[0.2, 0.7], [-0.4, 0.1]])
  b = np.array([0.1, -0.2])
  x1, x2 = 1.0, -0.5
  h1 = np.tanh(x1 * w_xh[0] + b)
  d1 = 1 - h1 ** 2
  h2 = np.tanh(x2 * w_xh[0] + h1 @ w_hh + b)
  d2 = 1 - h2 ** 2
  eye = np.eye(2)
  m_xh = np.zeros((2, 1, 2))
  m_b = np.zeros((2, 2))
  m_hh = np.zeros((2, 2, 2))
  for j in range(2):
    for l in range(2):
      m_xh[j, 0, l] = d2[j] * (x2 * eye[j, l] + w_hh[l, j] * d1[l] * x1)
      m_b[j, l] = d2[j] * (eye[j, l] + w_hh[l, j] * d1[l])
      for i in range(2):
        m_hh[j, i, l] = d2[j] * h1[i] * eye[j, l]

  model = Model(cells.SRN(2), 1)
  params = {"core": {"W_xh": jnp.asarray(w_xh), "W_hh": jnp.asarray(w_hh), "b_h": jnp.asarray(b)},
            "readout": {"W": jnp.ones((2, 1)), "b": jnp.zeros((1,))}}
  batch = Batch(jnp.array([[[x1]], [[x2]]]), jnp.zeros((2, 1, 1)), jnp.full((2, 1), 0.5))
  learner = RTRL()
  lstate = learner.init_state(model, params, 1)
  lstate, _, _ = learner.update(model, params, {}, lstate, batch,
                                lambda o, t, m: m * jnp.sum((o - t) ** 2, -1),
                                jax.random.PRNGKey(0))
  _, unravel = ravel_pytree(params["core"])
  influence = jax.vmap(unravel)(lstate.influence[0])  # rows: d h_2[j] / d (each leaf)
  np.testing.assert_allclose(lstate.model_state[0], h2, rtol=1e-12)
  np.testing.assert_allclose(influence["W_xh"], m_xh, rtol=1e-12, atol=1e-15)
  np.testing.assert_allclose(influence["b_h"], m_b, rtol=1e-12, atol=1e-15)
  np.testing.assert_allclose(influence["W_hh"], m_hh, rtol=1e-12, atol=1e-15)


def test_rtrl_shapes_and_registry():
  learner = learners.get("rtrl")
  assert isinstance(learner, RTRL) and learner.exact
  model, task, params, batch = setup("lstm", hidden=3, length=4, batch_size=2, input_size=5)
  lstate = learner.init_state(model, params, 2)
  p = sum(a.size for a in jax.tree.leaves(params["core"]))
  assert isinstance(lstate, RTRLState)
  assert lstate.influence.shape == (2, 6, p)  # state [h; c] of an LSTM(3)
  assert not jnp.any(lstate.influence)
  update = jax.jit(learner.update, static_argnums=(0, 5))
  new, (updates, lupdates), aux = update(model, params, {}, lstate, batch, task.loss,
                                         jax.random.PRNGKey(0))
  assert lupdates == {}
  assert jax.tree.structure(updates) == jax.tree.structure(params)
  assert all(u.shape == q.shape for u, q in zip(jax.tree.leaves(updates), jax.tree.leaves(params)))
  assert aux.outputs.shape == (4, 2, 2)
  _, ref_outputs = model.unroll(params, model.initial_state(2), batch.inputs)
  np.testing.assert_allclose(aux.outputs, ref_outputs, rtol=1e-5, atol=1e-6)
  assert jnp.any(new.influence != 0)
  with pytest.raises(ConfigError, match="learner.immediate"):
    learners.get("rtrl", immediate="sideways")


@pytest.mark.parametrize("kernel", ["xla", "native"])
@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_structured_srn_step_equals_generic(x64, activation, kernel):
  """The closed-form SRN influence step (one batched GEMM + the diagonal immediate term, by XLA
  or by the native BLAS kernel) equals the generic forward-mode step, and the learner's gradients
  with either path equal BPTT's."""
  from tca_jax.learners import forward_mode, rtrl  # pylint: disable=g-import-not-at-top
  from tca_jax.ops import native  # pylint: disable=g-import-not-at-top
  if kernel == "native" and not native.available():
    pytest.skip("no native kernels (no C++ compiler)")
  model, task, params, batch = setup("srn")
  model = Model(cells.get("srn", hidden_size=model.core.hidden_size, activation=activation),
                model.output_size)
  params = model.init(jax.random.PRNGKey(1), batch.inputs.shape[-1])
  b = batch.inputs.shape[1]
  state = jax.random.normal(jax.random.PRNGKey(2), (b, model.core.hidden_size))
  flat = forward_mode.FlatCore(model.core, params["core"], state)
  m = jax.random.normal(jax.random.PRNGKey(3), (b, flat.state_size, flat.num_params))
  x = batch.inputs[0]
  generic = (forward_mode.state_jvp(flat, flat.theta, state, x, m)
             + forward_mode.param_jacobian(flat, flat.theta, state, x))
  structured = rtrl.propagate_srn(flat, flat.theta, state, x, m, None,
                                  use_native=kernel == "native")
  np.testing.assert_allclose(structured, generic, rtol=1e-12, atol=1e-13)
  reference = _bptt(model, task, params, batch)
  for learner in (RTRL(kernel=kernel), RTRL(structured=False)):
    update, _ = _accumulated(learner, model, task, params, {}, batch, jax.random.PRNGKey(0), 1)
    assert rel_error(update, reference) < 1e-8
