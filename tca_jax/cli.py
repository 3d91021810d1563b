"""What the binaries in experiments/ share: flag parsing that ends in one line, never a traceback.

    app.run(main, flags_parser=cli.parse_flags)

absl and ml_collections report a mistyped field, an unknown preset or a missing config file with
a traceback (the preset's `ValueError` is wrapped in the flag error); `parse_flags` turns each
into one `error: ...` line and exit status 2, as absl does for its own usage errors.
"""

from __future__ import annotations

import difflib
import re
import sys

from absl import flags

from tca_jax.registry import ConfigError, error_line


def _fields(tree, prefix=""):
  out = []
  for k, v in tree.items():
    name = f"{prefix}.{k}" if prefix else k
    out += _fields(v, name) if isinstance(v, dict) else [name]
  return out


def _last_line(text: str) -> str:
  lines = [line.strip() for line in str(text).splitlines() if line.strip()]
  return lines[-1] if lines else str(text)


def _config_fields(config_flag: str) -> list[str]:
  try:
    return _fields(flags.FLAGS[config_flag].value.to_dict())
  except Exception:  # pylint: disable=broad-except  (the config itself failed to load)
    return []


def _unknown_field(error, argv, config_flag: str) -> str:
  # ml_collections raises AttributeError/KeyError for an override of a field the config does not
  # have; the culprit is the `--config.X=V` argument whose X is not a field of the config.
  fields = _config_fields(config_flag)
  known = set(fields) | {f.rsplit(".", i)[0] for f in fields for i in range(1, f.count(".") + 1)}
  prefix = f"--{config_flag}."
  for arg in argv:
    if arg.startswith(prefix):
      field = arg.split("=", 1)[0][len(prefix):]
      if field not in known:
        close = difflib.get_close_matches(field, fields, n=1)
        # When the config failed to load, ml_collections' own suggestion names the component.
        mean = re.search(r'Did you mean "(\w+)" instead of "(\w+)"', str(error))
        if not close and mean and mean.group(2) in field.split("."):
          close = [".".join(mean.group(1) if p == mean.group(2) else p for p in field.split("."))]
        hint = f"; did you mean {prefix}{close[0]}?" if close else ""
        return f"error: {prefix}{field}: {field!r} is not a config field{hint}"
  return f"error: --{config_flag}: an override names a field the config does not have"


def flag_error(error: Exception, config_flag: str = "config", argv=()) -> str:
  """The one line for an error raised while parsing the flags of a binary."""
  if isinstance(error, (AttributeError, KeyError)):
    return _unknown_field(error, argv, config_flag)
  if isinstance(error, flags.UnrecognizedFlagError):
    name = getattr(error, "flagname", "") or ""
    prefix = config_flag + "."
    if name.startswith(prefix):
      field = name[len(prefix):]
      close = difflib.get_close_matches(field, _config_fields(config_flag), n=1)
      hint = f"; did you mean --{prefix}{close[0]}?" if close else ""
      return f"error: --{name}: {field!r} is not a config field{hint}"
    close = difflib.get_close_matches(name, list(flags.FLAGS), n=1)
    return f"error: unknown flag --{name}" + (f"; did you mean --{close[0]}?" if close else "")
  if isinstance(error, flags.IllegalFlagValueError):
    # ml_collections wraps what the config file raised (an unknown preset's ValueError) in a
    # traceback; its last line is the message.
    head = str(error).split(":", 1)[0]
    return f"error: {head}: {_last_line(error)}"
  if "config file" in str(error) and "[Errno" in str(error):
    missing = [line.strip() for line in str(error).splitlines() if "[Errno" in line]
    return f"error: --{config_flag}: cannot load the config file ({_last_line(missing[-1] if missing else error)})"
  if isinstance(error, (SyntaxError, UnicodeDecodeError, ValueError)):
    return f"error: --{config_flag}: not a Python config file ({type(error).__name__}: {error})"
  if isinstance(error, ConfigError):
    return error_line(error)
  return f"error: {type(error).__name__}: {_last_line(error)}"


def parse_flags(argv, config_flag: str = "config"):
  """`flags.FLAGS(argv)`, with every parse error as one line on stderr and exit status 2."""
  try:
    rest = flags.FLAGS(argv)
    if config_flag in flags.FLAGS and flags.FLAGS[config_flag].present:
      getattr(flags.FLAGS, config_flag).keys()  # loads the file now (a missing one raises here)
    return rest
  except Exception as e:  # pylint: disable=broad-except  (every parse error: one line)
    print(flag_error(e, config_flag, argv), file=sys.stderr)
    sys.exit(2)
