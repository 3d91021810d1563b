"""Sparse Attentive Backtracking (Ke et al. 2018): sparse replay with mental updates.

For a `sab_lstm` (or `attn_lstm`) core, the `sab` learner's update is the gradient of the window
loss along three kinds of path (Section 3.2, Figure 2):

1. the sequential path h_t -> h_{t-1}, cut every `k_trunc` steps (block truncation: the state
   entering step t, counted from the sequence start, is a constant when `t % k_trunc == 0`);
2. the attention at every step, to the memories it selects (at most k_top of them; the
   sparsifier's VJP sends nothing to the others);
3. from each selected memory m_i = h_{t_i} back along the sequential path to the truncation
   boundary before t_i: the "mental update". On that stretch the steps' own attention is
   differentiated too, so credit reaching an earlier memory there is replayed in turn.

With `mental_updates=False` each memory is a leaf (`stop_gradient(h_{t_i})`, Table 4's ablation;
W1 still learns through the cached key W1 m_i). A dense core (`model.k_top=0`) trained by `sab` is
Table 4's "k_top = all" ablation: full self-attention trained with truncation. With `k_trunc >= T`,
the update is the exact BPTT gradient of the model.

Implementation (`backward="replay"`, the default). A forward `lax.scan` keeps the state entering
each step (`[T, batch, H]` twice), the LSTM's gate pre-activations (`[T, batch, 4H]`, unless
`store_gates=False`) and the final memory buffer; a reverse `lax.scan` recomputes each step's
attention from its entering state and the final buffer (slots are written once and a step reads
only slots written before it), takes its VJP, and carries the memory cotangents
`dmem [M, batch, H]`, `dkeys [M, batch, A]`. At the step that wrote slot j, `dmem[j] + dkeys[j]
W1^T` joins the cotangent of h_t: the mental update. For a sparse core the forward pass records
each step's k_top + 1 candidates (`lax.top_k`), and the reverse step differentiates the raw
weights and summary recomputed on those gathered candidates only (the sparsifier's VJP applied to
k_top + 1 entries) and scatter-adds their cotangents into `dmem` / `dkeys`: a reverse step costs
O(k_top (H + A)) per sequence for the attention, plus the LSTM. Memory O(T H + M (H + A)) per
sequence with `store_gates=False`, O(6 T H + M (H + A)) with it. The forward pass scores every
memory written so far at every step, so its cost relative to TBPTT grows with T; from an empty
memory it runs in `forward_chunks` scans, each scoring only the slots that can exist by its end.
Measured memory and time against TBPTT: docs/PERFORMANCE.md. `backward="autodiff"`
differentiates the forward scan with `jax.grad` instead (the reference in the tests; memory
O(T M (H + A)): it stores the buffer at every step; offline only).

Online SAB (`train.update_every = k_trunc`, beyond the original release). Each window is one
truncation block, and the optimizer steps after it while the memories live on in the learner
state. For every block that wrote a memory, the learner state keeps what its replay needs: the
state entering the block and the block's inputs (`Replay`: O(M (2 H + k_trunc * input)) per
sequence, growing with the number of memories, not with T). After a window's own backward pass,
the blocks whose memories received credit are replayed newest first (recompute from the stored
state with the current parameters, then the reverse scan with that credit injected at the writes);
a replay that credits still older memories queues their blocks too, so with the parameters held
fixed the windows' updates sum to the offline gradient exactly. Cost of a window: its own
backward plus one block replay (k_trunc steps of O(M (H + A)) each, forward and backward) per
block holding a memory that some sequence in the batch selected; a block is skipped when its
memories got no credit. Early in training a batch selects nearly every memory, so a sequence
costs O((T / k_trunc)^2) block replays (measured against TBPTT in docs/PERFORMANCE.md). Exact, not
fast. Replays use the current parameters, the forward pass used the parameters
of the time (the approximation online learning always makes).

Modules: `forward` (the window's forward pass and the replay's recomputation, recording an
`Entering` per step), `reverse` (the reverse scan), `replay` (online SAB's stored blocks) and
`learner` (the `SAB` options and state, `window_gradients`, the `autodiff` reference).
"""

from tca_jax.learners.sab.forward import Entering, chunk_bounds, forward_chunks_for
from tca_jax.learners.sab.learner import (BACKWARDS, SAB, SABLearnerState, SABWindow, autodiff,
                                          sab_core, window_gradients)
from tca_jax.learners.sab.replay import Replay

_chunk_bounds = chunk_bounds  # the name the exactness tests import

__all__ = ["BACKWARDS", "Entering", "Replay", "SAB", "SABLearnerState", "SABWindow", "autodiff",
           "chunk_bounds", "forward_chunks_for", "sab_core", "window_gradients"]
