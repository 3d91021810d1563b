r"""Adding problem, two variants.

    python -m experiments.train --config=experiments/configs/adding.py --workdir=/tmp/add
    python -m experiments.train --config=experiments/configs/adding.py:pascanu --workdir=/tmp/addp

Presets: "quick" (default: the SAB/Hochreiter variant, `adding`, T=50, LSTM(64) + BPTT; target
X1 + X2) and "pascanu" (the TPTT paper's `adding_pascanu`, T=10 with the paper's SRN(100), batch
20, SGD + Nesterov 0.9, lr 0.001; the paper's BPTT reached t_max = 90, Table 1). `accuracy` is the
fraction of samples with absolute error below 0.04.
"""

from tca_jax.config import default_config


def get_config(preset: str = "quick"):
  c = default_config()
  c.learner.name = "bptt"
  if preset == "quick":
    c.task.name = "adding"
    c.task.length = 50
    c.model.cell = "lstm"
    c.model.hidden_size = 64
    c.train.steps = 2000
    c.train.batch_size = 32
    c.train.learning_rate = 3e-3
    c.train.eval_every = 250
  elif preset == "pascanu":
    c.task.name = "adding_pascanu"
    c.task.length = 10
    c.model.cell = "srn"
    c.model.hidden_size = 100
    c.train.optimizer = "sgd"
    c.train.momentum = 0.9
    c.train.clip_norm = 0.0
    c.train.batch_size = 20
    c.train.learning_rate = 1e-3
    c.train.steps = 100_000
    c.train.eval_every = 100
  else:
    raise ValueError(f"adding config preset {preset!r}; allowed: quick, pascanu")
  return c
