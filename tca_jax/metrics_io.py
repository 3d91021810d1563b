"""`metrics.jsonl` (one JSON object per line) and `config.json`, as the CLI contract says; the
same records as TensorBoard event files beside them.

Paths may be local or in a bucket (`gs://...`, through `tca_jax.paths`). `metrics.jsonl` is the
source of truth: a resumed run truncates it to its checkpoint, and the event files are rebuilt
from it when the writer first writes, so TensorBoard never shows a point twice.
"""

from __future__ import annotations

import json
import math
import os
import struct

import numpy as np

from tca_jax import paths

EVENTS_PATTERN = "events.out.tfevents.*"


def to_python(value):
  """Arrays and numpy scalars -> floats/ints/lists that json can write (NaN -> null)."""
  if isinstance(value, dict):
    return {k: to_python(v) for k, v in value.items()}
  if isinstance(value, (list, tuple)):
    return [to_python(v) for v in value]
  arr = np.asarray(value)
  if arr.ndim:
    return [to_python(v) for v in arr.tolist()]
  item = arr.item()
  if isinstance(item, float) and not math.isfinite(item):
    return None
  return item


class MetricsWriter:
  """Appends records `{"step": int, "split": str, ...}` to `DIR/metrics.jsonl`.

  Args:
    workdir: the run's directory (local or `gs://...`).
    filename: the JSONL file in it.
    tensorboard: also write TensorBoard event files in `workdir` (`TensorBoardWriter`).
  """

  def __init__(self, workdir: str, filename: str = "metrics.jsonl", tensorboard: bool = False):
    self.path = paths.join(workdir, filename)
    self.tensorboard = TensorBoardWriter(workdir, self.path) if tensorboard else None

  def write(self, step: int, split: str, metrics: dict):
    record = {"step": int(step), "split": split}
    record.update(to_python(metrics))
    paths.append_text(self.path, json.dumps(record) + "\n")
    if self.tensorboard is not None:
      self.tensorboard.record(record)
    return record

  def figure(self, name: str, step: int, png_path: str) -> None:
    """Shows the PNG at `png_path` (just written) as image `name` at `step` in TensorBoard."""
    if self.tensorboard is not None and paths.exists(png_path):
      self.tensorboard.image(name, step, paths.read_bytes(png_path))

  def close(self) -> None:
    if self.tensorboard is not None:
      self.tensorboard.close()


class TensorBoardWriter:
  """TensorBoard event files in the run's directory, written without TensorFlow (tensorboardX).

  Scalars are tagged `SPLIT/NAME` (`train/loss`, `eval/accuracy`, `diag/grad_cosine`, ...; the
  per-seed lists of a multi-seed run are left out), figures are images, `config.json` is text.
  On its first write the writer deletes the directory's event files and replays `metrics.jsonl`
  (already truncated to the checkpoint by a resumed run) into a new one: the events always show
  exactly the JSONL records, with no duplicate points. Figures of an earlier try are not replayed.

  Args:
    workdir: the directory (local or `gs://...`).
    metrics_path: the `metrics.jsonl` replayed on opening.
  """

  def __init__(self, workdir: str, metrics_path: str):
    self.workdir = workdir
    self.metrics_path = metrics_path
    self._writer = None

  def _open(self):
    import tensorboardX  # pylint: disable=g-import-not-at-top
    if paths.has_scheme(self.workdir):
      _register_epath_writer(os.fspath(self.workdir).split(":")[0])
    for old in paths.glob(self.workdir, EVENTS_PATTERN):
      paths.remove(old)
    self._writer = tensorboardX.SummaryWriter(logdir=os.fspath(self.workdir), flush_secs=30)
    config_path = paths.join(self.workdir, "config.json")
    if paths.exists(config_path):  # indented: TensorBoard's text plugin shows it as code
      text = paths.read_text(config_path)
      self._writer.add_text("config", "\n".join("    " + l for l in text.splitlines()), 0)
    for record in read_records(self.metrics_path):
      self._scalars(record)

  def _scalars(self, record):
    split, step = record["split"], record["step"]
    if split == "event":  # `{"seed": 1, "event": "diverged"}`: no scalar to plot
      return
    for name, value in record.items():
      if name in ("step", "split") or isinstance(value, bool):
        continue
      if isinstance(value, (int, float)):
        self._writer.add_scalar(f"{split}/{name}", value, step)

  def record(self, record: dict) -> None:
    """Writes one metrics record (which is already in `metrics.jsonl`)."""
    if self._writer is None:
      self._open()  # replays metrics.jsonl, which holds `record` already
    else:
      self._scalars(record)

  def image(self, name: str, step: int, png: bytes) -> None:
    """An encoded PNG as image `name` at `step`."""
    if self._writer is None:
      self._open()
    from tensorboardX.proto import summary_pb2  # pylint: disable=g-import-not-at-top
    width, height = struct.unpack(">II", png[16:24])  # the PNG header's IHDR chunk
    image = summary_pb2.Summary.Image(height=height, width=width, colorspace=4,
                                      encoded_image_string=png)
    summary = summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag=name, image=image)])
    self._writer.file_writer.add_summary(summary, step)

  def close(self) -> None:
    if self._writer is not None:
      self._writer.close()
      self._writer = None


class _EpathRecordFile:
  """An event file in an object store: tensorboardX's writer interface over `etils.epath`.

  An object cannot be appended to, so every flush uploads the whole file (as tensorboardX's own
  GCS writer does); event files of these runs are small.
  """

  def __init__(self, path: str):
    self.path = path
    self._data = bytearray()

  def write(self, data: bytes) -> None:
    self._data += data

  def flush(self) -> None:
    paths.write_bytes(self.path, bytes(self._data))

  def close(self) -> None:
    self.flush()


class _EpathRecordFactory:

  def open(self, path):
    return _EpathRecordFile(path)

  def directory_check(self, path):
    paths.makedirs(path)


def _register_epath_writer(scheme: str) -> None:
  """Routes tensorboardX's writes for `scheme://` through epath (tensorboardX's own GCS writer
  needs google-cloud-storage; epath uses whatever reads the rest of the run's files)."""
  from tensorboardX import record_writer  # pylint: disable=g-import-not-at-top
  record_writer.register_writer_factory(scheme, _EpathRecordFactory())


def read_records(path: str):
  """The records of a `metrics.jsonl` file (none when it does not exist; a last line cut short by
  a kill is dropped, warned)."""
  from tca_jax import workdir as workdir_lib  # pylint: disable=g-import-not-at-top
  return workdir_lib.read_jsonl(path) if paths.exists(path) else []


def read_metrics(workdir: str, filename: str = "metrics.jsonl"):
  """The records of `DIR/metrics.jsonl`; a last line cut short by a kill is dropped, warned."""
  return read_records(paths.join(workdir, filename))


def read_json(path: str):
  return json.loads(paths.read_text(path))


def write_jsonl(path: str, records) -> None:
  """Replaces a JSON-lines file with `records` (atomically where the path allows it)."""
  paths.write_text_atomic(path, "".join(json.dumps(to_python(r)) + "\n" for r in records))


def write_json(path: str, obj):
  paths.write_text_atomic(path, json.dumps(to_python(obj), indent=2, sort_keys=True))
