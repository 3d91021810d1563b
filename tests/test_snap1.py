"""SnAp-1: equal to RTRL when the recurrence is diagonal, different otherwise; shapes."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tca_jax import diagnostics, learners
from tca_jax.learners.rtrl import RTRL
from tca_jax.learners.snap1 import SnAp1, SnAp1State
from tests.online_helpers import rel_error, setup

_accumulated = jax.jit(diagnostics.accumulated_update, static_argnums=(0, 1, 2, 7))


@pytest.mark.parametrize("cell", ["srn", "lstm", "gru"])
def test_snap1_equals_rtrl_iff_recurrence_is_diagonal(x64, cell):
  key = jax.random.PRNGKey(0)
  for diagonal in (True, False):
    model, task, params, batch = setup(cell, hidden=3, diagonal=diagonal)
    rtrl, _ = _accumulated(RTRL(), model, task, params, {}, batch, key, 2)
    snap, _ = _accumulated(SnAp1(), model, task, params, {}, batch, key, 2)
    if diagonal:
      assert rel_error(snap, rtrl) < 1e-10, cell
    else:
      assert rel_error(snap, rtrl) > 1e-2, cell
    # The readout's gradient is always exact.
    np.testing.assert_allclose(snap["readout"]["W"], rtrl["readout"]["W"], rtol=1e-10)


def test_structured_srn_step_equals_generic(x64):
  model, task, params, batch = setup("srn", hidden=4)
  key = jax.random.PRNGKey(0)
  fast, _ = _accumulated(SnAp1(structured=True), model, task, params, {}, batch, key, 3)
  generic, _ = _accumulated(SnAp1(structured=False), model, task, params, {}, batch, key, 3)
  assert rel_error(fast, generic) < 1e-12


@pytest.mark.parametrize("cell,slots", [("srn", 1), ("lstm", 2)])
def test_snap1_shapes(cell, slots):
  learner = learners.get("snap1")
  assert isinstance(learner, SnAp1) and not learner.exact
  model, task, params, batch = setup(cell, hidden=3, length=4, batch_size=2, input_size=5)
  lstate = learner.init_state(model, params, 2)
  p = sum(a.size for a in jax.tree.leaves(params["core"]))
  assert isinstance(lstate, SnAp1State)
  assert lstate.influence.shape == (2, slots, p)  # O(P) per example, not O(S P)
  update = jax.jit(learner.update, static_argnums=(0, 5))
  new, (updates, _), aux = update(model, params, {}, lstate, batch, task.loss,
                                  jax.random.PRNGKey(0))
  assert jax.tree.structure(updates) == jax.tree.structure(params)
  assert aux.outputs.shape == (4, 2, 2)
  assert jnp.any(new.influence != 0)
