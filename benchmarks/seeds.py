r"""Seeds in parallel (`config.num_seeds`, one vmapped step) against the same seeds run one by one.

    python -m benchmarks.seeds [--num_seeds=8] [--steps=200] [--out=bench_out]

Temporal order T=20, LSTM(64), batch 32 (the `temporal_order.py:quick` config, shortened).
Prints one table and writes OUT/seeds.json.
"""

import json
import os
import tempfile
import time

from absl import app, flags, logging

from experiments.configs import temporal_order
from tca_jax import train

_SEEDS = flags.DEFINE_integer("num_seeds", 8, "Number of seeds.")
_STEPS = flags.DEFINE_integer("steps", 200, "Training steps per run.")
_OUT = flags.DEFINE_string("out", "bench_out", "Directory for seeds.json.")


def _config(num_seeds, seed, steps):
  c = temporal_order.get_config("quick")
  c.train.steps, c.train.eval_every, c.train.checkpoint_every = steps, 0, 0
  c.train.log_every, c.train.test_batches = steps, 1
  c.num_seeds, c.seed = num_seeds, seed
  return c


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  n, steps = _SEEDS.value, _STEPS.value
  start = time.time()
  together = train.train_and_evaluate(_config(n, 0, steps), tempfile.mkdtemp())
  vmap_s = time.time() - start
  start = time.time()
  alone = [train.train_and_evaluate(_config(1, s, steps), tempfile.mkdtemp()) for s in range(n)]
  seq_s = time.time() - start
  row = {"num_seeds": n, "steps": steps, "vmap_total_s": vmap_s,
         "vmap_train_s": together["wall_s"], "sequential_total_s": seq_s,
         "sequential_train_s": sum(r["wall_s"] for r in alone), "speedup": seq_s / vmap_s,
         "vmap_accuracy_seeds": together["accuracy_seeds"],
         "sequential_accuracy": [r["accuracy"] for r in alone]}
  print(f"| seeds | steps | vmapped (s) | sequential (s) | speed-up |\n| --- | --- | --- | --- | --- |\n"
        f"| {n} | {steps} | {vmap_s:.1f} | {seq_s:.1f} | {row['speedup']:.2f}x |")
  os.makedirs(_OUT.value, exist_ok=True)
  with open(os.path.join(_OUT.value, "seeds.json"), "w", encoding="utf-8") as f:
    json.dump(row, f, indent=2)


if __name__ == "__main__":
  app.run(main)
