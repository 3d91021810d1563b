"""Pure recurrent cells: `init(key, input_size)`, `initial_state(batch)`, `step(p, s, x)`.

A cell is a frozen dataclass subclassing `Cell` (`tca_jax/cells/base.py`, the interface with
defaults for the optional members):

    init(key, input_size) -> params                         a pytree
    initial_state(batch_size, dtype=None) -> state          a pytree of [batch, ...] arrays
    step(params, state, x [batch, in]) -> (state, features [batch, feature_size])
    feature_size: int                                        what the readout sees
    recurrent_matrix(params) -> [H, H] or None               for spectral-radius diagnostics
    hidden(state) -> [batch, H]                              h_t inside a state
    frozen_params: tuple                                     core params no learner updates
                                                             (the esn's "W_hh"; see model.frozen)

`get(name, **options)` builds one by its config name (`model.cell`).
"""

from tca_jax.cells.base import Cell
from tca_jax.cells.gru import GRU
from tca_jax.cells.lstm import LSTM, LSTMState
from tca_jax.cells.rnn import SRN
from tca_jax.cells.attention import AttnLSTM
from tca_jax.cells.esn import ESN, OrthogonalRNN
from tca_jax.cells.leaky import LeakySRN
from tca_jax.cells.lru import LRU
from tca_jax.cells.sab import SABLSTM, SABState
from tca_jax.cells.flax_cell import FlaxCell
from tca_jax.registry import Registry

REGISTRY = Registry("cell", "model.cell")
REGISTRY.register("srn")(SRN)
REGISTRY.register("lstm")(LSTM)
REGISTRY.register("gru")(GRU)
REGISTRY.register("sab_lstm")(SABLSTM)
REGISTRY.register("attn_lstm")(AttnLSTM)
REGISTRY.register("leaky_srn")(LeakySRN)
REGISTRY.register("esn")(ESN)
REGISTRY.register("orthogonal")(OrthogonalRNN)
REGISTRY.register("lru")(LRU)
REGISTRY.register("flax")(FlaxCell)  # a flax.linen / flax.nnx cell (Flax imported on use)

get = REGISTRY.get
names = REGISTRY.names
register = REGISTRY.register

__all__ = ["Cell", "SRN", "LSTM", "LSTMState", "GRU", "SABLSTM", "SABState", "AttnLSTM", "LeakySRN",
           "ESN", "OrthogonalRNN", "LRU", "FlaxCell", "get", "names", "register"]
