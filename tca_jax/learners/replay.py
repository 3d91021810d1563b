"""Replay BPTT: backpropagation over stored states that are replayed imperfectly.

The BPTT review (Lillicrap & Santoro 2019) asks whether the brain could run BPTT by replaying
stored activity, and notes that "the retrieved activities must be noiseless, which is not the
case in the brain". This learner makes that question measurable. The forward pass runs the model
and stores the state entering every step, `s_{t-1}`. The backward pass replays the stored states
with two corruptions (each step t of a window, explicit keys from `fold_in(key, t)`):

* noise: every state leaf is replayed as `s~_{t-1} = s_{t-1} + sigma * eps`, `eps ~ N(0, I)`;
  the loss errors, the step Jacobians and the immediate parameter gradients are all evaluated on
  the replayed states;
* gaps: each step is replayed with probability `fraction`; where step t is not, the replayed
  state entering it is a constant (the gradient path from step t back to step t-1 is cut), as
  TBPTT does at its boundaries but at random steps.

The gradient is then ordinary reverse-mode autodiff of the replayed unroll

    z_t, f_t = step(theta, r_{t-1}, x_t),  r_{t-1} = s~_{t-1} + (z_{t-1} - sg(z_{t-1})) if
    replayed else sg(s~_{t-1}),

whose *values* are the noisy stored states and whose *derivatives* chain through the replayed
steps (`sg` = `stop_gradient`). With `sigma = 0` and `fraction = 1` the values are the true states
and every path is kept, so the update is the BPTT gradient exactly (float64 test). The reported
loss and outputs are the true forward pass's; the carried model state is the true final state.
Memory is BPTT's (the stored states); the point is the estimator, not the cost.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import jax
import jax.numpy as jnp

from tca_jax.learners import forward_mode as forward_learners
from tca_jax.learners.base import Aux, CarriedState, Learner, window_loss
from tca_jax.registry import ConfigError


@dataclasses.dataclass(frozen=True)
class Replay(Learner):
  """BPTT over noisy and/or partial replays of the stored states.

  Attributes:
    sigma: std of the Gaussian noise added to every replayed state entry (>= 0).
    fraction: probability that a step is replayed, in (0, 1]; the gradient path is cut at the
      others.
  """

  NAME: ClassVar[str] = "replay"
  exact: ClassVar[bool] = False
  sigma: float = 0.0
  fraction: float = 1.0

  def __post_init__(self):
    if isinstance(self.sigma, bool) or not isinstance(self.sigma, (int, float)) or self.sigma < 0:
      raise ConfigError(f"learner.sigma={self.sigma!r} must be a number >= 0")
    if isinstance(self.fraction, bool) or not isinstance(self.fraction, (int, float)) or not (
        0 < self.fraction <= 1):
      raise ConfigError(f"learner.fraction={self.fraction!r} must be a number in (0, 1]")

  def validate_model(self, model):
    forward_learners.check_per_example_state(model, self.NAME)  # noise on [batch, ...] leaves

  def update(self, model, params, lparams, lstate, batch, loss_fn, key):
    core = model.core
    s0 = lstate.model_state

    def forward(carry, x):
      new, features = core.step(params["core"], carry, x)
      return new, (carry, features)

    final, (stored, features) = jax.lax.scan(forward, s0, batch.inputs)
    outputs = model.readout(params, features)
    loss = window_loss(loss_fn, outputs, batch)
    stored = jax.lax.stop_gradient(stored)  # [T, ...] the states entering each step

    steps = jnp.arange(batch.length)
    keys = jax.vmap(lambda t: jax.random.fold_in(key, t))(steps)

    def corrupt(k, states):
      k_noise, k_keep = jax.random.split(k)
      leaves, treedef = jax.tree.flatten(states)
      noise_keys = jax.random.split(k_noise, len(leaves))
      noisy = [s + self.sigma * jax.random.normal(nk, s.shape, s.dtype)
               for nk, s in zip(noise_keys, leaves)]
      keep = jax.random.bernoulli(k_keep, self.fraction)
      return jax.tree.unflatten(treedef, noisy), keep

    if self.sigma == 0 and self.fraction == 1:  # skip the draws (BPTT exactly)
      replayed, keep = stored, jnp.ones((batch.length,), bool)
    else:
      replayed, keep = jax.vmap(corrupt)(keys, stored)

    def objective(p):
      def body(z, xs):
        r, kept, x = xs
        r = jax.tree.map(
            lambda r_, z_: jnp.where(kept, r_ + (z_ - jax.lax.stop_gradient(z_)), r_), r, z)
        z, f = core.step(p["core"], r, x)
        return z, f

      _, f = jax.lax.scan(body, s0, (replayed, keep, batch.inputs))
      return window_loss(loss_fn, model.readout(p, f), batch)

    grads = jax.grad(objective)(params)
    zeros = jax.tree.map(jnp.zeros_like, lparams)
    metrics = {"replayed_fraction": jnp.mean(keep.astype(jnp.float32))}
    return CarriedState(final), (grads, zeros), Aux(loss, outputs, metrics)
