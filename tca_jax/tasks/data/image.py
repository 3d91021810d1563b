"""Pixel-by-pixel image classification over TFDS: `seq_mnist`, `pmnist` and `cifar10`.

An image is read in raster order, one pixel (all its channels, scaled to [0, 1]) per step:
784 steps of 1 input for MNIST, 1024 steps of 3 for CIFAR10. The label is the target at the
last step, where the loss mask is 1 (0 elsewhere). `pmnist` applies one fixed random
permutation to the 784 pixel positions (Le et al. 2015), drawn from `task.permutation_seed`.

Splits: "train" is the TFDS train split less its last `validation_size` images, "validation"
those images, "test" the TFDS test split. Each process reads its own even shard of every split
(`tfds.split_for_jax_process`). Training batches are drawn without replacement, reshuffled every
epoch by a numpy generator seeded with `(seed, epoch)`, the last incomplete batch dropped;
evaluation reads a split once in order, the last batch possibly smaller.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from typing import ClassVar, Optional

import jax.numpy as jnp
import numpy as np

from tca_jax import paths
from tca_jax.registry import ConfigError
from tca_jax.tasks import data
from tca_jax.tasks.base import Task
from tca_jax.types import Batch

SPLITS = ("train", "validation", "test")


@functools.lru_cache(maxsize=8)
def _permutation(seed: int, n: int) -> np.ndarray:
  return np.random.default_rng(seed).permutation(n)


@functools.lru_cache(maxsize=None)
def _sources(dataset, validation_size, data_dir, download, manual_dir=None):
  """Opens the three splits' sources (this process's shard of each) once per process.

  With `manual_dir`, from the standard files there with numpy only (`image_files`); else TFDS.
  """
  if manual_dir is not None:
    import jax  # pylint: disable=g-import-not-at-top
    from tca_jax.tasks.data import image_files  # pylint: disable=g-import-not-at-top
    return image_files.sources(dataset, paths.resolve(manual_dir), validation_size,
                               jax.process_index(), jax.process_count())
  tfds = data.import_tfds(dataset)
  names = {"train": f"train[:-{validation_size}]" if validation_size else "train",
           "validation": f"train[-{validation_size}:]" if validation_size else "test",
           "test": "test"}
  splits = [tfds.split_for_jax_process(names[s]) for s in SPLITS]
  _, sources = data.open_sources(dataset, splits, data_dir=data_dir, download=download)
  return dict(zip(SPLITS, sources))


@dataclasses.dataclass(frozen=True)
class _ImageTask(Task):
  """Common part of the pixel-sequence tasks.

  Attributes:
    length: must be the number of pixels (784 or 1024): one pixel per step.
    data_dir: where TFDS keeps prepared datasets (None: $TFDS_DATA_DIR or ~/tensorflow_datasets).
    download: build the dataset (downloading it; needs TensorFlow) if it is not prepared.
    manual_dir: read the standard distribution files in this directory with numpy instead of
      TFDS (MNIST's four idx .gz files, CIFAR-10's cifar-10-python.tar.gz; `image_files`).
    validation_size: images held out of the end of the train split for validation (0: validate
      on the test split).
  """

  DATASET: ClassVar[str] = ""
  host_data: ClassVar[bool] = True
  SIDE: ClassVar[int] = 28
  CHANNELS: ClassVar[int] = 1
  output_size: ClassVar[int] = 10

  data_dir: Optional[str] = None
  download: bool = False
  validation_size: int = 5000
  manual_dir: Optional[str] = None

  def __post_init__(self):
    pixels = self.SIDE * self.SIDE
    if self.length != pixels:
      raise ConfigError(f"task.length={self.length!r}: task {self.name!r} reads one pixel per "
                        f"step, so task.length must be {pixels}")
    if not isinstance(self.validation_size, int) or self.validation_size < 0:
      raise ConfigError(f"task.validation_size={self.validation_size!r} must be an integer >= 0")
    self.sources()  # fails here, before the trainer writes anything, if the data is missing

  @property
  def input_size(self):
    return self.CHANNELS

  def sources(self):
    return _sources(self.DATASET, self.validation_size, self.data_dir, self.download,
                    self.manual_dir)

  def pixel_order(self) -> np.ndarray:
    """Position in the raster of the pixel read at each step `[T]`."""
    return np.arange(self.length)

  def sample(self, key, batch_size, length=None):
    raise NotImplementedError(f"task {self.name!r} reads a dataset: use train_batches")

  def make_batch(self, images, labels) -> Batch:
    """`images [B, H, W, C] uint8`, `labels [B]` -> a time-major Batch (numpy)."""
    b = images.shape[0]
    x = images.reshape(b, self.length, self.CHANNELS)[:, self.pixel_order()]
    inputs = np.ascontiguousarray(x.transpose(1, 0, 2), dtype=np.float32) / 255.0
    targets = np.zeros((self.length, b), np.int32)
    targets[-1] = labels
    mask = np.zeros((self.length, b), np.float32)
    mask[-1] = 1.0
    return Batch(inputs, targets, mask)

  def _read(self, source, indices) -> Batch:
    examples = [source[int(i)] for i in indices]
    images = np.stack([np.asarray(e["image"]) for e in examples])
    labels = np.asarray([e["label"] for e in examples], np.int32)
    return self.make_batch(images, labels)

  def train_batches(self, seed: int, batch_size: int, start: int = 0):
    """Endless `(Batch, reset=False)`, every epoch a fresh permutation from `(seed, epoch)`.

    `start` skips that many batches without reading them (resuming a run).
    """
    source = self.sources()["train"]
    n = len(source)
    if n < batch_size:
      raise ConfigError(f"train.batch_size={batch_size} exceeds the {n} training images of "
                        f"{self.DATASET!r} this process reads")
    per_epoch = n // batch_size
    epoch, first = divmod(start, per_epoch)
    while True:
      order = np.random.default_rng([seed, epoch]).permutation(n)
      for j in range(first, per_epoch):
        yield self._read(source, order[j * batch_size:(j + 1) * batch_size]), False
      epoch, first = epoch + 1, 0

  def eval_batches(self, split: str, batch_size: int):
    """One ordered pass over `split` ("validation" or "test")."""
    source = self.sources()[split]
    for start in range(0, len(source), batch_size):
      yield self._read(source, range(start, min(start + batch_size, len(source))))

  def metrics(self, outputs, batch):
    return {
        "loss": self.sequence_loss(outputs, batch),
        "accuracy": jnp.mean(jnp.argmax(outputs[-1], -1) == batch.targets[-1]),
    }

  def write_artifacts(self, workdir: str) -> None:
    """Files the run needs besides config.json (none here)."""
    del workdir


@dataclasses.dataclass(frozen=True)
class SeqMnist(_ImageTask):
  """Sequential MNIST: 784 steps of one grey-level pixel, row by row (TPTT paper, sec. 3.2)."""

  NAME: ClassVar[str] = "seq_mnist"
  DATASET: ClassVar[str] = "mnist"
  length: int = 784


@dataclasses.dataclass(frozen=True)
class PMnist(_ImageTask):
  """Permuted MNIST (SAB Table 5): MNIST pixels in one fixed random order.

  Attributes:
    permutation_seed: seed of the numpy generator that draws the permutation of the 784 pixel
      positions (independent of the run's seed, so runs with different seeds see the same task).
      `write_artifacts` saves it to `WORKDIR/permutation.json`.
  """

  NAME: ClassVar[str] = "pmnist"
  DATASET: ClassVar[str] = "mnist"
  length: int = 784
  permutation_seed: int = 0

  def pixel_order(self):
    return _permutation(self.permutation_seed, self.length)

  def write_artifacts(self, workdir):
    paths.write_text_atomic(paths.join(workdir, "permutation.json"), json.dumps(
        {"permutation_seed": self.permutation_seed, "permutation": self.pixel_order().tolist()}))


@dataclasses.dataclass(frozen=True)
class Cifar10(_ImageTask):
  """Pixel-level CIFAR10 (SAB Table 5): 1024 steps of the 3 colour channels of one pixel."""

  NAME: ClassVar[str] = "cifar10"
  DATASET: ClassVar[str] = "cifar10"
  SIDE: ClassVar[int] = 32
  CHANNELS: ClassVar[int] = 3
  length: int = 1024


TASKS = (SeqMnist, PMnist, Cifar10)
