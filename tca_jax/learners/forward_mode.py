"""Shared machinery of the forward-mode online learners (`rtrl`, `uoro`, `kf_rtrl`, `snap1`).

Every forward-mode rule carries a *trace* that summarises the influence `M_t = d s_t / d theta`
of the core parameters `theta` on the state `s_t` and differs only in how the trace is propagated
one step and how it is contracted with a state gradient. `online_scan` runs a window with
`lax.scan`, carrying `(state, trace)` so memory does not grow with the window length, and at
every step t forms the gradient of the step loss

    dL_t/dtheta = dL_t/dtheta|_direct + dL_t/ds_{t-1} . M_{t-1}                           (1)

where `L_t = loss(readout(phi(theta, s_{t-1}, x_t)))` and `phi` is the cell's feature map (the
cell's `step` output; for the SRN, LSTM and GRU `phi = h_t`). Both `dL_t/dtheta|_direct` and
`dL_t/ds_{t-1}` come from one local vector-Jacobian product through a single step, so the readout's
gradient is exact and (1) holds for any cell, including cells whose features are not a function of
the new state alone. This is the gradient assembly of UORO's Algorithm 1 (Tallec & Ollivier 2017),
where the output is computed from `s_t` and the estimate is `delta_theta + (delta_s . s~) theta~`;
for RTRL it equals Williams & Zipser's `sum_t dL_t/ds_t M_t` because `M_t = J_t M_{t-1} + F_t`.
An approximate trace is not closed under that identity: (1) applies the full `J_t` to the
approximate `M_{t-1}`. Passing `features_of_state` selects the other assembly,

    dL_t/dtheta = dL_t/ds_t . M_t                                                         (2)

with the trace propagated first (the textbook form of SnAp, Menick et al. 2020, sec. 3); it needs
the features to be a function of the new state alone (`h_t` for the SRN, LSTM and GRU).

Flattening. The core parameters are flattened with `jax.flatten_util.ravel_pytree` (columns of
every influence matrix follow that order) and the state of each example is flattened the same
way, so an LSTM state `(h, c)` is one vector `[h; c]` of size `2H`. Influence traces are kept per
example (`[batch, state_size, ...]`), since each example has its own state; the batch gradient is
the mean over examples, as in the window loss.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
from jax.flatten_util import ravel_pytree
import jax.numpy as jnp
import numpy as np

from tca_jax.registry import ConfigError


def _example(tree):
  return jax.tree.map(lambda a: a[0], tree)


class FlatCore:
  """The model's core stepped on one example, on flat vectors.

  Args:
    core: a cell (`tca_jax.cells`).
    core_params: its parameters (may be traced).
    state: a batched state (only its structure and per-example shapes are used).
  """

  def __init__(self, core, core_params, state):
    self.core = core
    self.theta, self.unravel_params = ravel_pytree(core_params)
    s0, self.unravel_state = ravel_pytree(_example(state))
    self.state_size = int(s0.size)
    self.num_params = int(self.theta.size)

  def step(self, theta, s, x):
    """One example: `theta [P], s [S], x [in] -> (s' [S], features [F])`."""
    params = self.unravel_params(theta)
    state = jax.tree.map(lambda a: a[None], self.unravel_state(s))
    new, features = self.core.step(params, state, x[None])
    return ravel_pytree(_example(new))[0], features[0]

  def batched_step(self, theta, s, x):
    """`theta [P], s [B, S], x [B, in] -> (s' [B, S], features [B, F])`."""
    return jax.vmap(self.step, (None, 0, 0))(theta, s, x)

  def flatten_state(self, state):
    """Batched state pytree -> `[B, S]`."""
    return jax.vmap(lambda st: ravel_pytree(st)[0])(state)

  def unflatten_state(self, s):
    """`[B, S]` -> batched state pytree."""
    return jax.vmap(self.unravel_state)(s)


def sizes(model, params, batch_size: int = 1):
  """`(state_size S, number of core parameters P)` of one example (shapes only)."""
  dtype = jax.tree.leaves(params)[0].dtype
  state = model.initial_state(batch_size, dtype)
  s = sum(int(np.prod(a.shape[1:])) for a in jax.tree.leaves(state))
  p = sum(int(np.prod(a.shape)) for a in jax.tree.leaves(params["core"]))
  return s, p


# Per-step forward-mode products, vmapped over the batch (theta is shared).

def state_jvp(flat: FlatCore, theta, s, x, tangents):
  """`J_t T`: the step's state Jacobian times `tangents [B, S, K]` (K columns) -> `[B, S, K]`.

  One `jax.linearize` per example, its linear map vmapped over the K columns.
  """
  def one(s_b, x_b, t_b):
    _, lin = jax.linearize(lambda st: flat.step(theta, st, x_b)[0], s_b)
    return jax.vmap(lin, in_axes=1, out_axes=1)(t_b)
  return jax.vmap(one)(s, x, tangents)


def state_jvp_vector(flat: FlatCore, theta, s, x, v):
  """`J_t v` for one tangent per example, `v [B, S] -> [B, S]`."""
  def one(s_b, x_b, v_b):
    return jax.jvp(lambda st: flat.step(theta, st, x_b)[0], (s_b,), (v_b,))[1]
  return jax.vmap(one)(s, x, v)


def state_jacobian(flat: FlatCore, theta, s, x):
  """The dense state Jacobian `d s_t / d s_{t-1}`, `[B, S, S]` (forward mode)."""
  return jax.vmap(jax.jacfwd(lambda st, x_b: flat.step(theta, st, x_b)[0]))(s, x)


def param_jacobian(flat: FlatCore, theta, s, x, mode: str = "reverse"):
  """The immediate term `F_t = d s_t / d theta` at fixed `s_{t-1}`, `[B, S, P]`.

  `mode="forward"` uses `jax.jacfwd` (P Jacobian-vector products against the standard basis,
  which XLA materialises as a `[P, P]` identity); `"reverse"` uses `jax.jacrev` (S vector-Jacobian
  products). Both are exact; reverse is cheaper whenever P > S, i.e. for every RNN.
  """
  jac = jax.jacfwd if mode == "forward" else jax.jacrev
  f = lambda th, s_b, x_b: flat.step(th, s_b, x_b)[0]
  return jax.vmap(jac(f), (None, 0, 0))(theta, s, x)


def param_vjp(flat: FlatCore, theta, s, x, cotangent):
  """`nu^T d s_t / d theta` per example for `cotangent [B, S]` -> `[B, P]` (reverse mode)."""
  def one(s_b, x_b, c_b):
    _, vjp = jax.vjp(lambda th: flat.step(th, s_b, x_b)[0], theta)
    return vjp(c_b)[0]
  return jax.vmap(one)(s, x, cotangent)


def unit_masked_step(flat: FlatCore, theta, s, x, c, unit, n_s: int, h_size: int):
  """One step of a trace kept on each parameter's own unit (SnAp-1's influence, e-prop's
  eligibility), from the dense per-step Jacobians: `c_t[a, p] = sum_c J_t[(a, u), (c, u)]
  c_{t-1}[c, p] + F_t[(a, u), p]` with `u = unit[p]`.

  Args:
    flat, theta, s, x: as for `state_jacobian` (s `[B, n_s * h_size]`).
    c: the trace `[B, n_s, P]`.
    unit: `[P]` the unit each parameter feeds (`unit_index`).
  Returns:
    The next trace, `[B, n_s, P]`.
  """
  b = s.shape[0]
  jac = state_jacobian(flat, theta, s, x).reshape(b, n_s, h_size, n_s, h_size)
  blocks = jnp.diagonal(jac, axis1=2, axis2=4)[..., unit]  # [B, n_s, n_s, P]
  imm = param_jacobian(flat, theta, s, x, "reverse").reshape(b, n_s, h_size, -1)
  imm = jnp.take_along_axis(imm, jnp.asarray(unit)[None, None, None, :], axis=2)[:, :, 0]
  return jnp.einsum("bacp,bcp->bap", blocks, c) + imm


def unit_index(core_params, hidden_size: int) -> np.ndarray:
  """`[P]` int: the unit each flat core parameter feeds, `(last index) mod H` (static).

  For the SRN, LSTM and GRU every weight and bias column belongs to one unit of one gate block
  (`[..., G * H]`, gates side by side), so its unit is its last index modulo H.
  """
  leaves = jax.tree.leaves(core_params)
  return np.concatenate([
      np.broadcast_to(np.arange(a.shape[-1]) % hidden_size, a.shape).ravel() for a in leaves])


class WindowResult(NamedTuple):
  model_state: Any  # batched state pytree after the window
  trace: Any  # the learner's carried trace after the window
  grads: Any  # gradient (estimate) with the structure of the model params
  loss: jax.Array  # window loss (sum over steps of the batch-mean step loss)
  outputs: jax.Array  # [time, batch, out]


# propagate(flat, theta, s [B, S], x [B, in], trace, key) -> trace'
Propagate = Callable[[FlatCore, jax.Array, jax.Array, jax.Array, Any, jax.Array], Any]
# contract(trace, dL/ds_{t-1} [B, S]) -> [P], the trace's part of the core gradient in (1)
Contract = Callable[[Any, jax.Array], jax.Array]


def online_scan(model, params, model_state, trace, batch, loss_fn, key, *,
                propagate: Propagate, contract: Contract,
                features_of_state: Callable[[jax.Array], jax.Array] | None = None
                ) -> WindowResult:
  """Runs one window forward, accumulating the gradient (1) step by step.

  Args:
    model: the `Model`.
    params: `{"core": ..., "readout": ...}`.
    model_state: the batched state entering the window.
    trace: the learner's trace entering the window (its `M_{t-1}` representation).
    batch: the window, `Batch` with `[time, batch, ...]` fields.
    loss_fn: the task's per-step weighted loss.
    key: randomness for the window; step t gets `fold_in(key, t)`.
    propagate: one trace step, `M_{t-1} -> M_t`.
    contract: `(M_{t-1}, dL_t/ds_{t-1}) -> [P]`, summed over the batch; with
      `features_of_state`, `(M_t, dL_t/ds_t) -> [P]` (assembly (2)).
    features_of_state: `s_t [B, S] -> features [B, F]`; None = assembly (1).

  Returns:
    A `WindowResult`.
  """
  flat = FlatCore(model.core, params["core"], model_state)
  theta = flat.theta
  rest = {k: v for k, v in params.items() if k != "core"}
  s0 = flat.flatten_state(model_state)

  def body(carry, xs):
    s, tr, g_core, g_rest = carry
    t, x, y, m = xs

    def step_loss(th, rest_params, s_prev):
      _, features = flat.batched_step(th, s_prev, x)
      outputs = model.readout(rest_params, features)
      return jnp.mean(loss_fn(outputs, y, m)), outputs

    if features_of_state is None:
      loss, vjp, outputs = jax.vjp(step_loss, theta, rest, s, has_aux=True)
      g_direct, g_r, g_s = vjp(jnp.ones_like(loss))
      g_core = g_core + g_direct + contract(tr, g_s)
      tr = propagate(flat, theta, s, x, tr, jax.random.fold_in(key, t))
      s, _ = flat.batched_step(theta, s, x)
    else:
      tr = propagate(flat, theta, s, x, tr, jax.random.fold_in(key, t))
      s, _ = flat.batched_step(theta, s, x)

      def new_state_loss(rest_params, s_new):
        outputs = model.readout(rest_params, features_of_state(s_new))
        return jnp.mean(loss_fn(outputs, y, m)), outputs

      loss, vjp, outputs = jax.vjp(new_state_loss, rest, s, has_aux=True)
      g_r, g_s = vjp(jnp.ones_like(loss))
      g_core = g_core + contract(tr, g_s)
    g_rest = jax.tree.map(jnp.add, g_rest, g_r)
    return (s, tr, g_core, g_rest), (loss, outputs)

  init = (s0, trace, jnp.zeros_like(theta), jax.tree.map(jnp.zeros_like, rest))
  steps = jnp.arange(batch.length)
  (s, trace, g_core, g_rest), (losses, outputs) = jax.lax.scan(
      body, init, (steps, batch.inputs, batch.targets, batch.mask))
  grads = dict(g_rest, core=flat.unravel_params(g_core))
  return WindowResult(flat.unflatten_state(s), trace, grads, jnp.sum(losses), outputs)


def cell_name(core) -> str:
  """The `model.cell` name under which `core`'s class is registered (else its class name)."""
  from tca_jax import cells  # pylint: disable=g-import-not-at-top
  for name in cells.names():
    if type(core) is cells.REGISTRY.factory(name):
      return name
  return type(core).__name__


def check_cell(model, learner: str, allowed: tuple):
  """Raises `ConfigError` naming `model.cell` unless the model's core is one of `allowed`."""
  name = cell_name(model.core)
  if name not in allowed:
    raise ConfigError(
        f"model.cell={name!r} is not supported by learner {learner!r}; allowed: "
        f"{', '.join(allowed)}")


def check_per_example_state(model, learner: str):
  """Raises `ConfigError` naming `model.cell` unless every state leaf is `[batch, ...]`.

  The influence traces are kept per example, so the state must split along a leading batch
  axis (memory cores such as `sab_lstm` keep `[slots, batch, ...]` memories and scalar counters).
  """
  shapes = jax.eval_shape(lambda: model.initial_state(3))
  if not all(a.ndim >= 1 and a.shape[0] == 3 for a in jax.tree.leaves(shapes)):
    raise ConfigError(
        f"model.cell={cell_name(model.core)!r} is not supported by learner {learner!r}: its "
        f"state is not a pytree of [batch, ...] arrays; allowed: srn, lstm, gru")
