"""Native CPU kernels through `jax.ffi`, compiled on first use (`native_kernels.cc`).

    bmm_diag(a [..., n, k], m [..., k, p], d [..., n], u [..., q]) -> [..., n, p]
      out[b] = a[b] @ m[b];  out[b, j, i n + j] += d[b, j] u[b, i]   (p = q n)

    lstm_forward(xproj [T, B, 4H], w_h, h0, c0) -> (hs, gates, cs)
    lstm_backward(dhs, gates, cs, c0, w_h, keep, dh_T, dc_T) -> (dz [T, B, 4H], dh0, dc0)

The first is RTRL's SRN influence update `M_t = (D_t W_hh^T) M_{t-1} + F_t` (`learners/rtrl.py`) in one
pass: the batched GEMM by BLAS, the immediate term `F_t` (a diagonal per `u` block) added in
place after each example's GEMM instead of as a `[B, H, K, H]` tensor.

Why not XLA's dot: XLA:CPU runs the batched dot `[32, 64, 64] @ [32, 64, 4800]` at about a
third of OpenBLAS's rate (NumPy's matmul of the same operands), and no XLA flag (oneDNN, XNNPACK,
YNN fusion off) changes that (docs/PERFORMANCE.md, "Native kernels"). Why BLAS and not
hand-written loops: a GEMM near the machine's peak needs packing, register blocking and threads
per microarchitecture, which OpenBLAS already has; the BLAS is the one SciPy ships (SciPy is a
dependency of jax), reached through the Fortran `sgemm` / `dgemm` pointers in
`scipy.linalg.cython_blas.__pyx_capi__`, so nothing new is linked or installed.

Build: the first call compiles the shipped source with the system C++ compiler (`$TCA_JAX_CXX`,
else `$CXX`, else `g++`) and jax's FFI headers into `$TCA_JAX_NATIVE_CACHE` (default
`~/.cache/tca_jax/native`)`/<hash of source, flags, compiler, jax version>/`, to a temporary name
then `os.replace`, so two processes compiling at once (pytest -n 2) each install a complete
library. Where that fails (no compiler, no BLAS) `available()` is False with one logged warning and
callers keep the XLA path. Only CPU: callers pick the kernel with `jax.lax.platform_dependent`.

The LSTM pair is the recurrent core of `ops/lstm_scan.py`'s fused scan (its custom VJP calls
them; the weight gradients stay XLA GEMMs there): one call per window instead of a scan whose
every step is several small XLA:CPU thunks, one BLAS GEMM per step.

No derivative rule: RTRL's influence recursion is not differentiated (its gradient is the forward
contraction), so `jax.grad` through `bmm_diag` is an error rather than a silent wrong answer.
`vmap` broadcasts every operand's new axis (the kernel flattens all leading axes into its batch).
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import os
import subprocess
import tempfile
import threading
from typing import Optional

import jax
import jax.numpy as jnp

_SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "native_kernels.cc")
_FLAGS = ("-O3", "-shared", "-fPIC", "-std=c++17", "-w")
_TARGETS = {jnp.dtype("float32"): "tca_bmm_diag_f32", jnp.dtype("float64"): "tca_bmm_diag_f64"}
_SYMBOLS = {"tca_bmm_diag_f32": "TcaBmmDiagF32", "tca_bmm_diag_f64": "TcaBmmDiagF64",
            "tca_lstm_forward_f32": "TcaLstmForwardF32", "tca_lstm_forward_f64": "TcaLstmForwardF64",
            "tca_lstm_backward_f32": "TcaLstmBackwardF32",
            "tca_lstm_backward_f64": "TcaLstmBackwardF64"}

_lock = threading.Lock()
_state: dict = {}  # "ok": bool once tried; "lib": the loaded library (kept alive)


def compiler() -> str:
  return os.environ.get("TCA_JAX_CXX") or os.environ.get("CXX") or "g++"


def cache_dir() -> str:
  return os.environ.get("TCA_JAX_NATIVE_CACHE") or os.path.join(
      os.path.expanduser("~"), ".cache", "tca_jax", "native")


def _library_path() -> str:
  with open(_SOURCE, "rb") as f:
    source = f.read()
  digest = hashlib.sha256(b"\0".join(
      [source, " ".join(_FLAGS).encode(), compiler().encode(), jax.__version__.encode()]))
  return os.path.join(cache_dir(), digest.hexdigest()[:16], "tca_native.so")


def _build(path: str) -> None:
  """Compiles the source to `path` unless it is there (atomic; safe across processes)."""
  if os.path.exists(path):
    return
  os.makedirs(os.path.dirname(path), exist_ok=True)
  fd, tmp = tempfile.mkstemp(suffix=".so", dir=os.path.dirname(path))
  os.close(fd)
  try:
    cmd = [compiler(), *_FLAGS, "-I", jax.ffi.include_dir(), _SOURCE, "-o", tmp]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
      raise RuntimeError(f"{' '.join(cmd)} failed: {proc.stderr.strip()[-2000:]}")
    os.replace(tmp, path)
  finally:
    if os.path.exists(tmp):
      os.remove(tmp)


def _blas_pointer(name: str) -> int:
  from scipy.linalg import cython_blas  # pylint: disable=g-import-not-at-top
  capsule = cython_blas.__pyx_capi__[name]
  get_name = ctypes.pythonapi.PyCapsule_GetName
  get_name.restype, get_name.argtypes = ctypes.c_char_p, [ctypes.py_object]
  get_pointer = ctypes.pythonapi.PyCapsule_GetPointer
  get_pointer.restype, get_pointer.argtypes = ctypes.c_void_p, [ctypes.py_object, ctypes.c_char_p]
  return get_pointer(capsule, get_name(capsule))


def _load() -> None:
  path = _library_path()
  _build(path)
  lib = ctypes.CDLL(path)
  lib.tca_set_blas.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
  lib.tca_set_blas(_blas_pointer("sgemm"), _blas_pointer("dgemm"))
  for target, symbol in _SYMBOLS.items():
    jax.ffi.register_ffi_target(target, jax.ffi.pycapsule(getattr(lib, symbol)), platform="cpu")
  _state["lib"] = lib


def available() -> bool:
  """Whether the kernels are built and registered (builds them on the first call).

  Never raises: a failed build logs one warning and returns False from then on.
  """
  with _lock:
    if "ok" not in _state:
      try:
        _load()
        _state["ok"] = True
      except Exception as e:  # pylint: disable=broad-except
        logging.warning("tca_jax native kernels unavailable, using XLA instead: %s", e)
        _state["ok"] = False
    return _state["ok"]


def bmm_diag(a: jax.Array, m: jax.Array, d: jax.Array, u: Optional[jax.Array] = None
             ) -> jax.Array:
  """`a @ m` per leading index, plus `d[j] u[i]` at `[j, i n + j]` (CPU only; see the module).

  Args:
    a: `[..., n, k]`.
    m: `[..., k, p]`, same leading shape and dtype (float32 or float64).
    d: `[..., n]`.
    u: `[..., q]` with `q n = p`; None for the plain batched product.

  Returns:
    `[..., n, p]`.
  """
  if u is None:
    u = jnp.zeros(a.shape[:-2] + (0,), a.dtype)
  if not available():
    raise RuntimeError("tca_jax native kernels are unavailable (see the logged warning)")
  out = jax.ShapeDtypeStruct(a.shape[:-1] + m.shape[-1:], m.dtype)
  call = jax.ffi.ffi_call(_TARGETS[jnp.dtype(m.dtype)], out, vmap_method="broadcast_all")
  return call(a, m, d, u)


def _suffix(dtype) -> str:
  return {"float32": "f32", "float64": "f64"}[jnp.dtype(dtype).name]


def lstm_forward(xproj, w_h, h0, c0):
  """The LSTM's forward over a window from its input projections (CPU only).

  Args:
    xproj: `[T, B, 4H]` = `x_t W_x + b` (gates i, f, g, o).
    w_h: `[H, 4H]`; h0, c0: `[B, H]`.

  Returns:
    `(hs [T, B, H], gates [T, B, 4H] activated, cs [T, B, H] the cell states leaving each step)`.
  """
  if not available():
    raise RuntimeError("tca_jax native kernels are unavailable (see the logged warning)")
  t, b, h4 = xproj.shape
  sds = lambda *shape: jax.ShapeDtypeStruct(shape, xproj.dtype)
  call = jax.ffi.ffi_call("tca_lstm_forward_" + _suffix(xproj.dtype),
                          (sds(t, b, h4 // 4), sds(t, b, h4), sds(t, b, h4 // 4)),
                          vmap_method="sequential")
  return call(xproj, w_h, h0, c0)


def lstm_backward(dhs, gates, cs, c0, w_h, keep, dh_t, dc_t):
  """The LSTM's reverse scan from stored activations (CPU only).

  Args:
    dhs: `[T, B, H]` cotangents of the outputs; gates, cs: `lstm_forward`'s.
    c0: `[B, H]`; w_h: `[H, 4H]`.
    keep: `[T]`, 0 where the state entering step t is cut (no cotangent flows back), else 1.
    dh_t, dc_t: `[B, H]` cotangents of the final state.

  Returns:
    `(dz [T, B, 4H] pre-activation cotangents, dh0 [B, H], dc0 [B, H])`.
  """
  if not available():
    raise RuntimeError("tca_jax native kernels are unavailable (see the logged warning)")
  sds = lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype)
  call = jax.ffi.ffi_call("tca_lstm_backward_" + _suffix(gates.dtype),
                          (sds(gates), sds(c0), sds(c0)), vmap_method="sequential")
  return call(dhs, gates, cs, c0, w_h, keep.astype(gates.dtype), dh_t, dc_t)


def bmm_diag_reference(a, m, d, u=None):
  """`bmm_diag` in jax.numpy (XLA's dot): the fallback and the tests' reference."""
  out = jnp.einsum("...ji,...ip->...jp", a, m)
  if u is None or u.shape[-1] == 0:
    return out
  n = a.shape[-2]
  eye = jnp.eye(n, dtype=m.dtype)
  imm = d[..., :, None, None] * u[..., None, :, None] * eye[:, None, :]  # [..., n, q, n]
  return out + imm.reshape(out.shape)
