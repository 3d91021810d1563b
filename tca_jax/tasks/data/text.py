"""Character-level language modelling over TFDS: `ptb_char`, `text8`, `tiny_shakespeare`.

A split is one long stream of symbol ids. For a batch of B sequences of T steps the stream is cut
into B contiguous streams (row b starts at b * len / B); batch j holds steps `[j T, (j + 1) T)`
of every row, the input at a step is the one-hot current symbol and the target the next one. The
sequences are non-overlapping and consecutive batches continue each other, so the recurrent
state at the end of one batch is the right state to start the next from: these tasks set
`carries_state` and the trainer carries the learner state (which holds the model state) from
batch to batch. Every step has a loss (mask 1/T).

Where the carried state is reset is `task.reset`:
  "epoch" (default): at the start of every pass over the training text;
  "never": the training text is treated as circular, the state is never reset;
  "batch": every batch starts from the initial state (no carrying).
Every epoch the streams start at a random offset in [0, T) drawn from `(seed, epoch)`, so the
sequence boundaries differ between epochs. Evaluation reads a split from offset 0 with the state
carried over the whole split and reports `bpc`, the mean cross-entropy per symbol in bits.

`ptb_char` and `text8` come from the builders in `builders.py`; `tiny_shakespeare` from the TFDS
catalog (its vocabulary: the sorted characters of its three splits). Each process reads its own
even shard of the chunks of each split (`tfds.split_for_jax_process`).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import ClassVar, Optional

import jax.numpy as jnp
import numpy as np

from tca_jax.registry import ConfigError, check_choice
from tca_jax.tasks import data
from tca_jax.tasks.base import Task
from tca_jax.types import Batch

SPLITS = ("train", "validation", "test")
RESETS = ("epoch", "never", "batch")


@functools.lru_cache(maxsize=None)
def corpus(dataset: str, data_dir=None, manual_dir=None, download=False):
  """`(vocab, {split: ids [N] uint8})` of this process's shard of each split, read once."""
  tfds = data.import_tfds(dataset)
  splits = [tfds.split_for_jax_process(s) for s in SPLITS]
  builder, sources = data.open_sources(dataset, splits, data_dir=data_dir,
                                       manual_dir=manual_dir, download=download)
  if dataset in data.OWN_BUILDERS:
    vocab = tuple(builder.info.metadata["vocab"])
    arrays = [np.concatenate([np.asarray(src[i]["chars"], np.uint8) for i in range(len(src))]
                             or [np.zeros((0,), np.uint8)]) for src in sources]
  else:  # catalog text datasets: one or more examples with a "text" feature
    texts = ["".join(_as_str(src[i]["text"]) for i in range(len(src))) for src in sources]
    vocab = tuple(sorted(set().union(*map(set, texts))))
    index = {c: i for i, c in enumerate(vocab)}
    arrays = [np.fromiter((index[c] for c in t), np.uint8, count=len(t)) for t in texts]
  return vocab, dict(zip(SPLITS, arrays))


def _as_str(x) -> str:
  x = x.item() if isinstance(x, np.ndarray) else x
  return x.decode("utf-8") if isinstance(x, bytes) else str(x)


def streams(ids: np.ndarray, batch_size: int, length: int, offset: int = 0):
  """Inputs and targets `[batch, n * length]` of `batch_size` contiguous streams from `offset`.

  Returns `(x, y, n)` with `y[b, t]` the symbol after `x[b, t]`; n is the number of batches.
  """
  n = (len(ids) - 1 - offset) // (batch_size * length)
  used = batch_size * n * length
  x = ids[offset:offset + used].reshape(batch_size, n * length)
  y = ids[offset + 1:offset + 1 + used].reshape(batch_size, n * length)
  return x, y, n


@dataclasses.dataclass(frozen=True)
class _CharLM(Task):
  """Common part of the char-level LM tasks.

  Attributes:
    length: T, the steps of one sequence (100 for PTB, 180 for text8 in SAB).
    data_dir: where TFDS keeps prepared datasets (None: $TFDS_DATA_DIR or ~/tensorflow_datasets).
    manual_dir: a directory holding the canonical files; if the dataset is not prepared it is
      built from them (offline).
    download: build the dataset by downloading its files if it is not prepared.
    reset: where the carried state is reset: "epoch", "never" or "batch" (see the module doc).
  """

  DATASET: ClassVar[str] = ""
  host_data: ClassVar[bool] = True
  data_dir: Optional[str] = None
  manual_dir: Optional[str] = None
  download: bool = False
  reset: str = "epoch"

  def __post_init__(self):
    super().__post_init__()
    check_choice(self.reset, "task.reset", RESETS)
    if self.manual_dir is not None and self.DATASET not in data.OWN_BUILDERS:
      raise ConfigError(f"task.manual_dir={self.manual_dir!r}: {self.DATASET!r} comes from the "
                        "TFDS catalog and downloads its files; leave task.manual_dir unset")
    self.corpus()  # fails here, before the trainer writes anything, if the data is missing

  def corpus(self):
    return corpus(self.DATASET, self.data_dir, self.manual_dir, self.download)

  @property
  def vocab(self) -> tuple:
    return self.corpus()[0]

  @property
  def input_size(self):
    return len(self.vocab)

  @property
  def output_size(self):
    return len(self.vocab)

  @property
  def carries_state(self):
    return self.reset != "batch"

  def sample(self, key, batch_size, length=None):
    raise NotImplementedError(f"task {self.name!r} reads a dataset: use train_batches")

  def make_batch(self, x, y) -> Batch:
    """`x, y [B, T]` symbol ids -> time-major Batch: one-hot inputs, next-symbol targets."""
    eye = np.eye(self.input_size, dtype=np.float32)
    t = x.shape[1]
    return Batch(eye[x.T], y.T.astype(np.int32), np.full(x.T.shape, 1.0 / t, np.float32))

  def _check_size(self, split, n, batch_size, field):
    if n < 1:
      raise ConfigError(
          f"{field}={batch_size}: {len(self.corpus()[1][split])} symbols of {self.DATASET!r} "
          f"{split} are too few for one batch of {batch_size} x task.length={self.length}")

  def _epoch_streams(self, ids, seed, epoch, batch_size):
    offset = int(np.random.default_rng([seed, epoch]).integers(self.length))
    x, y, n = streams(ids, batch_size, self.length, offset)
    if n < 1:
      x, y, n = streams(ids, batch_size, self.length)
    self._check_size("train", n, batch_size, "train.batch_size")
    return x, y, n

  def train_batches(self, seed: int, batch_size: int, start: int = 0):
    """Endless `(Batch, reset)`; `reset` is True where the carried state must start afresh.

    `start` skips that many batches (resuming a run: the carried state then comes from the
    checkpoint, so the first batch yielded is not a reset unless it starts an epoch).
    """
    ids = self.corpus()[1]["train"]
    epoch, first = 0, start
    while True:
      x, y, n = self._epoch_streams(ids, seed, epoch, batch_size)
      if first >= n:  # skip the whole epoch
        epoch, first = epoch + 1, first - n
        continue
      for j in range(first, n):
        s = slice(j * self.length, (j + 1) * self.length)
        reset = self.reset == "batch" or (j == 0 and self.reset == "epoch")
        yield self.make_batch(x[:, s], y[:, s]), reset
      epoch, first = epoch + 1, 0

  def eval_batches(self, split: str, batch_size: int):
    """One pass over `split` from offset 0; the state is meant to be carried across batches."""
    x, y, n = streams(self.corpus()[1][split], batch_size, self.length)
    self._check_size(split, n, batch_size, "train.eval_batch_size")
    for j in range(n):
      s = slice(j * self.length, (j + 1) * self.length)
      yield self.make_batch(x[:, s], y[:, s])

  def metrics(self, outputs, batch):
    loss = self.sequence_loss(outputs, batch)  # the mean cross-entropy per symbol, in nats
    return {
        "loss": loss,
        "bpc": loss / math.log(2.0),
        "accuracy": jnp.mean(jnp.argmax(outputs, -1) == batch.targets),
    }

  def write_artifacts(self, workdir: str) -> None:
    del workdir


@dataclasses.dataclass(frozen=True)
class PtbChar(_CharLM):
  """Character-level Penn Treebank (SAB Table 3: sequences of 100)."""

  NAME: ClassVar[str] = "ptb_char"
  DATASET: ClassVar[str] = "ptb_char"
  length: int = 100


@dataclasses.dataclass(frozen=True)
class Text8(_CharLM):
  """text8 (SAB Table 3: sequences of 180)."""

  NAME: ClassVar[str] = "text8"
  DATASET: ClassVar[str] = "text8"
  length: int = 180


@dataclasses.dataclass(frozen=True)
class TinyShakespeare(_CharLM):
  """tiny_shakespeare from the TFDS catalog (Karpathy's char-rnn data, 90/5/5 split)."""

  NAME: ClassVar[str] = "tiny_shakespeare"
  DATASET: ClassVar[str] = "tiny_shakespeare"
  length: int = 100


TASKS = (PtbChar, Text8, TinyShakespeare)
