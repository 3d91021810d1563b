r"""Random permutation problem, as in the TPTT paper (sec. 3.1).

    python -m experiments.train --config=experiments/configs/permutation.py --workdir=/tmp/perm

Presets: "quick" (default: T=20, LSTM(64) + BPTT with Adam) and "paper_bptt" (SRN(100), batch 20,
SGD + Nesterov 0.9, lr 0.01; the paper's BPTT reached t_max = 70, Table 1).
"""

from tca_jax.config import default_config


def get_config(preset: str = "quick"):
  c = default_config()
  c.task.name = "permutation"
  c.learner.name = "bptt"
  if preset == "quick":
    c.task.length = 20
    c.model.cell = "lstm"
    c.model.hidden_size = 64
    c.train.steps = 1000
    c.train.batch_size = 32
    c.train.learning_rate = 3e-3
    c.train.eval_every = 250
  elif preset == "paper_bptt":
    c.task.length = 10
    c.model.cell = "srn"
    c.model.hidden_size = 100
    c.train.optimizer = "sgd"
    c.train.momentum = 0.9
    c.train.clip_norm = 0.0
    c.train.batch_size = 20
    c.train.learning_rate = 0.01
    c.train.steps = 100_000
    c.train.eval_every = 100
  else:
    raise ValueError(f"permutation config preset {preset!r}; allowed: quick, paper_bptt")
  return c
