"""A tiny name -> factory registry shared by cells, tasks and learners.

Each registry turns a name and keyword options into an object and, on bad input, raises a
one-line `ValueError` that names the config field and the allowed values, so that the trainer can
validate a whole config before anything is compiled or written.
"""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any, Callable, Dict


class ConfigError(ValueError):
  """A config field has a value tca-jax cannot use; the message names the field."""


class Registry:
  """Maps names to factories (usually frozen dataclasses).

  Args:
    kind: what is registered ("task", "cell", "learner"), used in error messages.
    field: the config field that holds the name (e.g. "task.name").
  """

  def __init__(self, kind: str, field: str):
    self.kind = kind
    self.field = field
    self._factories: Dict[str, Callable[..., Any]] = {}

  def register(self, name: str):
    def decorator(factory):
      if name in self._factories:
        raise KeyError(f"{self.kind} {name!r} is registered twice")
      self._factories[name] = factory
      return factory
    return decorator

  def names(self):
    return tuple(self._factories)

  def factory(self, name: str):
    if name not in self._factories:
      raise ConfigError(
          f"{self.field}={name!r} is not a known {self.kind}; allowed: {', '.join(self.names())}")
    return self._factories[name]

  def options(self, name: str):
    """The keyword options `get(name, ...)` accepts."""
    factory = self.factory(name)
    if dataclasses.is_dataclass(factory):
      return tuple(f.name for f in dataclasses.fields(factory) if f.init)
    return tuple(inspect.signature(factory).parameters)

  def get(self, name: str, **options):
    factory = self.factory(name)
    allowed = self.options(name)
    unknown = sorted(set(options) - set(allowed))
    if unknown:
      section = self.field.rsplit(".", 1)[0]
      raise ConfigError(
          f"{section}.{unknown[0]} is not an option of {self.kind} {name!r}; "
          f"its options: {', '.join(allowed)}")
    return factory(**options)


def check_choice(value, field: str, allowed):
  if value not in allowed:
    raise ConfigError(f"{field}={value!r} is not allowed; allowed: {', '.join(map(str, allowed))}")


def check_positive(value, field: str):
  if not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0:
    raise ConfigError(f"{field}={value!r} must be a positive number")


def error_line(error: Exception) -> str:
  """The one line a binary prints for a `ConfigError`: `error: config.FIELD=...` when the
  message starts with a config field, else `error: MESSAGE` (flags, files, workdirs)."""
  message = str(error)
  field = message.split("=", 1)[0]
  if "=" in message and field and all(part.isidentifier() for part in field.split(".")):
    return f"error: config.{message}"
  return f"error: {message}"
