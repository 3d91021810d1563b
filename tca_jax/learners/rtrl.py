"""Real-time recurrent learning (Williams & Zipser 1989), exact, in forward mode.

The influence matrix of the core parameters theta (flattened with `ravel_pytree`, P entries) on
the state s (flattened per example, S entries; `[h; c]` for the LSTM) is carried per example,

    M_t = d s_t / d theta = J_t M_{t-1} + F_t,   J_t = d s_t / d s_{t-1},  F_t = d s_t / d theta|_s,

`J_t M_{t-1}` by `jax.linearize` of the step with respect to the state, vmapped over M's P
columns, and `F_t` by forward (`jax.jacfwd`) or reverse (`jax.jacrev`) differentiation of one
step; both are exact (`immediate`). The gradient of the step loss is
`dL_t/dtheta|_direct + dL_t/ds_{t-1} M_{t-1}` (see `learners.forward_mode`), which summed over t is
Williams & Zipser's `sum_t dL_t/ds_t M_t`; the readout's gradient is exact and local.

Generic over every cell whose state is a pytree of `[batch, ...]` arrays (SRN, LSTM, GRU); memory
cores whose state is not split by example (`sab_lstm`, `attn_lstm`) raise `ConfigError`.

Cost per step and example: memory O(S P) (O(N^3) for a dense N-unit RNN, the review's count),
compute O(S P) Jacobian-vector products of one step (O(N^4)). Nothing is stored per step, so
memory does not grow with the window. `M` crosses window boundaries in the learner state, so with
`train.update_every=1` RTRL learns fully online; `init_state` starts a sequence with `M = 0`.

Choice: `immediate="reverse"` by default. Forward mode builds F_t from P tangents of the standard
basis, which XLA materialises as a `[P, P]` identity (18 GB for an SRN(256)), while reverse mode
needs S cotangents; the influence recursion itself is always forward mode.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, NamedTuple

import jax
import jax.numpy as jnp

from tca_jax.learners import forward_mode
from tca_jax.learners.base import Aux, Learner
from tca_jax.registry import check_choice


class RTRLState(NamedTuple):
  model_state: Any  # batched state pytree
  influence: jax.Array  # [batch, S, P]; columns in ravel_pytree(params["core"]) order


@dataclasses.dataclass(frozen=True)
class RTRL(Learner):
  """Exact RTRL.

  Attributes:
    immediate: how the immediate Jacobian `d s_t / d theta` is formed, "reverse" (`jacrev`,
      S products) or "forward" (`jacfwd`, P products against a materialised basis).
  """

  NAME: ClassVar[str] = "rtrl"
  generic_cells: ClassVar[bool] = True
  immediate: str = "reverse"

  def __post_init__(self):
    check_choice(self.immediate, "learner.immediate", ("reverse", "forward"))

  def validate_model(self, model):
    forward_mode.check_per_example_state(model, self.NAME)

  def init_state(self, model, params, batch_size: int):
    self.validate_model(model)
    dtype = jax.tree.leaves(params)[0].dtype
    s, p = forward_mode.sizes(model, params)
    return RTRLState(model.initial_state(batch_size, dtype),
                     jnp.zeros((batch_size, s, p), dtype))

  def update(self, model, params, lparams, lstate, batch, loss_fn, key):
    def propagate(flat, theta, s, x, m, key):
      del key
      return (forward_mode.state_jvp(flat, theta, s, x, m)
              + forward_mode.param_jacobian(flat, theta, s, x, self.immediate))

    def contract(m, g_s):
      return jnp.einsum("bs,bsp->p", g_s, m)

    out = forward_mode.online_scan(model, params, lstate.model_state, lstate.influence, batch,
                              loss_fn, key, propagate=propagate, contract=contract)
    zeros = jax.tree.map(jnp.zeros_like, lparams)
    return RTRLState(out.model_state, out.trace), (out.grads, zeros), Aux(out.loss, out.outputs, {})
