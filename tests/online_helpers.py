"""Small models and batches shared by the forward-mode learner tests (float64 when x64 is on)."""

import jax
from jax.flatten_util import ravel_pytree
import jax.numpy as jnp
import numpy as np

from tca_jax import cells, tasks
from tca_jax.model import Model
from tca_jax.types import Batch

RECURRENT = {"srn": ("W_hh",), "leaky_srn": ("W_hh",), "lstm": ("W_h",), "gru": ("U_zr", "U_n")}


def setup(cell="srn", hidden=4, length=6, batch_size=2, input_size=3, loss_on="all", seed=0,
          diagonal=False):
  """A model, an MSE task (for its loss) and a random batch.

  Args:
    loss_on: "all" (weight 1/T at every step) or "last" (the last step only).
    diagonal: make every recurrent matrix block diagonal per unit (gate blocks side by side).
  """
  dtype = jnp.float64 if jax.config.jax_enable_x64 else jnp.float32
  task = tasks.get("adding_pascanu", length=10)  # only its weighted MSE loss is used
  model = Model(cells.get(cell, hidden_size=hidden), 2)
  k_p, k_x, k_y, k_w = jax.random.split(jax.random.PRNGKey(seed), 4)
  params = jax.tree.map(lambda a: a.astype(dtype), model.init(k_p, input_size))
  params["readout"]["b"] = 0.1 * jax.random.normal(k_w, (2,), dtype)
  if diagonal:
    core = params["core"]
    for name in RECURRENT[cell]:
      w = core[name]
      mask = jnp.tile(jnp.eye(hidden, dtype=dtype), (1, w.shape[1] // hidden))
      core[name] = mask * (0.5 + 0.5 * w)
  inputs = jax.random.normal(k_x, (length, batch_size, input_size), dtype)
  targets = jax.random.normal(k_y, (length, batch_size, 2), dtype)
  if loss_on == "all":
    mask = jnp.full((length, batch_size), 1.0 / length, dtype)
  else:
    mask = jnp.zeros((length, batch_size), dtype).at[-1].set(1.0)
  return model, task, params, Batch(inputs, targets, mask)


def flat(tree):
  return ravel_pytree(tree)[0]


def rel_error(a, b):
  a, b = flat(a), flat(b)
  return float(jnp.linalg.norm(a - b) / jnp.linalg.norm(b))


def check_unbiased(samples, exact, sizes=(250, 1000, 4000), max_z=5.0):
  """Asserts the mean of `samples [n, P]` is within `max_z` standard errors of `exact [P]`.

  Checked on nested prefixes of n samples for every n in `sizes`, coordinate by coordinate
  (coordinates with zero variance, e.g. the exact readout gradient, must match to 1e-10), and for
  the squared norm of the error, whose expectation is `tr(Cov) / n`: the error shrinks like
  1/sqrt(n). Also asserts the test has power: at the largest n one standard error of the norm
  is below 5% of `||exact||`.
  """
  samples, exact = np.asarray(samples), np.asarray(exact)
  std = samples.std(axis=0)
  noisy = std > 1e-12 * np.abs(exact).max()
  assert noisy.sum() > 0
  for n in sizes:
    mean = samples[:n].mean(axis=0)
    np.testing.assert_allclose(mean[~noisy], exact[~noisy], rtol=1e-10, atol=1e-12)
    z = np.abs(mean[noisy] - exact[noisy]) / (std[noisy] / np.sqrt(n))
    assert z.max() < max_z, (n, z.max())
    sq_err = np.sum((mean - exact) ** 2)
    assert sq_err < 6.0 * np.sum(std ** 2) / n, (n, sq_err, np.sum(std ** 2) / n)
  assert np.sqrt(np.sum(std ** 2) / sizes[-1]) < 0.05 * np.linalg.norm(exact)
