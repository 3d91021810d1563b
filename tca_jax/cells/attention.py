"""`attn_lstm`: an LSTM with dense (softmax) self-attention over all its past states.

The baseline "LSTM + full self-attention" of SAB (Ke et al. 2018, Tables 2-6), trained with full
BPTT (`learner.name=bptt`). It is the SAB-augmented LSTM (`tca_jax.cells.sab`) with the sparsifier
replaced by a softmax over every memory and every state stored (`k_att = 1`):

    h^_t, c_t = LSTMCell(h_{t-1}, c_{t-1}, x_t);   a_i = w3 . tanh(W1 h_i + W2 h^_t),  i < t
    s_t = sum_i softmax(a)_i h_i;   h_t = h^_t + s_t;   features = concat(h_t, s_t)

`max_memories` must cover the sequence (T + 20 for copy); a step costs O(t (A + H)) per sequence
and BPTT through it stores O(T * max_memories) activations per sequence.
"""

from __future__ import annotations

import dataclasses
from typing import Optional

from tca_jax.cells.sab import SABLSTM


@dataclasses.dataclass(frozen=True)
class AttnLSTM(SABLSTM):
  """LSTM + dense softmax self-attention over every past state (see `SABLSTM` for fields)."""

  k_top: Optional[int] = None
  k_att: int = 1
  max_memories: int = 128
