r"""The replay figure: grad_cosine and final accuracy of `replay` against sigma and fraction.

    python -m experiments.replay_figure --out_dir=results/replay_sweep \
        --figure=docs/replay_sweep.png [--steps=600 --seeds=3 --length=10]
"""

from absl import app, flags, logging

from tca_jax import replay_study

_OUT_DIR = flags.DEFINE_string("out_dir", "results/replay_sweep", "Run directories.")
_FIGURE = flags.DEFINE_string("figure", "docs/replay_sweep.png", "The PNG to write.")
_STEPS = flags.DEFINE_integer("steps", 600, "Updates per run.")
_SEEDS = flags.DEFINE_integer("seeds", 3, "Seeds per run (vmapped).")
_LENGTH = flags.DEFINE_integer("length", 10, "Copy task length T.")
_HIDDEN = flags.DEFINE_integer("hidden_size", 64, "LSTM units.")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  logging.set_verbosity(logging.INFO)
  rows = replay_study.sweep(_OUT_DIR.value, length=_LENGTH.value, hidden_size=_HIDDEN.value,
                            steps=_STEPS.value, seeds=_SEEDS.value)
  replay_study.plot(rows, _FIGURE.value)
  for r in rows:
    print(f"sigma={r['sigma']:g} fraction={r['fraction']:g} accuracy={r['accuracy']:.3f}"
          f"+-{r['accuracy_std']:.3f} grad_cosine={r['grad_cosine']:.3f}")
  print(f"figure in {_FIGURE.value}")


if __name__ == "__main__":
  app.run(main)
