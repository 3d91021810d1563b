"""The jax.ffi CPU kernel (`tca_jax.ops.native.bmm_diag`) equals its jax.numpy reference, under
jit and vmap, in float64 and float32; a missing compiler falls back to XLA; RTRL with either
kernel equals BPTT (tests/test_rtrl.py holds the SRN step's exactness for both kernels)."""

import logging

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tca_jax import learners
from tca_jax.learners.rtrl import RTRL
from tca_jax.ops import native
from tca_jax.registry import ConfigError

needs_native = pytest.mark.skipif(
    jax.default_backend() != "cpu" or not native.available(),
    reason="native kernels need the CPU backend and a C++ compiler")


def _operands(dtype, lead, n, k, q, seed=0):
  keys = jax.random.split(jax.random.PRNGKey(seed), 4)
  p = max(q, 1) * n
  return (jax.random.normal(keys[0], lead + (n, k), dtype),
          jax.random.normal(keys[1], lead + (k, p), dtype),
          jax.random.normal(keys[2], lead + (n,), dtype),
          jax.random.normal(keys[3], lead + (q,), dtype))


# (leading shape, n, k, q): batch 1, non-square A, no immediate term (q = 0), RTRL's shape.
SHAPES = [((1,), 3, 3, 2), ((4,), 5, 7, 3), ((2,), 4, 6, 0), ((3,), 8, 8, 11), ((2, 3), 2, 5, 4)]


@needs_native
@pytest.mark.parametrize("lead,n,k,q", SHAPES)
def test_bmm_diag_equals_einsum_float64(x64, lead, n, k, q):
  a, m, d, u = _operands(jnp.float64, lead, n, k, q)
  ref = native.bmm_diag_reference(a, m, d, u)
  np.testing.assert_allclose(jax.jit(native.bmm_diag)(a, m, d, u), ref, rtol=1e-14, atol=1e-14)
  # By hand for one entry of the diagonal term (row j, block i): A M + d_j u_i.
  if q:
    j, i = n - 1, q - 1
    expect = float(a[(0,) * len(lead)][j] @ m[(0,) * len(lead)][:, i * n + j]
                   + d[(0,) * len(lead)][j] * u[(0,) * len(lead)][i])
    np.testing.assert_allclose(float(native.bmm_diag(a, m, d, u)[(0,) * len(lead)][j, i * n + j]),
                               expect, rtol=1e-14)


@needs_native
@pytest.mark.parametrize("lead,n,k,q", SHAPES[:3])
def test_bmm_diag_float32_and_plain_product(lead, n, k, q):
  a, m, d, u = _operands(jnp.float32, lead, n, k, q)
  np.testing.assert_allclose(native.bmm_diag(a, m, d, u), native.bmm_diag_reference(a, m, d, u),
                             rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(native.bmm_diag(a, m, d), jnp.einsum("bji,bip->bjp", a, m),
                             rtol=1e-5, atol=1e-5)


@needs_native
def test_bmm_diag_vmap(x64):
  a, m, d, u = _operands(jnp.float64, (2, 3), 4, 4, 3)
  ref = native.bmm_diag_reference(a, m, d, u)
  # vmap over the leading axis; the second operand's axis unbatched (broadcast by the rule).
  out = jax.jit(jax.vmap(native.bmm_diag, in_axes=(0, 0, 0, None)))(a, m, d, u[0])
  np.testing.assert_allclose(out, native.bmm_diag_reference(a, m, d, jnp.broadcast_to(u[0], u.shape)),
                             rtol=1e-14, atol=1e-14)
  out = jax.vmap(jax.vmap(native.bmm_diag))(a, m, d, u)
  np.testing.assert_allclose(out, ref, rtol=1e-14, atol=1e-14)


def test_kernel_option_is_validated():
  assert learners.get("rtrl", kernel="xla").kernel == "xla"
  with pytest.raises(ConfigError, match="learner.kernel"):
    learners.get("rtrl", kernel="blas")


def test_missing_compiler_falls_back_to_xla(x64, monkeypatch, tmp_path, caplog):
  """No compiler: `available()` is False with one warning, and RTRL(kernel="native") runs on XLA
  with the same update as kernel="xla"."""
  from tests.online_helpers import setup  # pylint: disable=g-import-not-at-top
  monkeypatch.setattr(native, "_state", {})
  monkeypatch.setenv("TCA_JAX_CXX", str(tmp_path / "no-such-compiler"))
  monkeypatch.setenv("TCA_JAX_NATIVE_CACHE", str(tmp_path / "cache"))
  with caplog.at_level(logging.WARNING):
    assert not native.available()
    assert not native.available()
  assert sum("native kernels unavailable" in r.getMessage() for r in caplog.records) == 1
  model, task, params, batch = setup("srn", length=3)
  outs = []
  for kernel in ("native", "xla"):
    learner = RTRL(kernel=kernel)
    lstate = learner.init_state(model, params, batch.inputs.shape[1])
    _, (updates, _), _ = learner.update(model, params, {}, lstate, batch, task.loss,
                                        jax.random.PRNGKey(0))
    outs.append(updates)
  jax.tree.map(lambda x, y: np.testing.assert_array_equal(x, y), *outs)
