"""MNIST and CIFAR-10 read straight from their standard distribution files, with numpy only.

For compute clusters without TensorFlow, TFDS or a network: with `task.manual_dir=D` the image
tasks read

* MNIST (`seq_mnist`, `pmnist`): `train-images-idx3-ubyte.gz`, `train-labels-idx1-ubyte.gz`,
  `t10k-images-idx3-ubyte.gz`, `t10k-labels-idx1-ubyte.gz` (LeCun's idx files; uncompressed
  copies without `.gz` work too);
* CIFAR-10 (`cifar10`): `cifar-10-python.tar.gz` (Krizhevsky's "python version": five pickled
  training batches and a test batch), or its extracted `cifar-10-batches-py/` directory,

into memory (47 MB / 180 MB of uint8), nothing built or written. `D` may be a bucket
(`gs://...`, through `tca_jax.paths`). The splits are the files' own: train (less its last
`validation_size` images for validation) and test, in file order.

The CIFAR-10 batches are Python pickles, as distributed; read only files from a source you trust.
"""

from __future__ import annotations

import gzip
import io
import pickle
import tarfile

import numpy as np

from tca_jax import paths
from tca_jax.tasks.data import DataError

MNIST_FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
               "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")
CIFAR10_ARCHIVE = "cifar-10-python.tar.gz"
CIFAR10_DIR = "cifar-10-batches-py"
CIFAR10_TRAIN = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR10_TEST = "test_batch"
MANUAL_FILES = {"mnist": ", ".join(MNIST_FILES),
                "cifar10": f"{CIFAR10_ARCHIVE} (or its {CIFAR10_DIR}/ directory)"}

_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4",
               0x0E: ">f8"}


class ArraySource:
  """Random access to in-memory examples, as a `tfds.data_source` gives: `source[i]` is
  `{"image": [H, W, C] uint8, "label": int}`, `len(source)` the number of examples."""

  def __init__(self, images: np.ndarray, labels: np.ndarray):
    if len(images) != len(labels):
      raise ValueError(f"{len(images)} images but {len(labels)} labels")
    self.images, self.labels = images, labels

  def __len__(self):
    return len(self.images)

  def __getitem__(self, i):
    return {"image": self.images[i], "label": int(self.labels[i])}


def parse_idx(data: bytes) -> np.ndarray:
  """An idx file (LeCun's format: 0, 0, dtype code, rank, big-endian int32 dims, the data)."""
  if len(data) < 4 or data[0] or data[1] or data[2] not in _IDX_DTYPES:
    raise ValueError("not an idx file (bad magic number)")
  rank = data[3]
  dims = np.frombuffer(data, ">i4", count=rank, offset=4).astype(int)
  array = np.frombuffer(data, _IDX_DTYPES[data[2]], offset=4 + 4 * rank)
  if array.size != int(np.prod(dims)):
    raise ValueError(f"idx file holds {array.size} values, its header says {tuple(dims)}")
  return array.reshape(dims)


def _read_maybe_gz(directory: str, name: str) -> bytes:
  for candidate, unpack in ((name, gzip.decompress), (name[:-3], lambda b: b)):
    path = paths.join(directory, candidate)
    if paths.exists(path):
      return unpack(paths.read_bytes(path))
  raise FileNotFoundError(name)


def load_mnist(directory: str):
  """`(train_images [60000, 28, 28, 1], train_labels, test_images, test_labels)`, uint8."""
  try:
    arrays = [parse_idx(_read_maybe_gz(directory, name)) for name in MNIST_FILES]
  except (FileNotFoundError, ValueError, OSError, EOFError) as e:
    raise DataError(f"task.manual_dir={directory!r}: cannot read MNIST ({type(e).__name__}: "
                    f"{e}); it needs {MANUAL_FILES['mnist']}") from None
  train_x, train_y, test_x, test_y = arrays
  return train_x[..., None], train_y, test_x[..., None], test_y


def _cifar_batch(data: bytes):
  batch = pickle.loads(data, encoding="bytes")  # the files are Python 2 pickles of bytes keys
  images = np.asarray(batch[b"data"], np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
  return np.ascontiguousarray(images), np.asarray(batch[b"labels"], np.int64)


def load_cifar10(directory: str):
  """`(train_images [50000, 32, 32, 3], train_labels, test_images, test_labels)`, uint8 RGB."""
  try:
    archive = paths.join(directory, CIFAR10_ARCHIVE)
    if paths.exists(archive):
      with tarfile.open(fileobj=io.BytesIO(paths.read_bytes(archive)), mode="r:gz") as tar:
        read = lambda name: tar.extractfile(f"{CIFAR10_DIR}/{name}").read()
        batches = [_cifar_batch(read(n)) for n in CIFAR10_TRAIN + (CIFAR10_TEST,)]
    else:
      folder = paths.join(directory, CIFAR10_DIR)
      batches = [_cifar_batch(paths.read_bytes(paths.join(folder, n)))
                 for n in CIFAR10_TRAIN + (CIFAR10_TEST,)]
  except (FileNotFoundError, KeyError, ValueError, OSError, EOFError, tarfile.TarError,
          pickle.UnpicklingError) as e:
    raise DataError(f"task.manual_dir={directory!r}: cannot read CIFAR-10 ({type(e).__name__}: "
                    f"{e}); it needs {MANUAL_FILES['cifar10']}") from None
  train_x = np.concatenate([b[0] for b in batches[:-1]])
  train_y = np.concatenate([b[1] for b in batches[:-1]])
  return train_x, train_y, batches[-1][0], batches[-1][1]


LOADERS = {"mnist": load_mnist, "cifar10": load_cifar10}


def sources(dataset: str, directory: str, validation_size: int, process_index: int = 0,
            process_count: int = 1) -> dict:
  """`{"train", "validation", "test"}` -> `ArraySource`, this process's even shard of each.

  "validation" is the train files' last `validation_size` images (the test split when 0).
  """
  train_x, train_y, test_x, test_y = LOADERS[dataset](directory)
  if validation_size >= len(train_x):
    raise DataError(f"task.validation_size={validation_size} must be below the {len(train_x)} "
                    f"training images in task.manual_dir={directory!r}")
  cut = len(train_x) - validation_size
  splits = {"train": (train_x[:cut], train_y[:cut]),
            "validation": ((train_x[cut:], train_y[cut:]) if validation_size
                           else (test_x, test_y)),
            "test": (test_x, test_y)}
  out = {}
  for name, (x, y) in splits.items():
    shard = np.array_split(np.arange(len(x)), process_count)[process_index]
    out[name] = ArraySource(x[shard], y[shard])
  return out
