r"""text8, SAB (Ke et al. 2018) Table 3, split as Mikolov et al. (2012): 90M / 5M / 5M characters.

    python -m tca_jax.tasks.data.prepare text8             # once (or set task.manual_dir)
    python -m experiments.train --config=experiments/configs/text8.py --workdir=/tmp/text8

LSTM(1000), batches of 64 non-overlapping sequences of 180 characters, the state carried from
batch to batch, 30 epochs (~234k steps of ~7812 per epoch). The paper gives no learning rate for
text8; this uses PTB's Adam 0.002. Test BPC targeted (SAB Table 3): full BPTT 1.42, TBPTT k=5
1.56, SAB (k_trunc=10, k_top=10, k_att=10) 1.45, SAB (k_trunc=20, k_top=10, k_att=20) 1.44.

Presets: "bptt" (default), "tbptt5", "sab", "quick" (LSTM(128), 300 steps: a smoke test).
"""

from experiments.configs._data import LM_QUICK, apply_preset, lm_config

PRESETS = {
    "bptt": {},
    "tbptt5": {"learner.name": "tbptt", "learner.truncation": 5},
    "sab": {"model.cell": "sab_lstm", "model.k_top": 10, "model.k_att": 20,
            "learner.name": "sab", "learner.k_trunc": 20},
    "quick": {**LM_QUICK, "train.eval_batches": 20, "train.test_batches": 20},
}


def get_config(preset: str = "bptt"):
  c = lm_config("text8", length=180, hidden=1000, batch=64, lr=2e-3, steps=234_400)
  apply_preset(c, preset, PRESETS)
  return c
