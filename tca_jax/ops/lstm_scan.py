"""The LSTM over a whole window as one op with a hand-written VJP (what cuDNN does).

    lstm_scan(W_x, W_h, b, h0, c0, xs, cut) -> (hs [T, B, H], (h_T, c_T))

Forward: a scan of `x_t W_x + h_{t-1} W_h + b` and the gates' elementwise update, storing each
step's activated gates and cell state. (The input projections of all steps as one GEMM before the
scan, as cuDNN does, measured slower on XLA:CPU: see `_forward`.) Backward (a custom VJP of the
whole scan): a reverse scan that holds only the cell's backward from the stored gates and
`dz_t W_h^T`; the weight gradients then come as one GEMM over all steps each (`W_h`:
`[H, T B] x [T B, 4H]`; `W_x`; `b` a sum), and the inputs' cotangent `dz W_x^T` likewise.

`cut [T]` (bool) is block truncation: where `cut[t]`, the state entering step t is a constant
(`stop_gradient`), so no cotangent flows from step t to step t - 1 (TBPTT, SAB's `k_trunc`).

The cell is `tca_jax.cells.lstm.LSTM`'s (gates i, f, g, o; no peepholes); `lstm_cell_backward`
is its backward from stored activations, shared with the `sab` learner's reverse scan. Equal to
autodiff of the cell's scan in float64: `tests/test_lstm_scan.py`. Measurements:
docs/PERFORMANCE.md.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from tca_jax.ops import native


class Activations(NamedTuple):
  """What the backward pass of one step needs, `[..., B, H]` each (`[..., B, 4H]` for `gates`).

  Attributes:
    gates: the activated gates `[sigmoid(i), sigmoid(f), tanh(g), sigmoid(o)]`, `[..., B, 4H]`.
    c: the cell state leaving the step.
  """

  gates: jax.Array
  c: jax.Array


def lstm_cell_forward(z, c_prev):
  """One LSTM update from the pre-activations `z [B, 4H]`: `(h, c, Activations)`."""
  hsz = c_prev.shape[-1]
  sig = jax.nn.sigmoid(z)
  g = jnp.tanh(z[..., 2 * hsz:3 * hsz])
  i, f, o = sig[..., :hsz], sig[..., hsz:2 * hsz], sig[..., 3 * hsz:]
  c = f * c_prev + i * g
  h = o * jnp.tanh(c)
  gates = jnp.concatenate([i, f, g, o], axis=-1)
  return h, c, Activations(gates, c)


def lstm_cell_backward(act: Activations, c_prev, dh, dc):
  """The cell's backward from stored activations: `(dz [B, 4H], dc_prev [B, H])`.

  Args:
    act: the step's `Activations` (activated gates, cell state leaving the step).
    c_prev: `[B, H]` the cell state entering the step.
    dh, dc: `[B, H]` cotangents of the step's h and c.
  """
  hsz = c_prev.shape[-1]
  gates = act.gates
  i, f, g, o = (gates[..., k * hsz:(k + 1) * hsz] for k in range(4))
  tc = jnp.tanh(act.c)
  dc = dc + dh * o * (1 - tc * tc)
  dz = jnp.concatenate([dc * g * i * (1 - i), dc * c_prev * f * (1 - f), dc * i * (1 - g * g),
                        dh * tc * o * (1 - o)], axis=-1)
  return dz, dc * f


def _forward(w_x, w_h, b, h0, c0, xs, unroll):
  # `x_t W_x` stays inside the loop: projecting all steps first (one [T B, in] x [in, 4H] GEMM)
  # made the step 1.3x slower on XLA:CPU, whose elementwise fusions then read the step's slice
  # of the [T, B, 4H] projections in place (docs/PERFORMANCE.md).
  def body(carry, x):
    h, c = carry
    h, c, act = lstm_cell_forward(x @ w_x + h @ w_h + b, c)
    return (h, c), (h, act)

  (h, c), (hs, acts) = jax.lax.scan(body, (h0, c0), xs, unroll=unroll)
  return hs, (h, c), acts


def lstm_scan(w_x, w_h, b, h0, c0, xs, cut, unroll: int = 1, kernel: str = "xla"):
  """The LSTM over a window. Returns `(hs [T, B, H], (h_T, c_T))`.

  Args:
    w_x: `[in, 4H]`; w_h: `[H, 4H]`; b: `[4H]` (gates i, f, g, o).
    h0, c0: `[B, H]` the state entering the window.
    xs: `[T, B, in]`.
    cut: `[T]` bool: where True, the state entering that step is a constant (no cotangent
      flows back through it).
    unroll: the scans' unroll factor.
    kernel: "xla" (the scans above) or "native": both scans as one `jax.ffi` call each
      (`tca_jax.ops.native.lstm_forward` / `lstm_backward`, a BLAS GEMM per step), the input
      projections as one GEMM before; the same residuals and gradients. CPU only: other
      platforms, or a native build that failed (one logged warning), run "xla".
  """
  if kernel not in ("xla", "native"):
    raise ValueError(f"kernel={kernel!r}; allowed: xla, native")
  if kernel == "native" and not (jax.default_backend() == "cpu" and native.available()):
    kernel = "xla"
  return _lstm_scan((unroll, kernel), w_x, w_h, b, h0, c0, xs, cut)


def _forward_native(w_x, w_h, b, h0, c0, xs):
  t_len, batch = xs.shape[:2]
  xproj = (xs.reshape(t_len * batch, -1) @ w_x + b).reshape(t_len, batch, -1)
  hs, gates, cs = native.lstm_forward(xproj, w_h, h0, c0)
  return hs, (hs[-1], cs[-1]), Activations(gates, cs)


def _reverse_native(w_h, c0, cut, dhs, acts, dh_t, dc_t):
  keep = jnp.logical_not(cut)
  return native.lstm_backward(dhs, acts.gates, acts.c, c0, w_h, keep, dh_t, dc_t)


def _make(key):
  unroll, kernel = key

  def forward(w_x, w_h, b, h0, c0, xs):
    if kernel == "native":
      return _forward_native(w_x, w_h, b, h0, c0, xs)
    return _forward(w_x, w_h, b, h0, c0, xs, unroll)

  @jax.custom_vjp
  def f(w_x, w_h, b, h0, c0, xs, cut):
    hs, final, _ = forward(w_x, w_h, b, h0, c0, xs)
    return hs, final

  def fwd(w_x, w_h, b, h0, c0, xs, cut):
    hs, final, acts = forward(w_x, w_h, b, h0, c0, xs)
    return (hs, final), (w_x, w_h, h0, c0, xs, cut, hs, acts)

  def bwd(res, cot):
    w_x, w_h, h0, c0, xs, cut, hs, acts = res
    dhs, (dh_t, dc_t) = cot
    t_len, batch = xs.shape[:2]
    c_prev = jnp.concatenate([c0[None], acts.c[:-1]])
    w_h_t = w_h.T

    def body(carry, s):
      dh, dc = carry
      dhs_t, act, cp, cut_t = s
      dz, dc_prev = lstm_cell_backward(act, cp, dh + dhs_t, dc)
      dh_prev = dz @ w_h_t
      keep = jnp.logical_not(cut_t).astype(dz.dtype)
      return (dh_prev * keep, dc_prev * keep), dz

    if kernel == "native":
      dz, dh0, dc0 = _reverse_native(w_h, c0, cut, dhs, acts, dh_t, dc_t)
    else:
      (dh0, dc0), dz = jax.lax.scan(
          body, (dh_t, dc_t), (dhs, acts, c_prev, cut), reverse=True, unroll=unroll)
    h_prev = jnp.concatenate([h0[None], hs[:-1]])
    dz2 = dz.reshape(t_len * batch, -1)
    d_w_h = h_prev.reshape(t_len * batch, -1).T @ dz2
    d_w_x = xs.reshape(t_len * batch, -1).T @ dz2
    d_b = jnp.sum(dz2, axis=0)
    d_xs = (dz2 @ w_x.T).reshape(xs.shape)
    # The final carry is the entering state's cotangent (zero if the first step is cut).
    return d_w_x, d_w_h, d_b, dh0, dc0, d_xs, None

  f.defvjp(fwd, bwd)
  return f


_CACHE = {}


def _lstm_scan(key, *args):
  if key not in _CACHE:
    _CACHE[key] = _make(key)
  return _CACHE[key](*args)
