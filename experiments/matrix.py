r"""The credit-assignment matrix: every learner x every synthetic task (`tca_jax.matrix`).

    python -m experiments.matrix --preset=local --out_dir=results/matrix

Writes OUT_DIR/matrix.md, matrix.csv, matrix_accuracy.png and matrix_grad_cosine.png (runs in
OUT_DIR/<learner>/<task>; finished runs are read back). The same as
`python -m experiments.reproduce --table=matrix` (which writes into OUT_DIR/matrix).
"""

from absl import app, flags, logging

from tca_jax import matrix

_PRESET = flags.DEFINE_enum("preset", "local", list(matrix.PRESETS), "Budget of every cell.")
_OUT_DIR = flags.DEFINE_string("out_dir", "results/matrix", "Run and output directory.")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  logging.set_verbosity(logging.INFO)
  preset = matrix.PRESETS[_PRESET.value]
  rows = matrix.run_matrix(preset, _OUT_DIR.value)
  print(matrix.markdown(rows, preset))


if __name__ == "__main__":
  app.run(main)
