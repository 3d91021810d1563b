r"""Sequential MNIST (pixels in scanline order), the TPTT paper (Manchev & Spratling 2020) sec. 3.2.

    python -m tca_jax.tasks.data.prepare mnist             # once; building needs tensorflow-cpu
    python -m experiments.train --config=experiments/configs/seq_mnist.py:tptt --workdir=/tmp/sm

A tanh SRN with 100 hidden units, minibatches of 16, up to 1,000,000 iterations (~290 epochs of
the 55k training images here; the paper: ~267 epochs of 60k). Test accuracy targeted (TPTT
Table 6): TPTT 54.20% (alpha_i=1e-7, alpha_f=1e-2, alpha_g=1e-8); from Le et al. (2015): tanh
SRN with BPTT 34.20%, LSTM 65.68%.

Presets: "tptt" (default), "bptt" (tanh SRN, orthogonal W_hh, SGD lr 1e-2 with the trainer's
defaults for momentum and clipping; the paper tuned BPTT's lr on a grid), "lstm" (LSTM(100) with
BPTT and Adam 1e-3), "quick" (tptt for 2000 steps, a smoke test).
"""

from experiments.configs._data import IMAGE_QUICK, apply_preset, image_config

PRESETS = {
    "tptt": {"learner.name": "tptt", "learner.alpha_i": 1e-7, "learner.alpha_f": 1e-2,
             "learner.alpha_g": 1e-8, "train.optimizer": "sgd", "train.learning_rate": 1e-2},
    "bptt": {"train.optimizer": "sgd", "train.learning_rate": 1e-2},
    "lstm": {"model.cell": "lstm", "model.activation": None, "train.optimizer": "adam",
             "train.learning_rate": 1e-3},
    "quick": {"learner.name": "tptt", "learner.alpha_i": 1e-7, "learner.alpha_f": 1e-2,
              "learner.alpha_g": 1e-8, "train.optimizer": "sgd", "train.learning_rate": 1e-2,
              **IMAGE_QUICK},
}


def get_config(preset: str = "tptt"):
  c = image_config("seq_mnist", length=784, hidden=100, batch=16, lr=1e-2, steps=1_000_000)
  c.model.cell = "srn"
  c.model.activation = "tanh"
  c.model.recurrent_init = "orthogonal"
  apply_preset(c, preset, PRESETS)
  return c
