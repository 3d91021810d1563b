"""The SAB-augmented LSTM (Ke et al. 2018, Algorithm 1), a recurrent core with a memory.

At step t (0-based, the paper's t + 1), with memories m_i in the memory M:

    h^_t, c_t = LSTMCell(h_{t-1}, c_{t-1}, x_t)                  provisional state
    a_i       = w3 . tanh(W1 m_i + W2 h^_t)                       raw attention, one per memory
    a~        = sparsify(a; k_top)                                 `tca_jax.ops.sparsify`
    s_t       = sum_i a~_i m_i                                     summary
    h_t       = h^_t + s_t
    features  = concat(h_t, s_t)                                   [batch, 2H]
    if (t + 1) % k_att == 0:  M.append(h_t)

The model's linear readout of the features is `y_t = V1 h_t + V2 s_t + b` (Algorithm 1, line 10).
The attention MLP has no biases, as Algorithm 1 writes it; its hidden width is `attention_size`.

Memory layout (jit-friendly): a fixed buffer `memory [max_memories, batch, H]`, the cached keys
`keys [max_memories, batch, A] = W1 m_i` (computed once, when m_i is written, so a step costs
O(|M| (A + H)) per sequence, not O(|M| A H)), and a count. Slots `>= count` are masked (raw weight
`-inf`). When the buffer is full, later writes are dropped: the memory keeps the first
`max_memories` states (size it as `ceil(sequence_length / k_att)`; a longer evaluation sequence,
Table 6's transfer, keeps only the first ones). Slots are written once, which is what lets the
`sab` learner recompute a step from the final buffer.

Credit (`sab_credit`): which memories the backward pass reaches through the sparsifier.
"paper" (the default) follows sec. 3.2: gradient flows to the at-most k_top selected memories
(their values and keys) and no others, the threshold raw weight being a constant of the backward
pass. "exact" is the derivative of Algorithm 1 as written: the (k_top+1)-th memory, the
threshold, also gets gradient through its key. The authors' release (PyTorch autograd through an
undetached threshold) computed "exact", so the paper's tables come from that variant; see
`tca_jax.ops.sparse_attention`. Dense attention (`k_top` unset) has no threshold: both agree.

Fewer than k_top + 1 memories (the first k_top * k_att steps): the sparsifier's threshold does not
exist and the weights are a softmax over the memories present (see `tca_jax.ops.sparsify`); with
no memory the summary is zero. `k_top=None` (or 0 from a config) replaces the sparsifier by a
softmax over all memories: dense attention (Table 4's "k_top = all" ablation, and `attn_lstm`).

The step counter `t` and the `count` are float scalars in the state (not int32) so that every
state leaf is differentiable-typed (the gradient diagnostics perturb every leaf); they hold
integers exactly up to 2^24 steps in float32.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple, Optional

import jax
import jax.numpy as jnp

from tca_jax.backend import only_where  # pylint: disable=unused-import
from tca_jax.cells.base import Cell
from tca_jax.cells import initializers
from tca_jax.cells.lstm import LSTM, LSTMState
from tca_jax.ops import sparse_attention
from tca_jax.registry import ConfigError, check_choice, check_positive


class SABState(NamedTuple):
  h: jax.Array  # [batch, H]  final state h_t
  c: jax.Array  # [batch, H]  LSTM cell state
  memory: jax.Array  # [max_memories, batch, H]
  keys: jax.Array  # [max_memories, batch, A]  W1 m_i, cached at write time
  count: jax.Array  # [] float: memories written (slots < count are valid)
  t: jax.Array  # [] float: steps taken since the sequence start


@dataclasses.dataclass(frozen=True)
class SABLSTM(Cell):
  """LSTM + sparse attention over every k_att-th past state (Algorithm 1).

  Attributes:
    hidden_size: H.
    k_top: memories selected per step; None or 0: dense softmax attention over all memories.
    k_att: a state joins the memory after every k_att-th step.
    max_memories: memory slots (buffer size); writes beyond it are dropped.
    attention_size: A, hidden width of the attention MLP (None: H).
    sparsify: "paper" (subtract the (k_top+1)-th raw weight: k_top active memories) or
      "release" (the original code: subtract the k_top-th, leaving k_top - 1 active).
    sab_credit: "paper" (gradient to the selected memories only, sec. 3.2) or "exact" (the
      threshold memory too, as the release's autograd computed).
    recurrent_init, init_scale, forget_bias: as in `LSTM`.
  """

  hidden_size: int
  k_top: Optional[int] = 5
  k_att: int = 5
  max_memories: int = 128
  attention_size: Optional[int] = None
  sparsify: str = "paper"
  sab_credit: str = "paper"
  recurrent_init: str = "orthogonal"
  init_scale: Optional[float] = None
  forget_bias: float = 1.0

  def __post_init__(self):
    check_positive(self.hidden_size, "model.hidden_size")
    for field in ("k_att", "max_memories"):
      value = getattr(self, field)
      if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigError(f"model.{field}={value!r} must be an integer >= 1")
    if self.attention_size is not None:
      check_positive(self.attention_size, "model.attention_size")
    check_choice(self.sparsify, "model.sparsify", sparse_attention.MODES)
    check_choice(self.sab_credit, "model.sab_credit", sparse_attention.CREDITS)
    if self.k_top:
      low = 2 if self.sparsify == "release" else 1
      if (not isinstance(self.k_top, int) or isinstance(self.k_top, bool)
          or not low <= self.k_top <= self.max_memories):
        raise ConfigError(
            f"model.k_top={self.k_top!r} must be an integer in [{low}, model.max_memories="
            f"{self.max_memories}] (or 0 for dense attention)")
    check_choice(self.recurrent_init, "model.recurrent_init", initializers.RECURRENT_INITS)

  @property
  def dense(self) -> bool:
    return not self.k_top

  @property
  def feature_size(self) -> int:
    return 2 * self.hidden_size

  @property
  def attn_size(self) -> int:
    return self.attention_size or self.hidden_size

  @property
  def lstm(self) -> LSTM:
    return LSTM(self.hidden_size, self.recurrent_init, self.init_scale, self.forget_bias)

  def init(self, key, input_size: int):
    """Returns `{"lstm": LSTM params, "attn": {"W1": [H, A], "W2": [H, A], "w3": [A]}}`."""
    k_lstm, k1, k2, k3 = jax.random.split(key, 4)
    h, a = self.hidden_size, self.attn_size
    return {
        "lstm": self.lstm.init(k_lstm, input_size),
        "attn": {
            "W1": jax.random.normal(k1, (h, a)) / jnp.sqrt(h),
            "W2": jax.random.normal(k2, (h, a)) / jnp.sqrt(h),
            "w3": jax.random.normal(k3, (a,)) / jnp.sqrt(a),
        },
    }

  def initial_state(self, batch_size: int, dtype=None) -> SABState:
    h, m, a = self.hidden_size, self.max_memories, self.attn_size
    zero = jnp.zeros((), dtype)
    return SABState(jnp.zeros((batch_size, h), dtype), jnp.zeros((batch_size, h), dtype),
                    jnp.zeros((m, batch_size, h), dtype), jnp.zeros((m, batch_size, a), dtype),
                    zero, zero)

  # The pieces of a step, also used by the `sab` learner's hand-written backward pass.

  def provisional(self, params, h, c, x):
    """LSTM transition: `(h_{t-1}, c_{t-1}, x_t) -> (h^_t, c_t)`, each `[batch, H]`."""
    state, _ = self.lstm.step(params["lstm"], LSTMState(h, c), x)
    return state.h, state.c

  def attention_logits(self, params, h_hat, keys, count):
    """Raw weights `[batch, M]`; slots `>= count` hold `-inf`."""
    q = h_hat @ params["attn"]["W2"]  # [B, A]
    a = jnp.tanh(keys + q[None]) @ params["attn"]["w3"]  # [M, B]
    valid = jnp.arange(keys.shape[0]) < count
    return jnp.where(valid[:, None], a, -jnp.inf).T

  def weights(self, params, h_hat, keys, count):
    """Sparsified (or dense softmax) attention weights `[batch, M]`."""
    a = self.attention_logits(params, h_hat, keys, count)
    if self.dense:
      valid = jnp.isfinite(a)
      e = jnp.where(valid, jnp.exp(jnp.where(valid, a, 0.0) - jnp.max(
          jnp.where(valid, a, 0.0), -1, keepdims=True)), 0.0)
      z = jnp.sum(e, -1, keepdims=True)
      return e / jnp.where(z > 0, z, 1.0)
    return sparse_attention.sparsify(a, self.k_top, self.sparsify, self.sab_credit)

  def attend(self, params, h_hat, memory, keys, count):
    """`(summary s_t [batch, H], weights [batch, M])`."""
    w = self.weights(params, h_hat, keys, count)
    return jnp.einsum("bm,mbh->bh", w, memory), w

  def summary(self, params, h_hat, memory, keys, count):
    """The summary s_t `[batch, H]` alone, computed sparsely for a sparse core.

    Same value (and gradient) as `attend(...)[0]`, but the k_top + 1 best raw weights are
    recomputed on memories gathered by `lax.top_k` and only k_top memories are summed, so neither
    the forward summary nor its backward pass touches the other slots.
    """
    if self.dense:
      return self.attend(params, h_hat, memory, keys, count)[0]
    idx, valid = self.select(params, h_hat, keys, count)
    return self.gathered_summary(params, h_hat, memory, keys, idx, valid)

  def select(self, params, h_hat, keys, count):
    """The k_top + 1 best slots (no gradient): `(idx [batch, k+1] int32, valid [batch, k+1])`."""
    raw = jax.lax.stop_gradient(self.attention_logits(params, h_hat, keys, count))
    vals, idx = jax.lax.top_k(sparse_attention.pad_to(raw, self.k_top + 1), self.k_top + 1)
    return jnp.minimum(idx, keys.shape[0] - 1), jnp.isfinite(vals)  # padded entries: an existing slot

  def gathered_summary(self, params, h_hat, memory, keys, idx, valid):
    """s_t from the candidates `idx` of `select` (differentiable in all but idx and valid)."""
    rows = jnp.arange(h_hat.shape[0])[:, None]
    return self.candidate_summary(params["attn"], h_hat, memory[idx, rows], keys[idx, rows],
                                  valid)

  def candidate_summary(self, attn, h_hat, memory_sel, keys_sel, valid):
    """s_t from gathered candidates.

    Args:
      attn: the attention parameters (`params["attn"]`).
      h_hat: `[batch, H]` provisional state.
      memory_sel, keys_sel: `[batch, k_top + 1, H]`, `[batch, k_top + 1, A]` the candidates'
        memories and cached keys, largest raw weight first (as `select` orders them).
      valid: `[batch, k_top + 1]` which candidates exist.
    """
    q = h_hat @ attn["W2"]
    a = jnp.tanh(keys_sel + q[:, None]) @ attn["w3"]  # [B, k+1]
    w = sparse_attention.weights_of_top(jnp.where(valid, a, -jnp.inf), self.k_top,
                                        self.sparsify, self.sab_credit)
    # The threshold candidate weighs 0. A broadcast product over all k+1 candidates (not an
    # einsum over the first k) keeps the backward pass free of transposes and pads, which took
    # 21 ms of a 330 ms `sab` window gradient at T=300 on the CPU (docs/PERFORMANCE.md).
    w = jnp.concatenate([w, jnp.zeros_like(w[:, :1])], axis=1)
    return jnp.sum(w[:, :, None] * memory_sel, axis=1)

  def writes(self, t, count):
    """Whether step t (0-based) appends its state: `(t + 1) % k_att == 0` and a slot is free."""
    return (jnp.mod(t + 1, self.k_att) == 0) & (count < self.max_memories)

  def write(self, params, memory, keys, count, t, h):
    """Appends `h [batch, H]` (and its key `h W1`) at slot `count` if step t writes."""
    do = self.writes(t, count)
    slot = jnp.minimum(count, self.max_memories - 1).astype(jnp.int32)
    row = jnp.where(do, h, memory[slot])
    # keys[slot] is sliced outside the cond, which would otherwise copy the whole buffer.
    key_row = only_where(do, lambda: h @ params["attn"]["W1"], keys[slot])
    memory = jax.lax.dynamic_update_index_in_dim(memory, row, slot, 0)
    keys = jax.lax.dynamic_update_index_in_dim(keys, key_row, slot, 0)
    return memory, keys, count + do.astype(count.dtype)

  def step(self, params, state: SABState, x):
    """One step of Algorithm 1. Returns `(state, features [batch, 2H] = concat(h_t, s_t))`."""
    h_hat, c = self.provisional(params, state.h, state.c, x)
    s = self.summary(params, h_hat, state.memory, state.keys, state.count)
    h = h_hat + s
    memory, keys, count = self.write(params, state.memory, state.keys, state.count, state.t, h)
    return SABState(h, c, memory, keys, count, state.t + 1), jnp.concatenate([h, s], -1)

  has_attention_map = True

  def hidden(self, state: SABState):
    return state.h

  def attention_map(self, params, inputs, dtype=None):
    """Forward pass from the initial state returning the attention weights `[T, batch, M]`."""
    state = self.initial_state(inputs.shape[1], dtype or inputs.dtype)

    def body(state, x):
      h_hat, c = self.provisional(params, state.h, state.c, x)
      s, w = self.attend(params, h_hat, state.memory, state.keys, state.count)
      h = h_hat + s
      memory, keys, count = self.write(params, state.memory, state.keys, state.count, state.t, h)
      return SABState(h, c, memory, keys, count, state.t + 1), w

    return jax.lax.scan(body, state, inputs)[1]

  def recurrent_matrix(self, params):
    """`[H, H]`: the cell-candidate (g) block of the LSTM's `W_h` (square, for the spectral
    radius diagnostic; the full `W_h` is `[H, 4H]`)."""
    h = self.hidden_size
    return params["lstm"]["W_h"][:, 2 * h:3 * h]
