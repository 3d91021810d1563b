r"""Temporal order (Hochreiter & Schmidhuber 1997), as in the TPTT paper (sec. 3.1).

    python -m experiments.train --config=experiments/configs/temporal_order.py --workdir=/tmp/to
    python -m experiments.train --config=experiments/configs/temporal_order.py:paper_bptt \
        --workdir=/tmp/to_bptt --config.task.length=120

Presets: "quick" (default: T=20, LSTM(64) + BPTT with Adam; solves it on a CPU in a few minutes)
and "paper_bptt" (the TPTT paper's BPTT baseline: SRN(100) tanh, orthogonal init, batch 20, SGD
with Nesterov momentum 0.9, lr 1e-5 (Table 1: BPTT reached t_max = 120 within 100,000
iterations).
"""

from tca_jax.config import default_config

TASK = "temporal_order"


def get_config(preset: str = "quick"):
  c = default_config()
  c.task.name = TASK
  c.learner.name = "bptt"
  if preset == "quick":
    c.task.length = 20
    c.model.cell = "lstm"
    c.model.hidden_size = 64
    c.train.steps = 2000
    c.train.batch_size = 32
    c.train.learning_rate = 3e-3
    c.train.eval_every = 250
  elif preset == "paper_bptt":
    c.task.length = 10
    c.model.cell = "srn"
    c.model.hidden_size = 100
    c.model.recurrent_init = "orthogonal"
    c.train.optimizer = "sgd"
    c.train.momentum = 0.9
    c.train.nesterov = True
    c.train.clip_norm = 0.0
    c.train.batch_size = 20
    c.train.learning_rate = 1e-5
    c.train.steps = 100_000
    c.train.eval_every = 100
  else:
    raise ValueError(f"{TASK} config preset {preset!r}; allowed: quick, paper_bptt")
  return c
