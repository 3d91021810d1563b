"""`metrics.jsonl` (one JSON object per line) and `config.json`, as the CLI contract says."""

from __future__ import annotations

import json
import math
import os

import numpy as np


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
  """Appends records `{"step": int, "split": str, ...}` to `DIR/metrics.jsonl`."""

  def __init__(self, workdir: str, filename: str = "metrics.jsonl"):
    self.path = os.path.join(workdir, filename)

  def write(self, step: int, split: str, metrics: dict):
    record = {"step": int(step), "split": split}
    record.update(to_python(metrics))
    with open(self.path, "a", encoding="utf-8") as f:
      f.write(json.dumps(record) + "\n")
    return record


def read_metrics(workdir: str, filename: str = "metrics.jsonl"):
  """The records of `DIR/metrics.jsonl`; a last line cut short by a kill is dropped, warned."""
  from tca_jax import workdir as workdir_lib  # pylint: disable=g-import-not-at-top
  return workdir_lib.read_jsonl(os.path.join(workdir, filename))


def write_json(path: str, obj):
  tmp = path + ".tmp"
  with open(tmp, "w", encoding="utf-8") as f:
    json.dump(to_python(obj), f, indent=2, sort_keys=True)
  os.replace(tmp, path)
