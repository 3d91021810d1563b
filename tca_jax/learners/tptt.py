r"""Target propagation through time (Manchev & Spratling 2020): `tptt` and `tptt_hx`.

The SRN (row-vector convention, `x @ W`; the paper writes `W x`)

    h_t = F(x_t, h_{t-1}) = sigma(x_t W_xh + h_{t-1} W_hh + b_h)                      (eq. 1)

is trained without back-propagating errors through `W_hh`. Each call to `update`:

1. runs the window forward from the carried state: `h_0 .. h_T` (`h_0` the state entering it);
2. sets the first target one gradient step from the last state (eq. 3)

       h^_T = h_T - alpha_i dE/dh_T,

   where `E` is the window loss of `learners.base.window_loss` (the task's weighted per-step loss
   summed over time and averaged over the batch, i.e. the paper's E = -(1/N) sum_i t_i log y_i for
   a loss on the last step). `dE/dh_T` is the gradient of that batch-mean loss with respect to the
   `[batch, H]` array `h_T`, so it carries the paper's 1/N;
3. propagates difference-corrected targets back in time with a reverse `lax.scan` (eqs. 6-8)

       h^_t = h_t - G(x_{t+1}, h_{t+1}) + G(x_{t+1}, h^_{t+1}),
       G(x, h) = sigma(x W_xh + h V_hh + c_h),

   with the learned inverse `G` (`V_hh`, `c_h` are the learner's own parameters, `lparams`);
4. returns descent directions (gradients; the optimizer multiplies them by its learning rate):

   * G-phase (eq. 9, with the noise of sec. 3.1.2): for `V_hh`, `c_h` the gradient of
     `sum_{t=1}^{T-1} MSE(G(x_t, F(x_t, h_{t-1} + eps)), h_{t-1} + eps)`, `eps ~ N(0, sigma^2)`
     per unit (the first term reconstructs `h_0`, the state entering the window);
   * F-phase (eq. 10): for `W_hh`, `b_h` the gradient of `sum_t MSE(F(x_t, h_{t-1}), h^_t)` with
     `h_{t-1}` and `h^_t` held constant (`stop_gradient`), so no gradient crosses time;
   * `W_hy`, `b_y` (the readout) and, for `tptt`, `W_xh` by `dE` directly (eqs. 11-12; `dE/dW_xh`
     is the full BPTT gradient, as eq. 12 says); `tptt_hx` (Appendix A) gives `W_xh` the gradient
     of the local-target loss of eq. 10 instead (eq. 13).

Learning rates: the paper's updates are `W := W - alpha_f * grad` for every model parameter and
`V := V - alpha_g * grad` for the inverse. The learner returns the gradients themselves (no alpha
inside) and overrides `optimizer` so that `optax.multi_transform` gives the model parameters the
trainer's optimizer at `alpha_f` and the learner parameters the same optimizer at `alpha_g`. With
`train.optimizer="sgd"`, `train.momentum=0.9`, `train.nesterov=True` and `train.clip_norm=0` this
is the paper's Nesterov-momentum SGD. `alpha_i` is used inside the learner (it sets the targets).

Choices where the paper is vague (documented so they can be changed deliberately):

* MSE is the mean over the batch and the hidden units of the squared difference, per time step;
  the per-step MSEs are summed over time (the sums of eqs. 9-10).
* Eq. 9 sums t = 1 .. T-1 (`g_terms="eq9"`, the default): G reconstructs h_0 .. h_{T-2}.
  `g_terms="all"` sums t = 1 .. T (the authors' release); `g_terms="targets"` sums t = 2 .. T,
  the terms whose G the targets of eq. 8 use (G applied at x_2 .. x_T; tca-jax's earlier
  choice).
* A loss at several steps (the framework allows it; the paper has one at the last step) adds its
  direct gradient at every step: `h^_t = h_t - G(x_{t+1}, h_{t+1}) + G(x_{t+1}, h^_{t+1})
  - alpha_i dE/dh_t|_direct`, where `|_direct` is the partial through `y_t` alone. With the loss
  on the last step only this is exactly eqs. 3 and 6.
* Phases (sec. 3.1.3). `p_g = 1` (the default) is the synchronised schedule of Table 1 and
  Fig. 8's E_sync: every call runs the G-phase and then the F-phase. With `p_g < 1` and
  `phases="either"` (the default) a call runs exactly one phase, the G-phase with probability
  `p_g` and the F-phase otherwise ("the probability of executing either of the update phases");
  `phases="g_optional"` (tca-jax's earlier rule) runs the G-phase with probability `p_g` and the
  F-phase always. A phase that does not run returns an exactly zero update for its group, and
  the optimizer skips zero updates entirely (no momentum step, state unchanged, see
  `skip_zero_updates`), so a skipped phase really is skipped.
* The targets are set before the G-phase's update (sec. 2: "after the local targets have been set
  ... first, it updates the parameters of G"); `targets_after_g=True` sets them with the inverse
  one G step later, `V - alpha_g dV` (the release's order: its G step runs, then its F step
  recomputes the targets). The step is the plain gradient step, so this matches the release
  exactly with `train.momentum=0`; with momentum the velocity's part is not looked ahead.
* `V_hh` starts from N(0, 0.1^2) (`inverse_init="normal"`: sec. 3.1, "all synaptic weights
  sampled from N(0, 0.1)"), `c_h` at zero; `inverse_init="orthogonal"` is the release's.

Variants (`variant`): "paper" (the default) follows the text as above; "release" sets the unset
options to the authors' release (nmanchev/tptt, `RNN_dtp.py`): `g_terms="all"` (noise on h_0
too), `phases="g_optional"` with `p_g=1` (G then F every iteration), `targets_after_g=True`,
`inverse_init="orthogonal"`. Options set explicitly win over the variant. The release's default
`W_xh` rule is eq. 13, i.e. the learner `tptt_hx` here (`tptt` is eq. 12, the text's Sec. 3
experiments). Which variant produced the paper's tables is not stated; the release is the code
the authors published with it.

Experimental (beyond the paper, its stated future work): with `experimental=True` the same rule
runs on the LSTM and the GRU. Targets live on the hidden output `h_t` (the readout's features);
the F-phase loss is `MSE(h_t(x_t, s_{t-1}), h^_t)` with the whole previous state `s_{t-1}` (for
the LSTM `(h, c)`) held constant and trains every core parameter except the input matrix `W_x`;
`G(x, h) = tanh(x U_x + h V_hh + c_h)` maps `h_t` to `h_{t-1}` with its own input matrix `U_x`
(`[in, H]`, trained in the G-phase with `V_hh` and `c_h`) because the gated cells' `W_x` has no
single `[in, H]` block. The G-phase noise is added to `h_{t-1}` only. Nothing in the paper
validates this extension.

Metrics (scalars, averaged over windows by the trainer): `f_loss` and `g_loss` (the summed local
losses of eqs. 10 and 9 before the update), `g_phase` (1 when the G-phase ran),
`recurrent_update_norm` (Frobenius norm of the recurrent matrix's descent direction, Fig. 3),
`bptt_cosine_recurrent` for `tptt` (cosine between that direction and the BPTT gradient of the
same matrix, which the `W_xh` gradient computes anyway; Fig. 5 is `arccos` of it), and with
`log_local_losses=True` the per-step losses `f_loss/{t:03d}` and `g_loss/{t:03d}` (Fig. 6; t is
1-based within the window; `g_loss/{t}` is reported for every t, and `g_loss` sums the trained
terms).
"""

from __future__ import annotations

import dataclasses
from typing import Callable, ClassVar, Optional

import jax
import jax.numpy as jnp
import optax

from tca_jax.cells import initializers
from tca_jax.cells.gru import GRU
from tca_jax.cells.lstm import LSTM, LSTMState
from tca_jax.cells.rnn import ACTIVATIONS, SRN
from tca_jax.learners.base import Aux, CarriedState, Learner, window_loss
from tca_jax.registry import ConfigError

# The core parameter that multiplies the input: updated by dE (tptt) or local targets (tptt_hx).
INPUT_KEYS = ("W_xh", "W_x")
VARIANTS = ("paper", "release")
G_TERMS = ("eq9", "all", "targets")
PHASES = ("either", "g_optional")
INVERSE_INITS = ("normal", "orthogonal")
INIT_STD = 0.1  # sec. 3.1: "all synaptic weights sampled from N(0, 0.1)"
# What each variant sets the unset options to.
VARIANT_OPTIONS = {
    "paper": {"g_terms": "eq9", "phases": "either", "targets_after_g": False,
              "inverse_init": "normal"},
    "release": {"g_terms": "all", "phases": "g_optional", "targets_after_g": True,
                "inverse_init": "orthogonal"},
}


def g_weights(g_terms: str, length: int, dtype):
  """`[T]` 0/1 weights of the per-step G-phase losses (entry i is step t = i + 1)."""
  w = jnp.ones((length,), dtype)
  if g_terms == "eq9":
    return w.at[-1].set(0.0)
  if g_terms == "targets":
    return w.at[0].set(0.0)
  return w


def hidden(state):
  """The hidden output `h` of a cell state (`[..., batch, H]`)."""
  return state.h if isinstance(state, LSTMState) else state


def with_hidden(state, h):
  """`state` with its hidden output replaced by `h`."""
  return state._replace(h=h) if isinstance(state, LSTMState) else h


def input_key(core_params) -> str:
  for k in INPUT_KEYS:
    if k in core_params:
      return k
  raise KeyError(f"no input matrix ({', '.join(INPUT_KEYS)}) in core params {tuple(core_params)}")


def inverse(core, core_params, lparams, x, h):
  """The learned inverse `G(x, h)`, an approximation of `h_{t-1}` from `x_t` and `h_t`.

  Args:
    core: the cell (SRN: the paper's eq. 7, sharing `W_xh`; LSTM/GRU: own `U_x`, experimental).
    core_params: the cell's parameters.
    lparams: `{"V_hh": [H, H], "c_h": [H]}` (+ `"U_x": [in, H]` for gated cells).
    x: `[..., batch, in]`.
    h: `[..., batch, H]`.

  Returns:
    `[..., batch, H]`.
  """
  if isinstance(core, SRN):
    act, w_in = ACTIVATIONS[core.activation], core_params["W_xh"]
  else:
    act, w_in = jnp.tanh, lparams["U_x"]
  return act(x @ w_in + h @ lparams["V_hh"] + lparams["c_h"])


def forward(core, core_params, state, inputs):
  """Unrolls the cell over a window, keeping the state entering every step.

  Args:
    state: the state entering the window (a pytree of `[batch, ...]`).
    inputs: `[time, batch, in]`.

  Returns:
    `(final_state, previous_states, hs)`: `previous_states` is the pytree of states entering
    steps 1..T (`[time, batch, ...]`), `hs` the hidden outputs `h_1 .. h_T`, `[time, batch, H]`.
  """

  def body(s, x):
    new, h = core.step(core_params, s, x)
    return new, (s, h)

  final, (prev, hs) = jax.lax.scan(body, state, inputs)
  return final, prev, hs


def propagate_targets(hs, inputs, direct_grads, inverse_fn: Callable, alpha_i: float):
  """Difference-corrected targets by a reverse `lax.scan` (eqs. 3, 6 and 8).

      h^_T = h_T - alpha_i g_T
      h^_t = h_t - G(x_{t+1}, h_{t+1}) + G(x_{t+1}, h^_{t+1}) - alpha_i g_t

  where `g_t` is the direct gradient of the loss at step t (zero where there is no loss; for the
  paper's last-step loss only `g_T` is non-zero).

  Args:
    hs: `[time, batch, H]`, the forward hidden outputs `h_1 .. h_T`.
    inputs: `[time, batch, in]`, `x_1 .. x_T`.
    direct_grads: `[time, batch, H]`, `g_1 .. g_T`.
    inverse_fn: `G(x [batch, in], h [batch, H]) -> [batch, H]`.
    alpha_i: the step size of the first target.

  Returns:
    `[time, batch, H]` targets `h^_1 .. h^_T`.
  """

  def body(correction, xs):
    h, g, x = xs
    target = h + correction - alpha_i * g
    # What step t-1 receives: G(x_t, h^_t) - G(x_t, h_t).
    return inverse_fn(x, target) - inverse_fn(x, h), target

  _, targets = jax.lax.scan(body, jnp.zeros_like(hs[0]), (hs, direct_grads, inputs), reverse=True)
  return targets


def _mse_per_step(a, b):
  """Mean over batch and units: `[time, batch, H] -> [time]`."""
  return jnp.mean(jnp.square(a - b), axis=(1, 2))


def local_losses(core, core_params, prev_states, inputs, targets):
  """Per-step F-phase losses `MSE(F(x_t, h_{t-1}), h^_t)`, `[time]` (eq. 10).

  `prev_states` and `targets` pass through `stop_gradient`: the losses depend on `core_params`
  only through the one step `F(x_t, .)`, so their gradient never crosses time.
  """
  prev_states = jax.lax.stop_gradient(prev_states)
  targets = jax.lax.stop_gradient(targets)
  _, hs = jax.vmap(core.step, in_axes=(None, 0, 0))(core_params, prev_states, inputs)
  return _mse_per_step(hs, targets)


def inverse_losses(core, core_params, lparams, prev_states, inputs, noise=None):
  """Per-step G-phase losses `MSE(G(x_t, F(x_t, h_{t-1} + eps)), h_{t-1} + eps)`, `[time]`.

  Entry t-1 is step t's term (it reconstructs `h_{t-1}`); which are trained is `g_weights`.
  The forward parameters are held constant (`stop_gradient`); only `lparams` get a gradient.
  """
  core_params = jax.lax.stop_gradient(core_params)
  prev_states = jax.lax.stop_gradient(prev_states)
  h_prev = hidden(prev_states)
  if noise is not None:
    h_prev = h_prev + noise
    prev_states = with_hidden(prev_states, h_prev)
  _, hs = jax.vmap(core.step, in_axes=(None, 0, 0))(core_params, prev_states, inputs)
  return _mse_per_step(inverse(core, core_params, lparams, inputs, hs), h_prev)


def skip_zero_updates(inner: optax.GradientTransformation) -> optax.GradientTransformation:
  """Wraps `inner` so that an all-zero update is a no-op: zero output, state unchanged.

  TPTT returns an exactly zero `lparams` update when its randomised G-phase does not run; without
  this wrapper a momentum optimizer would still move `V_hh` with its velocity.
  """

  def init_fn(params):
    return inner.init(params)

  def update_fn(updates, state, params=None):
    leaves = jax.tree.leaves(updates)
    active = jnp.any(jnp.stack([jnp.any(u != 0) for u in leaves])) if leaves else False
    new_updates, new_state = inner.update(updates, state, params)
    new_updates = jax.tree.map(lambda u: jnp.where(active, u, jnp.zeros_like(u)), new_updates)
    new_state = jax.tree.map(lambda n, o: jnp.where(active, n, o), new_state, state)
    return new_updates, new_state

  return optax.GradientTransformation(init_fn, update_fn)


def _cosine(a, b):
  a, b = jnp.ravel(a), jnp.ravel(b)
  denom = jnp.linalg.norm(a) * jnp.linalg.norm(b)
  return jnp.dot(a, b) / jnp.maximum(denom, jnp.finfo(a.dtype).tiny)


@dataclasses.dataclass(frozen=True)
class TPTT(Learner):
  """Target propagation through time for the SRN (eqs. 3-12); see the module docstring.

  Attributes:
    alpha_i: step size of the first target `h^_T = h_T - alpha_i dE/dh_T` (eq. 3).
    alpha_f: learning rate of the model parameters (eqs. 10-13); None = `train.learning_rate`.
    alpha_g: learning rate of the inverse's parameters `V_hh`, `c_h` (eq. 9).
    sigma: standard deviation of the Gaussian noise added to `h_{t-1}` in the G-phase (sec.
      3.1.2; the paper's epsilon column); 0 = no noise.
    p_g: probability that a call runs the G-phase (sec. 3.1.3); 1 = G then F in every call.
    variant: "paper" (the text, default) or "release" (the authors' code); sets the options
      below that are left unset (None).
    g_terms: which terms eq. 9 sums: "eq9" (t = 1..T-1), "all" (1..T), "targets" (2..T).
    phases: with p_g < 1, "either" (one phase per call) or "g_optional" (F always).
    targets_after_g: set the targets with the inverse after the G step.
    inverse_init: "normal" (N(0, 0.1^2)) or "orthogonal" for `V_hh`.
    experimental: allow the LSTM and GRU (experimental extension, see the module docstring).
    log_local_losses: add the per-step local losses `f_loss/{t}`, `g_loss/{t}` to the metrics.
    unroll: `lax.scan`'s unroll factor for the SRN's two time loops (see `update`).
  """

  NAME: ClassVar[str] = "tptt"
  # The SRN; LSTM and GRU with `experimental` (checked in `validate_model`).
  supported_cells: ClassVar[tuple] = ("srn", "lstm", "gru")
  exact: ClassVar[bool] = False
  # Appendix A: W_xh descends the local-target loss (eq. 13) instead of dE (eq. 12).
  local_input: ClassVar[bool] = False

  alpha_i: float = 0.1
  alpha_f: Optional[float] = None
  alpha_g: float = 0.001
  sigma: float = 0.0
  p_g: float = 1.0
  variant: str = "paper"
  g_terms: Optional[str] = None
  phases: Optional[str] = None
  targets_after_g: Optional[bool] = None
  inverse_init: Optional[str] = None
  experimental: bool = False
  log_local_losses: bool = False
  unroll: int = 1

  def __post_init__(self):
    def number(v):
      return isinstance(v, (int, float)) and not isinstance(v, bool)

    if not number(self.alpha_i) or self.alpha_i <= 0:
      raise ConfigError(f"learner.alpha_i={self.alpha_i!r} must be a positive number")
    if self.alpha_f is not None and (not number(self.alpha_f) or self.alpha_f <= 0):
      raise ConfigError(f"learner.alpha_f={self.alpha_f!r} must be a positive number or None "
                        "(None = train.learning_rate)")
    if not number(self.alpha_g) or self.alpha_g <= 0:
      raise ConfigError(f"learner.alpha_g={self.alpha_g!r} must be a positive number")
    if not number(self.sigma) or self.sigma < 0:
      raise ConfigError(f"learner.sigma={self.sigma!r} must be a number >= 0 (0 = no noise)")
    if not number(self.p_g) or not 0 < self.p_g <= 1:
      raise ConfigError(f"learner.p_g={self.p_g!r} must be in (0, 1] (1 = strict alternation)")
    for field, allowed in (("variant", VARIANTS), ("g_terms", G_TERMS), ("phases", PHASES),
                           ("inverse_init", INVERSE_INITS)):
      value = getattr(self, field)
      if (value is not None or field == "variant") and value not in allowed:
        raise ConfigError(f"learner.{field}={value!r} is not allowed for learner {self.NAME!r}; "
                          f"allowed: {', '.join(allowed)}")
    if not isinstance(self.unroll, int) or isinstance(self.unroll, bool) or self.unroll < 1:
      raise ConfigError(f"learner.unroll={self.unroll!r} must be an integer >= 1")
    if self.targets_after_g is not None and not isinstance(self.targets_after_g, bool):
      raise ConfigError(f"learner.targets_after_g={self.targets_after_g!r} must be True or False")

  def option(self, name: str):
    """The value of option `name` (`g_terms`, `phases`, `targets_after_g`, `inverse_init`): the
    field when set, else the variant's choice."""
    value = getattr(self, name)
    return VARIANT_OPTIONS[self.variant][name] if value is None else value

  def validate_model(self, model) -> None:
    """Raises `ConfigError` unless the core is an SRN (or an LSTM/GRU with `experimental`)."""
    core = model.core
    if isinstance(core, SRN):
      return
    if isinstance(core, (LSTM, GRU)):
      if self.experimental:
        return
      raise ConfigError(
          f"model.cell={type(core).__name__.lower()!r}: learner {self.NAME!r} is defined for "
          "'srn'; set learner.experimental=True for the experimental lstm/gru extension")
    raise ConfigError(
        f"model.cell={type(core).__name__!r} is not allowed for learner {self.NAME!r}; allowed: "
        "srn (lstm, gru with learner.experimental=True)")

  def init_params(self, key, model, params):
    """`{"V_hh": [H, H], "c_h": zeros [H]}` (+ `"U_x"` for gated cells); `V_hh` from N(0, 0.1^2)
    or orthogonal (`inverse_init`)."""
    self.validate_model(model)
    core_params = params["core"]
    h = model.core.hidden_size
    dtype = jax.tree.leaves(params)[0].dtype
    k_v, k_u = jax.random.split(key)
    if self.option("inverse_init") == "orthogonal":
      v_hh = initializers.orthogonal(k_v, (h, h))
    else:
      v_hh = INIT_STD * jax.random.normal(k_v, (h, h))
    lparams = {"V_hh": v_hh.astype(dtype), "c_h": jnp.zeros((h,), dtype)}
    if not isinstance(model.core, SRN):
      n_in = core_params[input_key(core_params)].shape[0]
      lparams["U_x"] = initializers.input_matrix(k_u, (n_in, h)).astype(dtype)
    return lparams

  def optimizer(self, make, learning_rate):
    """`make(alpha_f)` for the model parameters, `make(alpha_g)` for the inverse's, over the
    `(params, lparams)` tuple; each skips all-zero updates (a phase that did not run)."""
    alpha_f = learning_rate if self.alpha_f is None else self.alpha_f

    def labels(tree):
      params, lparams = tree
      return (jax.tree.map(lambda _: "f", params), jax.tree.map(lambda _: "g", lparams))

    return optax.multi_transform(
        {"f": skip_zero_updates(make(alpha_f)), "g": skip_zero_updates(make(self.alpha_g))},
        labels)

  def targets(self, model, params, lparams, state, batch, loss_fn):
    """The forward pass and its local targets, without any update (for tests and analysis).

    Returns:
      `(hs, targets)`, both `[time, batch, H]`: `h_1 .. h_T` and `h^_1 .. h^_T`.
    """
    _, _, hs = forward(model.core, params["core"], state, batch.inputs)
    direct = jax.grad(lambda h: window_loss(loss_fn, model.readout(params, h), batch))(hs)
    inverse_fn = lambda x, h: inverse(model.core, params["core"], lparams, x, h)
    return hs, propagate_targets(hs, batch.inputs, direct, inverse_fn, self.alpha_i)

  def update(self, model, params, lparams, lstate, batch, loss_fn, key):
    """One TPTT update (steps 1-4 of the module docstring).

    The SRN (tanh or ReLU) takes `srn_update`, which walks the window twice (a forward scan, then one reverse
    scan that sets the targets and back-propagates dE together) and does every per-step product
    that does not depend on the recursion as one GEMM over all steps; other cells take
    `update_autodiff`, which differentiates the cell's `step`. Both give the same update.
    """
    core = model.core
    # The written-out path knows the SRN's own step and these activations' derivatives only (a
    # subclass may change the step).
    if type(core) is SRN and core.activation in _ACTIVATION_GRADS:  # pylint: disable=unidiomatic-typecheck
      return self.srn_update(model, params, lparams, lstate, batch, loss_fn, key)
    return self.update_autodiff(model, params, lparams, lstate, batch, loss_fn, key)

  def update_autodiff(self, model, params, lparams, lstate, batch, loss_fn, key):
    """`update` for any cell: autodiff of the cell's `step`, the phases as functions of the
    parameters (`local_losses`, `inverse_losses`); the reference `srn_update` is tested against."""
    core = model.core
    state0 = lstate.model_state
    inputs = batch.inputs
    in_key = input_key(params["core"])

    # Forward pass, dE for the parameters updated by the chain rule, and the direct dE/dh_t.
    if self.local_input:
      final, prev, hs = forward(core, params["core"], state0, inputs)

      def objective(p, delta):
        outputs = model.readout(p, hs + delta)
        return window_loss(loss_fn, outputs, batch), outputs

      diff = {"readout": params["readout"]}
      (loss, outputs), (grad_e, direct) = jax.value_and_grad(
          objective, argnums=(0, 1), has_aux=True)(diff, jnp.zeros_like(hs))
    else:

      def objective(p, delta):
        final, prev, hs = forward(core, p["core"], state0, inputs)
        outputs = model.readout(p, hs + delta)
        return window_loss(loss_fn, outputs, batch), (final, prev, hs, outputs)

      probe = jnp.zeros(inputs.shape[:2] + (core.hidden_size,), inputs.dtype)
      (loss, (final, prev, hs, outputs)), (grad_e, direct) = jax.value_and_grad(
          objective, argnums=(0, 1), has_aux=True)(params, probe)

    # G-phase (eq. 9 with the noise of sec. 3.1.2).
    k_phase, k_noise = jax.random.split(key)
    noise = None
    if self.sigma > 0:
      noise = self.sigma * jax.random.normal(k_noise, hs.shape, hs.dtype)
    g_losses, g_grads = _value_and_grad_sum(
        lambda lp: inverse_losses(core, params["core"], lp, prev, inputs, noise), lparams,
        weights=g_weights(self.option("g_terms"), hs.shape[0], hs.dtype))

    run_g, run_f = self._phases(k_phase)

    # Targets (eqs. 3, 8), constants from here on; with `targets_after_g` from the inverse one
    # (plain) G step later, as the release's F step sees it.
    target_lparams = self._target_lparams(lparams, g_grads, run_g)
    inverse_fn = lambda x, h: inverse(core, params["core"], target_lparams, x, h)
    targets = jax.lax.stop_gradient(
        propagate_targets(hs, inputs, direct, inverse_fn, self.alpha_i))

    # F-phase (eq. 10; eq. 13 for tptt_hx) and eqs. 11-12.
    f_losses, f_grads = _value_and_grad_sum(
        lambda cp: local_losses(core, cp, prev, inputs, targets), params["core"])
    core_updates = dict(f_grads)
    if not self.local_input:
      core_updates[in_key] = grad_e["core"][in_key]
    param_updates = {"core": core_updates, "readout": grad_e["readout"]}
    rec_key = _recurrent_key(core)
    bptt_recurrent = None if self.local_input else grad_e["core"][rec_key]
    return self._result(final, param_updates, g_grads, run_g, run_f, f_losses, g_losses, loss,
                        outputs, rec_key, bptt_recurrent)

  def _phases(self, k_phase):
    """`(run_g, run_f)`: which phases this call runs (sec. 3.1.3), boolean scalars."""
    if self.p_g < 1.0:
      run_g = jax.random.bernoulli(k_phase, self.p_g)
      run_f = ~run_g if self.option("phases") == "either" else jnp.asarray(True)
    else:
      run_g = run_f = jnp.asarray(True)
    return run_g, run_f

  def _target_lparams(self, lparams, g_grads, run_g):
    """The inverse the targets use: `lparams`, or with `targets_after_g` one plain G step on."""
    if not self.option("targets_after_g"):
      return lparams
    return jax.tree.map(lambda v, g: v - self.alpha_g * jnp.where(run_g, g, jnp.zeros_like(g)),
                        lparams, g_grads)

  def _result(self, final, param_updates, g_grads, run_g, run_f, f_losses, g_losses, loss,
              outputs, rec_key, bptt_recurrent):
    """`update`'s return value: the skipped phases zeroed, and the metrics."""
    skip = lambda run, tree: jax.tree.map(lambda g: jnp.where(run, g, jnp.zeros_like(g)), tree)
    # The diagnostics use the direction itself, before the skip.
    direction = param_updates["core"][rec_key]
    g_grads = skip(run_g, g_grads)
    param_updates = skip(run_f, param_updates)
    dtype = f_losses.dtype
    metrics = {
        "f_loss": jnp.sum(f_losses),
        "g_loss": jnp.sum(g_weights(self.option("g_terms"), f_losses.shape[0], dtype) * g_losses),
        "g_phase": run_g.astype(dtype),
        "f_phase": run_f.astype(dtype),
        "recurrent_update_norm": jnp.linalg.norm(direction),
    }
    if bptt_recurrent is not None:
      metrics["bptt_cosine_recurrent"] = _cosine(direction, bptt_recurrent)
    if self.log_local_losses:
      for t in range(f_losses.shape[0]):
        metrics[f"f_loss/{t + 1:03d}"] = f_losses[t]
        metrics[f"g_loss/{t + 1:03d}"] = g_losses[t]
    return CarriedState(final), (param_updates, g_grads), Aux(loss, outputs, metrics)

  def srn_update(self, model, params, lparams, lstate, batch, loss_fn, key):
    """`update` for the SRN, written out so that only the recursions are sequential.

    Two time loops: the forward scan `h_t = act(a_t + h_{t-1} W_hh)` (the input projections
    `a_t = x_t W_xh + b_h` of all steps as one GEMM before it) and one reverse scan that carries
    both the targets' correction (eq. 8) and BPTT's `dE/dpre_t` (for eq. 12's `dE/dW_xh` and the
    `bptt_cosine_recurrent` diagnostic). Every other product is one GEMM over all `T * batch`
    rows, with the gradients written out: the phases' `F(x_t, h_{t-1})` (no noise) is the forward
    pass's `h_t` and their derivatives come from the outputs (`act'` of tanh is `1 - y^2`, of
    ReLU `y > 0`), so the phases recompute nothing; `G(x_t, h_t)` serves both the G-phase and
    the targets when they use the same inverse. Equal to `update_autodiff` up to float rounding
    (`tests/test_tptt.py`).
    """
    core = model.core
    cp = params["core"]
    act, dact = ACTIVATIONS[core.activation], _ACTIVATION_GRADS[core.activation]
    inputs = batch.inputs
    h0 = lstate.model_state
    dtype = h0.dtype
    mse_scale = 2.0 / (h0.shape[0] * h0.shape[1])  # d mean((a - b)^2) / da over [batch, H]
    xw = inputs @ cp["W_xh"]  # [T, B, H]: every step's input projection, one GEMM

    def forward_step(h, a):
      h = act(a + h @ cp["W_hh"])
      return h, h

    final, hs = jax.lax.scan(forward_step, h0, xw + cp["b_h"], unroll=self.unroll)
    prev = jnp.concatenate([h0[None], hs[:-1]])  # h_0 .. h_{T-1}

    # The loss, the readout's gradient (eq. 11) and the direct dE/dh_t (batched, no time loop).
    def objective(readout, h):
      outputs = model.readout({"readout": readout}, h)
      return window_loss(loss_fn, outputs, batch), outputs

    (loss, outputs), (grad_readout, direct) = jax.value_and_grad(
        objective, argnums=(0, 1), has_aux=True)(params["readout"], hs)

    # G-phase (eq. 9 with the noise of sec. 3.1.2): G(x_t, F(x_t, h_{t-1} + eps)) ~ h_{t-1} + eps.
    k_phase, k_noise = jax.random.split(key)
    if self.sigma > 0:
      noise = self.sigma * jax.random.normal(k_noise, hs.shape, hs.dtype)
      g_target = prev + noise
      g_in = act(xw + g_target @ cp["W_hh"] + cp["b_h"])
    else:
      g_target, g_in = prev, hs
    g_out = act(xw + g_in @ lparams["V_hh"] + lparams["c_h"])
    g_losses = _mse_per_step(g_out, g_target)
    weights = g_weights(self.option("g_terms"), hs.shape[0], dtype)
    d_pre = (mse_scale * weights[:, None, None]) * (g_out - g_target) * dact(g_out)
    g_grads = {"V_hh": _sum_outer(g_in, d_pre), "c_h": jnp.sum(d_pre, axis=(0, 1))}

    run_g, run_f = self._phases(k_phase)
    target_lparams = self._target_lparams(lparams, g_grads, run_g)
    u = xw + target_lparams["c_h"]  # G's pre-activation less its recurrent term
    if target_lparams is lparams and self.sigma == 0:
      g_h = g_out  # G(x_t, h_t), shared with the G-phase
    else:
      g_h = act(u + hs @ target_lparams["V_hh"])

    # One reverse scan: the targets (eqs. 3, 8) and, for eq. 12, BPTT's dE/dpre_t.
    alpha_i, v_hh, w_hh_t = self.alpha_i, target_lparams["V_hh"], cp["W_hh"].T
    with_bptt = not self.local_input

    def backward_step(carry, xs):
      correction, d_next = carry
      h, g, u_t, g_h_t = xs
      target = h + correction - alpha_i * g
      # What step t-1 receives: G(x_t, h^_t) - G(x_t, h_t).
      correction = act(u_t + target @ v_hh) - g_h_t
      if with_bptt:
        d_next = (g + d_next @ w_hh_t) * dact(h)
      return (correction, d_next), (target, d_next)

    zeros = jnp.zeros_like(h0)
    _, (targets, d_bptt) = jax.lax.scan(backward_step, (zeros, zeros), (hs, direct, u, g_h),
                                        reverse=True, unroll=self.unroll)

    # F-phase (eq. 10; eq. 13 for tptt_hx): F(x_t, h_{t-1}) is h_t, h_{t-1} and h^_t constants.
    f_losses = _mse_per_step(hs, targets)
    d_pre = mse_scale * (hs - targets) * dact(hs)
    core_updates = {"W_hh": _sum_outer(prev, d_pre), "b_h": jnp.sum(d_pre, axis=(0, 1))}
    bptt_recurrent = None
    if with_bptt:  # eq. 12: W_xh by dE, the full BPTT gradient
      core_updates["W_xh"] = _sum_outer(inputs, d_bptt)
      bptt_recurrent = _sum_outer(prev, d_bptt)
    else:
      core_updates["W_xh"] = _sum_outer(inputs, d_pre)
    param_updates = {"core": core_updates, "readout": grad_readout}
    return self._result(final, param_updates, g_grads, run_g, run_f, f_losses, g_losses, loss,
                        outputs, "W_hh", bptt_recurrent)


def _value_and_grad_sum(fn, params, weights=None):
  """`(per-step losses [time], gradient of their (weighted) sum)`."""

  def total(p):
    losses = fn(p)
    w = jnp.ones_like(losses) if weights is None else weights
    return jnp.sum(w * losses), losses

  (_, losses), grads = jax.value_and_grad(total, has_aux=True)(params)
  return losses, grads


def _sum_outer(a, b):
  """`sum_t a_t^T b_t`: `[T, B, I], [T, B, J] -> [I, J]`, one GEMM over the `T * B` rows."""
  return jnp.einsum("tbi,tbj->ij", a, b)


# The activations' derivatives as functions of their outputs y = act(z).
_ACTIVATION_GRADS = {
    "tanh": lambda y: 1.0 - jnp.square(y),
    "relu": lambda y: (y > 0).astype(y.dtype),
}


def _recurrent_key(core) -> str:
  """The core parameter whose spectrum and update norm the diagnostics track."""
  if isinstance(core, SRN):
    return "W_hh"
  if isinstance(core, GRU):
    return "U_n"
  return "W_h"


@dataclasses.dataclass(frozen=True)
class TPTTHx(TPTT):
  """`tptt_hx` (Appendix A): also `W_xh` descends the local-target loss (eq. 13)."""

  NAME: ClassVar[str] = "tptt_hx"
  local_input: ClassVar[bool] = True
