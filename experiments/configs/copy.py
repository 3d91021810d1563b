r"""Copy task (Arjovsky et al. 2016) as in SAB (Ke et al. 2018), Table 2.

    python -m experiments.train --config=experiments/configs/copy.py --workdir=/tmp/copy
    python -m experiments.train --config=experiments/configs/copy.py:sab_t100 --workdir=/tmp/c100

Presets: "quick" (default: T=10, LSTM(128) + BPTT with the loss on the 10 recall steps, reaches
>= 99% last-10 accuracy in about a minute on a 2-core CPU) and "sab_t100" / "sab_t200" /
"sab_t300" (the SAB paper's LSTM(128) setup, `recipes.sab_paper`, trained with full BPTT; the
paper's Table 2 reports a full-BPTT LSTM at 99.8% / 56.0% / 35.9% last-10 accuracy on
T = 100 / 200 / 300).
"""

from experiments.configs import recipes
from tca_jax.config import default_config

QUICK = {"task.length": 10, "task.loss_on": "last10", "model.hidden_size": 128,
         "train.batch_size": 64, "train.steps": 1000, "train.learning_rate": 1e-2,
         "train.schedule": "cosine", "train.warmup_steps": 50, "train.eval_every": 250}


def _quick():
  c = recipes.override(default_config(), QUICK)
  recipes.lstm_bptt(c)
  return c


def _sab_paper(length):
  def make():
    c = recipes.sab_paper("copy", length)
    recipes.lstm_bptt(c)
    return c
  return make


PRESETS = {"quick": _quick, "sab_t100": _sab_paper(100), "sab_t200": _sab_paper(200),
           "sab_t300": _sab_paper(300)}


def get_config(preset: str = "quick"):
  return recipes.choose("copy", preset, PRESETS)
