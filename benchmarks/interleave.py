r"""A/B timing of one option's values, the compiled steps taking turns (fair on a shared CPU).

    python -m benchmarks.interleave --learner=bptt --cell=lstm --T=100 --hidden=128 --batch=32 \
        --vary=learner.unroll=1,2,4 --rounds=5 [--set=model.max_memories=24,learner.k_trunc=5]

Compiles one training step (as `benchmarks.run` does) per value of `--vary`, then runs `--rounds`
rounds; in each round every variant runs 2 warm-up and `--steps` timed steps in turn. Other load
on the machine then hits all variants alike. Prints each variant's per-round medians and their
median.
"""

from __future__ import annotations

import argparse
import ast
import statistics

from benchmarks import common, jax_step


def _value(text: str):
  try:
    return ast.literal_eval(text)
  except (ValueError, SyntaxError):
    return text


def interleave(learner, cell, length, hidden, batch, field, values, rounds=5, steps=20,
               overrides=None):
  """`{value: [per-round median step ms]}` for each value of config `field`."""
  fns = {}
  for value in values:
    options = dict(overrides or {}, **{field: value})
    step, state, data, key = jax_step.build_step(
        jax_step.make_config(learner, cell, length, hidden, batch, options))
    compiled = step.lower(state, data, key).compile()
    holder = [state]

    def one(compiled=compiled, holder=holder, data=data, key=key):
      new_state, metrics = compiled(holder[0], data, key)
      common.block((new_state, metrics))
      holder[0] = new_state

    fns[value] = one
  results = {value: [] for value in values}
  for _ in range(rounds):
    for value, fn in fns.items():
      results[value].append(common.median_time_ms(fn, steps=steps, warmup=2)["step_ms"])
  return results


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--learner", default="bptt")
  parser.add_argument("--cell", default="lstm")
  parser.add_argument("--T", type=int, default=100)
  parser.add_argument("--hidden", type=int, default=128)
  parser.add_argument("--batch", type=int, default=32)
  parser.add_argument("--vary", required=True, help="FIELD=V1,V2,... e.g. learner.unroll=1,2,4")
  parser.add_argument("--rounds", type=int, default=5)
  parser.add_argument("--steps", type=int, default=20)
  parser.add_argument("--set", default="", help="fixed FIELD=V pairs, comma-separated, e.g. "
                      "model.max_memories=24,learner.k_trunc=5")
  args = parser.parse_args(argv)
  fixed = dict((k, _value(v)) for k, v in (kv.split("=", 1) for kv in args.set.split(",") if kv))
  field, values = args.vary.split("=", 1)
  values = [_value(v) for v in values.split(",")]
  results = interleave(args.learner, args.cell, args.T, args.hidden, args.batch, field, values,
                       args.rounds, args.steps, overrides=fixed)
  print(f"{args.learner}/{args.cell} T={args.T} H={args.hidden} B={args.batch}, "
        f"{args.rounds} rounds x {args.steps} steps, load average {common.machine_info().get('load_avg_1m', 0):.1f}")
  for value, times in results.items():
    print(f"  {field}={value}: median of rounds {statistics.median(times):.1f} ms "
          f"(rounds: {', '.join(f'{t:.1f}' for t in times)})")


if __name__ == "__main__":
  main()
