"""The `sab` learner: options, learner state and the update of one window (see the package
docstring, `tca_jax.learners.sab`)."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, NamedTuple, Optional

import jax
import jax.numpy as jnp

from tca_jax.backend import scan_unroll
from tca_jax.cells.sab import SABLSTM, SABState
from tca_jax.learners.base import Aux, Learner, check_window_option, window_loss
from tca_jax.learners.sab import forward as forward_lib
from tca_jax.learners.sab import replay as replay_lib
from tca_jax.learners.sab.reverse import reverse
from tca_jax.registry import ConfigError, check_choice

BACKWARDS = ("replay", "autodiff")


class SABLearnerState(NamedTuple):
  model_state: SABState
  replay: replay_lib.Replay


class SABWindow(NamedTuple):
  """The SAB update of one window."""

  state: SABLearnerState
  grads: Any  # like params
  loss: jax.Array
  outputs: jax.Array  # [W, batch, out]
  dinputs: jax.Array  # [W, batch, in]: credit reaching the window's own inputs


def sab_core(model) -> SABLSTM:
  """The model's `SABLSTM` core; `ConfigError` for any other cell."""
  if not isinstance(model.core, SABLSTM):
    raise ConfigError(
        f"model.cell of type {type(model.core).__name__} is not supported by learner 'sab'; "
        "allowed: sab_lstm, attn_lstm")
  return model.core


@dataclasses.dataclass(frozen=True)
class SAB(Learner):
  """Sparse Attentive Backtracking.

  Attributes:
    k_trunc: sequential truncation length, also how far a mental update reaches back.
    mental_updates: let credit flow from a selected memory into the steps that produced it.
    backward: "replay" (hand-written reverse scan, O(T H + M H) memory, online-capable) or
      "autodiff" (`jax.grad` through the memory buffer; whole-sequence windows only).
    unroll: `lax.scan` unroll factor of the forward and reverse scans; None: the backend's
      default (`tca_jax.backend.scan_unroll`).
    forward_chunks: the forward pass from an empty memory runs as this many scans, each scoring
      only the memory slots that can exist by its end (1: one scan scoring every slot at every
      step). Same result; more chunks cost compile time (one scan body each). None: 4 on the
      CPU, 1 on a GPU or TPU (`forward.forward_chunks_for`; docs/PERFORMANCE.md).
    store_gates: keep each step's LSTM gate pre-activations (`[T, batch, 4H]`) from the forward
      pass for the reverse scan instead of recomputing them (sparse cores): faster on the CPU
      for 4H floats per step and sequence more memory; False: the smallest memory.
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
    forward_lib.forward_chunks_for(self.forward_chunks)  # validates
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

  def init_state(self, model, params, batch_size: int):
    core = sab_core(model)
    dtype = jax.tree.leaves(params)[0].dtype
    n_in = params["core"]["lstm"]["W_x"].shape[0]
    replay = replay_lib.empty(core.max_memories, self.k_trunc, batch_size, core.hidden_size,
                              n_in, dtype)
    return SABLearnerState(core.initial_state(batch_size, dtype), replay)

  def update(self, model, params, lparams, lstate, batch, loss_fn, key):
    del key
    res = window_gradients(self, model, params, lstate, batch, loss_fn)
    zeros = jax.tree.map(jnp.zeros_like, lparams)
    return res.state, (res.grads, zeros), Aux(res.loss, res.outputs, {})


def window_gradients(learner: SAB, model, params, lstate: SABLearnerState, batch, loss_fn
                     ) -> SABWindow:
  """The SAB update of one window (see the package docstring)."""
  core = sab_core(model)
  if learner.backward == "autodiff":
    return autodiff(learner, model, params, lstate, batch, loss_fn)
  start = lstate.model_state
  final, (entering, features) = forward_lib.forward(learner, core, params["core"], start,
                                                    batch.inputs)
  outputs = model.readout(params, features)
  loss = window_loss(loss_fn, outputs, batch)
  grads, dmem, dkeys, dinputs = reverse(
      learner, model, params, entering, batch.inputs, final.memory, final.keys,
      jnp.zeros_like(final.memory), jnp.zeros_like(final.keys), batch.targets, batch.mask,
      loss_fn)
  replay = lstate.replay
  if learner.mental_updates:
    # Only a window that starts with memories already written (online SAB) has blocks to replay.
    grads, dmem, dkeys = jax.lax.cond(
        start.count > 0,
        lambda g, dm, dk: replay_lib.replays(learner, model, params, replay, start.count,
                                             final.memory, final.keys, dm, dk, g),
        lambda g, dm, dk: (g, dm, dk), grads, dmem, dkeys)
  # The cached keys W1 m_j: credit to W1 (also without mental updates, where m_j is a leaf).
  g_w1 = jnp.einsum("mbh,mba->ha", final.memory, dkeys)
  grads["core"]["attn"]["W1"] = grads["core"]["attn"]["W1"] + g_w1
  if batch.length <= learner.k_trunc:
    replay = replay_lib.store(learner, replay, start, final, batch.inputs)
  return SABWindow(SABLearnerState(final, replay), grads, loss, outputs, dinputs)


def autodiff(learner: SAB, model, params, lstate, batch, loss_fn) -> SABWindow:
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
  return SABWindow(lstate._replace(model_state=final), grads, loss, outputs, dinputs)
