"""`model.frozen`: parameters that no learner updates.

`Frozen(inner, paths)` is a learner that runs `inner` unchanged and sets the updates of the named
parameters to exactly zero, so an optax optimizer leaves them where `model.init` put them (Adam,
SGD with momentum and RMSProp all map an all-zero gradient history to a zero step). Freezing
after the rule rather than inside the model (`stop_gradient`) is what makes it hold for every
learner, including those whose updates are not autodiff of the model (TPTT's targets, SAB's
hand-written backward, the trace rules). `config.build` wraps the learner when `model.frozen`
names parameters or the cell declares some in `frozen_params` (the echo state network's `W_hh`).

Paths are the diagnostics' leaf names, `"core/W_hh"`, `"readout/b"`, `"core/layers/0/nu_log"`; a
path also freezes everything below it (`"core"` freezes the whole core).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp

from tca_jax.learners.base import Learner
from tca_jax.registry import ConfigError


def _name(path) -> str:
  return "/".join(str(getattr(k, "key", getattr(k, "idx", k))) for k in path)


def leaf_paths(tree) -> tuple:
  """The `"a/b/c"` names of a pytree's leaves, in `jax.tree.leaves` order."""
  return tuple(_name(p) for p, _ in jax.tree_util.tree_flatten_with_path(tree)[0])


def is_frozen(path: str, frozen: tuple) -> bool:
  return any(path == f or path.startswith(f + "/") for f in frozen)


def check_paths(frozen: tuple, params_shape) -> None:
  """Raises `ConfigError` naming `model.frozen` for a path that matches no parameter."""
  names = leaf_paths(params_shape)
  for f in frozen:
    if not any(is_frozen(n, (f,)) for n in names):
      raise ConfigError(f"model.frozen: {f!r} names no parameter; parameters: {', '.join(names)}")


def zero_frozen(updates, frozen: tuple):
  """`updates` with every leaf under a frozen path set to zero."""
  return jax.tree_util.tree_map_with_path(
      lambda p, u: jnp.zeros_like(u) if is_frozen(_name(p), frozen) else u, updates)


@dataclasses.dataclass(frozen=True)
class Frozen(Learner):
  """`inner` with zero updates for the parameters under `paths`.

  Attributes:
    inner: the learner that computes the updates.
    paths: frozen parameter paths of the model params (`"core/W_hh"`, ...).
  """

  inner: Any = None
  paths: tuple = ()

  @property
  def name(self) -> str:
    return self.inner.name

  @property
  def exact(self) -> bool:  # pylint: disable=invalid-overridden-method
    return self.inner.exact

  def validate(self, sequence_length, update_every):
    self.inner.validate(sequence_length, update_every)

  def validate_cell(self, cell_name: str):
    self.inner.validate_cell(cell_name)

  def validate_model(self, model):
    self.inner.validate_model(model)

  def init(self, key, model, params, batch_size: int):
    return self.inner.init(key, model, params, batch_size)

  def init_params(self, key, model, params):
    return self.inner.init_params(key, model, params)

  def init_state(self, model, params, batch_size: int):
    return self.inner.init_state(model, params, batch_size)

  def optimizer(self, make, learning_rate):
    return self.inner.optimizer(make, learning_rate)

  def trainable(self, grads):
    return zero_frozen(grads, self.paths)

  def update(self, model, params, lparams, lstate, batch, loss_fn, key):
    lstate, (updates, lupdates), aux = self.inner.update(model, params, lparams, lstate, batch,
                                                         loss_fn, key)
    return lstate, (zero_frozen(updates, self.paths), lupdates), aux
