"""Kronecker-factored RTRL (Mujika, Meier & Steger 2018), unbiased, for the SRN.

For the SRN `h_t = act(a_t W)` with `a_t = [x_t, h_{t-1}, 1]` (K = in + H + 1 entries) and
`W = [W_xh; W_hh; b_h]` (`[K, H]`), one step's immediate Jacobian is a Kronecker product,
`d h_t / d W[k, l] = a_t[k] D_t[l] delta_{jl}` with `D_t = act'(a_t W)`, i.e. `a_t (x) diag(D_t)`,
and the state Jacobian `J_t = diag(D_t) W_hh^T` acts on the unit side only. KF-RTRL keeps the
influence as one Kronecker product, `M_t[j, (k, l)] ~ u_t[k] A_t[j, l]`
(`u [K]`, `A [H, H]`, O(H^2) memory instead of RTRL's O(H^3)):

    M_t = u_{t-1} (x) (J_t A_{t-1}) + a_t (x) diag(D_t)                        (exact RTRL step)
    u_t = c_1 p_1 u_{t-1} + c_2 p_2 a_t,   A_t = c_1 J_t A_{t-1} / p_1 + c_2 diag(D_t) / p_2

with independent random signs c_1, c_2, so `E[u_t (x) A_t]` is the exact step applied to
`u_{t-1} (x) A_{t-1}` and the estimate is unbiased. The variance-minimising scalings are
`p_1 = sqrt(||J_t A_{t-1}|| / ||u_{t-1}||)`, `p_2 = sqrt(||D_t|| / ||a_t||)` (Frobenius / L2
norms), each with `eps` added to numerator and denominator so that zero factors (the start of a
sequence) give finite values. `J_t A_{t-1}` is a forward-mode product (`jax.linearize` of the
step, vmapped over A's columns): O(H^3) per step.

The gradient estimate of the step loss is `dL_t/dtheta|_direct + u_{t-1} (x) (g A_{t-1})` with
`g = dL_t/dh_{t-1}` (see `learners.forward_mode`); the readout's gradient is exact. As for UORO the
factors are kept per example with their own signs and the batch update is their mean.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar, NamedTuple

import jax
from jax.flatten_util import ravel_pytree
import jax.numpy as jnp

from tca_jax.cells.rnn import ACTIVATIONS
from tca_jax.learners import forward_mode
from tca_jax.learners.base import Aux, Learner
from tca_jax.registry import check_positive


class KFRTRLState(NamedTuple):
  model_state: jax.Array  # [batch, H]
  input_factor: jax.Array  # u [batch, K], K = in + H + 1 (order: x, h_{t-1}, bias)
  unit_factor: jax.Array  # A [batch, H, H]


def _norm(a, axes):
  return jnp.sqrt(jnp.sum(jnp.square(a), axis=axes))


@dataclasses.dataclass(frozen=True)
class KFRTRL(Learner):
  """KF-RTRL for the SRN (`model.cell="srn"` only).

  Attributes:
    eps: stabiliser of the scalings p_1, p_2.
  """

  NAME: ClassVar[str] = "kf_rtrl"
  supported_cells: ClassVar[tuple] = ("srn",)
  exact: ClassVar[bool] = False
  eps: float = 1e-7

  def __post_init__(self):
    check_positive(self.eps, "learner.eps")

  def validate_model(self, model):
    forward_mode.check_cell(model, self.NAME, self.supported_cells)

  def init_state(self, model, params, batch_size: int):
    self.validate_model(model)
    dtype = jax.tree.leaves(params)[0].dtype
    h = model.core.hidden_size
    k = params["core"]["W_xh"].shape[0] + h + 1
    return KFRTRLState(model.initial_state(batch_size, dtype),
                       jnp.zeros((batch_size, k), dtype), jnp.zeros((batch_size, h, h), dtype))

  def update(self, model, params, lparams, lstate, batch, loss_fn, key):
    self.validate_model(model)
    core, eps = model.core, self.eps
    n_in = params["core"]["W_xh"].shape[0]
    act = ACTIVATIONS[core.activation]

    def propagate(flat, theta, h, x, trace, key):
      u, a_mat = trace
      p = flat.unravel_params(theta)
      pre = core.pre_activation(p, h, x)
      d = jax.jvp(act, (pre,), (jnp.ones_like(pre),))[1]  # [B, H]
      inp = jnp.concatenate([x, h, jnp.ones_like(h[:, :1])], axis=-1)  # [B, K]
      ja = forward_mode.state_jvp(flat, theta, h, x, a_mat)  # [B, H, H]
      p1 = jnp.sqrt((_norm(ja, (1, 2)) + eps) / (_norm(u, 1) + eps))[:, None]
      p2 = jnp.sqrt((_norm(d, 1) + eps) / (_norm(inp, 1) + eps))[:, None]
      c = jax.random.rademacher(key, (2, h.shape[0])).astype(h.dtype)[..., None]
      u = c[0] * p1 * u + c[1] * p2 * inp
      a_mat = (c[0] / p1)[..., None] * ja + (c[1] / p2)[..., None] * jax.vmap(jnp.diag)(d)
      return u, a_mat

    def contract(trace, g_s):
      u, a_mat = trace
      w = jnp.einsum("bk,bl->kl", u, jnp.einsum("bj,bjl->bl", g_s, a_mat))  # [K, H]
      tree = {"W_xh": w[:n_in], "W_hh": w[n_in:-1], "b_h": w[-1]}
      return ravel_pytree(tree)[0]

    out = forward_mode.online_scan(model, params, lstate.model_state,
                                   (lstate.input_factor, lstate.unit_factor), batch, loss_fn, key,
                                   propagate=propagate, contract=contract)
    zeros = jax.tree.map(jnp.zeros_like, lparams)
    return (KFRTRLState(out.model_state, *out.trace), (out.grads, zeros),
            Aux(out.loss, out.outputs, {}))
