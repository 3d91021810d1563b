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

For the SRN (`structured=True`, the default) the step is written out: with `D_t = act'(a_t)`
and `u_t = [h_{t-1}; x_t; 1]`, `J_t = D_t W_hh^T` and `F_t[j, (i, k)] = D_t[j] u_t[i] delta_jk`
(the flat columns of `W_hh`, `W_xh` and `b_h` are `(i, k)` row-major, so the P axis is a
`[H + in + 1, H]` grid), so `M_t = (D_t W_hh^T) M_{t-1} + F_t` is one batched GEMM
`[B, H, H] @ [B, H, P]` plus a diagonal add, with no Jacobian-vector machinery and no dense
Kronecker product; it equals the generic path in float64 (tests/test_rtrl.py).

`kernel` picks who runs that update on CPU: "native" (`tca_jax.ops.native.bmm_diag`, BLAS's
GEMM with `F_t` added in the same pass, through `jax.ffi`; XLA:CPU's batched dot runs this shape
at a third of BLAS's rate on a quiet machine, docs/PERFORMANCE.md), "xla" (`jnp.einsum`), or
"auto", which is "xla" for now: the only measurement of the native kernel so far was on an
oversubscribed CPU, where OpenBLAS ran 10x slower than XLA (docs/PERFORMANCE.md); a quiet-machine
`benchmarks.compare` decides. Other platforms always run XLA (`jax.lax.platform_dependent`), and a native kernel
that cannot be built (no compiler) falls back to XLA with one logged warning.

Choice: `immediate="reverse"` by default. Forward mode builds F_t from P tangents of the standard
basis, which XLA materialises as a `[P, P]` identity (18 GB for an SRN(256)), while reverse mode
needs S cotangents; the influence recursion itself is always forward mode.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, ClassVar, NamedTuple

import jax
import jax.numpy as jnp

from tca_jax.learners import forward_mode
from tca_jax.cells.rnn import ACTIVATIONS, SRN
from tca_jax.learners.base import Aux, Learner
from tca_jax.ops import native
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
    structured: use the closed-form SRN step (one batched GEMM; see the module docstring);
      False, or any other cell, takes the generic forward-mode path.
    kernel: the structured SRN update's GEMM on CPU: "auto" (= "xla" until measured), "native"
      (BLAS through `jax.ffi`; XLA with a warning where it cannot be built) or "xla".
  """

  NAME: ClassVar[str] = "rtrl"
  generic_cells: ClassVar[bool] = True
  immediate: str = "reverse"
  structured: bool = True
  kernel: str = "auto"

  def __post_init__(self):
    check_choice(self.immediate, "learner.immediate", ("reverse", "forward"))
    check_choice(self.kernel, "learner.kernel", ("auto", "native", "xla"))

  def validate_model(self, model):
    forward_mode.check_per_example_state(model, self.NAME)

  def init_state(self, model, params, batch_size: int):
    self.validate_model(model)
    dtype = jax.tree.leaves(params)[0].dtype
    s, p = forward_mode.sizes(model, params)
    return RTRLState(model.initial_state(batch_size, dtype),
                     jnp.zeros((batch_size, s, p), dtype))

  def update(self, model, params, lparams, lstate, batch, loss_fn, key):
    def propagate_generic(flat, theta, s, x, m, key):
      del key
      return (forward_mode.state_jvp(flat, theta, s, x, m)
              + forward_mode.param_jacobian(flat, theta, s, x, self.immediate))

    core = model.core
    structured = (self.structured and isinstance(core, SRN)
                  and sorted(params["core"]) == ["W_hh", "W_xh", "b_h"])
    use_native = (structured and self.kernel == "native" and jax.default_backend() == "cpu"
                  and native.available())
    propagate = (functools.partial(propagate_srn, use_native=use_native) if structured
                 else propagate_generic)

    def contract(m, g_s):
      return jnp.einsum("bs,bsp->p", g_s, m)

    out = forward_mode.online_scan(model, params, lstate.model_state, lstate.influence, batch,
                                   loss_fn, key, propagate=propagate, contract=contract)
    zeros = jax.tree.map(jnp.zeros_like, lparams)
    return RTRLState(out.model_state, out.trace), (out.grads, zeros), Aux(out.loss, out.outputs, {})


def propagate_srn(flat, theta, h, x, m, key, use_native=False):
  """`M_t = (D_t W_hh^T) M_{t-1} + F_t` for the SRN, `m [B, H, P] -> [B, H, P]`.

  The flat columns are `ravel_pytree`'s order of `{"W_hh", "W_xh", "b_h"}` (sorted keys), each
  `[rows, H]` row-major, so column `(i, k)` of the `[H + in + 1, H]` grid is the weight from
  `u_t[i]` to unit k, with `u_t = [h_{t-1}; x_t; 1]`. With `use_native`, CPU runs the update as
  `native.bmm_diag` (caller checks `native.available()`); other platforms keep XLA.
  """
  del key
  params = flat.unravel_params(theta)
  w_hh = params["W_hh"]
  act = ACTIVATIONS[flat.core.activation]
  pre = flat.core.pre_activation(params, h, x)
  _, d = jax.jvp(act, (pre,), (jnp.ones_like(pre),))  # [B, H]: act'(pre), exact for tanh/relu
  batch = m.shape[0]
  # J_t = D_t W_hh^T per example: [B, H, H], tiny next to M; then one batched GEMM.
  jac = d[:, :, None] * w_hh.T[None]
  u = jnp.concatenate([h, x, jnp.ones((batch, 1), h.dtype)], axis=1)  # [B, K]
  # F_t[b, j, (i, k)] = d[b, j] u[b, i] delta_jk: a diagonal per block of H columns.
  if use_native:
    return jax.lax.platform_dependent(jac, m, d, u, cpu=native.bmm_diag,
                                      default=native.bmm_diag_reference)
  return native.bmm_diag_reference(jac, m, d, u)
