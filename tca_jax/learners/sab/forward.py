"""SAB's forward passes: the window's (`forward`) and the recomputation a replay runs
(`light_forward`). Both record per step what the reverse scan recomputes from (`Entering`)."""

from __future__ import annotations

from typing import Any, NamedTuple, Optional

import jax
import jax.numpy as jnp

from tca_jax.backend import per_backend, scan_unroll
from tca_jax.cells.sab import SABLSTM, SABState


class Entering(NamedTuple):
  """What the reverse scan recomputes one step from (stacked: a leading `[W]` axis).

  Attributes:
    h, c: `[batch, H]` the state entering the step.
    t, count: the step counter and the number of memories written before the step.
    selection: a sparse core's `(idx, valid)` `[batch, k_top + 1]` candidates; `()` when dense.
    gates: `[batch, 4H]` the LSTM gate pre-activations if the forward pass stored them, else `()`.
  """

  h: jax.Array
  c: jax.Array
  t: jax.Array
  count: jax.Array
  selection: Any
  gates: Any


def forward_chunks_for(chunks: Optional[int]) -> int:
  """The number of forward chunks for `learner.forward_chunks`; None: 4 on the CPU, 1 on a GPU
  or TPU (where scoring all slots is no dearer than scoring a few; docs/PERFORMANCE.md)."""
  return per_backend(chunks, "learner.forward_chunks", cpu=4, accelerator=1)


def select(core: SABLSTM, cparams, h_hat, keys, count):
  if core.dense:
    return ()
  return core.select(cparams, h_hat, keys, count)


def summary(core: SABLSTM, cparams, h_hat, memory, keys, count, sel):
  if core.dense:
    return core.attend(cparams, h_hat, memory, keys, count)[0]
  return core.gathered_summary(cparams, h_hat, memory, keys, *sel)


def provisional(learner, core: SABLSTM, cparams, h, c, x):
  """`(h^_t, c_t, gates)`: the LSTM transition and, if `learner.store_gates` (sparse cores),
  its gate pre-activations `[batch, 4H]` for the reverse step (else `()`: it recomputes them)."""
  if learner.store_gates and not core.dense:
    gates = core.lstm.gates(cparams["lstm"], h, x)
    h_hat, c = core.lstm.from_gates(gates, c)
    return h_hat, c, gates
  h_hat, c = core.provisional(cparams, h, c, x)
  return h_hat, c, ()


def light_forward(learner, core: SABLSTM, cparams, state: SABState, inputs, memory,
                  keys) -> Entering:
  """Recomputes states over `inputs` reading the given (final) buffer; writes only count them.

  Returns the `Entering` record of every step `[W, ...]`.
  """

  def body(carry, x):
    h, c, t, count = carry
    h_hat, c_new, gates = provisional(learner, core, cparams, h, c, x)
    sel = select(core, cparams, h_hat, keys, count)
    s = summary(core, cparams, h_hat, memory, keys, count, sel)
    count_new = count + core.writes(t, count).astype(count.dtype)
    return (h_hat + s, c_new, t + 1, count_new), Entering(h, c, t, count, sel, gates)

  return jax.lax.scan(body, (state.h, state.c, state.t, state.count), inputs)[1]


def forward(learner, core: SABLSTM, cparams, start: SABState, inputs):
  """The window's forward pass: `(final state, (entering, features [W, batch, 2H]))`.

  `entering` (an `Entering` per step) is what the reverse scan recomputes each step from. A step
  scores every slot of the buffer it is given, so from an empty memory (`start.count == 0`, every
  offline window) the pass runs in `learner.forward_chunks` consecutive scans, each given only
  the slots that can be written by its end (a chunk ending n steps into the window holds at most
  ceil(n / k_att) memories): the scoring cost is a staircase under the triangle instead of the
  full rectangle. A window that starts with memories (online SAB) runs one scan over the buffer.
  """

  def fwd(state, x):
    h_hat, c, gates = provisional(learner, core, cparams, state.h, state.c, x)
    sel = select(core, cparams, h_hat, state.keys, state.count)
    s = summary(core, cparams, h_hat, state.memory, state.keys, state.count, sel)
    h = h_hat + s
    memory, keys, count = core.write(cparams, state.memory, state.keys, state.count, state.t, h)
    entering = Entering(state.h, state.c, state.t, state.count, sel, gates)
    return SABState(h, c, memory, keys, count, state.t + 1), (entering, jnp.concatenate([h, s], -1))

  unroll = scan_unroll(learner.unroll)

  def rectangle(start):
    return jax.lax.scan(fwd, start, inputs, unroll=unroll)

  bounds = chunk_bounds(inputs.shape[0], forward_chunks_for(learner.forward_chunks), core.k_att)
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


def chunk_bounds(length: int, chunks: int, k_att: int):
  """Ends of up to `chunks` consecutive stretches of a window, at multiples of k_att."""
  size = -(-length // chunks)
  size = -(-size // k_att) * k_att
  ends = list(range(size, length, size)) + [length]
  return ends
