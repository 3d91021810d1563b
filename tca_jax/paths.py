"""Run directories and data paths that may live in a bucket (`gs://...`) or on a local disk.

Every file a run writes or reads goes through `etils.epath` (the path layer orbax and TFDS use):
a local path behaves as with `os`, a path with a scheme (`gs://`, `s3://`) goes to the object
store (fsspec's gcsfs/s3fs, or TensorFlow's gfile where TensorFlow is installed). Object stores
have no append and no atomic rename; `append_text` and `write_text_atomic` say what they do there.
"""

from __future__ import annotations

import io
import os

from etils import epath


def has_scheme(path) -> bool:
  """True for `gs://bucket/x` and other URLs (not a local path)."""
  return "://" in os.fspath(path)


def resolve(path) -> str:
  """`path` as a string: local paths made absolute (and `~` expanded), URLs unchanged.

  `os.path.abspath("gs://b/run")` would be the local `$PWD/gs:/b/run`; this keeps the URL.
  """
  path = os.fspath(path)
  return path if has_scheme(path) else os.path.abspath(os.path.expanduser(path))


def join(path, *names) -> str:
  """`os.path.join` that keeps `gs://bucket/` URLs intact."""
  return os.fspath(epath.Path(path).joinpath(*names)) if has_scheme(path) else os.path.join(
      path, *names)


def makedirs(path) -> None:
  epath.Path(path).mkdir(parents=True, exist_ok=True)


def exists(path) -> bool:
  return epath.Path(path).exists()


def read_text(path) -> str:
  return epath.Path(path).read_text(encoding="utf-8")


def read_bytes(path) -> bytes:
  return epath.Path(path).read_bytes()


def write_bytes(path, data: bytes) -> None:
  epath.Path(path).write_bytes(data)


def write_text_atomic(path, text: str) -> None:
  """Replaces the file's content: locally through a temporary file and `os.replace` (a reader
  never sees half a file); in an object store one upload, which is atomic there already."""
  if has_scheme(path):
    epath.Path(path).write_text(text, encoding="utf-8")
    return
  tmp = os.fspath(path) + ".tmp"
  with open(tmp, "w", encoding="utf-8") as f:
    f.write(text)
  os.replace(tmp, path)


def append_text(path, text: str) -> None:
  """Appends `text`; an object store cannot append, so there the object is rewritten whole
  (metrics files are small: one line per logged step)."""
  if has_scheme(path):
    p = epath.Path(path)
    old = p.read_text(encoding="utf-8") if p.exists() else ""
    p.write_text(old + text, encoding="utf-8")
    return
  with open(path, "a", encoding="utf-8") as f:
    f.write(text)


def glob(path, pattern: str) -> list[str]:
  return sorted(os.fspath(p) for p in epath.Path(path).glob(pattern))


def remove(path) -> None:
  epath.Path(path).unlink(missing_ok=True)


def savefig(fig, path, **kwargs) -> None:
  """`fig.savefig` to a local file or a URL (matplotlib itself only writes local files)."""
  if not has_scheme(path):
    fig.savefig(path, **kwargs)
    return
  buf = io.BytesIO()
  fig.savefig(buf, format=os.path.splitext(os.fspath(path))[1][1:] or "png", **kwargs)
  write_bytes(path, buf.getvalue())
