r"""Reproduces a paper table: rows x columns x seeds, our numbers beside the paper's.

    python -m experiments.reproduce --table=sab_copy --preset=local [--out_dir=results]

Filling one table from several processes (each trains its selection, reads the rest back, and
writes the whole table as far as it is finished; each run's workdir is owned by its trainer):

    python -m experiments.reproduce --table=tptt_tmax --preset=full \
        --rows=tptt --columns=temporal_order --seeds=0,1,2
    python -m experiments.reproduce --table=tptt_tmax --preset=full --render_only

Tables: sab_copy (SAB Table 2), sab_adding and sab_lm (Table 3), sab_ablation (Table 4),
sab_image (Table 5), sab_transfer (Table 6), tptt_tmax (TPTT Table 1), tptt_iters (Table 2),
tptt_noise (Table 3), tptt_generalisation (Table 4); aliases sab_table2 ... tptt_table4.
`--preset=local` is a reduced run for a CPU (shorter sequences, smaller models, few steps, one
seed) and says so; `full` uses the papers' settings (the TPTT tables at 20,000 iterations per T;
`paper`: the paper's 100,000). Writes OUT_DIR/STEM.csv, OUT_DIR/STEM.md and
OUT_DIR/STEM_<column>.png (STEM = NAME for `full`, NAME_PRESET otherwise); runs live in
OUT_DIR/STEM/<row>/<column>/ (`seeds`: a generic-trainer cell's seeds as one vmapped run;
`seed<k>`: one protocol run per seed) and finished ones are not trained again. The tables are
recipes in experiments/configs/tables.py; this binary parses flags and calls
`tca_jax.reproduce.run_table`, which runs and renders them.
"""

import os
import sys

from absl import app, flags, logging

from experiments.configs import tables
from tca_jax import cli, matrix, reproduce
from tca_jax import workdir as workdir_lib
from tca_jax.registry import ConfigError, error_line

_TABLE = flags.DEFINE_string("table", None,
                             f"One of: {', '.join(tables.TABLES)}, matrix (every learner x "
                             "every synthetic task, tca_jax.matrix).")
_PRESET = flags.DEFINE_enum("preset", "local", list(reproduce.PRESETS),
                            "local: reduced CPU run; full: the paper's settings.")
_OUT_DIR = flags.DEFINE_string("out_dir", "results",
                                "Where the CSV, markdown, figures and runs go.")
_ROWS = flags.DEFINE_list("rows", None, "Train only these rows (slugs of the row labels, e.g. "
                          "tptt, bptt_srn_orthogonal_init); the others are read back.")
_COLUMNS = flags.DEFINE_list("columns", None, "Train only these columns (slugs of the paper's "
                             "column labels, e.g. temporal_order, t_100).")
_SEEDS = flags.DEFINE_list("seeds", None, "Protocol tables: train only these seeds (e.g. 0,1).")
_RENDER_ONLY = flags.DEFINE_bool("render_only", False, "Train nothing: write the table from the "
                                 "runs as far as they got.")
flags.mark_flags_as_required(["table"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  logging.set_verbosity(logging.INFO)
  if _TABLE.value == "matrix":
    _run_matrix()
    return
  try:
    table = tables.CATALOGUE.get(_TABLE.value)
    selection = reproduce.select(table, _PRESET.value, _ROWS.value, _COLUMNS.value,
                                 _SEEDS.value, train=not _RENDER_ONLY.value)
  except ValueError as e:
    sys.exit(f"error: {e}")
  if _PRESET.value == "local":
    print(f"REDUCED RUN (--preset=local): {table.note('local')}", flush=True)
  try:
    # Each run's workdir is owned by the process training it, so several processes can fill
    # one table with different selections.
    result = reproduce.run_table(table, _PRESET.value, _OUT_DIR.value, selection)
  except ConfigError as e:
    sys.exit(error_line(e))
  with open(result["md"], encoding="utf-8") as f:
    print(f.read())
  print(f"wrote {result['csv']}, {result['md']}" +
        "".join(f", {p}" for p in result["figures"]))


def _run_matrix():
  """The credit-assignment matrix: no paper behind it, so `tca_jax.matrix` runs and renders it
  (OUT_DIR/matrix/{matrix.md, matrix.csv, matrix_accuracy.png, matrix_grad_cosine.png})."""
  out = os.path.join(_OUT_DIR.value, "matrix")
  preset = matrix.PRESETS[_PRESET.value]
  try:
    with workdir_lib.owned(out, "table reproduction"):
      rows = matrix.run_matrix(preset, out)
  except ConfigError as e:
    sys.exit(error_line(e))
  print(matrix.markdown(rows, preset))
  print(f"wrote {out}/matrix.md, matrix.csv, matrix_accuracy.png, matrix_grad_cosine.png")


if __name__ == "__main__":
  app.run(main, flags_parser=cli.parse_flags)
