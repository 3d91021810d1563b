"""Real datasets through tensorflow-datasets (TFDS): image classification and char-level LMs.

Nothing here imports TFDS or TensorFlow at module import: `import tca_jax` and the synthetic tasks
work without them. The tasks import `tensorflow_datasets` when they are built, and read prepared
datasets with `tfds.data_source` (random access to ArrayRecord files): **reading needs no
TensorFlow**. Building (`python -m tca_jax.tasks.data.prepare NAME`) needs no TensorFlow for the
char-level builders defined here (`ptb_char`, `text8`); the TFDS catalog builders of `mnist`,
`cifar10` and `tiny_shakespeare` use TensorFlow to decode/encode files, so building those needs
`tensorflow-cpu`. See docs/DATASETS.md.

Host-side tasks differ from the synthetic ones in how batches are made: instead of a jitted
`sample(key, batch, length)` they expose numpy iterators,

    train_batches(seed, batch_size) -> iterator of (Batch, reset)   endless, reshuffled per epoch
    eval_batches(split, batch_size) -> iterator of Batch            one pass over "validation"/"test"

where `reset` says that a task carrying the recurrent state from batch to batch must start this
batch from a fresh state.
"""

from __future__ import annotations

import json
import os
import socket

from absl import logging

from tca_jax import paths
from tca_jax.registry import ConfigError

# Datasets with a builder in `tca_jax.tasks.data.builders` (not in the TFDS catalog).
OWN_BUILDERS = ("ptb_char", "text8")
# Image datasets the tasks can also read from their standard files (`image_files`), numpy only.
IMAGE_FILES = {"mnist": "train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, "
                        "t10k-images-idx3-ubyte.gz and t10k-labels-idx1-ubyte.gz",
               "cifar10": "cifar-10-python.tar.gz"}
# Where each dataset downloads from: checked with a short timeout before downloading, because
# TFDS's downloader retries for minutes when there is no network.
DOWNLOAD_HOSTS = {
    "ptb_char": ("www.fit.vutbr.cz", 80),
    "text8": ("mattmahoney.net", 80),
    "mnist": ("storage.googleapis.com", 443),
    "cifar10": ("www.cs.toronto.edu", 443),
    "tiny_shakespeare": ("raw.githubusercontent.com", 443),
}


class DataError(ConfigError):
  """A dataset is missing or unreadable; the one-line message says how to prepare it."""


def import_tfds(dataset: str):
  """`tensorflow_datasets`, or a `DataError` naming the extra to install."""
  try:
    import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  except ImportError:
    raise DataError(
        f"task.name: dataset {dataset!r} needs tensorflow-datasets; install it with "
        "pip install 'tca-jax[data]'") from None
  return tfds


def resolve_data_dir(data_dir: str | None) -> str:
  """`task.data_dir`, else $TFDS_DATA_DIR, else ~/tensorflow_datasets (TFDS's own default)."""
  return os.path.expanduser(data_dir or os.environ.get("TFDS_DATA_DIR")
                            or "~/tensorflow_datasets")


def prepare_hint(dataset: str, data_dir: str) -> str:
  """How to prepare `dataset` into `data_dir` (for error messages and docs)."""
  cmd = f"python -m tca_jax.tasks.data.prepare {dataset} --data_dir={data_dir}"
  if dataset in OWN_BUILDERS:
    from tca_jax.tasks.data import builders  # pylint: disable=g-import-not-at-top
    files = builders.MANUAL_FILES[dataset]
    return (f"prepare it with `{cmd}` (downloads) or put {files} in a directory D and set "
            f"task.manual_dir=D (builds offline)")
  offline = (f"; or, with no TFDS or TensorFlow at all, put {IMAGE_FILES[dataset]} in a "
             "directory D and set task.manual_dir=D" if dataset in IMAGE_FILES else "")
  return (f"prepare it with `{cmd}` (downloads; building {dataset} needs tensorflow-cpu) or set "
          f"task.download=True{offline}")


def make_builder(dataset: str, data_dir: str, file_format: str | None = None):
  """The TFDS builder of `dataset` (ours for ptb_char/text8, else the catalog's).

  `file_format` is for building; reading takes the format of what is on disk (TFDS refuses a
  builder whose format differs from the prepared dataset's).
  """
  tfds = import_tfds(dataset)
  kwargs = {"file_format": file_format} if file_format else {}
  if dataset in OWN_BUILDERS:
    from tca_jax.tasks.data import builders  # pylint: disable=g-import-not-at-top
    return builders.BUILDERS[dataset](data_dir=data_dir, **kwargs)
  return tfds.builder(dataset, data_dir=data_dir, **kwargs)


SOURCE_RECORD = "tca_jax_source.json"


def _source(dataset: str, manual_dir: str | None) -> dict:
  """What a build reads: `{"manual_dir": abs path, "files": {name: bytes}}`, or a download.

  Raises:
    DataError: `manual_dir` is set (even to "") but is not a directory holding the files a build
      of `dataset` needs (a set manual_dir never downloads).
  """
  if manual_dir is None:
    return {"manual_dir": None, "files": {}}
  path = os.path.abspath(os.path.expanduser(manual_dir)) if manual_dir else ""
  if dataset not in OWN_BUILDERS:
    return {"manual_dir": path, "files": {}}
  from tca_jax.tasks.data import builders  # pylint: disable=g-import-not-at-top
  names = builders.source_files(dataset, path) if path and os.path.isdir(path) else None
  if names is None:
    raise DataError(f"task.manual_dir={manual_dir!r} must be a directory holding "
                    f"{builders.MANUAL_FILES[dataset]} to build {dataset!r} offline (a set "
                    "task.manual_dir never downloads); unset it to use a prepared dataset")
  return {"manual_dir": path,
          "files": {n: os.path.getsize(os.path.join(path, n)) for n in names}}


def _check_source(dataset: str, builder, manual_dir: str | None) -> None:
  """A prepared dataset built from other files than `manual_dir`'s is refused, not reused."""
  if manual_dir is None:  # no source asked for: whatever was prepared is the dataset
    return
  wanted = _source(dataset, manual_dir)
  record = os.path.join(str(builder.data_dir), SOURCE_RECORD)
  built = None
  if os.path.exists(record):
    with open(record, encoding="utf-8") as f:
      built = json.load(f)
  if built != wanted:
    origin = ("an unrecorded source" if built is None else
              f"{built['manual_dir']} ({built['files']})" if built.get("manual_dir") else
              "a download")
    raise DataError(
        f"task.manual_dir={manual_dir!r}: dataset {dataset!r} in {builder.data_dir} was built "
        f"from {origin}, not from {wanted['manual_dir']} ({wanted['files']}); delete "
        f"{builder.data_dir} to rebuild it from task.manual_dir, use another task.data_dir, or "
        "unset task.manual_dir to use it as it is")


def _record_source(dataset: str, builder, manual_dir: str | None) -> None:
  with open(os.path.join(str(builder.data_dir), SOURCE_RECORD), "w", encoding="utf-8") as f:
    json.dump(_source(dataset, manual_dir), f, sort_keys=True)


def prepare(dataset: str, data_dir: str | None = None, manual_dir: str | None = None,
            quiet: bool = False):
  """Builds `dataset` into `data_dir` from `manual_dir` (offline) or by downloading it.

  TFDS writes into a temporary `incomplete.*` directory and renames it at the end, so an
  interrupted build leaves no half-written dataset behind. Where the build came from (the
  manual_dir and its files' sizes, or a download) is recorded next to it in
  `tca_jax_source.json`, so that a later run asking for other files is refused.
  """
  tfds = import_tfds(dataset)
  source = _source(dataset, manual_dir)  # a set manual_dir without its files: DataError here
  if manual_dir is None:
    _check_reachable(dataset, data_dir)
  else:
    manual_dir = source["manual_dir"]
  if quiet:  # building on the fly inside a training run: log, no progress bars
    tfds.disable_progress_bar()
  data_dir = resolve_data_dir(data_dir)
  builder = make_builder(dataset, data_dir, "array_record")
  config = tfds.download.DownloadConfig(manual_dir=manual_dir and os.path.expanduser(manual_dir))
  builder.download_and_prepare(download_config=config, file_format="array_record")
  _record_source(dataset, builder, manual_dir)
  return builder


def _check_reachable(dataset: str, data_dir, timeout: float = 10.0):
  """Raises a `DataError` at once if the download host of `dataset` cannot be reached."""
  host = DOWNLOAD_HOSTS.get(dataset)
  if host is None:
    return
  try:
    socket.create_connection(host, timeout=timeout).close()
  except OSError as e:
    d = resolve_data_dir(data_dir)
    if dataset in OWN_BUILDERS:
      from tca_jax.tasks.data import builders  # pylint: disable=g-import-not-at-top
      how = (f"put {builders.MANUAL_FILES[dataset]} in a directory D and set task.manual_dir=D "
             f"(or run python -m tca_jax.tasks.data.prepare {dataset} --manual_dir=D)")
    else:
      how = (f"prepare it where there is a network (python -m tca_jax.tasks.data.prepare "
             f"{dataset}) and copy that data directory's {dataset}/ into {d}")
    raise DataError(f"task.download: cannot download {dataset!r}: {host[0]} is unreachable "
                    f"({e}); without a network, {how}") from None


def open_sources(dataset: str, splits, *, data_dir=None, manual_dir=None, download=False):
  """Opens random-access sources of `splits` (TFDS split strings), preparing the data if allowed.

  If the dataset is not prepared in `data_dir`, it is built from `manual_dir` when that is set
  (offline) or downloaded when `download` is True; otherwise a one-line `DataError` names the
  dataset, where TFDS looked and how to prepare it. Nothing touches the network unless
  `download` is True.

  Returns:
    `(builder, [source per split])`; `source[i]` is a dict of numpy arrays, `len(source)` its size.
  """
  import_tfds(dataset)
  data_dir = resolve_data_dir(data_dir)
  try:
    builder = make_builder(dataset, data_dir)
  except Exception as e:  # pylint: disable=broad-except
    raise DataError(f"task.name: cannot make the TFDS builder of {dataset!r}: "
                    f"{type(e).__name__}: {_first_line(e)}") from None
  try:
    sources = [builder.as_data_source(split=s) for s in splits]
  except Exception as e:  # pylint: disable=broad-except
    first_error = e
  else:
    _check_source(dataset, builder, manual_dir)
    return builder, sources
  info_file = os.path.join(str(builder.data_dir), "dataset_info.json")
  if paths.exists(info_file):
    problem = (f"task.data_dir={data_dir!r}: dataset {dataset!r} at {builder.data_dir} cannot be "
               f"read with tfds.data_source ({type(first_error).__name__}: "
               f"{_first_line(first_error)})")
    if "file format" in str(first_error):  # prepared as TFRecord, `tfds build`'s default
      raise DataError(
          f"{problem}; it needs the ArrayRecord format: convert it with `tfds convert_format "
          f"--dataset_version_dir={builder.data_dir} --out_file_format=array_record` (needs "
          "tensorflow-cpu), or prepare it into another task.data_dir") from None
    raise DataError(f"{problem}; splits asked for: {', '.join(map(str, splits))}") from None
  if manual_dir is None and not download:
    raise DataError(
        f"task.data_dir={data_dir!r}: dataset {dataset!r} is not prepared (looked in "
        f"{builder.data_dir}); " + prepare_hint(dataset, data_dir)) from None
  try:
    logging.info("preparing dataset %r in %s %s", dataset, data_dir,
                 f"from {manual_dir}" if manual_dir else "by downloading it")
    builder = prepare(dataset, data_dir, manual_dir, quiet=True)
    return builder, [builder.as_data_source(split=s) for s in splits]
  except DataError:
    raise
  except Exception as e:  # pylint: disable=broad-except
    where = f"from task.manual_dir={manual_dir!r}" if manual_dir else "by downloading it"
    raise DataError(
        f"task.data_dir={data_dir!r}: building dataset {dataset!r} {where} failed "
        f"({type(e).__name__}: {_first_line(e)}); " + prepare_hint(dataset, data_dir)) from None


def _first_line(error: Exception) -> str:
  text = str(error).strip()
  return text.splitlines()[0] if text else ""
