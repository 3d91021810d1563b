r"""Reproduces a paper table: rows x columns x seeds, our numbers beside the paper's.

    python -m experiments.reproduce --table=sab_copy --preset=local [--out_dir=results]

Tables: sab_copy (SAB Table 2), sab_adding and sab_lm (Table 3), sab_ablation (Table 4),
sab_image (Table 5), sab_transfer (Table 6), tptt_tmax (TPTT Table 1), tptt_iters (Table 2),
tptt_generalisation (Table 4); aliases sab_table2 ... tptt_table4. `--preset=local` is a reduced
run for a CPU (shorter sequences, smaller models, few steps, one seed) and says so; `full` uses
the papers' settings. Writes OUT_DIR/NAME.csv, OUT_DIR/NAME.md and OUT_DIR/NAME_<column>.png;
runs live in OUT_DIR/NAME/<row>/<column>/seed<k> and finished ones are not trained again.
"""

import os
import sys

from absl import app, flags, logging

from experiments import runner, tables
from tca_jax import cli
from tca_jax import workdir as workdir_lib
from tca_jax.registry import ConfigError, error_line

_TABLE = flags.DEFINE_string("table", None, f"One of: {', '.join(tables.TABLES)}.")
_PRESET = flags.DEFINE_enum("preset", "local", list(tables.PRESETS),
                            "local: reduced CPU run; full: the paper's settings.")
_OUT_DIR = flags.DEFINE_string("out_dir", "results",
                                "Where the CSV, markdown, figures and runs go.")
flags.mark_flags_as_required(["table"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  logging.set_verbosity(logging.INFO)
  try:
    table = tables.get_table(_TABLE.value)
  except ValueError as e:
    sys.exit(f"error: {e}")
  if _PRESET.value == "local":
    print(f"REDUCED RUN (--preset=local): {table.note('local')}", flush=True)
  try:
    # One process per table in OUT_DIR (each run's workdir is owned by its trainer as well).
    with workdir_lib.owned(os.path.join(_OUT_DIR.value, table.name), "table reproduction"):
      result = runner.run_table(table, _PRESET.value, _OUT_DIR.value)
  except ConfigError as e:
    sys.exit(error_line(e))
  with open(result["md"], encoding="utf-8") as f:
    print(f.read())
  print(f"wrote {result['csv']}, {result['md']}" +
        "".join(f", {p}" for p in result["figures"]))


if __name__ == "__main__":
  app.run(main, flags_parser=cli.parse_flags)
