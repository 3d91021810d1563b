r"""Pixel-by-pixel CIFAR10 (no permutation), SAB (Ke et al. 2018) Table 5.

    python -m tca_jax.tasks.data.prepare cifar10           # once; building needs tensorflow-cpu
    python -m experiments.train --config=experiments/configs/cifar10.py --workdir=/tmp/cifar

1024 steps of the 3 colour channels of one pixel; LSTM(128), Adam lr 0.001 (SAB's settings for
its image tasks); batch 32 (not given by the paper), ~100 epochs of the 45k training images (5k
held out for validation). Test accuracy targeted (SAB Table 5): full BPTT 58.3%, TBPTT k=300
51.3%, SAB (k_trunc=16, k_top=10, k_att=16) 64.5%, Transformer 62.2%.

Presets: "bptt" (default), "tbptt300", "sab" (needs the SAB learner), "quick" (1000 steps).
"""

from experiments.configs._data import IMAGE_QUICK, apply_preset, image_config

PRESETS = {
    "bptt": {},
    "tbptt300": {"learner.name": "tbptt", "learner.truncation": 300},
    "sab": {"model.cell": "sab_lstm", "model.k_top": 10, "model.k_att": 16,
            "learner.name": "sab", "learner.k_trunc": 16},
    "quick": {**IMAGE_QUICK, "train.steps": 1000},
}


def get_config(preset: str = "bptt"):
  c = image_config("cifar10", length=1024, hidden=128, batch=32, lr=1e-3, steps=140_700)
  apply_preset(c, preset, PRESETS)
  return c
