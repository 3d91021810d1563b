"""`Model`: a recurrent core plus a linear readout, stepped or unrolled with `lax.scan`."""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp

from tca_jax.registry import check_positive


@dataclasses.dataclass(frozen=True)
class Model:
  """A cell (or memory core) with a linear readout `y_t = features_t W + b`.

  Params are `{"core": core params, "readout": {"W": [F, out], "b": [out]}}`.

  Attributes:
    core: any object following the cell protocol (`tca_jax.cells`).
    output_size: number of outputs (classes or regression targets).
  """

  core: Any
  output_size: int

  def __post_init__(self):
    check_positive(self.output_size, "model.output_size")

  def init(self, key, input_size: int):
    k_core, k_out = jax.random.split(key)
    f = self.core.feature_size
    return {
        "core": self.core.init(k_core, input_size),
        "readout": {
            "W": jax.random.normal(k_out, (f, self.output_size)) / jnp.sqrt(f),
            "b": jnp.zeros((self.output_size,)),
        },
    }

  def initial_state(self, batch_size: int, dtype=None):
    return self.core.initial_state(batch_size, dtype)

  def readout(self, params, features):
    """`features [..., F] -> outputs [..., out]`."""
    return features @ params["readout"]["W"] + params["readout"]["b"]

  def step(self, params, state, x):
    """One step: `(state, x [batch, in]) -> (state, outputs [batch, out])`."""
    state, features = self.core.step(params["core"], state, x)
    return state, self.readout(params, features)

  def unroll(self, params, state, inputs, *, truncation: int | None = None, remat: bool = False,
             perturbations=None, unroll: int = 1, fused: bool = False, kernel: str = "xla"):
    """Runs the model over a window.

    Args:
      params: model params.
      state: the state entering the first step (a pytree of `[batch, ...]`).
      inputs: `[time, batch, in]`.
      truncation: if set to k, the state entering step t passes through `stop_gradient` whenever
        `t % k == 0` (block truncation: a loss at step t reaches back to step `k * (t // k)`).
      remat: recompute each step's internals in the backward pass (`jax.checkpoint`), keeping only
        the carried state per step (memory-efficient BPTT, Gruslys et al. 2016).
      perturbations: optional pytree shaped like `state` with a leading time axis, added to the
        state entering each step; differentiating with respect to zeros gives `dE/dh_{t-1}`.
      unroll: `lax.scan`'s unroll factor.
      fused: run the core's `fused_scan` (one op with a hand-written VJP) where the core has one
        (`has_fused_scan`) and neither `remat` nor `perturbations` is asked for.
      kernel: the fused scan's implementation, "xla" or "native" (`Cell.fused_scan`).

    Returns:
      `(final_state, outputs [time, batch, out])`.
    """
    if fused and self.core.has_fused_scan and not remat and perturbations is None:
      t = jnp.arange(inputs.shape[0])
      cut = (t % truncation == 0) if truncation is not None else jnp.zeros(t.shape, bool)
      final_state, features = self.core.fused_scan(params["core"], state, inputs, cut, unroll,
                                                    kernel)
      return final_state, self.readout(params, features)
    core_step = self.core.step
    if remat:
      core_step = jax.checkpoint(core_step)
    core_params = params["core"]

    def body(carry, xs):
      t, x, delta = xs
      if truncation is not None:
        carry = jax.tree.map(
            lambda s: jnp.where(t % truncation == 0, jax.lax.stop_gradient(s), s), carry)
      if delta is not None:
        carry = jax.tree.map(jnp.add, carry, delta)
      carry, features = core_step(core_params, carry, x)
      return carry, features

    steps = jnp.arange(inputs.shape[0])
    final_state, features = jax.lax.scan(body, state, (steps, inputs, perturbations), unroll=unroll)
    return final_state, self.readout(params, features)
