"""The SAB sparsifier: forward values, its custom VJP against autodiff of the plain formula."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from tca_jax.ops import plain_sparsify, sparsify


def _raw(key, shape):
  # Distinct values well apart: no ties, and finite differences never swap ranks.
  return jax.random.permutation(key, jnp.arange(np.prod(shape), dtype=jnp.float64)).reshape(
      shape) * 0.37 + jax.random.uniform(key, shape, jnp.float64, 0.0, 0.01)


@pytest.mark.parametrize("mode,k", [("paper", 1), ("paper", 3), ("release", 2), ("release", 4)])
def test_forward_matches_plain_and_is_sparse(x64, mode, k):
  a = _raw(jax.random.PRNGKey(1), (4, 9))
  w = sparsify(a, k, mode)
  np.testing.assert_allclose(w, plain_sparsify(a, k, mode), rtol=1e-12, atol=0)
  n_active = k if mode == "paper" else k - 1
  np.testing.assert_array_equal(jnp.sum(w > 0, -1), n_active)
  np.testing.assert_allclose(jnp.sum(w, -1), 1.0, rtol=1e-12)
  # The active entries are the n_active largest raw weights.
  top = jnp.argsort(-a, -1)[:, :n_active]
  np.testing.assert_array_equal(jnp.sort(top, -1), jnp.sort(jnp.argsort(-w, -1)[:, :n_active], -1))


@pytest.mark.parametrize("credit", ["paper", "exact"])
@pytest.mark.parametrize("mode,k", [("paper", 1), ("paper", 3), ("release", 3)])
def test_vjp_equals_autodiff_of_plain_formula(x64, mode, k, credit):
  a = _raw(jax.random.PRNGKey(2), (5, 8))
  g = jax.random.normal(jax.random.PRNGKey(3), (5, 8), jnp.float64)
  f = lambda x, fn: jnp.sum(jnp.sin(fn(x, k, mode, credit)) * g)
  np.testing.assert_allclose(jax.grad(f)(a, sparsify), jax.grad(f)(a, plain_sparsify),
                             rtol=1e-10, atol=1e-14)
  if credit == "exact":  # the true derivative (finite differences)
    check_grads(lambda x: sparsify(x, k, mode, "exact"), (a,), order=1, modes=("rev",), eps=1e-4)


def test_paper_credit_is_the_derivative_at_a_constant_threshold(x64):
  k = 3
  a = _raw(jax.random.PRNGKey(10), (4, 9))
  g = jax.random.normal(jax.random.PRNGKey(11), (4, 9), jnp.float64)
  tau = np.sort(np.asarray(a), -1)[:, ::-1][:, k]  # a NumPy constant

  def hand(x):
    r = jax.nn.relu(x - tau[:, None])
    return jnp.sum(jnp.sin(r / jnp.sum(r, -1, keepdims=True)) * g)

  got = jax.grad(lambda x: jnp.sum(jnp.sin(sparsify(x, k)) * g))(a)
  np.testing.assert_allclose(got, jax.grad(hand)(a), rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("credit", ["paper", "exact"])
def test_gradient_touches_only_selected_and_threshold(x64, credit):
  k = 3
  a = _raw(jax.random.PRNGKey(4), (6, 10))
  g = jax.random.normal(jax.random.PRNGKey(5), (6, 10), jnp.float64)
  grad = jax.grad(lambda x: jnp.sum(sparsify(x, k, "paper", credit) * g))(a)
  rank = jnp.argsort(jnp.argsort(-a, -1), -1)  # 0 = largest
  # "paper" credit: the k selected only; "exact": the threshold (rank k) too.
  last = k - 1 if credit == "paper" else k
  assert bool(jnp.all(jnp.where(rank > last, grad == 0.0, True)))
  assert bool(jnp.all(jnp.where(rank <= last, grad != 0.0, True)))


def test_fewer_valid_than_k_plus_one_is_softmax_over_valid(x64):
  k = 4
  a = _raw(jax.random.PRNGKey(6), (3, 7))
  valid = jnp.arange(7) < 3
  masked = jnp.where(valid, a, -jnp.inf)
  w = sparsify(masked, k)
  np.testing.assert_allclose(w[:, :3], jax.nn.softmax(a[:, :3], -1), rtol=1e-12)
  np.testing.assert_array_equal(w[:, 3:], 0.0)
  g = jax.random.normal(jax.random.PRNGKey(7), (3, 7), jnp.float64)
  grad = jax.grad(lambda x: jnp.sum(sparsify(jnp.where(valid, x, -jnp.inf), k) * g))(a)
  ref = jax.grad(lambda x: jnp.sum(jax.nn.softmax(x[:, :3], -1) * g[:, :3]))(a)
  np.testing.assert_allclose(grad, ref, rtol=1e-10, atol=1e-14)
  # No valid slot: zero weights and zero (finite) gradients.
  empty = jnp.full((2, 7), -jnp.inf)
  np.testing.assert_array_equal(sparsify(empty, k), 0.0)
  grad = jax.grad(lambda x: jnp.sum(sparsify(jnp.where(False, x, -jnp.inf), k)))(a[:2])
  np.testing.assert_array_equal(grad, 0.0)


def test_memory_smaller_than_k_plus_one_and_jit(x64):
  a = _raw(jax.random.PRNGKey(8), (2, 3))
  w = jax.jit(sparsify, static_argnums=(1, 2))(a, 5, "paper")
  np.testing.assert_allclose(w, jax.nn.softmax(a, -1), rtol=1e-12)


def test_shapes_and_batching():
  a = jax.random.normal(jax.random.PRNGKey(9), (2, 3, 11))
  w = sparsify(a, 2)
  assert w.shape == a.shape and w.dtype == a.dtype
  wv = jax.vmap(lambda x: sparsify(x, 2))(a)
  np.testing.assert_allclose(w, wv, rtol=1e-6)
