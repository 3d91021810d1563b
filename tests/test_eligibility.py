"""RFLO and e-prop: a hand-written RFLO recursion, equalities with RTRL where the dropped terms are
zero, e-prop's trace = SnAp-1's influence on the SRN, fully online, a short learning run."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tca_jax import cells, config as config_lib, diagnostics, learners
from tca_jax.learners.eligibility import EProp, RFLO, TraceState
from tca_jax.learners.rtrl import RTRL
from tca_jax.learners.snap1 import SnAp1
from tca_jax.model import Model
from tca_jax.registry import ConfigError
from tca_jax.types import Batch
from tests.online_helpers import rel_error, setup

_accumulated = jax.jit(diagnostics.accumulated_update, static_argnums=(0, 1, 2, 7))


def _sq_loss(o, t, m):
  return m * jnp.sum((o - t) ** 2, -1)


@pytest.mark.parametrize("feedback", ["symmetric", "random"])
def test_rflo_two_units_by_hand(x64, feedback):
  """Murray's recursion written out for a 2-unit leaky tanh network, 1 input, 2 outputs:

  p_t[k, j] = (1 - a) p_{t-1}[k, j] + a f'(u_t[j]) z_t[k],  z = h_{t-1} (W_hh), x_t (W_xh), 1 (b)
  grad[k, j] = sum_t L_t[j] p_t[k, j],  L_t = dL_t/dy_t W^T (symmetric) or dL_t/dy_t B (random)
  """
  a, steps = 0.4, 4
  rng = np.random.default_rng(0)
  w_xh, w_hh, b = rng.normal(size=(1, 2)), rng.normal(size=(2, 2)), rng.normal(size=2)
  w_out, b_out = rng.normal(size=(2, 2)), rng.normal(size=2)
  xs, ys = rng.normal(size=(steps, 1)), rng.normal(size=(steps, 2))
  mask = np.full(steps, 1.0 / steps)
  model = Model(cells.get("leaky_srn", hidden_size=2, alpha=a), 2)
  params = {"core": {"W_xh": jnp.asarray(w_xh), "W_hh": jnp.asarray(w_hh), "b_h": jnp.asarray(b)},
            "readout": {"W": jnp.asarray(w_out), "b": jnp.asarray(b_out)}}
  learner = RFLO(feedback=feedback)
  lparams = learner.init_params(jax.random.PRNGKey(3), model, params)
  fb = np.asarray(lparams["feedback"]) if feedback == "random" else w_out.T

  h = np.zeros(2)
  p = {"W_xh": np.zeros((1, 2)), "W_hh": np.zeros((2, 2)), "b_h": np.zeros(2)}
  g = {k: np.zeros_like(v) for k, v in p.items()}
  g_w, g_b = np.zeros((2, 2)), np.zeros(2)
  for t in range(steps):
    u = xs[t] @ w_xh + h @ w_hh + b
    d = 1 - np.tanh(u) ** 2
    p["W_xh"] = (1 - a) * p["W_xh"] + a * np.outer(xs[t], d)
    p["W_hh"] = (1 - a) * p["W_hh"] + a * np.outer(h, d)
    p["b_h"] = (1 - a) * p["b_h"] + a * d
    h = (1 - a) * h + a * np.tanh(u)
    y = h @ w_out + b_out
    e = 2 * mask[t] * (y - ys[t])  # dL_t/dy_t
    signal = e @ fb
    for k in p:
      g[k] += signal * p[k]
    g_w += np.outer(h, e)
    g_b += e

  batch = Batch(jnp.asarray(xs)[:, None], jnp.asarray(ys)[:, None], jnp.asarray(mask)[:, None])
  lstate = learner.init_state(model, params, 1)
  _, (updates, lupdates), _ = learner.update(model, params, lparams, lstate, batch, _sq_loss,
                                             jax.random.PRNGKey(0))
  for k in p:
    np.testing.assert_allclose(updates["core"][k], g[k], rtol=1e-12, atol=1e-14)
  np.testing.assert_allclose(updates["readout"]["W"], g_w, rtol=1e-12)
  np.testing.assert_allclose(updates["readout"]["b"], g_b, rtol=1e-12)
  assert all(float(jnp.max(jnp.abs(v))) == 0 for v in jax.tree.leaves(lupdates))


@pytest.mark.parametrize("cell", ["srn", "leaky_srn"])
def test_rflo_equals_rtrl_without_recurrent_weights(x64, cell):
  model, task, params, batch = setup(cell, hidden=3)
  params["core"]["W_hh"] = jnp.zeros_like(params["core"]["W_hh"])
  key = jax.random.PRNGKey(0)
  rtrl, _ = _accumulated(RTRL(), model, task, params, {}, batch, key, 2)
  rflo, _ = _accumulated(RFLO(), model, task, params, {}, batch, key, 2)
  assert rel_error(rflo, rtrl) < 1e-10
  # With recurrent weights the dropped Jacobian matters.
  model, task, params, batch = setup(cell, hidden=3)
  rtrl, _ = _accumulated(RTRL(), model, task, params, {}, batch, key, 2)
  rflo, _ = _accumulated(RFLO(), model, task, params, {}, batch, key, 2)
  assert rel_error(rflo, rtrl) > 1e-2


@pytest.mark.parametrize("cell", ["srn", "leaky_srn", "lstm"])
def test_symmetric_eprop_equals_rtrl_iff_recurrence_is_diagonal(x64, cell):
  key = jax.random.PRNGKey(0)
  for diagonal in (True, False):
    model, task, params, batch = setup(cell, hidden=3, diagonal=diagonal)
    rtrl, _ = _accumulated(RTRL(), model, task, params, {}, batch, key, 2)
    eprop, _ = _accumulated(EProp(), model, task, params, {}, batch, key, 2)
    if diagonal:
      assert rel_error(eprop, rtrl) < 1e-10, cell
    else:
      assert rel_error(eprop, rtrl) > 1e-2, cell


def test_eprop_trace_is_snap1_influence_on_the_srn(x64):
  model, task, params, batch = setup("srn", hidden=4)
  key = jax.random.PRNGKey(0)
  eprop, snap = EProp(), SnAp1()
  e_state, _, _ = eprop.update(model, params, {}, eprop.init_state(model, params, 2), batch,
                               task.loss, key)
  s_state, _, _ = snap.update(model, params, {}, snap.init_state(model, params, 2), batch,
                              task.loss, key)
  np.testing.assert_allclose(e_state.trace, s_state.influence, rtol=1e-12, atol=1e-15)
  # ... and so do their gradients with SnAp-1 as published (the trace contracted with dL_t/ds_t),
  # while the full-Jacobian variant (the full dL_t/ds_{t-1} applied to the trace) differs.
  g_e, _ = _accumulated(eprop, model, task, params, {}, batch, key, 6)
  g_s, _ = _accumulated(snap, model, task, params, {}, batch, key, 6)
  assert rel_error(g_e, g_s) < 1e-10
  g_f, _ = _accumulated(SnAp1(variant="full_jacobian"), model, task, params, {}, batch, key, 6)
  assert rel_error(g_e, g_f) > 1e-3


@pytest.mark.parametrize("name,cell", [("eprop", "lstm"), ("eprop", "leaky_srn"),
                                       ("rflo", "leaky_srn")])
def test_fully_online_memory_independent_of_length(x64, name, cell):
  key = jax.random.PRNGKey(0)
  for feedback in ("symmetric", "random"):
    learner = learners.get(name, feedback=feedback)
    model, task, params, batch = setup(cell, hidden=3, length=6)
    lparams = learner.init_params(jax.random.PRNGKey(1), model, params)
    online, _ = _accumulated(learner, model, task, params, lparams, batch, key, 1)
    window, _ = _accumulated(learner, model, task, params, lparams, batch, key, 6)
    assert rel_error(online, window) < 1e-12
    # What crosses a window (and all the scan carries) is [batch, n_s, P] whatever T is.
    shapes = []
    for length in (6, 50):
      _, _, _, b = setup(cell, hidden=3, length=length)
      shapes.append(jax.eval_shape(
          lambda p, b: learner.update(model, p, lparams, learner.init_state(model, p, 2), b,
                                      task.loss, key)[0], params, b))
    assert shapes[0] == shapes[1] and isinstance(shapes[0], TraceState)


def test_unsupported_cells_are_config_errors():
  for name, cell in (("rflo", "lstm"), ("eprop", "gru"), ("rflo", "sab_lstm")):
    c = config_lib.default_config()
    c.model.cell, c.learner.name = cell, name
    with pytest.raises(ConfigError, match="model.cell"):
      config_lib.build(c)
  c = config_lib.default_config()
  c.model.cell, c.learner.name, c.learner.feedback = "srn", "eprop", "transpose"
  with pytest.raises(ConfigError, match="learner.feedback"):
    config_lib.build(c)


def _temporal_order(tmp_path, name, cell, **learner):
  from experiments.configs import online  # pylint: disable=g-import-not-at-top
  from tca_jax import train  # pylint: disable=g-import-not-at-top
  c = online.get_config("rtrl")  # temporal order T=10, SRN(32), update_every=1, 300 steps
  c.learner.name, c.model.cell = name, cell
  for k, v in learner.items():
    c.learner[k] = v
  c.train.eval_every, c.train.log_every, c.train.test_batches = 0, 1000, 2
  return train.train_and_evaluate(c, str(tmp_path / f"{name}_{cell}"))["accuracy"]


def test_eligibility_rules_learn_temporal_order_online(tmp_path):
  # Measured: RFLO (leaky SRN, alpha 0.5, readout feedback) 1.0, e-prop (leaky SRN, random
  # feedback) 1.0, TBPTT(1) 0.71 (e-prop on the SRN: 1.0; RFLO with random feedback: 0.90).
  assert _temporal_order(tmp_path, "rflo", "leaky_srn") >= 0.95
  assert _temporal_order(tmp_path, "eprop", "leaky_srn", feedback="random") >= 0.95
  assert _temporal_order(tmp_path, "tbptt", "srn", truncation=1) < 0.9
