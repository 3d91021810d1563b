"""SAB: the sab_lstm / attn_lstm cores and the `sab` learner (exactness in float64)."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tca_jax import cells, diagnostics, learners, tasks
from tca_jax.cells.sab import SABLSTM, only_where
from tca_jax.learners import sab as sab_learner
from tca_jax.learners.sab import SAB, _chunk_bounds, window_gradients
from tca_jax.learners.base import scan_unroll
from tca_jax.model import Model
from tca_jax.registry import ConfigError

H, B = 5, 2


def _setup(length=4, **core_options):
  """Copy task with T=length (length + 20 steps), a small SAB model, random inputs."""
  task = tasks.get("copy", length=length)
  core = SABLSTM(H, **core_options)
  model = Model(core, task.output_size)
  params = model.init(jax.random.PRNGKey(0), task.input_size)
  # Larger attention weights than at init, so that selections differ across steps.
  params = jax.tree.map(lambda p: 2.0 * p, params)
  batch = task.sample(jax.random.PRNGKey(1), B)
  # Dense random inputs make every step informative (one-hot copy inputs are mostly blanks).
  inputs = jax.random.normal(jax.random.PRNGKey(2), batch.inputs.shape)
  return task, model, params, batch._replace(inputs=inputs)


def _close(a, b, rtol=1e-9, atol=1e-12):
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    np.testing.assert_allclose(x, y, rtol=rtol, atol=atol)


def _sab_update(learner, model, task, params, batch, update_every=0):
  fn = jax.jit(diagnostics.accumulated_update, static_argnums=(0, 1, 2, 7))
  return fn(learner, model, task, params, {}, batch, jax.random.PRNGKey(3), update_every)[0]


_bptt_gradient = jax.jit(diagnostics.bptt_gradient, static_argnums=(0, 1))
_window_gradients = jax.jit(window_gradients, static_argnums=(0, 1, 5))


def test_core_shapes_and_memory_writes():
  core = cells.get("sab_lstm", hidden_size=H, k_top=2, k_att=3, max_memories=4)
  assert core.feature_size == 2 * H
  params = core.init(jax.random.PRNGKey(0), 3)
  assert core.recurrent_matrix(params).shape == (H, H)
  state = core.initial_state(B)
  assert state.memory.shape == (4, B, H) and state.keys.shape == (4, B, H)
  xs = jax.random.normal(jax.random.PRNGKey(1), (14, B, 3))
  final, feats = jax.lax.scan(lambda s, x: core.step(params, s, x), state, xs)
  assert feats.shape == (14, B, 2 * H)
  # Writes after steps 3, 6, 9, 12 (1-based): 4; the fifth would not fit and is dropped.
  assert float(final.count) == 4.0 and float(final.t) == 14.0
  # Memory slot 0 holds h after step 3, its key W1 h.
  _, f3 = jax.lax.scan(lambda s, x: core.step(params, s, x), state, xs[:3])
  np.testing.assert_allclose(final.memory[0], f3[-1, :, :H], rtol=1e-6)
  np.testing.assert_allclose(final.keys[0], f3[-1, :, :H] @ params["attn"]["W1"], rtol=1e-5,
                             atol=1e-6)
  # Summary part of the features: s_t = h_t - h^_t; zero while the memory is empty.
  np.testing.assert_array_equal(feats[:3, :, H:], 0.0)
  model = Model(cells.get("attn_lstm", hidden_size=H, max_memories=14), 10)
  p = model.init(jax.random.PRNGKey(0), 3)
  _, out = model.unroll(p, model.initial_state(B), xs)
  assert out.shape == (14, B, 10)


def test_config_errors():
  with pytest.raises(ConfigError, match="model.k_top"):
    SABLSTM(H, k_top=9, max_memories=8)
  with pytest.raises(ConfigError, match="model.k_top"):
    SABLSTM(H, k_top=1, sparsify="release")
  with pytest.raises(ConfigError, match="model.sparsify"):
    SABLSTM(H, sparsify="nope")
  with pytest.raises(ConfigError, match="model.sab_credit"):
    SABLSTM(H, sab_credit="all")
  with pytest.raises(ConfigError, match="learner.k_trunc"):
    SAB(k_trunc=50).validate(24, 24)
  with pytest.raises(ConfigError, match="train.update_every"):
    SAB(k_trunc=4).validate(24, 8)
  SAB(k_trunc=4).validate(24, 4)
  with pytest.raises(ConfigError, match="learner.unroll"):
    SAB(unroll=0)
  for bad in (0, True, 2.0):
    with pytest.raises(ConfigError, match="learner.forward_chunks"):
      SAB(forward_chunks=bad)
  # Unset picks per backend (the tests run on the CPU: the staircase of 4).
  assert sab_learner.forward_chunks_for(None) == (4 if jax.default_backend() == "cpu" else 1)
  assert sab_learner.forward_chunks_for(3) == 3
  with pytest.raises(ConfigError, match="learner.store_gates"):
    SAB(store_gates="yes")
  with pytest.raises(ConfigError, match="model.cell"):
    SAB().init_state(Model(cells.get("lstm", hidden_size=H), 10), {}, B)


@pytest.mark.parametrize("credit", ["paper", "exact"])
def test_unselected_memories_get_exactly_zero_gradient(x64, credit):
  core = SABLSTM(H, k_top=2, max_memories=9, sab_credit=credit)
  params = core.init(jax.random.PRNGKey(0), 3)
  params["attn"] = jax.tree.map(lambda p: 3 * p, params["attn"])
  keys = jax.random.split(jax.random.PRNGKey(1), 3)
  memory = jax.random.normal(keys[0], (9, B, H))
  mkeys = memory @ params["attn"]["W1"]
  h_hat = jax.random.normal(keys[1], (B, H))
  count = jnp.asarray(7.0)  # slots 7, 8 are empty

  def f(mem, ks, fn):
    return jnp.sum(jnp.sin(fn(params, h_hat, mem, ks, count)))

  attend = lambda *a: core.attend(*a)[0]
  for fn in (attend, core.summary):  # the sparsifier op and the gathered path
    g_mem, g_keys = jax.jit(jax.grad(f, argnums=(0, 1)), static_argnums=2)(memory, mkeys, fn)
    raw = core.attention_logits(params, h_hat, mkeys, count)  # [B, M]
    rank = jnp.argsort(jnp.argsort(-raw, -1), -1).T  # [M, B], 0 = largest
    sel = rank < 2
    assert bool(jnp.all(jnp.where(~sel[..., None], g_mem == 0, True)))
    assert bool(jnp.all(jnp.any(g_mem != 0, -1) == sel))
    # Keys: "paper" credit (sec. 3.2) reaches the k selected only; "exact" (the derivative of
    # Algorithm 1) also the threshold memory (rank k).
    reached = sel if credit == "paper" else rank <= 2
    assert bool(jnp.all(jnp.any(g_keys != 0, -1) == reached))


def test_paper_credit_matches_hand_reference_with_constant_threshold(x64):
  """sec. 3.2: the sparsified weights relu(a_i - tau) / sum_j relu(a_j - tau) differentiated with
  tau a number fixed beforehand (NumPy), so only the k_top selected memories get gradient."""
  k = 2
  core = SABLSTM(H, k_top=k, max_memories=9)
  params = core.init(jax.random.PRNGKey(0), 3)
  params["attn"] = jax.tree.map(lambda p: 3 * p, params["attn"])
  keys = jax.random.split(jax.random.PRNGKey(4), 2)
  memory = jax.random.normal(keys[0], (9, B, H))
  mkeys = memory @ params["attn"]["W1"]
  h_hat = jax.random.normal(keys[1], (B, H))
  count = jnp.asarray(9.0)
  raw = np.asarray(core.attention_logits(params, h_hat, mkeys, count))  # [B, M]
  tau = np.sort(raw, -1)[:, ::-1][:, k]  # the (k+1)-th largest, a constant

  def reference(attn, mem, ks, h):
    a = (jnp.tanh(ks + (h @ attn["W2"])[None]) @ attn["w3"]).T  # [B, M]
    r = jax.nn.relu(a - tau[:, None])
    w = r / jnp.sum(r, -1, keepdims=True)
    return jnp.sum(jnp.sin(jnp.einsum("bm,mbh->bh", w, mem)))

  def ours(attn, mem, ks, h):
    return jnp.sum(jnp.sin(core.attend(dict(params, attn=attn), h, mem, ks, count)[0]))

  args = (params["attn"], memory, mkeys, h_hat)
  got = jax.grad(ours, argnums=(0, 1, 2, 3))(*args)
  ref = jax.grad(reference, argnums=(0, 1, 2, 3))(*args)
  _close(got, ref, rtol=1e-10, atol=1e-14)
  exact = jax.grad(lambda *a: jnp.sum(jnp.sin(dataclasses.replace(core, sab_credit="exact").attend(
      dict(params, attn=a[0]), a[3], a[1], a[2], count)[0])), argnums=(0, 1, 2, 3))(*args)
  assert float(jnp.max(jnp.abs(exact[2] - ref[2]))) > 1e-6  # the threshold's key differs


def test_paper_credit_gain_to_the_state_grows_as_one_over_the_prominence(x64):
  """The 3-seed T=100 NaN (docs/RESULTS.md), built small. k_top + 1 candidates whose raw weights
  nearly tie (keys differing by eps in one attention unit, as when the other units' tanh saturate)
  and whose values differ by O(1): the prominence sum_i relu(a_i - tau) is O(eps). Sec. 3.2's
  credit (tau a constant) sends the summary's cotangent to the provisional state h^ with a gain
  O(1 / eps): the selected raw weights' cotangents (g_i - g.w) / total reach h^ through the shared
  query without tau's compensating term. The derivative ("exact") stays O(1), since the raw
  weights' differences, not the weights, move with h^ (here O(eps)). Chained over mental updates, that gain
  overflowed float32 (1e41 in float64) and tanh's VJP then made 0 * inf = NaN."""
  k = 2
  attn = SABLSTM(H, k_top=k).init(jax.random.PRNGKey(0), 3)["attn"]
  r = jax.random.split(jax.random.PRNGKey(5), 2)
  h_hat = jax.random.normal(r[0], (B, H))
  mem = jax.random.normal(r[1], (B, k + 1, H))  # O(1) apart
  valid = jnp.ones((B, k + 1), bool)
  base = jnp.tile(jnp.linspace(-0.5, 0.5, H), (B, k + 1, 1))

  def gain(credit, eps):
    core = SABLSTM(H, k_top=k, sab_credit=credit)
    keys = base.at[:, :, 0].add(eps * jnp.array([3.0, 2.0, 0.0]))  # descending raw weights
    jac = jax.jacobian(lambda h: core.candidate_summary(attn, h, mem, keys, valid))(h_hat)
    return float(jnp.max(jnp.abs(jac)))

  epsilons = (1e-2, 1e-4, 1e-6)
  paper = np.array([gain("paper", e) for e in epsilons])
  exact = np.array([gain("exact", e) for e in epsilons])
  np.testing.assert_allclose(paper * np.array(epsilons), paper[0] * epsilons[0], rtol=0.05)
  assert paper[-1] > 1e5
  assert exact.max() < 1e-2 and np.all(np.diff(exact) < 0)  # bounded (here it even vanishes)


@pytest.mark.parametrize("credit", ["paper", "exact"])
def test_gathered_summary_equals_sparsifier_op_path(x64, credit):
  core = SABLSTM(H, k_top=3, max_memories=9, sab_credit=credit)
  params = core.init(jax.random.PRNGKey(0), 3)
  keys = jax.random.split(jax.random.PRNGKey(1), 2)
  memory = jax.random.normal(keys[0], (9, B, H))
  h_hat = jax.random.normal(keys[1], (B, H))

  @jax.jit
  def both(params, memory, h_hat, count):
    mkeys = memory @ params["attn"]["W1"]
    f_op = lambda *a: jnp.sum(jnp.sin(core.attend(*a)[0]))
    f_fast = lambda *a: jnp.sum(jnp.sin(core.summary(*a)))
    args = (params, h_hat, memory, mkeys, count)
    return (jax.value_and_grad(f_op, argnums=(0, 1, 2, 3))(*args),
            jax.value_and_grad(f_fast, argnums=(0, 1, 2, 3))(*args))

  for count in (2.0, 7.0, 9.0):  # fewer than k_top + 1 memories, partly full, full
    a, b = both(params, memory, h_hat, jnp.asarray(count))
    _close(a, b, rtol=1e-10)


@pytest.mark.parametrize("core_options", [
    dict(k_top=24, k_att=1, max_memories=24),  # every memory selected (softmax regime)
    dict(k_top=2, k_att=1, max_memories=24),  # sparse selection
    dict(k_top=2, k_att=1, max_memories=24, sab_credit="exact"),  # Algorithm 1's derivative
])
def test_untruncated_sab_equals_bptt(x64, core_options):
  task, model, params, batch = _setup(**core_options)
  learner = SAB(k_trunc=batch.length)
  update = _sab_update(learner, model, task, params, batch)
  _close(update, _bptt_gradient(model, task, params, batch))


@pytest.mark.parametrize("mental,unroll,store_gates,credit", [
    (True, 1, True, "paper"), (False, 1, True, "paper"), (True, 3, True, "paper"),
    (True, 1, False, "paper"), (True, 1, True, "exact")])
def test_replay_backward_equals_autodiff_of_truncated_graph(x64, mental, unroll, store_gates,
                                                            credit):
  task, model, params, batch = _setup(k_top=2, k_att=2, max_memories=12, sab_credit=credit)
  a = _sab_update(SAB(k_trunc=3, mental_updates=mental, unroll=unroll, store_gates=store_gates),
                  model, task, params, batch)
  b = _sab_update(SAB(k_trunc=3, mental_updates=mental, backward="autodiff"), model, task,
                  params, batch)
  _close(a, b)
  bptt = _bptt_gradient(model, task, params, batch)
  assert not np.allclose(a["core"]["lstm"]["W_h"], bptt["core"]["lstm"]["W_h"])


def test_without_mental_updates_no_credit_reaches_states_before_a_memory(x64):
  task, model, params, batch = _setup(k_top=3, k_att=2, max_memories=12)
  last_only = jnp.zeros_like(batch.mask).at[-1].set(1.0)
  batch = batch._replace(mask=last_only)
  k = 4
  first = k * ((batch.length - 1) // k)  # the last block: the loss's own sequential reach

  def dinputs(mental):
    learner = SAB(k_trunc=k, mental_updates=mental)
    lstate = learner.init_state(model, params, B)
    return _window_gradients(learner, model, params, lstate, batch, task.loss).dinputs

  without, with_mu = dinputs(False), dinputs(True)
  np.testing.assert_array_equal(without[:first], 0.0)
  assert bool(jnp.any(without[first:] != 0))
  # With mental updates the credit reaches blocks before memories that the last steps select.
  assert float(jnp.sum(jnp.abs(with_mu[:first]))) > 0
  # ... but only the steps up to a memory's block: nothing after the last write before `first`
  # and outside any block holding a memory.
  learner = SAB(k_trunc=k, backward="autodiff")
  ref = _window_gradients(learner, model, params, learner.init_state(model, params, B), batch,
                         task.loss).dinputs
  np.testing.assert_allclose(with_mu, ref, rtol=1e-9, atol=1e-12)


def test_chunk_bounds():
  assert _chunk_bounds(24, 4, 5) == [10, 20, 24]  # chunks of ceil(24/4) = 6 -> 10 steps
  assert _chunk_bounds(24, 1, 5) == [24]
  assert _chunk_bounds(24, 8, 3) == [3, 6, 9, 12, 15, 18, 21, 24]
  assert _chunk_bounds(7, 4, 5) == [5, 7]


@pytest.mark.parametrize("k_att,max_memories,dense", [
    (2, 12, False),  # every state that writes fits
    (3, 4, False),  # the buffer fills in the second chunk; later writes are dropped
    (2, 12, True),  # dense attention (k_top = all)
])
def test_chunked_forward_equals_one_scan(x64, k_att, max_memories, dense):
  """The staircase forward pass (slots that exist by each chunk's end) changes nothing."""
  task, model, params, batch = _setup(k_top=0 if dense else 2, k_att=k_att,
                                      max_memories=max_memories)
  results = []
  for chunks in (1, 3, 7):
    learner = SAB(k_trunc=4, forward_chunks=chunks)
    results.append(_window_gradients(learner, model, params,
                                     learner.init_state(model, params, B), batch, task.loss))
  one = results[0]
  for other in results[1:]:
    _close((other.loss, other.grads, other.outputs, other.dinputs, other.state.model_state),
           (one.loss, one.grads, one.outputs, one.dinputs, one.state.model_state))


def test_accelerator_code_path_equals_cpu_path(x64, monkeypatch):
  """On a GPU/TPU the step takes selects, one forward chunk and unroll 8: the same gradients."""
  task, model, params, batch = _setup(k_top=2, k_att=2, max_memories=12)
  learner = SAB(k_trunc=4)

  def run():
    where = str(jax.make_jaxpr(lambda p, x, y: only_where(p, lambda: 2.0 * x, y))(True, 1.0, 0.0))
    return where, [_sab_update(learner, model, task, params, batch, u) for u in (0, 4)]

  cpu_where, cpu = run()
  jax.clear_caches()  # the traces depend on the backend, which no cache key holds
  monkeypatch.setattr(jax, "default_backend", lambda: "gpu")
  try:
    assert sab_learner.forward_chunks_for(None) == 1 and scan_unroll(None) == 8
    accel_where, accel = run()
  finally:
    jax.clear_caches()
  assert "cond[" in cpu_where and "cond[" not in accel_where and "select_n" in accel_where
  _close(accel, cpu)


@pytest.mark.parametrize("k_att,mental,store_gates", [(2, True, True), (6, True, True),
                                                      (2, True, False)])
def test_online_replay_equals_offline_gradient(x64, k_att, mental, store_gates):
  task, model, params, batch = _setup(k_top=2, k_att=k_att, max_memories=12)
  learner = SAB(k_trunc=4, mental_updates=mental, store_gates=store_gates)
  offline = _sab_update(learner, model, task, params, batch, update_every=0)
  online = _sab_update(learner, model, task, params, batch, update_every=4)
  _close(online, offline)


def test_online_state_shapes_and_replay_buffer():
  task, model, params, batch = _setup(k_top=2, k_att=4, max_memories=8)
  learner = SAB(k_trunc=4)
  lstate = learner.init_state(model, params, B)
  window = batch.window(0, 4)
  update = jax.jit(learner.update, static_argnums=(0, 5))
  new, (updates, _), aux = update(model, params, {}, lstate, window, task.loss, None)
  assert jax.tree.map(jnp.shape, new) == jax.tree.map(jnp.shape, lstate)
  assert jax.tree.map(jnp.shape, updates) == jax.tree.map(jnp.shape, params)
  assert aux.outputs.shape == (4, B, task.output_size)
  assert bool(new.replay.stored[0]) and not bool(jnp.any(new.replay.stored[1:]))
  np.testing.assert_array_equal(new.replay.inputs[0], window.inputs)


def test_attention_map_figure(tmp_path):
  from tca_jax import plotting  # pylint: disable=g-import-not-at-top
  task = tasks.get("copy", length=3)
  model = Model(SABLSTM(H, k_top=2, k_att=2, max_memories=12), task.output_size)
  params = model.init(jax.random.PRNGKey(0), task.input_size)
  amap = plotting.sab_attention_map(model, params, task.sample(jax.random.PRNGKey(1), 4).inputs)
  assert amap.shape == (23, 12)
  np.testing.assert_allclose(amap[:2].sum(-1), 0.0)  # no memory yet
  np.testing.assert_allclose(amap[2:].sum(-1), 1.0, rtol=1e-5)
  assert int((amap[-1] > 0).sum()) <= 2 * 4  # k_top per sequence, 4 sequences
  for step in (0, 10):
    plotting.record_attention_map(model, task, params, jax.random.PRNGKey(step), step,
                                  str(tmp_path))
  assert (tmp_path / "attention_map.png").stat().st_size > 0


@pytest.mark.slow
def test_sab_learns_copy_where_tbptt_stays_near_chance(tmp_path):
  """Copy T=20 (40 steps), LSTM(64), k_trunc = 5, 3000 Adam steps: SAB (k_top=5) vs TBPTT(5).

  Measured (docs/RESULTS.md, SAB): SAB 54% last-10 accuracy, TBPTT(5) 15% (chance 12.5%).
  """
  from experiments.configs import sab_copy  # pylint: disable=g-import-not-at-top
  from tca_jax import train  # pylint: disable=g-import-not-at-top
  accuracy = {}
  for preset in ("small", "small_tbptt5"):
    c = sab_copy.get_config(preset)
    c.train.eval_every = 0
    c.train.log_every = c.train.steps
    accuracy[preset] = train.train_and_evaluate(c, str(tmp_path / preset))["accuracy"]
  assert accuracy["small"] >= 0.40, accuracy
  assert accuracy["small_tbptt5"] <= 0.30, accuracy


def test_cpu_t100_presets_are_the_recorded_runs():
  """docs/RESULTS.md's T=100 pair: the same LSTM(128), optimizer and truncation; SAB adds the
  memory (k_top=10, k_att=5)."""
  from experiments.configs import sab_copy  # pylint: disable=g-import-not-at-top
  from tca_jax import config as config_lib  # pylint: disable=g-import-not-at-top
  sab, tbptt = sab_copy.get_config("cpu_t100"), sab_copy.get_config("cpu_t100_tbptt5")
  for c in (sab, tbptt):
    config_lib.build(c)
    assert (c.task.length, c.model.hidden_size, c.train.learning_rate, c.train.steps) == (
        100, 128, 3e-3, 30_000)
  assert (sab.model.cell, sab.model.k_top, sab.model.k_att, sab.model.max_memories) == (
      "sab_lstm", 10, 5, 24)
  assert (sab.learner.name, sab.learner.k_trunc, tbptt.learner.truncation) == ("sab", 5, 5)
  assert (tbptt.model.cell, tbptt.learner.name) == ("lstm", "tbptt")


def test_gradient_flow_diagnostic_measures_the_sequential_state():
  task = tasks.get("copy", length=3)
  model = Model(SABLSTM(H, k_top=2, k_att=2, max_memories=12), task.output_size)
  params = model.init(jax.random.PRNGKey(0), task.input_size)
  flow = jax.jit(diagnostics.gradient_flow, static_argnums=(0, 1))(
      model, task, params, task.sample(jax.random.PRNGKey(1), 3))
  assert flow.shape == (23,) and bool(jnp.all(jnp.isfinite(flow))) and float(flow[-1]) > 0
