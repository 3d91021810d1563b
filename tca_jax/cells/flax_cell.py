"""A Flax RNN cell (`flax.linen` or `flax.nnx`) as a tca-jax cell (`model.cell=flax`).

Flax's cells map `(carry, x) -> (carry, y)`; the adapter keeps the carry as the tca-jax state and
`y` as the features, so every learner that uses a cell only through `step` (`bptt`, `tbptt`,
`rtrl`, `uoro`: `Learner.generic_cells`) trains it unchanged. Learners that need a cell's
internals (a closed-form Jacobian, gate pre-activations, a memory) refuse it when the config is
built (`tca_jax.config.build`).

    from flax import linen as nn
    core = FlaxCell(hidden_size=64, flax_cell=nn.OptimizedLSTMCell(features=64))
    core = FlaxCell(hidden_size=64, flax_cell="flax.nnx.GRUCell")   # built for the input size

On the command line: `--config.model.cell=flax --config.model.flax_cell=flax.linen.GRUCell`
(a class path: linen cells are built as `Cls(features=hidden_size)`, nnx cells as
`Cls(in_features, hidden_features=hidden_size, rngs=...)`). Parameters are Flax's own pytrees
(linen: the `params` collection; nnx: `nnx.to_pure_dict` of the module's state).
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
from typing import Any

import jax
import jax.numpy as jnp

from tca_jax.cells.base import Cell
from tca_jax.registry import ConfigError, check_positive


def _import_flax():
  try:
    from flax import linen, nnx  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise ConfigError("model.cell='flax' needs Flax: pip install -e '.[flax]'") from e
  return linen, nnx


def _resolve(spec):
  """A dotted class path -> the class; anything else is returned as it is."""
  if not isinstance(spec, str):
    return spec
  module, _, name = spec.rpartition(".")
  try:
    return getattr(importlib.import_module(module), name)
  except (ImportError, AttributeError, ValueError):
    raise ConfigError(f"model.flax_cell={spec!r} is not an importable class; e.g. "
                      "flax.linen.OptimizedLSTMCell, flax.linen.GRUCell, "
                      "flax.nnx.OptimizedLSTMCell") from None


@functools.lru_cache(maxsize=None)
def _nnx_graph(cls, input_size: int, hidden_size: int):
  """The nnx module's structure (no arrays: built abstractly)."""
  _, nnx = _import_flax()
  abstract = nnx.eval_shape(lambda: cls(input_size, hidden_size, rngs=nnx.Rngs(0)))
  return nnx.split(abstract)[0]


@dataclasses.dataclass(frozen=True)
class FlaxCell(Cell):
  """A Flax RNN cell behind the tca-jax cell protocol; the readout sees the cell's output.

  Attributes:
    hidden_size: the cell's feature (and carry) size H.
    flax_cell: a `flax.linen` cell instance (`nn.OptimizedLSTMCell(features=H)`), a linen or nnx
      cell class, or its dotted path ("flax.linen.OptimizedLSTMCell").
  """

  hidden_size: int
  flax_cell: Any = "flax.linen.OptimizedLSTMCell"

  def __post_init__(self):
    check_positive(self.hidden_size, "model.hidden_size")
    linen, nnx = _import_flax()
    cell = _resolve(self.flax_cell)
    is_class = isinstance(cell, type)
    if is_class and issubclass(cell, nnx.Module):
      kind = "nnx"
    elif is_class and issubclass(cell, linen.Module):
      kind, cell = "linen", cell(features=self.hidden_size)
    elif isinstance(cell, linen.Module):
      kind = "linen"
    else:
      raise ConfigError(f"model.flax_cell={self.flax_cell!r} is neither a flax.linen nor a "
                        "flax.nnx RNN cell")
    if kind == "linen" and getattr(cell, "features", self.hidden_size) != self.hidden_size:
      raise ConfigError(f"model.hidden_size={self.hidden_size} differs from the Flax cell's "
                        f"features={cell.features}")
    object.__setattr__(self, "_kind", kind)
    object.__setattr__(self, "_cell", cell)

  @property
  def feature_size(self) -> int:
    return self.hidden_size

  def init(self, key, input_size: int):
    """Flax's own parameter pytree for inputs of size `input_size`."""
    x = jnp.zeros((1, input_size))
    if self._kind == "linen":
      # A carry to trace `init` with; its values do not matter (Flax's default is zeros).
      carry = self._cell.initialize_carry(jax.random.PRNGKey(0), x.shape)
      return self._cell.init(key, carry, x)["params"]
    _, nnx = _import_flax()
    module = self._cell(input_size, self.hidden_size, rngs=nnx.Rngs(key))
    return nnx.to_pure_dict(nnx.split(module)[1])

  def initial_state(self, batch_size: int, dtype=None):
    """The Flax cell's initial carry (zeros by default), each leaf `[batch, ...]`."""
    shape = (batch_size, 1)  # the carry's shape depends on the batch only, not the input size
    # Flax's carry_init defaults to zeros, so the fixed key draws nothing; a cell with a random
    # carry_init would start every sequence from the same draw.
    if self._kind == "linen":
      carry = self._cell.initialize_carry(jax.random.PRNGKey(0), shape)
    else:
      _, nnx = _import_flax()
      template = nnx.eval_shape(lambda: self._cell(1, self.hidden_size, rngs=nnx.Rngs(0)))
      carry = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype),
                           jax.eval_shape(lambda: template.initialize_carry(shape, nnx.Rngs(0))))
    return jax.tree.map(lambda a: a.astype(dtype) if dtype is not None else a, carry)

  def step(self, params, state, x):
    """`(carry, x [batch, in]) -> (carry, output [batch, H])`, Flax's cell call."""
    if self._kind == "linen":
      return self._cell.apply({"params": params}, state, x)
    _, nnx = _import_flax()
    module = nnx.merge(_nnx_graph(self._cell, x.shape[-1], self.hidden_size), params)
    return module(state, x)
