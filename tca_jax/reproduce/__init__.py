"""Reproducing a paper table: rows (methods) x columns (settings) x seeds, ours beside the paper's.

    from tca_jax import reproduce
    result = reproduce.run_table(table, preset="local", out_dir="results")

* `table`: the types a table is written in (`Table`, `Row`, `Setting`, `Metric`, `Catalogue`) and
  the presets (`PRESETS`);
* `runner`: runs a table's (row, column, seed) runs or reads finished ones back (`run_table`,
  `run_cell`, `Selection`, the run kinds `RUN_KINDS`);
* `render`: the CSV, the markdown and the learning-curve figures.

The papers' tables themselves (which rows, which configs, the papers' numbers) are recipes in
`experiments/configs/tables.py`, written with these types; the binary `experiments/reproduce.py`
parses flags and calls `run_table`. This package never imports `experiments`.
"""

from tca_jax.reproduce import render, runner, table
from tca_jax.reproduce.runner import (EVERYTHING, RUN_KINDS, SeedResult, Selection, TableCell,
                                      run_cell, run_table, select)
from tca_jax.reproduce.table import (PRESETS, Catalogue, Metric, Row, Setting, Table, config_for,
                                     row)

__all__ = ["render", "runner", "table", "EVERYTHING", "RUN_KINDS", "SeedResult", "Selection",
           "TableCell", "run_cell", "run_table", "select", "PRESETS", "Catalogue", "Metric", "Row",
           "Setting", "Table", "config_for", "row"]
