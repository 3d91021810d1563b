r"""Permuted pixel-by-pixel MNIST, SAB (Ke et al. 2018) Table 5.

    python -m tca_jax.tasks.data.prepare mnist             # once; building needs tensorflow-cpu
    python -m experiments.train --config=experiments/configs/pmnist.py --workdir=/tmp/pmnist

LSTM(128), Adam lr 0.001, one fixed permutation of the 784 pixels (`task.permutation_seed`,
saved to WORKDIR/permutation.json), ~100 epochs of the 55k training images (5k held out for
validation). The paper gives no batch size; 32 is used here. Test accuracy targeted (SAB
Table 5): full BPTT 90.3%; SAB 89.8% (k_trunc=20, k_top=5), 90.9% (20, 10), 94.2% (50, 10).

Presets: "bptt" (default), "sab" (k_trunc=20, k_top=10, k_att=20; needs the SAB learner),
"quick" (2000 training steps, a smoke test).
"""

from experiments.configs._data import IMAGE_QUICK, apply_preset, image_config

PRESETS = {
    "bptt": {},
    "sab": {"model.cell": "sab_lstm", "model.k_top": 10, "model.k_att": 20,
            "learner.name": "sab", "learner.k_trunc": 20},
    "quick": IMAGE_QUICK,
}


def get_config(preset: str = "bptt"):
  c = image_config("pmnist", length=784, hidden=128, batch=32, lr=1e-3, steps=172_000)
  c.task.permutation_seed = 0
  apply_preset(c, preset, PRESETS)
  return c
