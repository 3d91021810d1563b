r"""A/B timing of the TPTT protocol's iteration: this tree's learner against another revision's.

    python -m benchmarks.tptt_iteration [--base=HEAD] [--T=60,140,300] [--rounds=5] \
        [--vary=learner.unroll=1,2] [--preset=temporal_order] [--every=100] [--val=10000] \
        [--limits=1,10001]

Each candidate is `tptt_protocol.build_runner`'s compiled period (`--every` iterations, batches
sampled inside, then the validation on `--val` samples), the quantity `benchmarks.compare`'s
`tptt_protocol` row reports, divided by its iterations. Candidates: `base`, the learner module
`tca_jax/learners/tptt.py` as it is at git revision `--base` (read with `git show`, imported
under another name, the rest of the library this tree's), and this tree's learner at each value
of `--vary` (or once), or at each early-exit limit of `--limits` (the validation stops after the
first batch with that many mistakes so far: 1 is the paper's criterion on a run that is not
solved yet, `--val` + 1 never stops, i.e. a solved run's validation; base always validates in
full, as before the early exit; with `--limits` every call starts from the initial state, an
untrained run). Per T, every candidate is compiled first, then `--rounds` rounds run every
candidate in turn (one warm-up period and `--steps` timed periods each), so a shared machine's
load hits them alike. Prints per T each candidate's median over rounds of the per-round medians
(ms an iteration) and its ratio to `base` (the median of the per-round ratios), for the wall
time and for the process's CPU time (user + system, all threads): on a machine shared with other
jobs the wall time includes the waits for a core, the CPU time only the work (and XLA's own
spinning), so the CPU-time ratio is the steadier of the two under load.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import dataclasses
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Callable, Dict, List, Optional

import jax
import jax.numpy as jnp

from benchmarks import common


def learner_module_at(revision: str):
  """The module `tca_jax/learners/tptt.py` at git `revision`, imported as a separate module."""
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  source = subprocess.run(["git", "show", f"{revision}:tca_jax/learners/tptt.py"], cwd=root,
                          check=True, capture_output=True, text=True).stdout
  name = f"_tptt_at_{revision.replace('/', '_').replace('~', '_').replace('^', '_')}"
  with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as f:
    f.write(source)
  spec = importlib.util.spec_from_file_location(name, f.name)
  module = importlib.util.module_from_spec(spec)
  sys.modules[name] = module
  spec.loader.exec_module(module)
  os.unlink(f.name)
  return module


@contextlib.contextmanager
def learner_class(cls):
  """Within the block, `config.build` gives its learner class `cls` (same field values)."""
  from tca_jax import config as config_lib  # pylint: disable=g-import-not-at-top
  real = config_lib.build

  def build(cfg):
    setup = real(cfg)
    names = {f.name for f in dataclasses.fields(cls)}
    fields = {f.name: getattr(setup.learner, f.name) for f in dataclasses.fields(setup.learner)
              if f.name in names}
    return dataclasses.replace(setup, learner=cls(**fields))

  config_lib.build = build
  try:
    yield
  finally:
    config_lib.build = real


def build_period(preset: str, length: int, every: int, val: int, val_batch: int,
                 options: Optional[Dict] = None, cls=None,
                 limit: Optional[int] = None, carry: bool = True) -> Callable[[], None]:
  """A zero-argument function running one compiled protocol period; `limit`: the validation's
  early-exit limit (None: the full validation); `carry`: each call starts from the state the
  last one left (else always from the initial state: the early exit's cost depends on how far
  training is, and a carried state would move every candidate towards a solved run)."""
  from experiments.configs import tptt as tptt_config  # pylint: disable=g-import-not-at-top
  from tca_jax import tptt_protocol  # pylint: disable=g-import-not-at-top
  c = tptt_config.get_config(preset)
  c.protocol.validate_every = every
  c.protocol.max_iters = every
  c.protocol.val_samples, c.protocol.val_batch_size = val, min(val_batch, val)
  for field, value in (options or {}).items():
    section, key = field.split(".", 1)
    with c.unlocked():
      c[section][key] = value
  protocol = tptt_protocol.protocol_from_config(c)
  with learner_class(cls) if cls is not None else contextlib.nullcontext():
    runner = tptt_protocol.build_runner(c, protocol, length)
  start = jnp.asarray(0, jnp.int32)
  args = () if limit is None else (jnp.asarray(limit, jnp.int32),)
  compiled = runner.period.lower(runner.state, start, *args).compile()
  holder = [runner.state]

  def run():
    state, metrics, val_metrics = compiled(holder[0], start, *args)
    common.block((state, metrics, val_metrics))
    if carry:
      holder[0] = state

  return run


def _time_periods(fn: Callable[[], None], steps: int):
  """`(median wall ms, median process CPU ms)` of `steps` calls of `fn` after one warm-up."""
  fn()
  wall, cpu = [], []
  for _ in range(steps):
    w, c = time.perf_counter(), time.process_time()
    fn()
    wall.append((time.perf_counter() - w) * 1e3)
    cpu.append((time.process_time() - c) * 1e3)
  return statistics.median(wall), statistics.median(cpu)


def _value(text: str):
  try:
    return ast.literal_eval(text)
  except (ValueError, SyntaxError):
    return text


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--base", default="HEAD", help="git revision of the baseline learner")
  parser.add_argument("--T", default="60", help="comma-separated lengths")
  parser.add_argument("--vary", default="", help="FIELD=V1,V2,... for this tree's learner")
  parser.add_argument("--preset", default="temporal_order")
  parser.add_argument("--every", type=int, default=100)
  parser.add_argument("--val", type=int, default=10_000)
  parser.add_argument("--val_batch", type=int, default=1000)
  parser.add_argument("--rounds", type=int, default=5)
  parser.add_argument("--steps", type=int, default=2, help="timed periods per round")
  parser.add_argument("--limits", default="",
                      help="comma-separated early-exit limits for this tree (none: full)")
  parser.add_argument("--out", default=None)
  a = parser.parse_args(argv)
  module = learner_module_at(a.base)
  base = module.TPTTHx if "_hx" in a.preset else module.TPTT
  variants: List[tuple] = [("base", None, base, None)]
  if a.vary:
    field, values = a.vary.split("=", 1)
    variants += [(f"{field}={v}", {field: _value(v)}, None, None) for v in values.split(",")]
  elif a.limits:
    variants += [(f"limit={v}", None, None, None if v == "none" else int(v))
                 for v in a.limits.split(",")]
  else:
    variants.append(("this tree", None, None, None))
  report = {"machine": common.machine_info(), "base": a.base, "rows": []}
  for length in [int(t) for t in a.T.split(",")]:
    fns = {name: build_period(a.preset, length, a.every, a.val, a.val_batch, options, cls,
                              limit, carry=not a.limits)
           for name, options, cls, limit in variants}
    wall = {name: [] for name in fns}
    cpu = {name: [] for name in fns}
    load = [os.getloadavg()[0]]
    for _ in range(a.rounds):
      for name, fn in fns.items():
        w, c = _time_periods(fn, a.steps)
        wall[name].append(w / a.every)
        cpu[name].append(c / a.every)
    load.append(os.getloadavg()[0])
    print(f"T={length} ({a.preset}, {a.every} iterations + validation on {a.val}), ms an "
          f"iteration, median of {a.rounds} rounds; load {load[0]:.1f} -> {load[1]:.1f}")
    for name in fns:
      row = {"T": length, "candidate": name, "load": load}
      for kind, times in (("wall", wall), ("cpu", cpu)):
        ts = times[name]
        ratio = statistics.median(t / b for t, b in zip(ts, times["base"]))
        row.update({f"{kind}_ms": statistics.median(ts), f"{kind}_min_ms": min(ts),
                    f"{kind}_ratio": ratio, f"{kind}_rounds": ts})
      print(f"  {name:24s} wall {row['wall_ms']:7.3f} ms (x{row['wall_ratio']:.3f}, min "
            f"{row['wall_min_ms']:.3f})  "
            f"cpu {row['cpu_ms']:7.3f} ms (x{row['cpu_ratio']:.3f})  wall rounds "
            f"{' '.join(f'{t:.2f}' for t in wall[name])}")
      report["rows"].append(row)
  if a.out:
    with open(a.out, "w", encoding="utf-8") as f:
      json.dump(report, f, indent=1)


if __name__ == "__main__":
  main()
