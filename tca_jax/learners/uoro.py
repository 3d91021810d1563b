"""Unbiased Online Recurrent Optimization (Tallec & Ollivier 2017, Algorithm 1).

UORO keeps a rank-one estimate `M_t ~ s~_t theta~_t^T` of the RTRL influence matrix (see
`learners.rtrl`) with `E[s~_t theta~_t^T] = M_t`. At each step, with `nu` a vector of independent
random signs,

    s~_t     = rho_0 J_t s~_{t-1} + rho_1 nu
    theta~_t = theta~_{t-1} / rho_0 + (nu^T F_t) / rho_1,

`J_t s~` by `jax.jvp` (forward mode), `nu^T F_t = nu^T d s_t / d theta` by `jax.vjp` (reverse
mode through one step). The cross terms have zero mean because `E[nu] = 0` and `rho_1` is even in
`nu`, and `E[nu nu^T] = I`, so the estimate stays unbiased for any positive scalings; the paper's
variance-reducing choice is

    rho_0 = sqrt((||theta~_{t-1}|| + eps) / (||J_t s~_{t-1}|| + eps)),
    rho_1 = sqrt((||nu^T F_t|| + eps) / (||nu|| + eps)),

with `eps` keeping them finite when a factor is zero (at the start of a sequence). The gradient
estimate of the step loss is `dL_t/dtheta|_direct + (dL_t/ds_{t-1} . s~_{t-1}) theta~_{t-1}`
(Algorithm 1's `g~`); the readout's gradient is exact.

Choices: the factors are kept *per example* (`s~ [batch, S]`, `theta~ [batch, P]`), each example
with its own signs, and the batch update is the mean of the per-example estimates (B independent
estimates, so the variance falls as 1/B). theta~ covers the core parameters only (the readout does
not act on the state). Signs for step t of a window come from `fold_in(key, t)`. Memory is
O(batch (S + P)), independent of the window length. Like `rtrl`, generic over cells whose state
is a pytree of `[batch, ...]` arrays.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, NamedTuple

import jax
import jax.numpy as jnp

from tca_jax.learners import forward_mode
from tca_jax.learners.base import Aux, Learner
from tca_jax.registry import check_positive


class UOROState(NamedTuple):
  model_state: Any  # batched state pytree
  state_factor: jax.Array  # s~ [batch, S]
  param_factor: jax.Array  # theta~ [batch, P], ravel_pytree(params["core"]) order


def _norm(a):
  return jnp.linalg.norm(a, axis=-1, keepdims=True)


@dataclasses.dataclass(frozen=True)
class UORO(Learner):
  """UORO.

  Attributes:
    eps: the stabiliser of rho_0 and rho_1.
  """

  NAME: ClassVar[str] = "uoro"
  generic_cells: ClassVar[bool] = True
  exact: ClassVar[bool] = False
  eps: float = 1e-7

  def __post_init__(self):
    check_positive(self.eps, "learner.eps")

  def validate_model(self, model):
    forward_mode.check_per_example_state(model, self.NAME)

  def init_state(self, model, params, batch_size: int):
    self.validate_model(model)
    dtype = jax.tree.leaves(params)[0].dtype
    s, p = forward_mode.sizes(model, params)
    return UOROState(model.initial_state(batch_size, dtype),
                     jnp.zeros((batch_size, s), dtype), jnp.zeros((batch_size, p), dtype))

  def update(self, model, params, lparams, lstate, batch, loss_fn, key):
    eps = self.eps

    def propagate(flat, theta, s, x, trace, key):
      s_f, p_f = trace
      j_s = forward_mode.state_jvp_vector(flat, theta, s, x, s_f)
      nu = jax.random.rademacher(key, s_f.shape).astype(s_f.dtype)
      nu_f = forward_mode.param_vjp(flat, theta, s, x, nu)
      rho0 = jnp.sqrt((_norm(p_f) + eps) / (_norm(j_s) + eps))
      rho1 = jnp.sqrt((_norm(nu_f) + eps) / (_norm(nu) + eps))
      return rho0 * j_s + rho1 * nu, p_f / rho0 + nu_f / rho1

    def contract(trace, g_s):
      s_f, p_f = trace
      return jnp.einsum("b,bp->p", jnp.sum(g_s * s_f, axis=-1), p_f)

    out = forward_mode.online_scan(model, params, lstate.model_state,
                                   (lstate.state_factor, lstate.param_factor), batch, loss_fn, key,
                                   propagate=propagate, contract=contract)
    zeros = jax.tree.map(jnp.zeros_like, lparams)
    return (UOROState(out.model_state, *out.trace), (out.grads, zeros),
            Aux(out.loss, out.outputs, {}))
