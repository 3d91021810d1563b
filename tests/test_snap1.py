"""SnAp-1: both variants against a hand-written NumPy recursion on a dense SRN; equal to RTRL when
the recurrence is diagonal, different otherwise; shapes."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tca_jax import diagnostics, learners
from tca_jax.learners.rtrl import RTRL
from tca_jax.learners.snap1 import SnAp1, SnAp1State
from tca_jax.registry import ConfigError
from tests.online_helpers import rel_error, setup

_accumulated = jax.jit(diagnostics.accumulated_update, static_argnums=(0, 1, 2, 7))


@pytest.mark.parametrize("variant", ["textbook", "full_jacobian"])
@pytest.mark.parametrize("cell", ["srn", "lstm", "gru"])
def test_snap1_equals_rtrl_iff_recurrence_is_diagonal(x64, cell, variant):
  key = jax.random.PRNGKey(0)
  for diagonal in (True, False):
    model, task, params, batch = setup(cell, hidden=3, diagonal=diagonal)
    rtrl, _ = _accumulated(RTRL(), model, task, params, {}, batch, key, 2)
    snap, _ = _accumulated(SnAp1(variant=variant), model, task, params, {}, batch, key, 2)
    if diagonal:
      assert rel_error(snap, rtrl) < 1e-10, cell
    else:
      assert rel_error(snap, rtrl) > 1e-2, cell
    # The readout's gradient is always exact.
    np.testing.assert_allclose(snap["readout"]["W"], rtrl["readout"]["W"], rtol=1e-10)


@pytest.mark.parametrize("variant", ["textbook", "full_jacobian"])
def test_structured_srn_step_equals_generic(x64, variant):
  model, task, params, batch = setup("srn", hidden=4)
  key = jax.random.PRNGKey(0)
  fast, _ = _accumulated(SnAp1(structured=True, variant=variant), model, task, params, {}, batch,
                         key, 3)
  generic, _ = _accumulated(SnAp1(structured=False, variant=variant), model, task, params, {},
                            batch, key, 3)
  assert rel_error(fast, generic) < 1e-12


@pytest.mark.parametrize("cell,slots", [("srn", 1), ("lstm", 2)])
def test_snap1_shapes(cell, slots):
  learner = learners.get("snap1")
  assert isinstance(learner, SnAp1) and not learner.exact
  model, task, params, batch = setup(cell, hidden=3, length=4, batch_size=2, input_size=5)
  lstate = learner.init_state(model, params, 2)
  p = sum(a.size for a in jax.tree.leaves(params["core"]))
  assert isinstance(lstate, SnAp1State)
  assert lstate.influence.shape == (2, slots, p)  # O(P) per example, not O(S P)
  update = jax.jit(learner.update, static_argnums=(0, 5))
  new, (updates, _), aux = update(model, params, {}, lstate, batch, task.loss,
                                  jax.random.PRNGKey(0))
  assert jax.tree.structure(updates) == jax.tree.structure(params)
  assert aux.outputs.shape == (4, 2, 2)
  assert jnp.any(new.influence != 0)


def _numpy_snap1(params, batch, variant):
  """Hand-written SnAp-1 on the tanh SRN with the weighted-MSE step loss (float64 NumPy loops).

  Per example and unit u the trace keeps `M[u, p]` for the parameters p feeding u:
  `M_t = D_u (W_hh[u, u] M_{t-1} + a)`, `a = x_k, h_{t-1,k}, 1` (Menick et al. sec. 3). The
  textbook gradient is `g_u M_t[u, p]` with `g = dL_t/dh_t`; the full-Jacobian variant
  contracts `g` with `J_t M~_{t-1} + F_t`, whose off-diagonal part `g_v D_v W_hh[u, v]` reaches
  `M_{t-1}[u, p]` from every unit v.
  """
  core = {k: np.asarray(v) for k, v in params["core"].items()}
  w_out, b_out = np.asarray(params["readout"]["W"]), np.asarray(params["readout"]["b"])
  xs, ys, ms = (np.asarray(a) for a in (batch.inputs, batch.targets, batch.mask))
  length, bsz, n_in = xs.shape
  hid = core["W_hh"].shape[0]
  grads = {k: np.zeros_like(v) for k, v in core.items()}
  g_w, g_b = np.zeros_like(w_out), np.zeros_like(b_out)
  for b in range(bsz):
    h = np.zeros(hid)
    mx, mh, mb = np.zeros((n_in, hid)), np.zeros((hid, hid)), np.zeros(hid)
    for t in range(length):
      x = xs[t, b]
      h_new = np.tanh(x @ core["W_xh"] + h @ core["W_hh"] + core["b_h"])
      d = 1.0 - h_new ** 2
      err = (h_new @ w_out + b_out - ys[t, b]) * ms[t, b] / bsz  # d(mean over outputs)/do
      g = w_out @ err  # dL_t/dh_t
      g_w += np.outer(h_new, err)
      g_b += err
      diag = np.diagonal(core["W_hh"])
      new_mx = d * (diag * mx + x[:, None])
      new_mh = d * (diag * mh + h[:, None])
      new_mb = d * (diag * mb + 1.0)
      if variant == "textbook":
        grads["W_xh"] += g * new_mx
        grads["W_hh"] += g * new_mh
        grads["b_h"] += g * new_mb
      else:
        # (g J_t)_u = sum_v g_v D_v W_hh[u, v]: the state gradient one step back.
        back = core["W_hh"] @ (g * d)
        grads["W_xh"] += back * mx + g * d * x[:, None]
        grads["W_hh"] += back * mh + g * d * h[:, None]
        grads["b_h"] += back * mb + g * d
      h, mx, mh, mb = h_new, new_mx, new_mh, new_mb
  return {"core": grads, "readout": {"W": g_w, "b": g_b}}


@pytest.mark.parametrize("variant", ["textbook", "full_jacobian"])
@pytest.mark.parametrize("structured", [True, False])
def test_snap1_matches_hand_reference_on_dense_srn(x64, variant, structured):
  model, task, params, batch = setup("srn", hidden=4, length=7, batch_size=3)
  key = jax.random.PRNGKey(0)
  got, _ = _accumulated(SnAp1(structured=structured, variant=variant), model, task, params, {},
                        batch, key, 3)
  ref = _numpy_snap1(params, batch, variant)
  for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(ref)):
    np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("cell", ["srn", "lstm", "gru"])
def test_snap1_variants_differ_on_dense_and_agree_on_diagonal(x64, cell):
  key = jax.random.PRNGKey(0)
  for diagonal in (True, False):
    model, task, params, batch = setup(cell, hidden=3, diagonal=diagonal)
    text, _ = _accumulated(SnAp1(), model, task, params, {}, batch, key, 2)
    full, _ = _accumulated(SnAp1(variant="full_jacobian"), model, task, params, {}, batch, key, 2)
    if diagonal:
      assert rel_error(text, full) < 1e-10, cell
    else:
      assert rel_error(text, full) > 1e-2, cell


def test_snap1_variant_is_checked():
  assert SnAp1().variant == "textbook"
  with pytest.raises(ConfigError, match="learner.variant"):
    SnAp1(variant="dense")
