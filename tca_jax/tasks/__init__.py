"""Tasks: `get(name, length=T, **options)` returns a frozen `Task` (see `tasks.base`).

A task samples time-major `Batch`es from a PRNG key, defines the weighted per-step loss
`loss(outputs, targets, mask) -> [...]` that learners consume, and its metrics.
"""

from tca_jax.registry import Registry
from tca_jax.tasks import synthetic
from tca_jax.tasks.base import Task, weighted_mse, weighted_xent

REGISTRY = Registry("task", "task.name")
for _cls in (synthetic.Copy, synthetic.Adding, synthetic.AddingPascanu, synthetic.TemporalOrder,
             synthetic.TemporalOrder3Bit, synthetic.Permutation):
  REGISTRY.register(_cls.NAME)(_cls)
# Real datasets (TFDS, imported lazily: registering them imports neither TFDS nor TensorFlow).
from tca_jax.tasks.data import image as _image, text as _text  # pylint: disable=g-import-not-at-top
for _cls in _image.TASKS + _text.TASKS:
  REGISTRY.register(_cls.NAME)(_cls)

get = REGISTRY.get
names = REGISTRY.names
register = REGISTRY.register

__all__ = ["Task", "get", "names", "register", "weighted_xent", "weighted_mse"]
