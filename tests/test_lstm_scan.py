"""The fused LSTM scan (`tca_jax.ops.lstm_scan`): values and hand-written VJP equal autodiff of
the cell's scan in float64, with and without block truncation, and through the learners."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tca_jax import cells, diagnostics, learners, tasks
from tca_jax.cells.lstm import LSTM, LSTMState
from tca_jax.model import Model
from tca_jax.ops.lstm_scan import lstm_cell_backward, lstm_cell_forward, lstm_scan
from tca_jax.registry import ConfigError


def _problem(length=13, batch=3, n_in=4, hidden=5):
  keys = jax.random.split(jax.random.PRNGKey(0), 6)
  cell = LSTM(hidden)
  params = cell.init(keys[0], n_in)
  params["b"] = jax.random.normal(keys[1], params["b"].shape)
  xs = jax.random.normal(keys[2], (length, batch, n_in))
  h0 = jax.random.normal(keys[3], (batch, hidden))
  c0 = jax.random.normal(keys[4], (batch, hidden))
  weights = jax.random.normal(keys[5], (length, batch, hidden))
  return cell, params, xs, h0, c0, weights


@pytest.mark.parametrize("k", [None, 1, 3, 5])
@pytest.mark.parametrize("unroll", [1, 2])
def test_lstm_scan_equals_autodiff_of_the_cell(k, unroll, x64):
  _check_against_autodiff(k, unroll, "xla")


@pytest.mark.parametrize("k", [None, 3])
def test_native_lstm_scan_equals_autodiff_of_the_cell(k, x64):
  """The native kernels (`tca_jax.ops.native.lstm_forward` / `lstm_backward` through jax.ffi):
  the same values and gradients as autodiff of the cell, with and without truncation."""
  from tca_jax.ops import native  # pylint: disable=g-import-not-at-top
  if jax.default_backend() != "cpu" or not native.available():
    pytest.skip("no native kernels (not CPU, or no C++ compiler)")
  _check_against_autodiff(k, 1, "native")


def _check_against_autodiff(k, unroll, kernel):
  cell, params, xs, h0, c0, weights = _problem()
  length = xs.shape[0]
  cut = jnp.zeros(length, bool) if k is None else jnp.arange(length) % k == 0

  def reference(p, h0, c0, xs):
    def body(state, tx):
      t, x = tx
      state = jax.tree.map(lambda s: jnp.where(cut[t], jax.lax.stop_gradient(s), s), state)
      return cell.step(p, state, x)
    final, hs = jax.lax.scan(body, LSTMState(h0, c0), (jnp.arange(length), xs))
    return jnp.sum(jnp.sin(hs) * weights) + jnp.sum(final.h ** 2) + jnp.sum(jnp.cos(final.c))

  def fused(p, h0, c0, xs):
    hs, (h, c) = lstm_scan(p["W_x"], p["W_h"], p["b"], h0, c0, xs, cut, unroll, kernel)
    return jnp.sum(jnp.sin(hs) * weights) + jnp.sum(h ** 2) + jnp.sum(jnp.cos(c))

  args = (params, h0, c0, xs)
  np.testing.assert_allclose(fused(*args), reference(*args), rtol=1e-13)
  got = jax.grad(fused, argnums=(0, 1, 2, 3))(*args)
  want = jax.grad(reference, argnums=(0, 1, 2, 3))(*args)
  for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
    np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-13)


def test_cell_backward_equals_the_vjp_of_from_gates(x64):
  keys = jax.random.split(jax.random.PRNGKey(3), 4)
  z, c_prev, dh, dc = (jax.random.normal(k, s) for k, s in
                       zip(keys, [(3, 20), (3, 5), (3, 5), (3, 5)]))
  h, c, act = lstm_cell_forward(z, c_prev)
  want_state, vjp = jax.vjp(LSTM.from_gates, z, c_prev)
  np.testing.assert_allclose(h, want_state.h, rtol=1e-14)
  np.testing.assert_allclose(c, want_state.c, rtol=1e-14)
  dz, dc_prev = lstm_cell_backward(act, c_prev, dh, dc)
  want_dz, want_dc = vjp(LSTMState(dh, dc))
  np.testing.assert_allclose(dz, want_dz, rtol=1e-12, atol=1e-14)
  np.testing.assert_allclose(dc_prev, want_dc, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("kernel", ["xla", "native"])
@pytest.mark.parametrize("name,options", [("bptt", {}), ("tbptt", {"truncation": 4})])
def test_fused_learner_equals_the_unfused_one(name, options, kernel, x64):
  """With either fused kernel (`learner.kernel`; native falls back to XLA where it cannot be
  built), the learner's gradient equals autodiff of the cell's scan."""
  task = tasks.get("temporal_order", length=12)
  model = Model(cells.get("lstm", hidden_size=6), task.output_size)
  params = model.init(jax.random.PRNGKey(0), task.input_size)
  batch = task.sample(jax.random.PRNGKey(1), 3)
  batch = batch._replace(targets=jnp.broadcast_to(batch.targets[-1], batch.targets.shape),
                         mask=jnp.full(batch.mask.shape, 1.0 / 12))

  def grad(learner, update_every=None):
    return diagnostics.accumulated_update(learner, model, task, params, {}, batch,
                                          jax.random.PRNGKey(1), update_every)[0]

  for update_every in (None, 4):
    got = grad(learners.get(name, fused=True, kernel=kernel, **options), update_every)
    want = grad(learners.get(name, fused=False, **options), update_every)
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
      np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)


def test_fused_option_is_checked():
  with pytest.raises(ConfigError, match="learner.fused"):
    learners.get("bptt", fused="yes")
  with pytest.raises(ConfigError, match="learner.kernel"):
    learners.get("tbptt", kernel="cuda")
