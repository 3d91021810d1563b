"""Splitting a sequence into update windows and scanning a function over them."""

from __future__ import annotations

from typing import Any, Callable, Tuple

import jax
import jax.numpy as jnp

from tca_jax.types import Batch

# fn(carry, window_batch, window_index) -> (carry, (loss, outputs [W, batch, out], metrics))
WindowFn = Callable[[Any, Batch, jax.Array], Tuple[Any, Tuple[jax.Array, jax.Array, dict]]]


def num_windows(length: int, window: int) -> int:
  return -(-length // window)


def scan_windows(fn: WindowFn, carry, batch: Batch, window: int | None):
  """Runs `fn` over consecutive windows of `window` steps (the last one may be shorter).

  Full windows go through one `lax.scan` (one trace however many windows there are); a shorter
  remainder is one more call.

  Returns:
    `(carry, loss, outputs, metrics)`: losses summed over windows, outputs concatenated to
    `[time, batch, out]`, metrics averaged over windows.
  """
  length = batch.length
  window = length if not window else window
  n, rest = divmod(length, window)
  if n == 1 and rest == 0:
    carry, (loss, outputs, metrics) = fn(carry, batch, jnp.asarray(0))
    return carry, loss, outputs, metrics
  main = jax.tree.map(lambda a: a[:n * window].reshape((n, window) + a.shape[1:]), batch)
  carry, (losses, outputs, metrics) = jax.lax.scan(
      lambda c, xs: fn(c, xs[1], xs[0]), carry, (jnp.arange(n), main))
  loss = jnp.sum(losses)
  outputs = outputs.reshape((n * window,) + outputs.shape[2:])
  metrics = jax.tree.map(lambda m: jnp.sum(m, axis=0), metrics)
  if rest:
    carry, (r_loss, r_out, r_metrics) = fn(carry, batch.window(n * window, length), jnp.asarray(n))
    loss = loss + r_loss
    outputs = jnp.concatenate([outputs, r_out], axis=0)
    metrics = jax.tree.map(jnp.add, metrics, r_metrics)
  metrics = jax.tree.map(lambda m: m / num_windows(length, window), metrics)
  return carry, loss, outputs, metrics
