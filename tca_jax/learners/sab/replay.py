"""Online SAB's replays: the blocks that wrote memories, kept in the learner state (`Replay`),
re-run when credit reaches their memories in a later window (`replays`, `store`)."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from tca_jax.cells.sab import SABState
from tca_jax.learners.sab.forward import light_forward
from tca_jax.learners.sab.reverse import reverse


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


def empty(max_memories: int, k_trunc: int, batch_size: int, hidden_size: int, input_size: int,
          dtype) -> Replay:
  """A `Replay` holding no block."""
  m = max_memories
  zeros_m = jnp.zeros((m,), dtype)
  return Replay(jnp.zeros((m, batch_size, hidden_size), dtype),
                jnp.zeros((m, batch_size, hidden_size), dtype),
                jnp.zeros((m, k_trunc, batch_size, input_size), dtype), zeros_m, zeros_m,
                jnp.zeros((m,), bool))


def nonzero_slots(dmem, dkeys):
  return jnp.any(dmem != 0, axis=(1, 2)) | jnp.any(dkeys != 0, axis=(1, 2))


def replays(learner, model, params, replay: Replay, count_start, memory, keys, dmem, dkeys,
            grads):
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
      entering = light_forward(learner, core, params["core"], state, replay.inputs[j], memory,
                               keys)
      g, new_dmem, new_dkeys, _ = reverse(learner, model, params, entering, replay.inputs[j],
                                          memory, keys, dmem, dkeys)
      # Credit to this block's own slots has been consumed; only older slots can gain some.
      flags = flags | nonzero_slots(new_dmem - dmem, new_dkeys - dkeys)
      return jax.tree.map(jnp.add, grads, g), new_dmem, new_dkeys, flags

    return jax.lax.cond(need, run, lambda a: a, (grads, dmem, dkeys, flags)), None

  flags = nonzero_slots(dmem, dkeys)
  (grads, dmem, dkeys, _), _ = jax.lax.scan(one, (grads, dmem, dkeys, flags), slots[::-1])
  return grads, dmem, dkeys


def store(learner, replay: Replay, start: SABState, final: SABState, inputs) -> Replay:
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
