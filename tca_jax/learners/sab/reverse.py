"""SAB's reverse scan: one VJP per step, recomputed from the `Entering` record, carrying the
memory cotangents and injecting them at the writes (the mental update)."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from tca_jax.backend import only_where, scan_unroll
from tca_jax.learners.sab.forward import Entering
from tca_jax.ops.lstm_scan import lstm_cell_backward, lstm_cell_forward


class Cotangents(NamedTuple):
  """The reverse scan's running cotangents.

  Attributes:
    dh, dc: `[batch, H]` of the state leaving the current step (from later steps).
    dmem: `[M, batch, H]` of the memory slots; `dkeys`: `[M, batch, A]` of their cached keys.
  """

  dh: jax.Array
  dc: jax.Array
  dmem: jax.Array
  dkeys: jax.Array


class StepData(NamedTuple):
  """One step of the reverse scan's input (stacked over the window)."""

  entering: Entering
  x: jax.Array  # [batch, in]
  target: Any  # the task's targets at the step (zeros for a replay)
  mask: jax.Array  # [batch] loss weights (zeros for a replay)


def reverse(learner, model, params, entering: Entering, inputs, memory, keys, dmem, dkeys,
            targets=None, mask=None, loss_fn=None):
  """Reverse scan over a stretch of steps; returns `(grads, dmem, dkeys, dinputs)`.

  Args:
    learner: the `SAB` learner (k_trunc, mental_updates, store_gates, unroll).
    model: a `Model` with a `SABLSTM` core.
    params: the model parameters.
    entering: the forward pass's `Entering` record of every step `[W, ...]`.
    inputs: `[W, batch, in]`.
    memory, keys: the buffer after the stretch (every slot a step reads is final).
    dmem, dkeys: memory cotangents so far (from later steps); injected at the writes.
    targets, mask, loss_fn: the stretch's losses (None for a replay, which carries none).
  """
  core = model.core
  with_loss = loss_fn is not None
  batch_size = inputs.shape[1]
  w1 = params["core"]["attn"]["W1"]

  def step_loss(p, h, s, tgt, msk):
    """The step's loss from its state h and summary s (zero for a replay)."""
    if not with_loss:
      return jnp.zeros((), h.dtype)
    out = model.readout(p, jnp.concatenate([h, s], -1))
    return jnp.sum(loss_fn(out, tgt, msk)) / batch_size

  def local(p, h_prev, c_prev, mem, ks, x, t, count, tgt, msk):
    h_hat, c = core.provisional(p["core"], h_prev, c_prev, x)
    s, _ = core.attend(p["core"], h_hat, mem, ks, count)
    h = h_hat + s
    return h, c, step_loss(p, h, s, tgt, msk)

  def head(p, h_hat, mem_sel, keys_sel, valid, tgt, msk):
    """Sparse attention on the gathered k+1 candidates, readout and loss."""
    s = core.candidate_summary(p["core"]["attn"], h_hat, mem_sel, keys_sel, valid)
    h = h_hat + s
    return h, step_loss(p, h, s, tgt, msk)

  rows = jnp.arange(batch_size)[:, None]
  lstm, lstm_params = core.lstm, params["core"]["lstm"]
  # The LSTM's backward multiplies by W^T at every step. Transposed once here (the barrier keeps
  # XLA from folding it back into the matmuls), so that each step runs a plain [B, 4H] x [4H, H]
  # matmul: XLA's CPU backend ran the contraction over W's second axis slower.
  transposed = jax.lax.optimization_barrier(
      {"W_h": lstm_params["W_h"].T, "W_x": lstm_params["W_x"].T, "W1": w1.T})
  # What a sparse step's VJP differentiates: the attention and the readout; the LSTM's part is
  # the hand-written cell backward (`lstm_cell_backward`) and its weight-gradient products.
  head_params = {"core": {"attn": params["core"]["attn"]}, "readout": params["readout"]}
  # With the gate pre-activations stored, the LSTM's weight gradients and the inputs' cotangent
  # are one GEMM each over the stretch after the scan (what cuDNN does): each step overwrites its
  # own gates in that buffer with their cotangents dz_t, so the [W, batch, 4H] cotangents cost
  # no memory beyond the stored gates (a separate output raised the step's memory by a third).
  # Without stored gates the products stay per step.
  one_gemm = not core.dense and learner.store_gates

  def sparse_step(cot: Cotangents, e: Entering, xs: StepData):
    # Only the k+1 candidates enter the VJP: the memory cotangents are scatter-adds of
    # [batch, k+1, .] rows, O(k (H + A)) per sequence instead of O(M (H + A)).
    gates = e.gates
    if not learner.store_gates:
      gates = lstm.gates(lstm_params, e.h, xs.x)
    h_hat, _, act = lstm_cell_forward(gates, e.c)
    idx, valid = e.selection  # the forward pass's selection: no second pass over all M weights
    (_, loss), vjp_head = jax.vjp(
        lambda p, hh, ms, ks: head(p, hh, ms, ks, valid, xs.target, xs.mask),
        head_params, h_hat, memory[idx, rows], keys[idx, rows])
    g_p, g_hat, g_ms, g_ks = vjp_head((cot.dh, jnp.ones_like(loss) if with_loss else 0 * loss))
    g_gates, g_c = lstm_cell_backward(act, e.c, g_hat, cot.dc)
    out = g_gates
    if not one_gemm:
      g_p["core"]["lstm"] = {"W_x": xs.x.T @ g_gates, "W_h": e.h.T @ g_gates,
                             "b": jnp.sum(g_gates, 0)}
      out = g_gates @ transposed["W_x"]
    g_h = g_gates @ transposed["W_h"]
    return g_p, Cotangents(g_h, g_c, cot.dmem.at[idx, rows].add(g_ms),
                           cot.dkeys.at[idx, rows].add(g_ks)), out

  def dense_step(cot: Cotangents, e: Entering, xs: StepData):
    (_, _, loss), vjp = jax.vjp(
        lambda p, hp, cp, m, k, xx: local(p, hp, cp, m, k, xx, e.t, e.count, xs.target, xs.mask),
        params, e.h, e.c, memory, keys, xs.x)
    g_p, g_h, g_c, g_m, g_k, g_x = vjp((cot.dh, cot.dc,
                                        jnp.ones_like(loss) if with_loss else 0 * loss))
    return g_p, Cotangents(g_h, g_c, cot.dmem + g_m, cot.dkeys + g_k), g_x

  def body(carry, xs_i):
    xs, i = xs_i
    cot, grads, buf = carry
    e = xs.entering
    if one_gemm:
      e = e._replace(gates=buf[i])
    if learner.mental_updates:
      dh = cot.dh
      slot = jnp.minimum(e.count, core.max_memories - 1).astype(jnp.int32)
      row_m, row_k = cot.dmem[slot], cot.dkeys[slot]  # outside the cond: it would copy buffers
      cot = cot._replace(dh=only_where(core.writes(e.t, e.count),
                                       lambda: dh + row_m + row_k @ transposed["W1"], dh))
    step = dense_step if core.dense else sparse_step
    g_p, cot, g_x = step(cot, e, xs)
    cut = jnp.mod(e.t, learner.k_trunc) == 0
    cot = cot._replace(dh=jnp.where(cut, 0.0, cot.dh), dc=jnp.where(cut, 0.0, cot.dc))
    grads = jax.tree.map(jnp.add, grads, g_p)
    if one_gemm:
      return (cot, grads, jax.lax.dynamic_update_index_in_dim(buf, g_x, i, 0)), None
    return (cot, grads, buf), g_x

  if not with_loss:
    targets = mask = jnp.zeros(inputs.shape[:2], inputs.dtype)
  zeros = jax.tree.map(jnp.zeros_like, params if not one_gemm else head_params)
  buf = ()
  if one_gemm:
    buf, entering = entering.gates, entering._replace(gates=())
  carry = (Cotangents(jnp.zeros_like(entering.h[0]), jnp.zeros_like(entering.c[0]), dmem, dkeys),
           zeros, buf)
  (cot, grads, buf), dinputs = jax.lax.scan(
      body, carry, (StepData(entering, inputs, targets, mask), jnp.arange(inputs.shape[0])),
      reverse=True, unroll=scan_unroll(learner.unroll))
  if one_gemm:
    flat = lambda a: a.reshape(-1, a.shape[-1])
    dz = flat(buf)  # [W batch, 4H]: the gate cotangents of every step
    grads = {"core": {"attn": grads["core"]["attn"],
                      "lstm": {"W_x": flat(inputs).T @ dz, "W_h": flat(entering.h).T @ dz,
                               "b": jnp.sum(dz, 0)}},
             "readout": grads["readout"]}
    dinputs = (dz @ lstm_params["W_x"].T).reshape(inputs.shape)
  return grads, cot.dmem, cot.dkeys, dinputs
