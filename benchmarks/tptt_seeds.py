r"""The TPTT protocol's period for one seed against several seeds in one call (vmap, loop).

    python -m benchmarks.tptt_seeds [--num_seeds=3] [--length=60] [--rounds=6]

The paper's temporal order preset (`experiments/configs/tptt.py:temporal_order`: SRN(100),
batch 20, a validation on 10,000 samples every 100 iterations) at T=`length`;
`tptt_protocol.build_runner` with `seed=0` against `seed=(0, 1, ...)` and `batching="vmap"` /
`"loop"`. Rounds interleave the candidates in this one process; each round gives every candidate
the same work (`num_seeds` one-seed periods against one `num_seeds`-seed period). Prints the
wall and process-CPU seconds per iteration and the ratios against one seed (per-round pairs).
"""

import time

from absl import app, flags
import jax
import jax.numpy as jnp
import numpy as np

from tca_jax import tptt_protocol

_SEEDS = flags.DEFINE_integer("num_seeds", 3, "Seeds in the several-seed candidates.")
_LENGTH = flags.DEFINE_integer("length", 60, "T.")
_ROUNDS = flags.DEFINE_integer("rounds", 6, "Interleaved rounds.")


def _candidate(config, protocol, seeds, batching):
  runner = tptt_protocol.build_runner(config, protocol, _LENGTH.value, seed=seeds,
                                      batching=batching)
  active = jnp.ones((len(seeds),), bool)
  start = time.time()
  compiled = runner.period.lower(runner.state, 0, runner.keys, active).compile()
  compile_s = time.time() - start
  holder = [runner.state]

  def run():
    state, metrics, val = compiled(holder[0], 0, runner.keys, active)
    jax.block_until_ready((state, metrics, val))
    holder[0] = state

  run()
  return run, compile_s


def main(argv):
  del argv
  from experiments.configs import tptt as tptt_config  # pylint: disable=g-import-not-at-top
  config = tptt_config.get_config("temporal_order")
  protocol = tptt_protocol.protocol_from_config(config)
  n = _SEEDS.value
  seeds = tuple(range(n))
  candidates = {"1 seed": ((0,), "loop", n)}
  for batching in ("vmap", "loop"):
    candidates[f"{n} seeds, {batching}"] = (seeds, batching, 1)
  runs = {}
  for name, (s, batching, repeat) in candidates.items():
    runs[name], compile_s = _candidate(config, protocol, s, batching)
    print(f"{name}: compiled in {compile_s:.1f} s", flush=True)
  wall = {k: [] for k in runs}
  cpu = {k: [] for k in runs}
  for _ in range(_ROUNDS.value):
    for name, run in runs.items():
      repeat = candidates[name][2]
      t0, c0 = time.perf_counter(), time.process_time()
      for _ in range(repeat):
        run()
      # Seconds per iteration of one call (one seed, or all seeds together).
      wall[name].append((time.perf_counter() - t0) / (repeat * protocol.validate_every))
      cpu[name].append((time.process_time() - c0) / (repeat * protocol.validate_every))
  print(f"| candidate (T={_LENGTH.value}) | wall ms/iteration (median, min) | CPU ms/iteration "
        "(median) | wall ratio to 1 seed (per-round median) | CPU ratio |")
  print("| --- | --- | --- | --- | --- |")
  one = "1 seed"
  for name in runs:
    ratio = np.median([a / b for a, b in zip(wall[name], wall[one])])
    print(f"| {name} | {1e3 * np.median(wall[name]):.1f}, {1e3 * min(wall[name]):.1f} | "
          f"{1e3 * np.median(cpu[name]):.1f} | {ratio:.2f} | "
          f"{np.median(cpu[name]) / np.median(cpu[one]):.2f} |")


if __name__ == "__main__":
  app.run(main)
