r"""Character-level Penn Treebank, SAB (Ke et al. 2018) Table 3, after Cooijmans et al. (2016).

    python -m tca_jax.tasks.data.prepare ptb_char          # once (or set task.manual_dir)
    python -m experiments.train --config=experiments/configs/ptb_char.py --workdir=/tmp/ptb
    python -m experiments.train --config=experiments/configs/ptb_char.py:tbptt20 --workdir=/tmp/p20

LSTM(1000), Adam lr 0.002, batches of 32 non-overlapping sequences of 100 characters, the state
carried from batch to batch, 100 epochs (~156k steps of ~1563 per epoch; the paper stops early
on validation BPC, here the run's best `eval` bpc is what to read). Test BPC targeted
(SAB Table 3): full BPTT 1.36; TBPTT k=1 / 5 / 20: 1.47 / 1.44 / 1.40; SAB (k_trunc=20,
k_top=10, k_att=20) 1.37.

Presets: "bptt" (default), "tbptt1", "tbptt5", "tbptt20" (gradients truncated to k steps, one
update per batch of sequences), "sab" (needs the SAB learner), "quick" (LSTM(128), 300 steps: a
smoke test, not a paper number).
"""

from experiments.configs._data import LM_QUICK, apply_preset, lm_config

PRESETS = {
    "bptt": {},
    "tbptt1": {"learner.name": "tbptt", "learner.truncation": 1},
    "tbptt5": {"learner.name": "tbptt", "learner.truncation": 5},
    "tbptt20": {"learner.name": "tbptt", "learner.truncation": 20},
    "sab": {"model.cell": "sab_lstm", "model.k_top": 10, "model.k_att": 20,
            "learner.name": "sab", "learner.k_trunc": 20},
    "quick": LM_QUICK,
}


def get_config(preset: str = "bptt"):
  c = lm_config("ptb_char", length=100, hidden=1000, batch=32, lr=2e-3, steps=156_300)
  apply_preset(c, preset, PRESETS)
  return c
