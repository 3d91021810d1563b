"""Sparse Attentive Backtracking (Ke et al. 2018): sparse replay with mental updates.

For a `sab_lstm` (or `attn_lstm`) core, the `sab` learner's update is the gradient of the window
loss along three kinds of path (Section 3.2, Figure 2):

1. the sequential path h_t -> h_{t-1}, cut every `k_trunc` steps (block truncation: the state
   entering step t, counted from the sequence start, is a constant when `t % k_trunc == 0`);
2. the attention at every step, to the memories it selects (at most k_top of them; the
   sparsifier's VJP sends nothing to the others);
3. from each selected memory m_i = h_{t_i} back along the sequential path to the truncation
   boundary before t_i: the "mental update". On that stretch the steps' own attention is
   differentiated too, so credit reaching an earlier memory there is replayed in turn.

With `mental_updates=False` each memory is a leaf (`stop_gradient(h_{t_i})`, Table 4's ablation;
W1 still learns through the cached key W1 m_i). A dense core (`model.k_top=0`) trained by `sab` is
Table 4's "k_top = all" ablation: full self-attention trained with truncation. With `k_trunc >= T`,
the update is the exact BPTT gradient of the model.

Implementation (`backward="replay"`, the default). A forward `lax.scan` keeps the state entering
each step (`[T, batch, H]` twice), the LSTM's gate pre-activations (`[T, batch, 4H]`, unless
`store_gates=False`) and the final memory buffer; a reverse `lax.scan` recomputes each step's
attention from its entering state and the final buffer (slots are written once and a step reads
only slots written before it), takes its VJP, and carries the memory cotangents
`dmem [M, batch, H]`, `dkeys [M, batch, A]`. At the step that wrote slot j, `dmem[j] + dkeys[j]
W1^T` joins the cotangent of h_t: the mental update. For a sparse core the forward pass records
each step's k_top + 1 candidates (`lax.top_k`), and the reverse step differentiates the raw
weights and summary recomputed on those gathered candidates only (the sparsifier's VJP applied to
k_top + 1 entries) and scatter-adds their cotangents into `dmem` / `dkeys`: a reverse step costs
O(k_top (H + A)) per sequence for the attention, plus the LSTM. Memory O(T H + M (H + A)) per
sequence with `store_gates=False` (2.6x less than TBPTT's stored activations at T=300), O(6 T H +
M (H + A)) with it (1.6x less; docs/PERFORMANCE.md). Time about 1.8x TBPTT at T=300 on the CPU:
the forward pass scores every memory written so far at every step, so the ratio grows with T;
from an empty memory it runs in `forward_chunks` scans, each scoring only the slots that can
exist by its end. On an H100 3.5x: there the step's many small kernels dominate. `backward="autodiff"` differentiates the forward scan with `jax.grad` instead
(the reference in the tests; memory O(T M (H + A)): it stores the buffer at every step; offline
only).

Online SAB (`train.update_every = k_trunc`, beyond the original release). Each window is one
truncation block, and the optimizer steps after it while the memories live on in the learner
state. For every block that wrote a memory, the learner state keeps what its replay needs: the
state entering the block and the block's inputs (`Replay`: O(M (2 H + k_trunc * input)) per
sequence, growing with the number of memories, not with T). After a window's own backward pass,
the blocks whose memories received credit are replayed newest first (recompute from the stored
state with the current parameters, then the reverse scan with that credit injected at the writes);
a replay that credits still older memories queues their blocks too, so with the parameters held
fixed the windows' updates sum to the offline gradient exactly. Cost of a window: its own
backward plus one block replay (k_trunc steps of O(M (H + A)) each, forward and backward) per
block holding a memory that some sequence in the batch selected; a block is skipped when its
memories got no credit. Early in training a batch selects nearly every memory, so a sequence
costs O((T / k_trunc)^2) block replays: measured 31x TBPTT's step time at T=100 and 58x at
T=300 (docs/PERFORMANCE.md). Exact, not fast. Replays use the current parameters, the forward pass used the parameters
of the time (the approximation online learning always makes).
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, NamedTuple, Optional

import jax
import jax.numpy as jnp

from tca_jax.cells.lstm import LSTMState
from tca_jax.cells.sab import SABLSTM, SABState, only_where
from tca_jax.ops import sparse_attention
from tca_jax.learners.base import (Aux, Learner, check_window_option, per_backend, scan_unroll,
                                   window_loss)
from tca_jax.registry import ConfigError, check_choice

BACKWARDS = ("replay", "autodiff")


class Replay(NamedTuple):
  """What the replay of a stored block needs; entry j belongs to the block whose last memory is j.

  Attributes:
    h0, c0: `[M, batch, H]` the state entering the block.
    inputs: `[M, k_trunc, batch, in]` the block's inputs (zero-padded).
    t0, count0: `[M]` the step counter and memory count entering the block.
    stored: `[M]` bool, whether entry j holds a block.
  """

  h0: jax.Array
  c0: jax.Array
  inputs: jax.Array
  t0: jax.Array
  count0: jax.Array
  stored: jax.Array


class SABLearnerState(NamedTuple):
  model_state: SABState
  replay: Replay


class WindowResult(NamedTuple):
  state: SABLearnerState
  grads: Any  # like params
  loss: jax.Array
  outputs: jax.Array  # [W, batch, out]
  dinputs: jax.Array  # [W, batch, in]: credit reaching the window's own inputs


@dataclasses.dataclass(frozen=True)
class SAB(Learner):
  """Sparse Attentive Backtracking.

  Attributes:
    k_trunc: sequential truncation length, also how far a mental update reaches back.
    mental_updates: let credit flow from a selected memory into the steps that produced it.
    backward: "replay" (hand-written reverse scan, O(T H + M H) memory, online-capable) or
      "autodiff" (`jax.grad` through the memory buffer; whole-sequence windows only).
    unroll: `lax.scan` unroll factor of the forward and reverse scans; None: 1 on the CPU, 8 on
      a GPU or TPU (`scan_unroll`; on an H100 8 made the T=300 step 1.2x faster).
    forward_chunks: the forward pass from an empty memory runs as this many scans, each scoring
      only the memory slots that can exist by its end (1: one scan scoring every slot at every
      step). Same result; more chunks cost compile time (one scan body each). None: 4 on the
      CPU (the T=300 forward pass 90 -> 76 ms), 1 on a GPU or TPU, where scoring all slots is
      no dearer than scoring a few and 4 scans were 7% slower than one on an H100
      (`forward_chunks_for`).
    store_gates: keep each step's LSTM gate pre-activations (`[T, batch, 4H]`) from the forward
      pass for the reverse scan instead of recomputing them (sparse cores): 3-10% faster at
      T=300 on the CPU for 4H floats per step and sequence more memory (2.2x the temporaries at
      T=300); False: the smallest memory.
  """

  NAME: ClassVar[str] = "sab"
  exact: ClassVar[bool] = False
  supported_cells: ClassVar[tuple] = ("sab_lstm", "attn_lstm")
  k_trunc: int = 5
  mental_updates: bool = True
  backward: str = "replay"
  unroll: Optional[int] = None
  forward_chunks: Optional[int] = None
  store_gates: bool = True

  def __post_init__(self):
    check_choice(self.backward, "learner.backward", BACKWARDS)
    scan_unroll(self.unroll)  # validates
    forward_chunks_for(self.forward_chunks)  # validates
    for field in ("mental_updates", "store_gates"):
      if not isinstance(getattr(self, field), bool):
        raise ConfigError(f"learner.{field}={getattr(self, field)!r} must be True or False")

  def validate(self, sequence_length, update_every):
    check_window_option(self.k_trunc, "learner.k_trunc", sequence_length)
    allowed = (sequence_length,) if self.backward == "autodiff" else (
        sequence_length, self.k_trunc)
    if update_every not in allowed:
      raise ConfigError(
          f"train.update_every={update_every!r} must be one of 0 (the whole sequence)"
          + ("" if self.backward == "autodiff" else f", learner.k_trunc={self.k_trunc} (online)")
          + f" for learner.name='sab' with learner.backward={self.backward!r}")

  @staticmethod
  def _core(model) -> SABLSTM:
    if not isinstance(model.core, SABLSTM):
      raise ConfigError(
          f"learner.name='sab' needs model.cell in sab_lstm, attn_lstm (got "
          f"{type(model.core).__name__})")
    return model.core

  def init_state(self, model, params, batch_size: int):
    core = self._core(model)
    dtype = jax.tree.leaves(params)[0].dtype
    m, h = core.max_memories, core.hidden_size
    n_in = params["core"]["lstm"]["W_x"].shape[0]
    zeros_m = jnp.zeros((m,), dtype)
    replay = Replay(jnp.zeros((m, batch_size, h), dtype), jnp.zeros((m, batch_size, h), dtype),
                    jnp.zeros((m, self.k_trunc, batch_size, n_in), dtype), zeros_m, zeros_m,
                    jnp.zeros((m,), bool))
    return SABLearnerState(core.initial_state(batch_size, dtype), replay)

  def update(self, model, params, lparams, lstate, batch, loss_fn, key):
    del key
    res = window_gradients(self, model, params, lstate, batch, loss_fn)
    zeros = jax.tree.map(jnp.zeros_like, lparams)
    return res.state, (res.grads, zeros), Aux(res.loss, res.outputs, {})


def _select(core: SABLSTM, cparams, h_hat, keys, count):
  if core.dense:
    return ()
  return core.select(cparams, h_hat, keys, count)


def _summary(core: SABLSTM, cparams, h_hat, memory, keys, count, sel):
  if core.dense:
    return core.attend(cparams, h_hat, memory, keys, count)[0]
  return core.gathered_summary(cparams, h_hat, memory, keys, *sel)


def _provisional(learner: SAB, core: SABLSTM, cparams, h, c, x):
  """`(h^_t, c_t, gates)`: the LSTM transition and, if `learner.store_gates` (sparse cores),
  its gate pre-activations `[batch, 4H]` for the reverse step (else `()`: it recomputes them)."""
  if learner.store_gates and not core.dense:
    gates = core.lstm.gates(cparams["lstm"], h, x)
    h_hat, c = core.lstm.from_gates(gates, c)
    return h_hat, c, gates
  h_hat, c = core.provisional(cparams, h, c, x)
  return h_hat, c, ()


def _light_forward(learner: SAB, core: SABLSTM, cparams, state: SABState, inputs, memory, keys):
  """Recomputes states over `inputs` reading the given (final) buffer; writes only count them.

  Returns per step what `_reverse` needs: the state entering it, the step's selection and its
  stored gates: `(h [W,B,H], c [W,B,H], t [W], count [W], (idx, valid) [W,B,k+1],
  gates [W,B,4H] or ())`.
  """

  def body(carry, x):
    h, c, t, count = carry
    h_hat, c_new, gates = _provisional(learner, core, cparams, h, c, x)
    sel = _select(core, cparams, h_hat, keys, count)
    s = _summary(core, cparams, h_hat, memory, keys, count, sel)
    count_new = count + core.writes(t, count).astype(count.dtype)
    return (h_hat + s, c_new, t + 1, count_new), (h, c, t, count, sel, gates)

  return jax.lax.scan(body, (state.h, state.c, state.t, state.count), inputs)[1]


def _reverse(learner: SAB, model, params, entering, inputs, memory, keys, dmem, dkeys,
             targets=None, mask=None, loss_fn=None):
  """Reverse scan over a stretch of steps; returns `(grads, dmem, dkeys, dinputs)`.

  Args:
    entering: `(h, c, t, count, selection, gates)` per step: the state entering it and, for a
      sparse core, the forward pass's `(idx, valid)` candidates (`()` for a dense core) and the
      LSTM's gate pre-activations if the forward pass stored them (else `()`).
    memory, keys: the buffer after the stretch (every slot a step reads is final).
    dmem, dkeys: memory cotangents so far (from later steps); injected at the writes.
    targets, mask, loss_fn: the stretch's losses (None for a replay, which carries none).
  """
  core = model.core
  with_loss = loss_fn is not None
  batch_size = inputs.shape[1]
  w1 = params["core"]["attn"]["W1"]

  def local(p, h_prev, c_prev, mem, ks, x, t, count, tgt, msk):
    h_hat, c = core.provisional(p["core"], h_prev, c_prev, x)
    s, _ = core.attend(p["core"], h_hat, mem, ks, count)
    h = h_hat + s
    if with_loss:
      out = model.readout(p, jnp.concatenate([h, s], -1))
      loss = jnp.sum(loss_fn(out, tgt, msk)) / batch_size
    else:
      loss = jnp.zeros((), h.dtype)
    return h, c, loss

  def head(p, h_hat, mem_sel, keys_sel, valid, tgt, msk):
    """Sparse attention on the gathered k+1 candidates, readout and loss."""
    s = core.candidate_summary(p["core"]["attn"], h_hat, mem_sel, keys_sel, valid)
    h = h_hat + s
    if with_loss:
      out = model.readout(p, jnp.concatenate([h, s], -1))
      loss = jnp.sum(loss_fn(out, tgt, msk)) / batch_size
    else:
      loss = jnp.zeros((), h.dtype)
    return h, loss

  rows = jnp.arange(batch_size)[:, None]
  lstm, lstm_params = core.lstm, params["core"]["lstm"]
  # The LSTM's backward multiplies by W^T at every step. Transposed once here (the barrier keeps
  # XLA from folding it back into the matmuls), so that each step runs a plain [B, 4H] x [4H, H]
  # matmul: XLA's CPU backend ran the contraction over W's second axis 1.8x slower.
  transposed = jax.lax.optimization_barrier(
      {"W_h": lstm_params["W_h"].T, "W_x": lstm_params["W_x"].T, "W1": w1.T})

  def sparse_step(dh, dc, dmem, dkeys, h_prev, c_prev, t, count, sel, gates, x, tgt, msk):
    # Only the k+1 candidates enter the VJP: the memory cotangents are scatter-adds of
    # [batch, k+1, .] rows, O(k (H + A)) per sequence instead of O(M (H + A)).
    if not learner.store_gates:
      gates = lstm.gates(lstm_params, h_prev, x)
    (h_hat, _), vjp_gates = jax.vjp(lstm.from_gates, gates, c_prev)
    idx, valid = sel  # the forward pass's selection: no second pass over all M raw weights
    (_, loss), vjp_head = jax.vjp(
        lambda p, hh, ms, ks: head(p, hh, ms, ks, valid, tgt, msk),
        params, h_hat, memory[idx, rows], keys[idx, rows])
    g_p, g_hat, g_ms, g_ks = vjp_head((dh, jnp.ones_like(loss) if with_loss else 0 * loss))
    g_gates, g_c = vjp_gates(LSTMState(g_hat, dc))
    g_lstm = {"W_x": x.T @ g_gates, "W_h": h_prev.T @ g_gates, "b": jnp.sum(g_gates, 0)}
    g_p["core"]["lstm"] = jax.tree.map(jnp.add, g_p["core"]["lstm"], g_lstm)
    g_h, g_x = g_gates @ transposed["W_h"], g_gates @ transposed["W_x"]
    return g_p, g_h, g_c, dmem.at[idx, rows].add(g_ms), dkeys.at[idx, rows].add(g_ks), g_x

  def dense_step(dh, dc, dmem, dkeys, h_prev, c_prev, t, count, sel, gates, x, tgt, msk):
    (_, _, loss), vjp = jax.vjp(
        lambda p, hp, cp, m, k, xx: local(p, hp, cp, m, k, xx, t, count, tgt, msk),
        params, h_prev, c_prev, memory, keys, x)
    g_p, g_h, g_c, g_m, g_k, g_x = vjp((dh, dc, jnp.ones_like(loss) if with_loss else 0 * loss))
    return g_p, g_h, g_c, dmem + g_m, dkeys + g_k, g_x

  def body(carry, xs):
    dh, dc, dmem, dkeys, grads = carry
    h_prev, c_prev, t, count, sel, gates, x, tgt, msk = xs
    if learner.mental_updates:
      slot = jnp.minimum(count, core.max_memories - 1).astype(jnp.int32)
      row_m, row_k = dmem[slot], dkeys[slot]  # outside the cond: it would copy the buffers
      dh = only_where(core.writes(t, count), lambda: dh + row_m + row_k @ transposed["W1"], dh)
    step = dense_step if core.dense else sparse_step
    g_p, g_h, g_c, dmem, dkeys, g_x = step(dh, dc, dmem, dkeys, h_prev, c_prev, t, count, sel,
                                           gates, x, tgt, msk)
    cut = jnp.mod(t, learner.k_trunc) == 0
    g_h = jnp.where(cut, 0.0, g_h)
    g_c = jnp.where(cut, 0.0, g_c)
    grads = jax.tree.map(jnp.add, grads, g_p)
    return (g_h, g_c, dmem, dkeys, grads), g_x

  h, c, t, count, sel, gates = entering
  if not with_loss:
    targets = mask = jnp.zeros(inputs.shape[:2], inputs.dtype)
  zeros = jax.tree.map(jnp.zeros_like, params)
  carry = (jnp.zeros_like(h[0]), jnp.zeros_like(c[0]), dmem, dkeys, zeros)
  (_, _, dmem, dkeys, grads), dinputs = jax.lax.scan(
      body, carry, (h, c, t, count, sel, gates, inputs, targets, mask), reverse=True,
      unroll=scan_unroll(learner.unroll))
  return grads, dmem, dkeys, dinputs


def _nonzero_slots(dmem, dkeys):
  return jnp.any(dmem != 0, axis=(1, 2)) | jnp.any(dkeys != 0, axis=(1, 2))


def _replays(learner: SAB, model, params, replay: Replay, count_start, memory, keys, dmem,
             dkeys, grads):
  """Replays stored blocks (newest first) whose memories got credit; returns updated sums."""
  core = model.core
  m = core.max_memories
  slots = jnp.arange(m)

  def one(carry, j):
    grads, dmem, dkeys, flags = carry
    in_block = (slots >= replay.count0[j]) & (slots <= j)
    need = replay.stored[j] & (j < count_start) & jnp.any(flags & in_block)

    def run(args):
      grads, dmem, dkeys, flags = args
      state = SABState(replay.h0[j], replay.c0[j], memory, keys, replay.count0[j], replay.t0[j])
      entering = _light_forward(learner, core, params["core"], state, replay.inputs[j], memory,
                                keys)
      g, new_dmem, new_dkeys, _ = _reverse(learner, model, params, entering, replay.inputs[j],
                                           memory, keys, dmem, dkeys)
      # Credit to this block's own slots has been consumed; only older slots can gain some.
      flags = flags | _nonzero_slots(new_dmem - dmem, new_dkeys - dkeys)
      return jax.tree.map(jnp.add, grads, g), new_dmem, new_dkeys, flags

    return jax.lax.cond(need, run, lambda a: a, (grads, dmem, dkeys, flags)), None

  flags = _nonzero_slots(dmem, dkeys)
  (grads, dmem, dkeys, _), _ = jax.lax.scan(one, (grads, dmem, dkeys, flags), slots[::-1])
  return grads, dmem, dkeys


def _store(learner: SAB, replay: Replay, start: SABState, final: SABState, inputs) -> Replay:
  """Keeps the window (one block) for later replay if it wrote a memory (entry = its last slot)."""
  wrote = final.count > start.count
  slot = jnp.maximum(final.count - 1, 0).astype(jnp.int32)
  pad = learner.k_trunc - inputs.shape[0]
  if pad:
    inputs = jnp.concatenate([inputs, jnp.zeros((pad,) + inputs.shape[1:], inputs.dtype)])

  def put(buf, value):
    value = jnp.where(wrote, value, buf[slot])
    return jax.lax.dynamic_update_index_in_dim(buf, value, slot, 0)

  return Replay(put(replay.h0, start.h), put(replay.c0, start.c), put(replay.inputs, inputs),
                put(replay.t0, start.t), put(replay.count0, start.count),
                put(replay.stored, jnp.asarray(True)))


def forward_chunks_for(chunks: Optional[int]) -> int:
  """The number of forward chunks for `learner.forward_chunks`; None picks one per backend."""
  return per_backend(chunks, "learner.forward_chunks", cpu=4, accelerator=1)


def _forward(learner: SAB, core: SABLSTM, cparams, start: SABState, inputs):
  """The window's forward pass: `(final state, (entering, features [W, batch, 2H]))`.

  `entering` is what `_reverse` recomputes each step from (see `_reverse`). A step scores every
  slot of the buffer it is given, so from an empty memory (`start.count == 0`, every offline
  window) the pass runs in `learner.forward_chunks` consecutive scans, each given only the slots
  that can be written by its end (a chunk ending n steps into the window holds at most
  ceil(n / k_att) memories): the scoring cost is a staircase under the triangle instead of the
  full rectangle. A window that starts with memories (online SAB) runs one scan over the buffer.
  """

  def fwd(state, x):
    h_hat, c, gates = _provisional(learner, core, cparams, state.h, state.c, x)
    sel = _select(core, cparams, h_hat, state.keys, state.count)
    s = _summary(core, cparams, h_hat, state.memory, state.keys, state.count, sel)
    h = h_hat + s
    memory, keys, count = core.write(cparams, state.memory, state.keys, state.count, state.t, h)
    entering = (state.h, state.c, state.t, state.count, sel, gates)
    return SABState(h, c, memory, keys, count, state.t + 1), (entering, jnp.concatenate([h, s], -1))

  unroll = scan_unroll(learner.unroll)

  def rectangle(start):
    return jax.lax.scan(fwd, start, inputs, unroll=unroll)

  bounds = _chunk_bounds(inputs.shape[0], forward_chunks_for(learner.forward_chunks), core.k_att)
  if len(bounds) < 2:
    return rectangle(start)

  def staircase(start):
    # Every chunk writes its steps' outputs in place into whole-window buffers (concatenating
    # per-chunk outputs would hold both copies at once).
    shapes = jax.eval_shape(lambda s, x: fwd(s, x)[1], start, inputs[0])
    outs = jax.tree.map(lambda o: jnp.zeros((inputs.shape[0],) + o.shape, o.dtype), shapes)

    def body(carry, i):
      state, outs = carry
      state, out = fwd(state, inputs[i])
      outs = jax.tree.map(lambda b, o: jax.lax.dynamic_update_index_in_dim(b, o, i, 0), outs, out)
      return (state, outs), None

    state, begin = start, 0
    for end in bounds:
      slots = min(core.max_memories, -(-end // core.k_att))
      sub = state._replace(memory=state.memory[:slots], keys=state.keys[:slots])
      (sub, outs), _ = jax.lax.scan(body, (sub, outs), jnp.arange(begin, end), unroll=unroll)
      state = sub._replace(memory=state.memory.at[:slots].set(sub.memory),
                           keys=state.keys.at[:slots].set(sub.keys))
      begin = end
    return state, outs

  # From a fresh initial state the predicate is a constant and XLA keeps one branch.
  return jax.lax.cond(start.count == 0, staircase, rectangle, start)


def _chunk_bounds(length: int, chunks: int, k_att: int):
  """Ends of up to `chunks` consecutive stretches of a window, at multiples of k_att."""
  size = -(-length // chunks)
  size = -(-size // k_att) * k_att
  ends = list(range(size, length, size)) + [length]
  return ends


def window_gradients(learner: SAB, model, params, lstate: SABLearnerState, batch, loss_fn
                     ) -> WindowResult:
  """The SAB update of one window (see the module docstring)."""
  core = SAB._core(model)  # pylint: disable=protected-access
  if learner.backward == "autodiff":
    return _autodiff(learner, model, params, lstate, batch, loss_fn)
  start = lstate.model_state
  final, (entering, features) = _forward(learner, core, params["core"], start, batch.inputs)
  outputs = model.readout(params, features)
  loss = window_loss(loss_fn, outputs, batch)
  grads, dmem, dkeys, dinputs = _reverse(
      learner, model, params, entering, batch.inputs, final.memory, final.keys,
      jnp.zeros_like(final.memory), jnp.zeros_like(final.keys), batch.targets, batch.mask,
      loss_fn)
  replay = lstate.replay
  if learner.mental_updates:
    # Only a window that starts with memories already written (online SAB) has blocks to replay.
    grads, dmem, dkeys = jax.lax.cond(
        start.count > 0,
        lambda g, dm, dk: _replays(learner, model, params, replay, start.count, final.memory,
                                   final.keys, dm, dk, g),
        lambda g, dm, dk: (g, dm, dk), grads, dmem, dkeys)
  # The cached keys W1 m_j: credit to W1 (also without mental updates, where m_j is a leaf).
  g_w1 = jnp.einsum("mbh,mba->ha", final.memory, dkeys)
  grads["core"]["attn"]["W1"] = grads["core"]["attn"]["W1"] + g_w1
  if batch.length <= learner.k_trunc:
    replay = _store(learner, replay, start, final, batch.inputs)
  return WindowResult(SABLearnerState(final, replay), grads, loss, outputs, dinputs)


def _autodiff(learner: SAB, model, params, lstate, batch, loss_fn) -> WindowResult:
  """The same update by `jax.grad` through the carried memory (reference; one window only)."""
  core = model.core
  sg = jax.lax.stop_gradient

  def objective(p, inputs):
    cparams = p["core"]

    def body(state, x):
      cut = jnp.mod(state.t, learner.k_trunc) == 0
      h = jnp.where(cut, sg(state.h), state.h)
      c = jnp.where(cut, sg(state.c), state.c)
      h_hat, c = core.provisional(cparams, h, c, x)
      s, _ = core.attend(cparams, h_hat, state.memory, state.keys, state.count)
      h = h_hat + s
      stored = h if learner.mental_updates else sg(h)
      memory, keys, count = core.write(cparams, state.memory, state.keys, state.count, state.t,
                                       stored)
      return SABState(h, c, memory, keys, count, state.t + 1), jnp.concatenate([h, s], -1)

    final, features = jax.lax.scan(body, lstate.model_state, inputs)
    outputs = model.readout(p, features)
    return window_loss(loss_fn, outputs, batch), (final, outputs)

  (loss, (final, outputs)), (grads, dinputs) = jax.value_and_grad(
      objective, argnums=(0, 1), has_aux=True)(params, batch.inputs)
  return WindowResult(lstate._replace(model_state=final), grads, loss, outputs, dinputs)
