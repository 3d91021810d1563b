"""One owner per workdir, and reading a workdir's records without tracebacks.

* `owned(workdir)`: a context manager that makes this process the only writer of `workdir` for
  its lifetime, through an OS file lock (`fcntl.flock` on `workdir/.lock`). The kernel releases
  the lock when the process ends however it ends (kill -9 included), so a lock is never stale; the
  file holds the holder's pid and host only to name it in the refusal. A second process gets a
  one-line `WorkdirBusy`. Paths with a scheme (`gs://...`) cannot be locked by the OS: a warning
  says so and the run goes on unlocked (one writer per such workdir is then the user's promise).
* `check_writable(workdir)`: a workdir that is a file, or a directory that cannot be written, is a
  one-line `ConfigError` before anything is written.
* `read_json(path)`, `read_jsonl(path)`: a truncated `config.json` or a file that is not UTF-8 is
  a one-line `ConfigError` naming the file (and the line); a `metrics.jsonl` whose last line was
  cut short by a kill loses that line with a warning.
* `check_same_config(workdir, config)`: a workdir holding another run's config is refused, naming
  the fields that differ.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import socket
import time
from typing import Any, Iterable, Mapping, Optional

from absl import logging

from tca_jax import paths
from tca_jax.registry import ConfigError

LOCK_FILE = ".lock"


class WorkdirBusy(ConfigError):
  """Another live process owns the workdir."""


def check_writable(workdir: str) -> None:
  """Raises a one-line `ConfigError` if `workdir` is a file or cannot be created or written."""
  if paths.has_scheme(workdir):
    return
  if os.path.exists(workdir) and not os.path.isdir(workdir):
    raise ConfigError(f"--workdir={workdir!r} is a file, not a directory; give a directory")
  parent = workdir
  while parent and not os.path.exists(parent):
    parent = os.path.dirname(parent.rstrip(os.sep)) or "."
  if not os.path.isdir(parent):
    raise ConfigError(f"--workdir={workdir!r}: {parent!r} is a file, not a directory")
  if not os.access(parent, os.W_OK | os.X_OK):
    raise ConfigError(f"--workdir={workdir!r}: {parent!r} is not writable by this user")


def holder(workdir: str) -> str | None:
  """`"pid P on host H"` if a live process owns `workdir`, else None (never blocks)."""
  import fcntl  # pylint: disable=g-import-not-at-top  (POSIX only)
  path = os.path.join(workdir, LOCK_FILE)
  if paths.has_scheme(workdir) or not os.path.exists(path):
    return None
  with open(path, "a+", encoding="utf-8") as f:
    try:
      fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
      if e.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
        return _describe(path)
      raise
    fcntl.flock(f, fcntl.LOCK_UN)
  return None


def _describe(path: str) -> str:
  try:
    with open(path, encoding="utf-8") as f:
      info = json.loads(f.read() or "{}")
  except (OSError, ValueError):
    info = {}
  return (f"pid {info.get('pid', '?')} on host {info.get('host', '?')}"
          + (f" (since {info['since']})" if "since" in info else ""))


@contextlib.contextmanager
def owned(workdir: str, what: str = "run"):
  """Holds the OS lock on `workdir` (created if missing) while the `with` body runs.

  Args:
    workdir: the directory; for a path with a scheme (gs://) nothing is locked, with a warning.
    what: named in the refusal ("run", "protocol", "table").

  Raises:
    WorkdirBusy: another process holds the lock (the message names its pid and host).
    ConfigError: `workdir` is a file or is not writable.
  """
  if paths.has_scheme(workdir):
    logging.warning("workdir %s has a scheme: no OS lock is possible there, so nothing stops a "
                    "second process from writing into it at the same time", workdir)
    yield
    return
  import fcntl  # pylint: disable=g-import-not-at-top  (POSIX only)
  check_writable(workdir)
  os.makedirs(workdir, exist_ok=True)
  path = os.path.join(workdir, LOCK_FILE)
  # Not truncated on open: the holder's pid must stay readable for the one that is refused.
  f = open(path, "a+", encoding="utf-8")  # pylint: disable=consider-using-with
  try:
    try:
      fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
      if e.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
        raise
      raise WorkdirBusy(
          f"--workdir={workdir!r} is in use by another {what} ({_describe(path)}); wait for it "
          "to end or stop it, or use another --workdir") from None
    f.seek(0)
    f.truncate()
    f.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                        "since": time.strftime("%Y-%m-%d %H:%M:%S")}))
    f.flush()
    yield
  finally:
    f.close()  # releases the lock (the kernel does the same if the process dies)


def read_text_lines(path: str) -> list[str]:
  """The lines of a UTF-8 text file; a byte that is not UTF-8 is a `ConfigError` with its line."""
  raw = paths.read_bytes(path)  # local or gs://
  try:
    return raw.decode("utf-8").splitlines(keepends=True)
  except UnicodeDecodeError as e:
    line = raw[:e.start].count(b"\n") + 1
    raise ConfigError(f"{path}, line {line}: not UTF-8 text ({e.reason} at byte {e.start}); "
                      "is this the file you meant?") from None


def read_json(path: str):
  """A JSON file's value; a truncated or non-JSON file is a one-line `ConfigError`."""
  text = "".join(read_text_lines(path))
  try:
    return json.loads(text)
  except json.JSONDecodeError as e:
    raise ConfigError(f"{path} is damaged ({e.msg} at line {e.lineno}); it is not what this "
                      "framework writes: restore it, or use a new --workdir") from None


def read_jsonl(path: str, drop_partial_last: bool = True) -> list[dict]:
  """The records of a JSON-lines file (`metrics.jsonl`).

  A last line without its newline that does not parse was cut short by a kill during a write: it
  is dropped with a warning (the run that wrote it never counted it). Any other damaged line is a
  `ConfigError` naming the file and line.
  """
  lines = read_text_lines(path)
  records = []
  for i, line in enumerate(lines):
    if not line.strip():
      continue
    try:
      records.append(json.loads(line))
    except json.JSONDecodeError as e:
      if drop_partial_last and i == len(lines) - 1 and not line.endswith("\n"):
        logging.warning("%s: dropping its last line %d, cut short by an interrupted write (%r)",
                        path, i + 1, line[:60])
        continue
      raise ConfigError(f"{path}, line {i + 1}: not a JSON record ({e.msg}); restore the file "
                        "or use a new --workdir") from None
  return records


def _flatten(tree, prefix=""):
  """{"train": {"steps": 1}} -> {"train.steps": 1}."""
  if not isinstance(tree, dict):
    return {prefix: tree}
  out = {}
  for k, v in tree.items():
    out.update(_flatten(v, f"{prefix}.{k}" if prefix else k))
  return out


def check_same_config(workdir: str, config_dict: dict, ignore: Iterable[str] = ("distributed",),
                      defaults: Optional[Mapping[str, Any]] = None) -> bool:
  """Refuses a workdir whose `config.json` holds another config; True if it holds this one.

  Every field counts, `train.steps` included: the cosine schedule, the evaluation at the last
  step and the test record depend on it, so a run shortened or extended in place would end
  elsewhere than an uninterrupted run. `ignore` lists top-level sections that say how processes
  are launched rather than what the run is (every process of a multi-host run checks the config
  that process 0 may already have written, with its own process_id).

  Args:
    workdir: the run's directory.
    config_dict: the new config as plain Python (`metrics_io.to_python(config.to_dict())`).
    ignore: top-level sections not compared.
    defaults: flattened field -> value: a saved config without that field (written before the
      field existed) holds this value, e.g. `{"protocol.validation": "early_exit"}`.

  Returns:
    False when the workdir holds no config.json (a new run), True when it holds this config.

  Raises:
    ConfigError: the configs differ (the message names each differing field, both values, and
      what to do), or config.json is damaged.
  """
  path = paths.join(workdir, "config.json")
  if not paths.exists(path):
    return False
  old = read_json(path)
  new = json.loads(json.dumps(config_dict))
  for d in (old, new):
    for section in ignore:
      d.pop(section, None)
  old, new = _flatten(old), _flatten(new)
  old = {**{k: v for k, v in (defaults or {}).items() if k in new}, **old}
  differ = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
  if not differ:
    return True
  shown = ", ".join(f"{k}: {old.get(k, '(unset)')!r} there, {new.get(k, '(unset)')!r} asked"
                    for k in differ[:4]) + (f" and {len(differ) - 4} more" if len(differ) > 4
                                            else "")
  hint = "use a new --workdir to start a new run"
  if differ == ["train.steps"]:
    hint = (f"to resume it, rerun with --config.train.steps={old['train.steps']}; to train for "
            f"{new['train.steps']} steps, start a new --workdir (the schedule and the records "
            "depend on train.steps)")
  raise ConfigError(f"--workdir={workdir!r} holds a run with another config ({shown}); {hint}")
