"""Shared settings of the real-dataset configs (see docs/DATASETS.md for preparing the data)."""

from experiments.configs import recipes
from tca_jax.config import default_config


def _reader_config(name, length, hidden, batch, lr, steps, eval_batch_size):
  """LSTM + BPTT with Adam, evaluated on whole validation and test splits."""
  c = default_config()
  c.task.name = name
  c.task.length = length
  c.model.cell = "lstm"
  c.model.hidden_size = hidden
  c.learner.name = "bptt"
  c.train.optimizer = "adam"
  c.train.learning_rate = lr
  c.train.batch_size = batch
  c.train.steps = steps
  c.train.log_every = 100
  c.train.eval_every = 2000
  c.train.eval_batch_size = eval_batch_size
  c.train.eval_batches = 0  # the whole validation split
  c.train.test_batches = 0  # the whole test split
  return c


def lm_config(name: str, length: int, hidden: int, batch: int, lr: float, steps: int):
  """A char-level LM: LSTM + BPTT over windows of `length`, state carried between batches (the
  evaluation streams keep the training batch size)."""
  return _reader_config(name, length, hidden, batch, lr, steps, eval_batch_size=batch)


def image_config(name: str, length: int, hidden: int, batch: int, lr: float, steps: int):
  """Pixel-by-pixel classification, the label at the last step; validation is the 5000
  held-out training images."""
  return _reader_config(name, length, hidden, batch, lr, steps, eval_batch_size=500)


# "quick" presets: smoke tests of a few hundred steps, not paper numbers.
LM_QUICK = {"model.hidden_size": 128, "train.steps": 300, "train.eval_every": 100,
            "train.log_every": 50}
IMAGE_QUICK = {"train.steps": 2000, "train.eval_every": 500, "train.eval_batches": 2,
               "train.test_batches": 4}


def apply_preset(c, preset: str, presets: dict):
  """Sets the fields of `presets[preset]` on `c` (a ValueError lists the presets)."""
  if preset not in presets:
    raise ValueError(f"preset {preset!r}; allowed: {', '.join(presets)}")
  return recipes.override(c, presets[preset])
