"""Target propagation through time: the paper's equations, checked in float64."""

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from tca_jax import config as config_lib
from tca_jax import diagnostics, learners, tasks, train
from tca_jax.cells import GRU, LSTM, SRN
from tca_jax.learners import tptt as tptt_lib
from tca_jax.model import Model
from tca_jax.registry import ConfigError
from tca_jax.types import Batch

T, B, H, IN, OUT = 6, 3, 5, 4, 3


def _problem(key, cell=None, last_only=True):
  """A small model and batch: random inputs, classification loss at the last step."""
  cell = cell or SRN(H)
  model = Model(cell, OUT)
  k_p, k_x, k_y, k_l = jax.random.split(key, 4)
  params = model.init(k_p, IN)
  inputs = jax.random.normal(k_x, (T, B, IN))
  targets = jax.random.randint(k_y, (T, B), 0, OUT)
  mask = jnp.zeros((T, B)).at[-1].set(1.0) if last_only else jnp.full((T, B), 1.0 / T)
  batch = Batch(inputs, targets, mask)
  task = tasks.get("temporal_order", length=10)  # only its loss (cross-entropy) is used
  learner = learners.get("tptt", alpha_i=0.3, experimental=not isinstance(cell, SRN))
  lparams = learner.init_params(k_l, model, params)
  return model, params, lparams, batch, task.loss


def _update(learner, model, params, lparams, batch, loss_fn, key=jax.random.PRNGKey(3)):
  """One jitted `learner.update` from the initial state (jitted: eager grads of scans are slow)."""
  lstate = learner.init_state(model, params, B)
  _, (pu, lu), aux = _jitted_update(learner, model, loss_fn)(params, lparams, lstate, batch, key)
  return pu, lu, aux


@functools.lru_cache(maxsize=None)
def _jitted_update(learner, model, loss_fn):
  return jax.jit(lambda p, lp, ls, b, k: learner.update(model, p, lp, ls, b, loss_fn, k))


def _targets(learner, model, params, lparams, batch, loss_fn):
  state0 = model.initial_state(B, jax.tree.leaves(params)[0].dtype)
  fn = jax.jit(lambda p, lp, b: learner.targets(model, p, lp, state0, b, loss_fn))
  return fn(params, lparams, batch)


def test_first_target_is_one_gradient_step(x64, key):
  model, params, lparams, batch, loss_fn = _problem(key)
  learner = learners.get("tptt", alpha_i=0.3)
  hs, targets = _targets(learner, model, params, lparams, batch, loss_fn)

  def loss_of_last(h_last):  # E as a function of h_T alone (the paper's loss on the last step)
    logits = model.readout(params, h_last)
    return jnp.mean(loss_fn(logits, batch.targets[-1], batch.mask[-1]))

  expected = hs[-1] - 0.3 * jax.grad(loss_of_last)(hs[-1])
  np.testing.assert_allclose(targets[-1], expected, rtol=1e-12, atol=1e-14)
  assert np.abs(targets[-1] - hs[-1]).max() > 1e-4  # a real step


def test_corrected_targets_with_exact_inverse_equal_inverse_of_next_target(x64, key):
  """With G the exact inverse of F, eq. 6 reduces to eq. 5: h^_t = G(x_{t+1}, h^_{t+1})."""
  cell = SRN(H)
  k_p, k_x, k_g = jax.random.split(key, 3)
  cp = cell.init(k_p, IN)
  inputs = 0.3 * jax.random.normal(k_x, (T, B, IN))
  _, _, hs = tptt_lib.forward(cell, cp, jnp.zeros((B, H)), inputs)
  w_inv = jnp.linalg.inv(cp["W_hh"])

  def exact_inverse(x, h):  # tanh is invertible and W_hh (orthogonal) is too
    return (jnp.arctanh(h) - x @ cp["W_xh"] - cp["b_h"]) @ w_inv

  np.testing.assert_allclose(exact_inverse(inputs[1:], hs[1:]), hs[:-1], atol=1e-12)
  direct = jnp.zeros_like(hs).at[-1].set(0.02 * jax.random.normal(k_g, (B, H)))
  targets = tptt_lib.propagate_targets(hs, inputs, direct, exact_inverse, 0.5)
  assert np.all(np.isfinite(targets))  # the targets stay inside tanh's range
  np.testing.assert_allclose(targets[-1], hs[-1] - 0.5 * direct[-1], atol=1e-14)
  for t in range(T - 1):
    np.testing.assert_allclose(targets[t], exact_inverse(inputs[t + 1], targets[t + 1]),
                               rtol=1e-10, atol=1e-12)
  assert np.abs(targets[0] - hs[0]).max() > 1e-4


def test_corrected_targets_linear_invertible_case(x64, key):
  """A linear F(x, h) = x A + h W + b and its exact linear inverse, by the generic function."""
  k_a, k_w, k_x, k_g = jax.random.split(key, 4)
  a = jax.random.normal(k_a, (IN, H))
  w = jnp.eye(H) + 0.3 * jax.random.normal(k_w, (H, H))
  b = jnp.linspace(-1.0, 1.0, H)
  inputs = jax.random.normal(k_x, (T, B, IN))
  hs, h = [], jnp.zeros((B, H))
  for t in range(T):
    h = inputs[t] @ a + h @ w + b
    hs.append(h)
  hs = jnp.stack(hs)
  inv = lambda x, h: (h - x @ a - b) @ jnp.linalg.inv(w)
  direct = jnp.zeros_like(hs).at[-1].set(jax.random.normal(k_g, (B, H)))
  targets = tptt_lib.propagate_targets(hs, inputs, direct, inv, 0.1)
  for t in range(T - 1):
    np.testing.assert_allclose(targets[t], inv(inputs[t + 1], targets[t + 1]), rtol=1e-9,
                               atol=1e-10)


def _f_phase_closed_form(cp, prev, inputs, hs, targets, wrt_input=False):
  """sum_t d MSE(tanh(x_t W_xh + h_{t-1} W_hh + b), h^_t) / dW with h_{t-1}, h^_t constants."""
  delta = 2.0 / (B * H) * (hs - targets) * (1.0 - hs ** 2)  # [T, B, H]
  w_hh = jnp.einsum("tbi,tbj->ij", prev, delta)
  b_h = jnp.sum(delta, axis=(0, 1))
  w_xh = jnp.einsum("tbi,tbj->ij", inputs, delta)
  return (w_hh, b_h, w_xh) if wrt_input else (w_hh, b_h)


def test_f_phase_is_local_gradient_with_inputs_held_constant(x64, key):
  model, params, lparams, batch, loss_fn = _problem(key)
  learner = learners.get("tptt", alpha_i=0.3, log_local_losses=True)
  pu, _, aux = _update(learner, model, params, lparams, batch, loss_fn)
  cp = params["core"]
  state0 = model.initial_state(B, jnp.float64)
  _, prev, hs = tptt_lib.forward(model.core, cp, state0, batch.inputs)
  _, targets = _targets(learner, model, params, lparams, batch, loss_fn)
  w_hh, b_h = _f_phase_closed_form(cp, prev, batch.inputs, hs, targets)
  np.testing.assert_allclose(pu["core"]["W_hh"], w_hh, rtol=1e-10, atol=1e-16)
  np.testing.assert_allclose(pu["core"]["b_h"], b_h, rtol=1e-10, atol=1e-16)
  assert np.abs(w_hh).max() > 0
  per_step = np.mean((hs - targets) ** 2, axis=(1, 2))
  np.testing.assert_allclose(aux.metrics["f_loss"], np.sum(per_step), rtol=1e-10)
  # Fig. 6's per-step losses: f_loss/t is layer t's local loss; eq. 9 trains G's terms 1..T-1.
  np.testing.assert_allclose([aux.metrics[f"f_loss/{t:03d}"] for t in range(1, T + 1)], per_step,
                             rtol=1e-10)
  g = [float(aux.metrics[f"g_loss/{t:03d}"]) for t in range(1, T + 1)]
  np.testing.assert_allclose(sum(g[:-1]), aux.metrics["g_loss"], rtol=1e-10)
  assert min(g) > 0

  # The earlier states reach the local losses only through a stop-gradient path: feeding
  # states recomputed from the same parameters (a live path back through time) changes nothing.
  def live(c):
    _, prev_live, _ = tptt_lib.forward(model.core, c, state0, batch.inputs)
    return jnp.sum(tptt_lib.local_losses(model.core, c, prev_live, batch.inputs, targets))

  g_live = jax.jit(jax.grad(live))(cp)
  np.testing.assert_allclose(g_live["W_hh"], pu["core"]["W_hh"], rtol=1e-10, atol=1e-16)

  # ... whereas the same loss with a gradient crossing time gives a different direction.
  def through_time(c):
    _, _, hs_c = tptt_lib.forward(model.core, c, state0, batch.inputs)
    return jnp.sum(jnp.mean((hs_c - targets) ** 2, axis=(1, 2)))

  g_bptt = jax.jit(jax.grad(through_time))(cp)["W_hh"]
  assert np.abs(g_bptt - pu["core"]["W_hh"]).max() > 1e-3 * np.abs(g_bptt).max()


def test_tptt_input_weights_by_de_and_tptt_hx_by_local_targets(x64, key):
  model, params, lparams, batch, loss_fn = _problem(key)
  task = tasks.get("temporal_order", length=10)
  reference = diagnostics.bptt_gradient(model, task, params, batch)

  pu, _, _ = _update(learners.get("tptt", alpha_i=0.3, log_local_losses=True), model, params,
                     lparams, batch, loss_fn)  # the learner of the F-phase test: one compile
  np.testing.assert_allclose(pu["core"]["W_xh"], reference["core"]["W_xh"], rtol=1e-10,
                             atol=1e-16)
  for k in ("W", "b"):  # eq. 11
    np.testing.assert_allclose(pu["readout"][k], reference["readout"][k], rtol=1e-10, atol=1e-16)

  hx = learners.get("tptt_hx", alpha_i=0.3)
  pu_hx, _, _ = _update(hx, model, params, lparams, batch, loss_fn)
  state0 = model.initial_state(B, jnp.float64)
  _, prev, hs = tptt_lib.forward(model.core, params["core"], state0, batch.inputs)
  _, targets = _targets(hx, model, params, lparams, batch, loss_fn)
  w_hh, b_h, w_xh = _f_phase_closed_form(params["core"], prev, batch.inputs, hs, targets, True)
  np.testing.assert_allclose(pu_hx["core"]["W_xh"], w_xh, rtol=1e-10, atol=1e-16)
  np.testing.assert_allclose(pu_hx["core"]["W_hh"], w_hh, rtol=1e-10, atol=1e-16)
  np.testing.assert_allclose(pu_hx["readout"]["W"], reference["readout"]["W"], rtol=1e-10)
  assert np.abs(pu_hx["core"]["W_xh"] - reference["core"]["W_xh"]).max() > 1e-6


SRN_PATH_CASES = {
    "paper": dict(name="tptt"),
    "hx": dict(name="tptt_hx"),
    "release_noise": dict(name="tptt", variant="release", sigma=0.2, alpha_g=0.5),
    "noise_targets_terms": dict(name="tptt_hx", sigma=0.1, g_terms="targets"),
    "either_phase": dict(name="tptt", p_g=0.5, phases="either"),
    "relu_unroll3_carried_every_step": dict(name="tptt", activation="relu", unroll=3,
                                            carried=True, last_only=False),
}


@pytest.mark.parametrize("case", list(SRN_PATH_CASES))
def test_srn_update_equals_autodiff_update(x64, key, case):
  """The SRN's written-out update (two time loops, GEMMs over all steps, gradients from the
  outputs) equals autodiff of the cell's step (`update_autodiff`) in every option."""
  options = dict(SRN_PATH_CASES[case])
  name, activation = options.pop("name"), options.pop("activation", "tanh")
  carried, last_only = options.pop("carried", False), options.pop("last_only", True)
  model, params, _, batch, loss_fn = _problem(key, SRN(H, activation=activation),
                                             last_only=last_only)
  learner = learners.get(name, alpha_i=0.3, log_local_losses=True, **options)
  lparams = learner.init_params(key, model, params)
  lstate = learner.init_state(model, params, B)
  if carried:  # a state carried into the window (tasks that carry state)
    lstate = lstate._replace(model_state=0.5 * jnp.tanh(jax.random.normal(key, (B, H))))
  for k in range(2):  # two keys: with p_g < 1 one call runs each phase
    fast, slow = (jax.jit(lambda p, lp, ls, b, kk, f=f: f(model, p, lp, ls, b, loss_fn, kk))(
        params, lparams, lstate, batch, jax.random.PRNGKey(k))
        for f in (learner.srn_update, learner.update_autodiff))
    (state_a, upd_a, aux_a), (state_b, upd_b, aux_b) = fast, slow
    np.testing.assert_allclose(state_a.model_state, state_b.model_state, rtol=1e-12, atol=1e-15)
    assert jax.tree.structure(upd_a) == jax.tree.structure(upd_b)
    for a, b in zip(jax.tree.leaves(upd_a), jax.tree.leaves(upd_b)):
      np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-15)
    assert set(aux_a.metrics) == set(aux_b.metrics)
    for m in aux_a.metrics:
      np.testing.assert_allclose(aux_a.metrics[m], aux_b.metrics[m], rtol=1e-10, atol=1e-15,
                                 err_msg=m)
    np.testing.assert_allclose(aux_a.loss, aux_b.loss, rtol=1e-12)
    np.testing.assert_allclose(aux_a.outputs, aux_b.outputs, rtol=1e-12, atol=1e-15)
  assert np.abs(upd_a[0]["core"]["W_hh"]).max() + np.abs(upd_a[1]["V_hh"]).max() > 0


# Eq. 9 sums t = 1..T-1 (0-based entries 0..T-2); the release t = 1..T; "targets" t = 2..T.
G_STEPS = {"eq9": range(0, T - 1), "all": range(0, T), "targets": range(1, T)}


@pytest.mark.parametrize("g_terms", ["eq9", "all", "targets"])
def test_g_phase_gradient_and_noise(x64, key, g_terms):
  model, params, lparams, batch, loss_fn = _problem(key)
  cp = params["core"]
  _, prev, hs = tptt_lib.forward(model.core, cp, model.initial_state(B, jnp.float64),
                                 batch.inputs)

  def g_loss(lp, noise):  # eq. 9: G(x_t, F(x_t, h_{t-1} + eps)) ~ h_{t-1} + eps
    total = 0.0
    for i in G_STEPS[g_terms]:  # step t = i + 1 reconstructs h_{t-1} = prev[i] (prev[0] = h_0)
      h_prev = prev[i] + noise[i]
      h_t = jnp.tanh(batch.inputs[i] @ cp["W_xh"] + h_prev @ cp["W_hh"] + cp["b_h"])
      g = jnp.tanh(batch.inputs[i] @ cp["W_xh"] + h_t @ lp["V_hh"] + lp["c_h"])
      total = total + jnp.mean((g - h_prev) ** 2)
    return total

  learner = learners.get("tptt", g_terms=None if g_terms == "eq9" else g_terms)
  assert learner.option("g_terms") == g_terms
  _, lu, aux = _update(learner, model, params, lparams, batch, loss_fn)
  expected = jax.jit(jax.grad(g_loss))(lparams, jnp.zeros_like(hs))
  for k in ("V_hh", "c_h"):
    np.testing.assert_allclose(lu[k], expected[k], rtol=1e-10, atol=1e-16)
  np.testing.assert_allclose(aux.metrics["g_loss"], g_loss(lparams, jnp.zeros_like(hs)),
                             rtol=1e-10)

  # Noise: the learner draws eps ~ N(0, sigma^2) from the second half of its key; it reaches h_0.
  sigma, k = 0.2, jax.random.PRNGKey(11)
  _, lu_noisy, _ = _update(dataclasses.replace(learner, sigma=sigma), model, params, lparams,
                           batch, loss_fn, key=k)
  eps = sigma * jax.random.normal(jax.random.split(k)[1], hs.shape, hs.dtype)
  expected = jax.jit(jax.grad(g_loss))(lparams, eps)
  np.testing.assert_allclose(lu_noisy["V_hh"], expected["V_hh"], rtol=1e-10, atol=1e-16)
  assert np.abs(lu_noisy["V_hh"] - lu["V_hh"]).max() > 1e-6


def test_release_variant_options_and_targets_after_g(x64, key):
  paper, release = learners.get("tptt"), learners.get("tptt", variant="release")
  assert [paper.option(o) for o in ("g_terms", "phases", "targets_after_g", "inverse_init")] == [
      "eq9", "either", False, "normal"]
  assert [release.option(o) for o in ("g_terms", "phases", "targets_after_g", "inverse_init")] == [
      "all", "g_optional", True, "orthogonal"]
  # An option set explicitly wins over the variant.
  assert learners.get("tptt", variant="release", g_terms="eq9").option("g_terms") == "eq9"

  model, params, _, batch, loss_fn = _problem(key)
  # V_hh: N(0, 0.1^2) (sec. 3.1) or orthogonal (the release).
  v_paper = paper.init_params(key, model, params)["V_hh"]
  v_release = release.init_params(key, model, params)["V_hh"]
  np.testing.assert_allclose(v_release @ v_release.T, np.eye(H), atol=1e-6)
  assert 0.05 < float(jnp.std(v_paper)) < 0.2
  lparams = release.init_params(key, model, params)

  # Targets after the G step: the F-phase uses targets set with V - alpha_g dV.
  learner = learners.get("tptt", alpha_i=0.3, alpha_g=0.5, variant="release")
  pu, lu, _ = _update(learner, model, params, lparams, batch, loss_fn)
  stepped = jax.tree.map(lambda v, g: v - 0.5 * g, lparams, lu)
  cp = params["core"]
  _, prev, hs = tptt_lib.forward(model.core, cp, model.initial_state(B, jnp.float64),
                                 batch.inputs)
  _, after = _targets(learner, model, params, stepped, batch, loss_fn)
  _, before = _targets(learner, model, params, lparams, batch, loss_fn)
  w_hh, b_h = _f_phase_closed_form(cp, prev, batch.inputs, hs, after)
  np.testing.assert_allclose(pu["core"]["W_hh"], w_hh, rtol=1e-10, atol=1e-16)
  np.testing.assert_allclose(pu["core"]["b_h"], b_h, rtol=1e-10, atol=1e-16)
  w_before, _ = _f_phase_closed_form(cp, prev, batch.inputs, hs, before)
  assert np.abs(w_before - w_hh).max() > 1e-6 * np.abs(w_hh).max()


@pytest.mark.parametrize("phases", ["either", "g_optional"])
def test_randomised_phases_skip_updates_and_momentum(x64, key, phases):
  model, params, lparams, batch, loss_fn = _problem(key)
  learner = learners.get("tptt", p_g=0.5, phases=phases)
  ran = []
  for i in range(8):
    pu, lu, aux = _update(learner, model, params, lparams, batch, loss_fn,
                          key=jax.random.PRNGKey(i))
    ran.append(bool(aux.metrics["g_phase"]))
    ran_f = bool(aux.metrics["f_phase"])
    assert all(np.all(v == 0) for v in jax.tree.leaves(lu)) == (not ran[-1])
    assert np.abs(lu["V_hh"]).max() > 0 if ran[-1] else True
    # sec. 3.1.3: either phase (exactly one per call); "g_optional": the F-phase always runs.
    assert ran_f == (not ran[-1] if phases == "either" else True)
    assert all(np.all(v == 0) for v in jax.tree.leaves(pu)) == (not ran_f)
  assert any(ran) and not all(ran)

  # A skipped G-phase is no optimizer step at all, even with momentum.
  opt = tptt_lib.skip_zero_updates(optax.sgd(0.1, momentum=0.9, nesterov=True))
  p = {"v": jnp.ones(3)}
  s = opt.init(p)
  u, s = opt.update({"v": jnp.ones(3)}, s, p)
  u0, s0 = opt.update({"v": jnp.zeros(3)}, s, p)
  assert np.all(u0["v"] == 0)
  for a, b in zip(jax.tree.leaves(s0), jax.tree.leaves(s)):
    np.testing.assert_array_equal(a, b)


def _config(**learner_options):
  c = config_lib.default_config()
  c.task.name, c.task.length = "temporal_order", 10
  c.model.cell, c.model.hidden_size = "srn", 8
  c.learner.name = learner_options.pop("name", "tptt")
  for k, v in learner_options.items():
    c.learner[k] = v
  c.train.optimizer, c.train.learning_rate, c.train.clip_norm = "sgd", 0.05, 0.0
  c.train.batch_size = 4
  return c


def test_learning_rates_scale_the_two_groups(x64, key):
  c = _config(alpha_f=0.05, alpha_g=0.5)
  c.train.momentum = 0.0
  setup = config_lib.build(c)
  opt = train.make_optimizer(c.train, setup.learner)
  params = setup.model.init(key, setup.task.input_size)
  lparams = setup.learner.init_params(key, setup.model, params)
  batch = setup.task.sample(key, 4)
  lstate = setup.learner.init_state(setup.model, params, 4)
  _, (pu, lu), _ = jax.jit(lambda p, lp, ls, b, k: setup.learner.update(
      setup.model, p, lp, ls, b, setup.task.loss, k))(params, lparams, lstate, batch, key)
  steps, _ = opt.update((pu, lu), opt.init((params, lparams)), (params, lparams))
  np.testing.assert_allclose(steps[0]["core"]["W_hh"], -0.05 * pu["core"]["W_hh"], rtol=1e-12)
  np.testing.assert_allclose(steps[0]["readout"]["W"], -0.05 * pu["readout"]["W"], rtol=1e-12)
  np.testing.assert_allclose(steps[1]["V_hh"], -0.5 * lu["V_hh"], rtol=1e-12)


def _runner(c, seed=0):
  """A jitted train step and the initial state for config `c` (compiled once per config)."""
  setup = config_lib.build(c)
  opt = train.make_optimizer(c.train, setup.learner)
  k = jax.random.PRNGKey(seed)
  params = setup.model.init(k, setup.task.input_size)
  lparams, lstate = setup.learner.init(k, setup.model, params, c.train.batch_size)
  init = train.TrainState(jnp.asarray(0), params, lparams, opt.init((params, lparams)), lstate,
                          jnp.asarray(-1))
  step = train.make_train_step(setup, opt)

  def run(steps):
    state = jax.tree.map(jnp.array, init)
    for i in range(steps):
      ki = jax.random.fold_in(k, i)
      state, _ = step(state, setup.task.sample(ki, c.train.batch_size), jax.random.fold_in(ki, 1))
    return state

  return init, run


def test_two_runs_with_the_same_seed_are_identical():
  """sigma=0, fixed seed: bit-identical parameters (with noise, the draw is pinned to the key by
  test_g_phase_gradient_and_noise)."""
  init, run = _runner(_config(sigma=0.0))
  a, b = run(4), run(4)
  for x, y in zip(jax.tree.leaves((a.params, a.lparams)), jax.tree.leaves((b.params, b.lparams))):
    np.testing.assert_array_equal(x, y)
  assert np.abs(a.params["core"]["W_hh"] - init.params["core"]["W_hh"]).max() > 0
  assert np.abs(a.lparams["V_hh"] - init.lparams["V_hh"]).max() > 0


def test_config_errors():
  c = _config()
  c.model.cell = "lstm"
  with pytest.raises(ConfigError, match="learner.experimental"):
    config_lib.build(c)
  c.learner.experimental = True
  config_lib.build(c)
  assert config_lib.build(_config(variant="release")).learner.option("g_terms") == "all"
  with pytest.raises(ConfigError, match="learner.targets_after_g"):
    learners.get("tptt", targets_after_g="yes")
  for field, value in (("p_g", 0.0), ("sigma", -1.0), ("alpha_i", 0.0), ("alpha_g", -1.0),
                       ("variant", "text"), ("g_terms", "1..T"), ("phases", "both"),
                       ("inverse_init", "zeros"), ("unroll", 0)):
    with pytest.raises(ConfigError, match=f"learner.{field}"):
      config_lib.build(_config(**{field: value}))


@pytest.mark.parametrize("cell", [LSTM(H), GRU(H)], ids=["lstm", "gru"])
def test_experimental_gated_cells_use_local_hidden_targets(x64, key, cell):
  model, params, _, batch, loss_fn = _problem(key, cell)
  learner = learners.get("tptt", experimental=True, alpha_i=0.3)
  lparams = learner.init_params(key, model, params)
  assert set(lparams) == {"V_hh", "c_h", "U_x"}
  pu, lu, aux = _update(learner, model, params, lparams, batch, loss_fn)
  cp = params["core"]
  state0 = model.initial_state(B, jnp.float64)
  _, targets = _targets(learner, model, params, lparams, batch, loss_fn)

  def live(c):  # states recomputed from the same parameters: the update must not see that path
    _, prev, _ = tptt_lib.forward(model.core, c, state0, batch.inputs)
    return jnp.sum(tptt_lib.local_losses(model.core, c, prev, batch.inputs, targets))

  expected = jax.jit(jax.grad(live))(cp)
  task = tasks.get("temporal_order", length=10)
  reference = diagnostics.bptt_gradient(model, task, params, batch)
  for k in cp:
    want = reference["core"][k] if k == "W_x" else expected[k]
    np.testing.assert_allclose(pu["core"][k], want, rtol=1e-10, atol=1e-16)
  assert all(np.all(np.isfinite(v)) for v in jax.tree.leaves((pu, lu)))
  assert np.abs(lu["U_x"]).max() > 0


def _protocol_config(name="tptt", hidden=16):
  from experiments.configs import tptt as tptt_config  # pylint: disable=g-import-not-at-top
  c = tptt_config.get_config("temporal_order" if name == "tptt" else f"temporal_order_{name}")
  c.model.hidden_size = hidden
  c.protocol.max_iters = 200
  c.protocol.validate_every = 100
  c.protocol.val_samples = 400
  c.protocol.val_batch_size = 200
  return c


def test_protocol_runs_and_reports(tmp_path):
  """The paper's protocol on a tiny budget: the radius abort, the records, the config checks."""
  from tca_jax import metrics_io, tptt_protocol  # pylint: disable=g-import-not-at-top
  c = _protocol_config(hidden=8)
  c.protocol.max_iters, c.protocol.validate_every = 40, 20
  c.protocol.val_samples, c.protocol.val_batch_size = 100, 100
  # A radius limit below the orthogonal start's radius (1) aborts at the first validation.
  c.protocol.max_radius, c.protocol.target_error = 0.5, 0.0
  protocol = tptt_protocol.protocol_from_config(c)
  writer = metrics_io.MetricsWriter(str(tmp_path))
  run = tptt_protocol.train_until_solved(c, protocol, 10, writer=writer)
  assert run["reason"] == "radius" and run["stopped_at"] == 20 and not run["solved"]
  assert run["iterations"] is None and len(run["history"]) == 1
  last = run["history"][-1]
  assert last["radius_W_hh"] > 0.5 and "radius_V_hh" in last and 0 <= last["val_error"] <= 1
  records = metrics_io.read_metrics(str(tmp_path))
  assert records[-1]["length"] == 10 and records[-1]["iteration"] == 20

  with pytest.raises(ConfigError, match="protocol.max_iters"):
    c.protocol.max_iters = 30
    tptt_protocol.protocol_from_config(c)


@pytest.mark.slow
def test_tptt_solves_temporal_order_t10():
  """Learning: the paper's TPTT (SRN(100), its rates) reaches 0 errors in 10,000 at T=10."""
  from tca_jax import tptt_protocol  # pylint: disable=g-import-not-at-top
  c = _protocol_config(hidden=100)
  c.protocol.max_iters = 2000
  c.protocol.validate_every = 100
  c.protocol.val_samples = 10_000
  c.protocol.val_batch_size = 1000
  run = tptt_protocol.train_until_solved(c, tptt_protocol.protocol_from_config(c), 10)
  assert run["solved"], run["history"][-1]


def test_release_protocol_jitter_patience_and_orthogonal_init():
  """The release's protocol pieces: jittered adding (one length per batch, also in validation),
  every weight orthogonal, the patience stop."""
  from tca_jax import tptt_protocol as curriculum  # pylint: disable=g-import-not-at-top
  from experiments.configs import tptt as tptt_config  # pylint: disable=g-import-not-at-top
  c = tptt_config.get_config("adding_release")
  c.model.hidden_size = 8
  c.protocol.max_iters, c.protocol.validate_every = 400, 10
  c.protocol.val_samples, c.protocol.val_batch_size = 50, 25
  c.protocol.target_error, c.protocol.patience = 0.0, 1
  c.learner.alpha_f = c.train.learning_rate = 1e-9  # nothing learns: the errors only fluctuate
  protocol = curriculum.protocol_from_config(c)
  assert protocol.init == "orthogonal" and protocol.patience == 1
  run = curriculum.train_until_solved(c, protocol, 20)
  errors = [r["val_error"] for r in run["history"]]
  assert run["reason"] == "patience" and run["stopped_at"] < 400
  assert errors[-1] >= min(errors[:-1]) and all(
      errors[i] < min(errors[:i], default=np.inf) for i in range(len(errors) - 1))

  setup = config_lib.build(curriculum.with_length(c, 20))
  assert setup.task.length_choices() == (20, 21)
  key = jax.random.PRNGKey(0)
  params = curriculum._init_params(setup, key, None, "orthogonal")
  w = params["core"]["W_xh"]  # [2, 8]: orthonormal rows
  np.testing.assert_allclose(w @ w.T, np.eye(2), atol=1e-5)
  picks = {int(curriculum._length_index(jax.random.fold_in(key, i), 2)) for i in range(20)}
  assert picks == {0, 1}
  step = curriculum._jittered_eval_step(setup, 16, (20, 21))
  m = step(params, key)
  assert 0.0 <= float(m["accuracy"]) <= 1.0 and float(m["mse"]) > 0
  c.learner.log_local_losses = True
  with pytest.raises(ConfigError, match="learner.log_local_losses"):
    curriculum.train_until_solved(c, protocol, 20)
  with pytest.raises(ConfigError, match="protocol.patience"):
    curriculum.Protocol(patience=-1)
  with pytest.raises(ConfigError, match="protocol.init"):
    curriculum.Protocol(init="xavier")


def test_protocol_period_equals_iterations_one_by_one(x64):
  """One jitted period (a scan over iterations, then the validation inside the same call) gives
  the parameters and validation numbers of the iterations run one by one on the host and
  `train.evaluate`, in float64."""
  from tca_jax import tptt_protocol  # pylint: disable=g-import-not-at-top
  c = _protocol_config(hidden=8)
  c.protocol.max_iters, c.protocol.validate_every = 6, 3
  c.protocol.val_samples, c.protocol.val_batch_size = 30, 10
  protocol = tptt_protocol.protocol_from_config(c)
  runner = tptt_protocol.build_runner(c, protocol, 10)
  assert jax.tree.leaves(runner.state.params)[0].dtype == jnp.float64
  chunked, metrics, val = runner.period(runner.state, 3)

  setup, cfg = runner.setup, tptt_protocol.with_length(c, 10)
  optimizer = train.make_optimizer(cfg.train, setup.learner, setup.task.sequence_length)
  step = train.make_train_step(setup, optimizer)
  _, train_key, val_key, _ = jax.random.split(jax.random.PRNGKey(c.seed), 4)
  state, losses = runner.state, []
  for i in range(3, 6):
    k_batch, k_update = jax.random.split(jax.random.fold_in(train_key, i))
    state, m = step(state, setup.task.sample(k_batch, cfg.train.batch_size), k_update)
    losses.append(m["loss"])
  for a, b in zip(jax.tree.leaves(chunked.params), jax.tree.leaves(state.params)):
    np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)
  np.testing.assert_allclose(metrics["loss"], np.mean(losses), rtol=1e-12)
  eval_step = train.make_eval_step(dataclasses.replace(setup, eval_task=setup.task), 10)
  expected = train.evaluate(eval_step, state.params, jax.random.fold_in(val_key, 6), 3)
  assert set(val) == set(expected) | {"samples_checked"} and int(val["samples_checked"]) == 30
  for k in expected:
    np.testing.assert_allclose(val[k], expected[k], rtol=1e-12, atol=1e-14)
