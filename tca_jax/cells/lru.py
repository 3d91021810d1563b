"""The Linear Recurrent Unit (Orvieto, Smith, Gu, Fernando, Gulcehre, Pascanu & De 2023), stacked.

Each layer l maps its input `u_t [in_l]` to `z_t [H]` through a complex diagonal linear recurrence
of N = `hidden_size` units and a nonlinear position-wise mixing layer:

    lambda = exp(-exp(nu_log) + i exp(theta_log))                 (exponential parametrisation)
    h_t    = lambda * h_{t-1} + gamma * (u_t B),   gamma = exp(gamma_log)  (normalisation)
    y_t    = Re(h_t C) + u_t D
    z_t    = gelu(y_t W_mix + b_mix) + y_t                         (mixing MLP with a residual)

`B = B_re + i B_im [in_l, N]`, `C = C_re + i C_im [N, H]`, `D [in_l, H]` (dense, as the first
layer's input size differs from H), `H = N` here. Initialisation as in the paper: `|lambda|`
uniform on the ring `[r_min, r_max]` (`nu_log = log(-log r)`, `r = sqrt(U[r_min^2, r_max^2])`),
phase `U[0, max_phase]`, and `gamma_log = log sqrt(1 - |lambda|^2)`. Departures, to keep the cell
small: the mixing layer is a residual GELU MLP (the paper: GLU or MLP with layer/batch norm and
an encoder); no dropout.

The state is one real `[batch, 2N]` array per layer (`[Re h; Im h]`), so every learner that flattens
the state (RTRL, UORO) and every optimizer sees only real numbers; the complex arithmetic happens
inside `layer_step`. `learners.online_diag` (Zucchet et al. 2023) learns lambda, gamma and B of
every layer exactly online from per-unit sensitivities.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp

from tca_jax.cells.base import Cell
from tca_jax.registry import ConfigError, check_positive

# Per-layer parameters of the diagonal recurrence (what `online_diag` carries traces for).
RECURRENT_LEAVES = ("nu_log", "theta_log", "gamma_log", "B_re", "B_im")


@dataclasses.dataclass(frozen=True)
class LRU(Cell):
  """A stack of LRU layers; the state is a tuple of `[batch, 2N]` arrays, features `[batch, N]`.

  Attributes:
    hidden_size: N, complex units per layer (and the layers' output width).
    num_layers: layers stacked (each: LRU + mixing MLP).
    r_min, r_max: the ring of initial eigenvalue moduli, 0 <= r_min < r_max < 1.
    max_phase: initial phases are U[0, max_phase].
  """

  hidden_size: int
  num_layers: int = 1
  r_min: float = 0.0
  r_max: float = 0.99
  max_phase: float = 2 * math.pi

  def __post_init__(self):
    check_positive(self.hidden_size, "model.hidden_size")
    if isinstance(self.num_layers, bool) or not isinstance(self.num_layers, int) or (
        self.num_layers < 1):
      raise ConfigError(f"model.num_layers={self.num_layers!r} must be an integer >= 1")
    if not 0 <= self.r_min < self.r_max < 1:
      raise ConfigError(f"model.r_min={self.r_min!r}, model.r_max={self.r_max!r} must satisfy "
                        "0 <= r_min < r_max < 1")
    check_positive(self.max_phase, "model.max_phase")

  @property
  def feature_size(self) -> int:
    return self.hidden_size

  def init_layer(self, key, input_size: int):
    n = self.hidden_size
    k_r, k_p, k_b, k_c, k_d, k_m = jax.random.split(key, 6)
    u = jax.random.uniform(k_r, (n,))
    r = jnp.sqrt(u * (self.r_max ** 2 - self.r_min ** 2) + self.r_min ** 2)
    nu_log = jnp.log(-jnp.log(r))
    theta_log = jnp.log(self.max_phase * jax.random.uniform(k_p, (n,), minval=1e-4))
    b = jax.random.normal(k_b, (2, input_size, n)) / jnp.sqrt(2 * input_size)
    c = jax.random.normal(k_c, (2, n, n)) / jnp.sqrt(n)
    return {"nu_log": nu_log, "theta_log": theta_log,
            "gamma_log": 0.5 * jnp.log(1 - r ** 2),
            "B_re": b[0], "B_im": b[1], "C_re": c[0], "C_im": c[1],
            "D": jax.random.normal(k_d, (input_size, n)) / jnp.sqrt(input_size),
            "W_mix": jax.random.normal(k_m, (n, n)) / jnp.sqrt(n), "b_mix": jnp.zeros((n,))}

  def init(self, key, input_size: int):
    """`{"layers": [per-layer dict]}`; layer 0 reads `input_size`, the others N."""
    keys = jax.random.split(key, self.num_layers)
    sizes = [input_size] + [self.hidden_size] * (self.num_layers - 1)
    return {"layers": [self.init_layer(k, s) for k, s in zip(keys, sizes)]}

  def initial_state(self, batch_size: int, dtype=None):
    return tuple(jnp.zeros((batch_size, 2 * self.hidden_size), dtype)
                 for _ in range(self.num_layers))

  @staticmethod
  def eigenvalues(lp):
    """`lambda [N]` (complex) of one layer."""
    return jnp.exp(-jnp.exp(lp["nu_log"]) + 1j * jnp.exp(lp["theta_log"]))

  @staticmethod
  def to_complex(s):
    n = s.shape[-1] // 2
    return s[..., :n] + 1j * s[..., n:]

  @staticmethod
  def to_real(h):
    return jnp.concatenate([jnp.real(h), jnp.imag(h)], axis=-1)

  def layer_step(self, lp, s, u, delta=None):
    """One layer, one step: `s [B, 2N]` (real), `u [B, in_l]` -> `(s' [B, 2N], z [B, N])`.

    `delta [B, 2N]`, if given, is added to the new state before the output is read (the
    `online_diag` learner differentiates with respect to it to get `dL_t / dh_t`).
    """
    drive = u @ lp["B_re"] + 1j * (u @ lp["B_im"])
    h = self.eigenvalues(lp) * self.to_complex(s) + jnp.exp(lp["gamma_log"]) * drive
    s_new = self.to_real(h).astype(s.dtype)
    if delta is not None:
      s_new = s_new + delta
    n = self.hidden_size
    y = s_new[:, :n] @ lp["C_re"] - s_new[:, n:] @ lp["C_im"] + u @ lp["D"]
    return s_new, jax.nn.gelu(y @ lp["W_mix"] + lp["b_mix"]) + y

  def step(self, params, state, x, deltas=None):
    """One transition of the stack. Args: state tuple of `[B, 2N]`, x `[B, in]`."""
    new, u = [], x
    for i, (lp, s) in enumerate(zip(params["layers"], state)):
      s, u = self.layer_step(lp, s, u, None if deltas is None else deltas[i])
      new.append(s)
    return tuple(new), u
