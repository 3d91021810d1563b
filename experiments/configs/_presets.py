"""Presets shared by the synthetic-task configs."""

from tca_jax.config import default_config


def quick_lstm(task: str, length: int, steps: int):
  """A CPU-sized LSTM(64) + BPTT + Adam run of `task` at T=`length`."""
  c = default_config()
  c.task.name = task
  c.task.length = length
  c.model.cell = "lstm"
  c.model.hidden_size = 64
  c.learner.name = "bptt"
  c.train.steps = steps
  c.train.batch_size = 32
  c.train.learning_rate = 3e-3
  c.train.eval_every = 250
  return c


def paper_srn(task: str, learning_rate: float):
  """The TPTT paper's BPTT baseline (sec. 3.1): SRN(100) tanh with orthogonal init, batch 20,
  SGD with Nesterov momentum 0.9 and no clipping, up to 100,000 iterations from T=10, validated
  every 100 iterations."""
  c = default_config()
  c.task.name = task
  c.task.length = 10
  c.model.cell = "srn"
  c.model.hidden_size = 100
  c.model.recurrent_init = "orthogonal"
  c.learner.name = "bptt"
  c.train.optimizer = "sgd"
  c.train.momentum = 0.9
  c.train.nesterov = True
  c.train.clip_norm = 0.0
  c.train.batch_size = 20
  c.train.learning_rate = learning_rate
  c.train.steps = 100_000
  c.train.eval_every = 100
  return c


def choose(family: str, preset: str, presets: dict):
  """`presets[preset]()`, or a ValueError naming the allowed presets."""
  if preset not in presets:
    raise ValueError(f"{family} config preset {preset!r}; allowed: {', '.join(presets)}")
  return presets[preset]()
