"""Exact online learning of diagonal linear recurrences (Zucchet, Meier, Schug, Mujika &
Sacramento 2023, "Online learning of long-range dependencies"), for the `lru` cell.

For one LRU layer `h_t = lambda * h_{t-1} + gamma * (u_t B)` (complex, elementwise in the N
units) the RTRL influence of the recurrence's parameters is diagonal in the units, so it is carried
exactly in O(N (I + 1)) per example (I = the layer's input size) by three complex sensitivities:

    e^lambda_t = lambda * e^lambda_{t-1} + h_{t-1}                      d h_t / d lambda     [N]
    e^gamma_t  = lambda * e^gamma_{t-1} + u_t B                          d h_t / d gamma      [N]
    e^B_t[k,n] = lambda_n e^B_{t-1}[k,n] + gamma_n u_t[k]                d h_t[n] / d B[k,n]  [I, N]

and, with `g_t = dL_t/dRe h_t + i dL_t/dIm h_t` the gradient of the step loss with respect to
the new state, `dL_t/dp = Re(conj(g_t) dh_t/dp)` for a real parameter p: `dh_t/dnu_log =
-exp(nu_log) lambda e^lambda`, `dh_t/dtheta_log = i exp(theta_log) lambda e^lambda`,
`dh_t/dgamma_log = gamma e^gamma`, `dh_t/dB_re = e^B`, `dh_t/dB_im = i e^B`. The parameters that
do not act on the state (C, D, the mixing MLP, the readout) get their step gradients at fixed
`h_{t-1}` (one local VJP per step). `g_t` is that VJP's gradient with respect to a zero
perturbation added to each layer's new state (`cells.lru.LRU.layer_step`'s `delta`).

What is exact. One layer: every gradient, equal to BPTT (float64 test). Stacked layers: `g_t` of
layer l includes the paths from `h^l_t` to the loss at step t through the layers above at step t,
but not through their recurrences (the effect of `h^l_t` on `h^{l+1}_{t'}` for t' > t and hence on
later losses): the top layer and every non-recurrent parameter's *instantaneous* path are exact,
a lower layer's gradient is approximate: spatial backpropagation through the layers at each step,
temporal credit from each layer's own diagonal traces only (our reading of Zucchet et al.'s
multi-layer rule; the paper is not in shared/papers, so this was not checked against its text). Memory O(batch N (I + 2)) per
layer, nothing stored per step: memory independent of T, fully online with `update_every=1`.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, NamedTuple

import jax
import jax.numpy as jnp

from tca_jax.learners import forward_mode
from tca_jax.learners.base import Aux, Learner


class DiagTraces(NamedTuple):
  """Per-layer sensitivities, complex numbers stored as `[..., 2]` (real, imaginary) pairs."""

  lam: jax.Array  # [batch, N, 2]
  gamma: jax.Array  # [batch, N, 2]
  B: jax.Array  # [batch, I, N, 2]


class OnlineDiagState(NamedTuple):
  model_state: Any  # tuple of [batch, 2N]
  traces: tuple  # one DiagTraces per layer


def _pack(z):
  return jnp.stack([jnp.real(z), jnp.imag(z)], -1)


def _unpack(a):
  return a[..., 0] + 1j * a[..., 1]


def _re_inner(g, e):
  """`sum over the batch of Re(conj(g) e)`, g broadcast against e."""
  return jnp.sum(jnp.real(jnp.conj(g) * e), axis=0)


@dataclasses.dataclass(frozen=True)
class OnlineDiag(Learner):
  """Exact online learning of the LRU's diagonal recurrences (approximate across layers)."""

  NAME: ClassVar[str] = "online_diag"
  supported_cells: ClassVar[tuple] = ("lru",)
  exact: ClassVar[bool] = False  # exact for one layer only

  def validate_model(self, model):
    forward_mode.check_cell(model, self.NAME, self.supported_cells)

  def init_state(self, model, params, batch_size: int):
    self.validate_model(model)
    dtype = jax.tree.leaves(params)[0].dtype
    n = model.core.hidden_size
    traces = tuple(
        DiagTraces(jnp.zeros((batch_size, n, 2), dtype), jnp.zeros((batch_size, n, 2), dtype),
                   jnp.zeros((batch_size,) + lp["B_re"].shape + (2,), dtype))
        for lp in params["core"]["layers"])
    return OnlineDiagState(model.initial_state(batch_size, dtype), traces)

  def update(self, model, params, lparams, lstate, batch, loss_fn, key):
    del key
    self.validate_model(model)
    core = model.core
    rest = {k: v for k, v in params.items() if k != "core"}

    def body(carry, xs):
      state, traces, g_core, g_rest = carry
      x, y, m = xs
      # The traces move first: e_t needs h_{t-1} and u_t (the layer inputs at step t).
      new_traces, u = [], x
      for lp, s, tr in zip(params["core"]["layers"], state, traces):
        lam, gamma = core.eigenvalues(lp), jnp.exp(lp["gamma_log"])
        drive = u @ lp["B_re"] + 1j * (u @ lp["B_im"])
        new_traces.append((lam * _unpack(tr.lam) + core.to_complex(s),
                           lam * _unpack(tr.gamma) + drive,
                           lam * _unpack(tr.B) + gamma * u[:, :, None]))
        _, u = core.layer_step(lp, s, u)

      def step_loss(core_params, rest_params, deltas):
        new, features = core.step(core_params, state, x, deltas)
        outputs = model.readout(rest_params, features)
        return jnp.mean(loss_fn(outputs, y, m)), (new, outputs)

      deltas = tuple(jnp.zeros_like(s) for s in state)
      loss, vjp, (state, outputs) = jax.vjp(step_loss, params["core"], rest, deltas,
                                            has_aux=True)
      g_c, g_r, g_h = vjp(jnp.ones_like(loss))
      layers = []
      for lp, gl, g_s, (e_lam, e_gamma, e_b) in zip(params["core"]["layers"], g_c["layers"],
                                                     g_h, new_traces):
        g = core.to_complex(g_s)  # dL/dRe h + i dL/dIm h, [B, N]
        lam_e = core.eigenvalues(lp) * e_lam
        gl = dict(gl,  # the recurrent leaves' immediate terms are replaced by the traces'
                  nu_log=_re_inner(g, -jnp.exp(lp["nu_log"]) * lam_e),
                  theta_log=_re_inner(g, 1j * jnp.exp(lp["theta_log"]) * lam_e),
                  gamma_log=_re_inner(g, jnp.exp(lp["gamma_log"]) * e_gamma),
                  B_re=_re_inner(g[:, None, :], e_b), B_im=_re_inner(g[:, None, :], 1j * e_b))
        layers.append(gl)
      g_core = jax.tree.map(jnp.add, g_core, {"layers": layers})
      g_rest = jax.tree.map(jnp.add, g_rest, g_r)
      traces = tuple(DiagTraces(*map(_pack, t)) for t in new_traces)
      return (state, traces, g_core, g_rest), (loss, outputs)

    init = (lstate.model_state, lstate.traces, jax.tree.map(jnp.zeros_like, params["core"]),
            jax.tree.map(jnp.zeros_like, rest))
    (state, traces, g_core, g_rest), (losses, outputs) = jax.lax.scan(
        body, init, (batch.inputs, batch.targets, batch.mask))
    grads = dict(g_rest, core=g_core)
    zeros = jax.tree.map(jnp.zeros_like, lparams)
    return (OnlineDiagState(state, traces), (grads, zeros),
            Aux(jnp.sum(losses), outputs, {}))
