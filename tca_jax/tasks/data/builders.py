"""TFDS builders for character-level Penn Treebank (`ptb_char`) and `text8`.

Neither is in the TFDS catalog. Both store a split as its symbols mapped to integer ids
(`uint8`), cut in order into chunks of `CHUNK` symbols (one example per chunk, key = chunk
index, shuffling disabled so reading the examples in order gives the text back). The vocabulary
(sorted symbols of all three splits) is stored in `info.metadata["vocab"]`.

The builders use only numpy and the TFDS core: building them needs no TensorFlow. Each reads its
canonical files from `task.manual_dir` when they are there (offline), else downloads them.

Importing this module imports `tensorflow_datasets` and registers the two builders with it.
"""

from __future__ import annotations

import io
import os
import tarfile
import zipfile

import numpy as np
import tensorflow_datasets as tfds

from tca_jax import paths

CHUNK = 1 << 20
EOL = "\n"  # ptb_char's end-of-sentence symbol

MANUAL_FILES = {
    "ptb_char": "ptb.char.train.txt, ptb.char.valid.txt and ptb.char.test.txt (or "
                "simple-examples.tgz)",
    "text8": "text8 (or text8.zip)",
}


# The files one build reads from a manual_dir: the first alternative whose files are all there.
SOURCE_FILES = {
    "ptb_char": (("ptb.char.train.txt", "ptb.char.valid.txt", "ptb.char.test.txt"),
                 ("simple-examples.tgz",)),
    "text8": (("text8",), ("text8.zip",)),
}


def source_files(dataset: str, manual_dir: str):
  """The files of `manual_dir` a build of `dataset` reads, or None if none of its sets is there."""
  for names in SOURCE_FILES[dataset]:
    if all(os.path.isfile(os.path.join(manual_dir, n)) for n in names):
      return names
  return None


def ptb_symbols(text: str) -> list:
  """PTB's char files hold space-separated symbols ('_' separates words), a sentence per line.

  Returns the symbols with `EOL` closing each non-empty line.
  """
  out = []
  for line in text.splitlines():
    symbols = line.split()
    if symbols:
      out.extend(symbols)
      out.append(EOL)
  return out


def ptb_text(symbols) -> str:
  """Inverse of `ptb_symbols` up to whitespace: one sentence per line, symbols space-separated."""
  return " ".join(symbols).replace(f" {EOL} ", "\n").replace(f" {EOL}", "\n")


def encode(symbols, vocab) -> np.ndarray:
  """Symbol ids `[N] uint8`; `symbols` is a list of strings or (text8) one ASCII string."""
  if isinstance(symbols, str) and symbols.isascii():  # 100M characters: a table lookup
    table = np.zeros(128, np.uint8)
    table[[ord(c) for c in vocab]] = np.arange(len(vocab))
    return table[np.frombuffer(symbols.encode("ascii"), np.uint8)]
  index = {s: i for i, s in enumerate(vocab)}
  return np.fromiter((index[s] for s in symbols), dtype=np.uint8, count=len(symbols))


class _CharBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
  """Shared part: integer symbol chunks, a vocabulary in the metadata, order kept."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Initial release."}
  HOMEPAGE = ""
  DESCRIPTION = ""

  def _info(self):
    return tfds.core.DatasetInfo(
        builder=self,
        description=self.DESCRIPTION,
        features=tfds.features.FeaturesDict(
            {"chars": tfds.features.Tensor(shape=(None,), dtype=np.uint8)}),
        homepage=self.HOMEPAGE,
        metadata=tfds.core.MetadataDict(),
        disable_shuffling=True,
    )

  def _manual_dir(self, dl_manager):
    try:
      return dl_manager.manual_dir
    except (AssertionError, ValueError):  # not given, or empty
      return None

  def _splits(self, dl_manager) -> dict:
    """{"train": symbols, "validation": ..., "test": ...}: lists of strings, or strings."""
    raise NotImplementedError

  def _split_generators(self, dl_manager):
    splits = self._splits(dl_manager)
    vocab = sorted(set().union(*(set(s) for s in splits.values())))
    if len(vocab) > 256:
      raise ValueError(f"{self.name}: {len(vocab)} symbols do not fit in uint8")
    self.info.metadata["vocab"] = vocab
    return {name: self._generate_examples(encode(symbols, vocab))
            for name, symbols in splits.items()}

  def _generate_examples(self, ids):
    for i, start in enumerate(range(0, len(ids), CHUNK)):
      yield i, {"chars": ids[start:start + CHUNK]}


def _read(path) -> str:
  raw = paths.read_bytes(path)  # local or gs://
  try:
    return raw.decode("utf-8")
  except UnicodeDecodeError as e:  # name the file and the line, not a byte offset in a traceback
    line = raw[:e.start].count(b"\n") + 1
    raise ValueError(f"{path}, line {line}: not UTF-8 text ({e.reason} at byte {e.start})"
                     ) from None


class PtbChar(_CharBuilder):
  """Character-level Penn Treebank (Mikolov et al. 2012): ptb.char.{train,valid,test}.txt.

  Symbols are the files' space-separated tokens ('_' between words) plus an end-of-sentence
  symbol per line, as the files are usually read; about 5.0M / 0.39M / 0.44M symbols.
  """

  DESCRIPTION = "Character-level Penn Treebank from Mikolov's simple-examples."
  HOMEPAGE = "http://www.fit.vutbr.cz/~imikolov/rnnlm/"
  URL = "http://www.fit.vutbr.cz/~imikolov/rnnlm/simple-examples.tgz"
  MANUAL_DOWNLOAD_INSTRUCTIONS = (
      "Place ptb.char.train.txt, ptb.char.valid.txt and ptb.char.test.txt (from "
      "simple-examples/data/ of simple-examples.tgz), or simple-examples.tgz itself, in the "
      "manual_dir.")
  FILES = {"train": "ptb.char.train.txt", "validation": "ptb.char.valid.txt",
           "test": "ptb.char.test.txt"}

  def _splits(self, dl_manager):
    manual = self._manual_dir(dl_manager)
    if manual is not None:
      manual = str(manual)
      if all(paths.exists(paths.join(manual, f)) for f in self.FILES.values()):
        return {s: ptb_symbols(_read(paths.join(manual, f))) for s, f in self.FILES.items()}
      tgz = paths.join(manual, "simple-examples.tgz")
      if not paths.exists(tgz):
        raise FileNotFoundError(f"{manual} holds neither {', '.join(self.FILES.values())} nor "
                                "simple-examples.tgz")
    else:
      tgz = str(dl_manager.download(self.URL))
    with tarfile.open(fileobj=io.BytesIO(paths.read_bytes(tgz))) as tar:
      # The archive's members are ./simple-examples/data/ptb.char.*.txt; match on the file name.
      members = {os.path.basename(m.name): m for m in tar.getmembers() if m.isfile()}
      missing = [f for f in self.FILES.values() if f not in members]
      if missing:
        raise FileNotFoundError(f"{tgz} holds no {', '.join(missing)}")
      return {s: ptb_symbols(tar.extractfile(members[f]).read().decode())
              for s, f in self.FILES.items()}


class Text8(_CharBuilder):
  """text8 (Mahoney 2006): the first 1e8 characters of cleaned English Wikipedia, a-z and space.

  Train / validation / test are the first 90%, the next 5% and the last 5% of the characters
  (90M / 5M / 5M for the canonical file, the split of Mikolov et al. 2012 used by SAB).
  """

  DESCRIPTION = "text8: 100M characters of cleaned Wikipedia (lowercase letters and space)."
  HOMEPAGE = "http://mattmahoney.net/dc/textdata.html"
  URL = "http://mattmahoney.net/dc/text8.zip"
  MANUAL_DOWNLOAD_INSTRUCTIONS = "Place text8 (or text8.zip) in the manual_dir."

  def _splits(self, dl_manager):
    manual = self._manual_dir(dl_manager)
    if manual is not None:
      manual = str(manual)
      if paths.exists(paths.join(manual, "text8")):
        text = _read(paths.join(manual, "text8"))
      elif paths.exists(paths.join(manual, "text8.zip")):
        text = _unzip(paths.join(manual, "text8.zip"))
      else:
        raise FileNotFoundError(f"{manual} holds neither text8 nor text8.zip")
    else:
      text = _unzip(str(dl_manager.download(self.URL)))
    n = len(text)
    a, b = n * 90 // 100, n * 95 // 100
    return {"train": text[:a], "validation": text[a:b], "test": text[b:]}


def _unzip(path) -> str:
  with zipfile.ZipFile(io.BytesIO(paths.read_bytes(path))) as z:
    return z.read("text8").decode("utf-8")


BUILDERS = {"ptb_char": PtbChar, "text8": Text8}
