r"""Copy task (Arjovsky et al. 2016) as in SAB (Ke et al. 2018), Table 2.

    python -m experiments.train --config=experiments/configs/copy.py --workdir=/tmp/copy
    python -m experiments.train --config=experiments/configs/copy.py:sab_t100 --workdir=/tmp/c100

Presets: "quick" (default: T=10, LSTM(128) + BPTT with the loss on the 10 recall steps, reaches
>= 99% last-10 accuracy in about a minute on a 2-core CPU) and "sab_t100" / "sab_t200" / "sab_t300" (the paper's LSTM(128) settings; the
paper reports a full-BPTT LSTM at 99.0% / 87.7% / 42.3% last-10 accuracy on T=100 / 200 / 300).
"""

from tca_jax.config import default_config


def get_config(preset: str = "quick"):
  c = default_config()
  c.task.name = "copy"
  c.model.cell = "lstm"
  c.model.hidden_size = 128
  c.learner.name = "bptt"
  c.train.optimizer = "adam"
  c.train.batch_size = 64
  if preset == "quick":
    c.task.length = 10
    c.task.loss_on = "last10"
    c.train.steps = 1000
    c.train.learning_rate = 1e-2
    c.train.schedule = "cosine"
    c.train.warmup_steps = 50
    c.train.eval_every = 250
  elif preset in ("sab_t100", "sab_t200", "sab_t300"):
    c.task.length = int(preset[-3:])
    c.train.batch_size = 32
    c.train.steps = 100_000
    c.train.learning_rate = 1e-3
    c.train.eval_every = 1000
  else:
    raise ValueError(f"copy config preset {preset!r}; allowed: quick, sab_t100, sab_t200, sab_t300")
  return c
