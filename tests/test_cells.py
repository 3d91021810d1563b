"""Cells and the model: shapes, a hand-checked SRN step, BPTT gradients by finite differences."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from tca_jax import cells
from tca_jax.cells import initializers
from tca_jax.model import Model
from tca_jax.registry import ConfigError

CELLS = {
    "srn": dict(hidden_size=5),
    "srn_relu_irnn": dict(hidden_size=5, activation="relu", recurrent_init="identity"),
    "lstm": dict(hidden_size=5),
    "gru": dict(hidden_size=5),
}


def make_cell(name):
  return cells.get(name.split("_")[0], **CELLS[name])


@pytest.mark.parametrize("name", list(CELLS))
def test_step_and_unroll_shapes(name, key):
  model = Model(make_cell(name), output_size=3)
  params = model.init(key, input_size=4)
  state = model.initial_state(batch_size=2)
  new_state, y = model.step(params, state, jnp.ones((2, 4)))
  chex.assert_shape(y, (2, 3))
  chex.assert_trees_all_equal_shapes(new_state, state)
  final, ys = model.unroll(params, state, jnp.ones((7, 2, 4)))
  chex.assert_shape(ys, (7, 2, 3))
  chex.assert_trees_all_equal_shapes(final, state)


def test_srn_step_by_hand(x64):
  cell = cells.SRN(hidden_size=2)
  params = {"W_xh": jnp.array([[1.0, -1.0]]), "W_hh": jnp.array([[0.5, 0.0], [0.25, 2.0]]),
            "b_h": jnp.array([0.1, 0.2])}
  h, _ = cell.step(params, jnp.array([[1.0, 2.0]]), jnp.array([[3.0]]))
  # pre-activation by hand: [3 + 0.5 + 0.5 + 0.1, -3 + 0 + 4 + 0.2] = [4.1, 1.2]
  np.testing.assert_allclose(h, np.tanh([[4.1, 1.2]]), rtol=1e-12)


def test_lstm_step_by_hand(x64):
  cell = cells.LSTM(hidden_size=1)
  params = {"W_x": jnp.array([[1.0, 2.0, 3.0, 4.0]]), "W_h": jnp.zeros((1, 4)),
            "b": jnp.zeros(4)}
  state, h = cell.step(params, cells.LSTMState(jnp.zeros((1, 1)), jnp.array([[0.5]])),
                       jnp.array([[1.0]]))
  sig = lambda z: 1 / (1 + np.exp(-z))
  c = sig(2.0) * 0.5 + sig(1.0) * np.tanh(3.0)
  np.testing.assert_allclose(state.c, [[c]], rtol=1e-12)
  np.testing.assert_allclose(h, [[sig(4.0) * np.tanh(c)]], rtol=1e-12)


def test_initializers(x64, key):
  q = initializers.orthogonal(key, (6, 6), 1.5)
  np.testing.assert_allclose(q.T @ q, 2.25 * np.eye(6), atol=1e-12)
  np.testing.assert_array_equal(initializers.identity(key, (3, 3), 0.5), 0.5 * np.eye(3))
  w = cells.SRN(hidden_size=400, recurrent_init="normal", init_scale=0.1).init(key, 1)["W_hh"]
  assert abs(float(jnp.std(w)) - 0.1) < 0.01


@pytest.mark.parametrize("name", list(CELLS))
def test_bptt_gradients_match_finite_differences(name, x64, key):
  model = Model(make_cell(name), output_size=2)
  params = model.init(key, input_size=3)
  inputs = jax.random.normal(jax.random.fold_in(key, 1), (6, 2, 3))
  state = model.initial_state(2)

  def loss(p):
    _, y = model.unroll(p, state, inputs)
    return jnp.sum(jnp.sin(y))

  check_grads(loss, (params,), order=1, modes=["rev"], eps=1e-4)


def test_bad_cell_options():
  with pytest.raises(ConfigError, match="model.activation"):
    cells.SRN(hidden_size=3, activation="sigmoid")
  with pytest.raises(ConfigError, match="model.hidden_size"):
    cells.LSTM(hidden_size=0)
  with pytest.raises(ConfigError, match="model.recurrent_init"):
    cells.GRU(hidden_size=3, recurrent_init="zeros")
  with pytest.raises(ConfigError, match="model.cell='foo'.*allowed: srn, lstm, gru"):
    cells.get("foo", hidden_size=3)
