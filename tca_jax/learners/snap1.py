"""SnAp-1 (Menick, Elsen, Evci, Osindero, Simonyan & Graves 2020) for the SRN, LSTM and GRU.

SnAp-n keeps only the entries of the RTRL influence matrix `M_t = d s_t / d theta` (see
`learners.rtrl`) that n steps of the recurrence can make non-zero, and drops the rest at every
step. For n = 1 that is the sparsity pattern of the immediate Jacobian `F_t = d s_t / d theta`:
every weight and bias of these cells is a column of one gate block, so it belongs to one unit u
and one step moves only that unit's state entries (`h_u` for the SRN and GRU, `h_u` and `c_u` for
the LSTM). With `n_s` state slots per unit (1, or 2 for the LSTM) the influence is kept as
`C [batch, n_s, P]`, `C[a, p] = M[a * H + u(p), p]`, O(P) memory like the parameters, and

    C_t[a, p] = sum_b J_t[(a, u(p)), (b, u(p))] C_{t-1}[b, p] + F_t[(a, u(p)), p],

i.e. RTRL's step restricted to the pattern (the unit-diagonal blocks of `J_t`). When the
recurrent matrices are diagonal, `J_t` is unit-block-diagonal and `F_t` lies in the pattern, so
nothing is dropped and SnAp-1 equals RTRL; otherwise it is biased (Menick et al. sec. 3).

Variants (`learner.variant`; both carry the same trace `C_t`, they differ in the gradient):

- `"textbook"` (default; Menick et al. sec. 3, the estimator behind the paper's numbers): the
  step gradient is `dL_t/ds_t . M~_t` with `M~_t = mask(J_t M~_{t-1} + F_t)` the sparse trace
  above (`learners.forward_mode` assembly (2)): everything outside the pattern is dropped, including
  the off-diagonal part of `J_t M~_{t-1}`.
- `"full_jacobian"` (tca-jax's earlier default): `dL_t/dtheta|_direct + dL_t/ds_{t-1} .
  M~_{t-1}` (assembly (1)), i.e. `dL_t/ds_t . (J_t M~_{t-1} + F_t)`: the full `J_t` is applied
  to the masked trace before the contraction, so the one-step product keeps its off-pattern
  entries (and the GRU's off-pattern `F_t`). It carries the same O(P) trace and is a different
  biased estimator of its own; it is not the paper's.

Both equal RTRL when the recurrence is diagonal.

Choice for the GRU: its reset-gate parameters reach every unit in one step through `U_n`
(`n = tanh(... + (r * h) U_n)`), so strictly their columns are dense after one step; keeping them
dense would cost RTRL's O(H^3) memory, so we keep, as for every other parameter, the entries of
the parameter's own unit. That is still exact when `U_zr` and `U_n` are diagonal.

Implementation. Generic path (any of the three cells): the unit-diagonal blocks of `J_t` come
from the dense state Jacobian (`jax.jacfwd`, O(S) JVPs) and the pattern entries of `F_t` from the
dense immediate Jacobian (`jax.jacrev`, O(S) VJPs, transient O(S P) memory), O(H^3) compute per
step. For the SRN with `structured=True` (the default) both are written out, `J_t[u, u] =
D_u W_hh[u, u]` and `F_t[u, (k, u)] = a_k D_u` with `D = act'(pre-activation)`,
`a = [x, h_{t-1}, 1]`: O(P) compute and memory per step. The textbook gradient of the step loss
is `sum_a dL_t/ds_t[(a, u(p))] C_t[a, p]`, the full-Jacobian one `dL_t/dtheta|_direct + sum_a
dL_t/ds_{t-1}[(a, u(p))] C_{t-1}[a, p]` (see `learners.forward_mode`).
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, NamedTuple

import jax
from jax.flatten_util import ravel_pytree
import jax.numpy as jnp

from tca_jax.cells.rnn import ACTIVATIONS, SRN
from tca_jax.learners import forward_mode
from tca_jax.learners.base import Aux, Learner
from tca_jax.registry import ConfigError

VARIANTS = ("textbook", "full_jacobian")


class SnAp1State(NamedTuple):
  model_state: Any  # batched state pytree
  influence: jax.Array  # C [batch, n_s, P]; C[a, p] = M[a * H + unit(p), p]


@dataclasses.dataclass(frozen=True)
class SnAp1(Learner):
  """SnAp-1.

  Attributes:
    structured: use the closed-form O(P) step for the SRN (the generic path otherwise).
    variant: "textbook" (Menick et al.'s estimator, the default) or "full_jacobian" (the full
      `J_t` applied to the masked trace before the contraction); see the module docstring.
  """

  NAME: ClassVar[str] = "snap1"
  supported_cells: ClassVar[tuple] = ("srn", "lstm", "gru")
  exact: ClassVar[bool] = False
  structured: bool = True
  variant: str = "textbook"

  def __post_init__(self):
    if not isinstance(self.structured, bool):
      raise ConfigError(f"learner.structured={self.structured!r} must be True or False")
    if self.variant not in VARIANTS:
      raise ConfigError(
          f"learner.variant={self.variant!r} is not a snap1 variant; allowed: {', '.join(VARIANTS)}")

  def validate_model(self, model):
    forward_mode.check_cell(model, self.NAME, self.supported_cells)

  def _slots(self, model, params):
    s, _ = forward_mode.sizes(model, params)
    return s // model.core.hidden_size

  def init_state(self, model, params, batch_size: int):
    self.validate_model(model)
    dtype = jax.tree.leaves(params)[0].dtype
    _, p = forward_mode.sizes(model, params)
    return SnAp1State(model.initial_state(batch_size, dtype),
                      jnp.zeros((batch_size, self._slots(model, params), p), dtype))

  def update(self, model, params, lparams, lstate, batch, loss_fn, key):
    self.validate_model(model)
    h_size = model.core.hidden_size
    n_s = self._slots(model, params)
    unit = forward_mode.unit_index(params["core"], h_size)
    structured = self.structured and isinstance(model.core, SRN)

    def propagate_generic(flat, theta, s, x, c, key):
      del key
      return forward_mode.unit_masked_step(flat, theta, s, x, c, unit, n_s, h_size)

    def propagate_srn(flat, theta, h, x, c, key):
      del key
      p = flat.unravel_params(theta)
      pre = model.core.pre_activation(p, h, x)
      d = jax.jvp(ACTIVATIONS[model.core.activation], (pre,), (jnp.ones_like(pre),))[1]
      j_diag = d * jnp.diagonal(p["W_hh"])  # [B, H]

      def immediate(x_b, h_b, d_b):
        tree = {"W_xh": jnp.outer(x_b, d_b), "W_hh": jnp.outer(h_b, d_b), "b_h": d_b}
        return ravel_pytree(tree)[0]

      imm = jax.vmap(immediate)(x, h, d)  # [B, P]
      return j_diag[:, unit][:, None, :] * c + imm[:, None, :]

    def contract(c, g_s):
      g = g_s.reshape(g_s.shape[0], n_s, h_size)[..., unit]  # [B, n_s, P]
      return jnp.einsum("bap,bap->p", g, c)

    # The features of the SRN, LSTM and GRU are h_t, the first H entries of the flat state (the
    # LSTM's state is `(h, c)`).
    features = (None if self.variant == "full_jacobian" else lambda s: s[:, :h_size])
    out = forward_mode.online_scan(model, params, lstate.model_state, lstate.influence, batch,
                                   loss_fn, key, contract=contract,
                                   propagate=propagate_srn if structured else propagate_generic,
                                   features_of_state=features)
    zeros = jax.tree.map(jnp.zeros_like, lparams)
    return (SnAp1State(out.model_state, out.trace), (out.grads, zeros),
            Aux(out.loss, out.outputs, {}))


