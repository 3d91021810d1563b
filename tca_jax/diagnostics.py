"""Gradient-quality and gradient-flow measurements every learner gets for free.

* `update_vs_bptt`: cosine and norm ratio between a learner's update (accumulated over the
  windows of one sequence at fixed parameters) and the exact BPTT gradient of the same batch,
  overall and per parameter leaf (the measurement behind TPTT's Fig. 5).
* `gradient_flow`: `||dE/dh_t||` against the distance `T - t` for a loss at the last step only
  (Lillicrap & Santoro 2019, eq. 3: vanishing or exploding gradients).
* `spectral_radius` of the recurrent matrix (TPTT Fig. 3).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from tca_jax import windows
from tca_jax.learners.base import window_loss
from tca_jax.types import Batch


def bptt_gradient(model, task, params, batch: Batch):
  """The exact gradient of the task's sequence loss, from the model's initial state."""
  state = model.initial_state(batch.batch_size, jax.tree.leaves(params)[0].dtype)

  def objective(p):
    _, outputs = model.unroll(p, state, batch.inputs)
    return window_loss(task.loss, outputs, batch)

  return jax.grad(objective)(params)


def accumulated_update(learner, model, task, params, lparams, batch: Batch, key, update_every):
  """The learner's updates summed over the windows of one sequence, parameters held fixed."""
  lstate = learner.init_state(model, params, batch.batch_size)

  def fn(carry, wb, i):
    lstate, total = carry
    lstate, updates, aux = learner.update(model, params, lparams, lstate, wb, task.loss,
                                          jax.random.fold_in(key, i))
    total = jax.tree.map(jnp.add, total, updates)
    return (lstate, total), (aux.loss, aux.outputs, {})

  zeros = jax.tree.map(jnp.zeros_like, (params, lparams))
  (_, total), _, _, _ = windows.scan_windows(fn, (lstate, zeros), batch, update_every)
  return total


def _flat(tree):
  return jnp.concatenate([jnp.ravel(x) for x in jax.tree.leaves(tree)])


def cosine_and_ratio(update, reference):
  """`(cosine, ||update|| / ||reference||)` of two pytrees of the same structure."""
  u, r = _flat(update), _flat(reference)
  nu, nr = jnp.linalg.norm(u), jnp.linalg.norm(r)
  tiny = jnp.finfo(u.dtype).tiny
  return jnp.dot(u, r) / jnp.maximum(nu * nr, tiny), nu / jnp.maximum(nr, tiny)


def leaf_name(path) -> str:
  """`("core", "W_hh")` style key path -> "core/W_hh"."""
  return "/".join(str(getattr(k, "key", getattr(k, "idx", k))) for k in path)


def update_vs_bptt(learner, model, task, params, lparams, batch, key, update_every):
  """Scalar metrics: `grad_cosine`, `grad_norm_ratio` and `grad_cosine/<leaf>` per leaf."""
  # Frozen parameters: the BPTT gradient of what the learner trains (BPTT itself then gives 1).
  reference = learner.trainable(bptt_gradient(model, task, params, batch))
  update, _ = accumulated_update(learner, model, task, params, lparams, batch, key, update_every)
  cos, ratio = cosine_and_ratio(update, reference)
  metrics = {"grad_cosine": cos, "grad_norm_ratio": ratio}
  for (path, u), r in zip(jax.tree_util.tree_flatten_with_path(update)[0],
                          jax.tree.leaves(reference)):
    metrics[f"grad_cosine/{leaf_name(path)}"] = cosine_and_ratio(u, r)[0]
  return metrics


def gradient_flow(model, task, params, batch: Batch):
  """`||dE/dh_{t-1}||` for the loss at the last step only, averaged over the batch.

  Returns:
    `[T]` norms; entry t is the norm of the gradient with respect to the state entering step t,
    i.e. at distance `T - t` from the loss (entry 0 is the initial state, distance T).
  """
  dtype = jax.tree.leaves(params)[0].dtype
  state = model.initial_state(batch.batch_size, dtype)
  last_only = jnp.zeros_like(batch.mask).at[-1].set(1.0)
  zeros = jax.tree.map(lambda s: jnp.zeros((batch.length,) + s.shape, s.dtype), state)

  def objective(deltas):
    _, outputs = model.unroll(params, state, batch.inputs, perturbations=deltas)
    return jnp.mean(task.loss(outputs[-1], batch.targets[-1], last_only[-1]))

  grads = jax.grad(objective)(zeros)
  # Per-sequence state leaves only ([time, batch, ...]): a memory core's buffer
  # ([time, slots, batch, ...]) and step counters ([time]) are not the sequential state.
  sq = sum(jnp.sum(jnp.square(g).reshape(g.shape[0], g.shape[1], -1), -1)
           for g in jax.tree.leaves(grads)
           if g.ndim >= 2 and g.shape[1] == batch.batch_size
           and not (g.ndim >= 4 and g.shape[2] == batch.batch_size))
  return jnp.mean(jnp.sqrt(sq), axis=1) * batch.batch_size


def spectral_radius(matrix):
  """Largest eigenvalue modulus of a square matrix (computed on the host's LAPACK via numpy)."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  return float(np.max(np.abs(np.linalg.eigvals(np.asarray(matrix, dtype=np.float64)))))


def global_norm(tree):
  """sqrt of the sum of squares of every entry of a pytree."""
  return jnp.sqrt(sum(jnp.sum(jnp.square(x)) for x in jax.tree.leaves(tree)))
