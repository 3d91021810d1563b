"""The Flax adapter: Flax's LSTM with our weights gives our gradients under every generic learner.

Our LSTM fuses the gates `[i, f, g, o]` into `W_x [in, 4H]`, `W_h [H, 4H]`, `b [4H]`; Flax linen's
OptimizedLSTMCell keeps one Dense per gate (`ii`, `if`, `ig`, `io` without bias, `hi`, ... with
bias), nnx's OptimizedLSTMCell the fused `dense_i` / `dense_h` (bias on `dense_h`). The carry is
`(c, h)` in Flax, `LSTMState(h, c)` in ours.
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest

pytest.importorskip("flax")
# pylint: disable=g-import-not-at-top,wrong-import-position
from flax import linen as nn
from flax import nnx

from tca_jax import cells, config as config_lib, diagnostics, learners
from tca_jax.cells.flax_cell import FlaxCell
from tca_jax.cells.lstm import LSTM
from tca_jax.model import Model
from tca_jax.registry import ConfigError
from tests.online_helpers import flat, setup
# pylint: enable=g-import-not-at-top,wrong-import-position

H = 3
GATES = "ifgo"


def to_linen(core):
  p = {}
  for k, gate in enumerate(GATES):
    cols = slice(k * H, (k + 1) * H)
    p["i" + gate] = {"kernel": core["W_x"][:, cols]}
    p["h" + gate] = {"kernel": core["W_h"][:, cols], "bias": core["b"][cols]}
  return p


def from_linen(p):
  cat = lambda f: jnp.concatenate([f(g) for g in GATES], axis=-1)
  return {"W_x": cat(lambda g: p["i" + g]["kernel"]), "W_h": cat(lambda g: p["h" + g]["kernel"]),
          "b": cat(lambda g: p["h" + g]["bias"])}


def to_nnx(core):
  return {"dense_i": {"kernel": core["W_x"]},
          "dense_h": {"kernel": core["W_h"], "bias": core["b"]}}


def from_nnx(p):
  return {"W_x": p["dense_i"]["kernel"], "W_h": p["dense_h"]["kernel"], "b": p["dense_h"]["bias"]}


class CH(NamedTuple):
  c: jax.Array
  h: jax.Array


class LSTMWithFlaxCarry(LSTM):
  """Our LSTM with its state ordered as Flax's carry `(c, h)`: UORO draws one noise sign per
  state entry in flattening order, so the same key then perturbs the same quantities."""

  def initial_state(self, batch_size, dtype=None):
    s = super().initial_state(batch_size, dtype)
    return CH(s.c, s.h)

  def step(self, params, state, x):
    new, h = super().step(params, LSTM.initial_state(self, 1)._replace(h=state.h, c=state.c), x)
    return CH(new.c, new.h), h


LEARNERS = {"bptt": {}, "tbptt": {"truncation": 2}, "rtrl": {}, "uoro": {}}
FLAX_CELLS = {"linen": (lambda: nn.OptimizedLSTMCell(features=H), to_linen, from_linen),
              "nnx": (lambda: nnx.OptimizedLSTMCell, to_nnx, from_nnx)}


@pytest.mark.parametrize("kind", sorted(FLAX_CELLS))
@pytest.mark.parametrize("name", sorted(LEARNERS))
def test_flax_lstm_gives_our_gradients(x64, name, kind):
  ours, task, params, batch = setup("lstm", hidden=H, length=5, batch_size=2, input_size=2)
  make, to_flax, from_flax = FLAX_CELLS[kind]
  if name == "uoro":
    ours = Model(LSTMWithFlaxCarry(H), ours.output_size)
  theirs = Model(FlaxCell(H, make()), ours.output_size)
  theirs_params = {"core": to_flax(params["core"]), "readout": params["readout"]}
  # The copied weights have the layout Flax itself initialises.
  shapes = jax.tree.map(jnp.shape, theirs.init(jax.random.PRNGKey(0), 2)["core"])
  assert jax.tree.map(jnp.shape, theirs_params["core"]) == shapes
  learner = learners.get(name, **LEARNERS[name])
  key = jax.random.PRNGKey(7)
  # Windows of 2 steps: the carried state (and RTRL's / UORO's traces) cross window boundaries;
  # BPTT over the whole sequence.
  every = 5 if name == "bptt" else 2
  accumulated = jax.jit(diagnostics.accumulated_update, static_argnums=(0, 1, 2, 7))
  ref, _ = accumulated(learner, ours, task, params, {}, batch, key, every)
  got, _ = accumulated(learner, theirs, task, theirs_params, {}, batch, key, every)
  got = {"core": from_flax(got["core"]), "readout": got["readout"]}
  assert flat(ref).dtype == jnp.float64 and float(jnp.linalg.norm(flat(ref))) > 1e-3
  np.testing.assert_allclose(flat(got), flat(ref), rtol=1e-10, atol=1e-12)
  if name == "bptt":  # and both equal the autodiff gradient
    exact = diagnostics.bptt_gradient(ours, task, params, batch)
    np.testing.assert_allclose(flat(ref), flat(exact), rtol=1e-10, atol=1e-12)


def test_flax_cell_from_the_config_and_refused_by_internal_learners():
  c = config_lib.default_config()
  c.task.name, c.task.length = "temporal_order", 10
  c.model.cell, c.model.hidden_size = "flax", 4
  c.model.flax_cell = "flax.linen.GRUCell"
  c.learner.name = "rtrl"
  setup_ = config_lib.build(c)
  assert isinstance(setup_.model.core, cells.FlaxCell)
  params = setup_.model.init(jax.random.PRNGKey(0), setup_.task.input_size)
  assert set(params["core"]) == {"ir", "iz", "in", "hr", "hz", "hn"}
  state, y = setup_.model.core.step(params["core"], setup_.model.initial_state(2),
                                    jnp.ones((2, setup_.task.input_size)))
  assert y.shape == (2, 4) and state.shape == (2, 4)
  for name in ("snap1", "kf_rtrl", "tptt", "sab"):
    c.learner.name = name
    with pytest.raises(ConfigError, match=f"model.cell='flax' is not supported by learner "
                       f"'{name}'.*allowed learners: bptt, tbptt, rtrl, uoro"):
      config_lib.build(c)
  c.learner.name = "bptt"
  c.model.flax_cell = "flax.linen.NoSuchCell"
  with pytest.raises(ConfigError, match="model.flax_cell='flax.linen.NoSuchCell'"):
    config_lib.build(c)
  c.model.flax_cell = "flax.nnx.GRUCell"
  core = config_lib.build(c).model.core
  p = core.init(jax.random.PRNGKey(1), 3)
  state, y = jax.jit(core.step)(p, core.initial_state(2), jnp.ones((2, 3)))
  assert y.shape == (2, 4) and jnp.all(jnp.isfinite(y))
  with pytest.raises(ConfigError, match="differs from the Flax cell's features=5"):
    FlaxCell(4, nn.GRUCell(features=5))


def test_flax_cell_trains_from_the_command_line(tmp_path):
  import subprocess, sys, os  # pylint: disable=g-import-not-at-top,multiple-imports
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  cmd = [sys.executable, "-m", "experiments.train", "--config=experiments/configs/copy.py:quick",
         f"--workdir={tmp_path}", "--config.model.cell=flax",
         "--config.model.flax_cell=flax.linen.OptimizedLSTMCell", "--config.model.hidden_size=8",
         "--config.train.steps=3", "--config.train.warmup_steps=0", "--config.train.eval_every=0",
         "--config.train.checkpoint_every=0", "--config.learner.name=uoro",
         "--config.train.update_every=1", "--config.train.diag_every=2"]
  env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=root)
  out = subprocess.run(cmd, cwd=root, capture_output=True, text=True, env=env, timeout=300)
  assert out.returncode == 0, out.stderr[-3000:]
  text = (tmp_path / "metrics.jsonl").read_text()
  assert '"split": "test"' in text and '"grad_cosine"' in text  # diagnostics work on it too
