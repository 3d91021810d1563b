"""Eligibility-trace learners: RFLO (Murray 2019) and e-prop (Bellec et al. 2020).

Both keep, per example, one trace entry per parameter: the influence of a weight on the state of
the unit it feeds, `C_t[a, p] = d s_t[(a, u(p))] / d theta_p` restricted as below (`a` indexes
the unit's state slots: `h` for the SRN and leaky SRN, `h` and `c` for the LSTM; `u(p)` is the
unit that parameter p feeds, `forward_mode.unit_index`). The trace moves with the unit's *own*
dependence only,

    C_t[a, p] = sum_b Jd_t[a, b; u(p)] C_{t-1}[b, p] + F_t[(a, u(p)), p],                    (1)

`F_t = d s_t / d theta` at fixed `s_{t-1}` (the immediate term), and the gradient of the step-t
loss is assembled with an *instantaneous* learning signal `L_t [batch, H]`,

    dL_t / d theta_p ~= L_t[u(p)] . C_t[h-slot, p]                                           (2)

(readout gradients are exact). The rules differ in `Jd_t`:

* `eprop`: `Jd_t` is the unit-diagonal block of the full state Jacobian `J_t = d s_t / d s_{t-1}`
  (the neuron's own dependence, its self-connection included), which is SnAp-1's trace (Menick et
  al. 2020; `learners.snap1` uses the same (1)); for the leaky SRN
  `Jd_t[u] = (1 - alpha) + alpha f'(u_t)[u] W_hh[u, u]`.
* `rflo`: `Jd_t = (1 - alpha)` for the leaky SRN (1 - alpha = 0 for the SRN): Murray's
  `p_t = (1 - alpha) p_{t-1} + alpha f'(u_t) [h_{t-1}; x_t; 1]`, which drops the recurrent
  weights from the trace altogether.

and the learning signal: `feedback="symmetric"` uses the exact `dE_t/dh_t = dL_t/dy_t W^T`
through the readout (symmetric e-prop; RFLO with the readout's transpose); `feedback="random"`
uses `dL_t/dy_t B` with a fixed random `B [out, H]` drawn once from the learner's init key and
kept in `lparams["feedback"]` (its update is always zero). Neither rule carries credit from a
loss at step t to a unit other than through (2), which is what makes them local in space and
time: memory O(batch P) (one entry per weight, like SnAp-1), nothing stored per step, so
memory does not depend on T and `train.update_every=1` runs fully online.

Exactness (float64 tests): with `W_hh = 0`, `J_t = (1 - alpha) I`, so RFLO's trace equals RTRL's
influence and with symmetric feedback its gradient equals RTRL's; with diagonal recurrent
matrices `J_t` is unit-block-diagonal, so e-prop's trace is RTRL's influence and symmetric e-prop
equals RTRL. Otherwise both are biased.

Implementation: closed forms for the SRN and leaky SRN (O(P) per step and example); for the LSTM
the unit-diagonal blocks of `J_t` and the entries of `F_t` come from the dense per-step Jacobians
(`jax.jacfwd` / `jax.jacrev`, transient O(S P) memory), as in SnAp-1's generic path.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, NamedTuple

import jax
from jax.flatten_util import ravel_pytree
import jax.numpy as jnp

from tca_jax.cells.leaky import LeakySRN
from tca_jax.cells.rnn import ACTIVATIONS, SRN
from tca_jax.learners import forward_mode
from tca_jax.learners.base import Aux, Learner
from tca_jax.registry import check_choice

FEEDBACKS = ("symmetric", "random")


class TraceState(NamedTuple):
  model_state: Any  # batched state pytree
  trace: jax.Array  # C [batch, n_s, P]; C[a, p] = trace of s[(a, u(p))] w.r.t. theta_p


def _leak(core) -> float:
  return core.alpha if isinstance(core, LeakySRN) else 1.0


def propagate_srn(core, self_recurrence: bool):
  """(1) in closed form for the SRN / leaky SRN: `(flat, theta, h [B, H], x [B, in], C) -> C`."""
  alpha = _leak(core)
  act = ACTIVATIONS[core.activation]

  def propagate(flat, theta, h, x, c):
    p = flat.unravel_params(theta)
    pre = core.pre_activation(p, h, x)
    d = jax.jvp(act, (pre,), (jnp.ones_like(pre),))[1]  # f'(u_t), [B, H]
    decay = (1 - alpha) * jnp.ones_like(d)
    if self_recurrence:
      decay = decay + alpha * d * jnp.diagonal(p["W_hh"])

    def immediate(x_b, h_b, d_b):
      tree = {"W_xh": jnp.outer(x_b, d_b), "W_hh": jnp.outer(h_b, d_b), "b_h": d_b}
      return alpha * ravel_pytree(tree)[0]

    unit = forward_mode.unit_index(p, core.hidden_size)
    imm = jax.vmap(immediate)(x, h, d)  # [B, P], same order as ravel_pytree(params["core"])
    return decay[:, unit][:, None, :] * c + imm[:, None, :]

  return propagate


def propagate_generic(core, n_s: int):
  """(1) from the dense per-step Jacobians (any cell with unit-indexed parameters)."""
  h_size = core.hidden_size

  def propagate(flat, theta, s, x, c):
    unit = forward_mode.unit_index(flat.unravel_params(theta), h_size)
    return forward_mode.unit_masked_step(flat, theta, s, x, c, unit, n_s, h_size)

  return propagate


def trace_scan(model, params, model_state, trace, batch, loss_fn, *, propagate, feedback):
  """Runs one window: trace (1), instantaneous signal, gradient (2), summed over steps.

  Args:
    model, params, model_state: as in `forward_mode.online_scan`.
    trace: `C [B, n_s, P]` entering the window.
    batch: the window.
    loss_fn: the task's per-step loss.
    propagate: `(flat, theta, s [B, S], x [B, in], C) -> C`, one step of (1).
    feedback: None for the exact signal `dL_t/dy_t W^T`, else `B [out, H]` (`dL_t/dy_t B`).

  Returns:
    `forward_mode.WindowResult`.
  """
  h_size = model.core.hidden_size
  flat = forward_mode.FlatCore(model.core, params["core"], model_state)
  theta = flat.theta
  unit = forward_mode.unit_index(params["core"], h_size)
  rest = {k: v for k, v in params.items() if k != "core"}

  def body(carry, xs):
    s, c, g_core, g_rest = carry
    x, y, m = xs
    c = propagate(flat, theta, s, x, c)
    s, features = flat.batched_step(theta, s, x)
    outputs, readout_vjp = jax.vjp(model.readout, rest, features)
    loss, loss_vjp = jax.vjp(lambda o: jnp.mean(loss_fn(o, y, m)), outputs)
    (g_out,) = loss_vjp(jnp.ones_like(loss))
    g_r, g_features = readout_vjp(g_out)
    signal = g_features if feedback is None else g_out @ feedback  # L_t, [B, H]
    g_core = g_core + jnp.einsum("bp,bp->p", signal[:, unit], c[:, 0])  # slot 0 = h
    g_rest = jax.tree.map(jnp.add, g_rest, g_r)
    return (s, c, g_core, g_rest), (loss, outputs)

  init = (flat.flatten_state(model_state), trace, jnp.zeros_like(theta),
          jax.tree.map(jnp.zeros_like, rest))
  (s, trace, g_core, g_rest), (losses, outputs) = jax.lax.scan(
      body, init, (batch.inputs, batch.targets, batch.mask))
  grads = dict(g_rest, core=flat.unravel_params(g_core))
  return forward_mode.WindowResult(flat.unflatten_state(s), trace, grads, jnp.sum(losses), outputs)


@dataclasses.dataclass(frozen=True)
class _TraceLearner(Learner):
  """Shared parts of RFLO and e-prop; subclasses set `supported_cells` and `_propagate`."""

  exact: ClassVar[bool] = False
  supported_cells: ClassVar[tuple] = ()
  feedback: str = "symmetric"

  def __post_init__(self):
    check_choice(self.feedback, "learner.feedback", FEEDBACKS)

  def validate_model(self, model):
    forward_mode.check_cell(model, self.NAME, self.supported_cells)

  def _slots(self, model, params):
    s, _ = forward_mode.sizes(model, params)
    return s // model.core.hidden_size

  def init_params(self, key, model, params):
    if self.feedback == "symmetric":
      return {}
    w = params["readout"]["W"]  # [H, out]; B is drawn like the readout's transpose
    return {"feedback": jax.random.normal(key, w.shape[::-1], w.dtype) / jnp.sqrt(w.shape[0])}

  def init_state(self, model, params, batch_size: int):
    self.validate_model(model)
    dtype = jax.tree.leaves(params)[0].dtype
    _, p = forward_mode.sizes(model, params)
    return TraceState(model.initial_state(batch_size, dtype),
                      jnp.zeros((batch_size, self._slots(model, params), p), dtype))

  def _propagate(self, model, params):
    raise NotImplementedError

  def update(self, model, params, lparams, lstate, batch, loss_fn, key):
    del key  # deterministic given the feedback matrix
    self.validate_model(model)
    feedback = lparams["feedback"] if self.feedback == "random" else None
    out = trace_scan(model, params, lstate.model_state, lstate.trace, batch, loss_fn,
                     propagate=self._propagate(model, params), feedback=feedback)
    zeros = jax.tree.map(jnp.zeros_like, lparams)
    return TraceState(out.model_state, out.trace), (out.grads, zeros), Aux(out.loss, out.outputs, {})


@dataclasses.dataclass(frozen=True)
class RFLO(_TraceLearner):
  """Random-feedback local online learning (Murray 2019) for the SRN and leaky SRN.

  Attributes:
    feedback: "symmetric" (the readout's transpose) or "random" (a fixed random matrix).
  """

  NAME: ClassVar[str] = "rflo"
  supported_cells: ClassVar[tuple] = ("srn", "leaky_srn")

  def _propagate(self, model, params):
    return propagate_srn(model.core, self_recurrence=False)


@dataclasses.dataclass(frozen=True)
class EProp(_TraceLearner):
  """e-prop (Bellec et al. 2020) for the SRN, leaky SRN and LSTM.

  Attributes:
    feedback: "symmetric" (exact `dE_t/dh_t`) or "random" (a fixed random matrix).
  """

  NAME: ClassVar[str] = "eprop"
  supported_cells: ClassVar[tuple] = ("srn", "leaky_srn", "lstm")

  def _propagate(self, model, params):
    if isinstance(model.core, (SRN, LeakySRN)):
      return propagate_srn(model.core, self_recurrence=True)
    return propagate_generic(model.core, self._slots(model, params))
