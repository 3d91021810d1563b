"""A paper table as data: rows (methods) x settings (column groups) x metrics, and its presets.

    table = Table(name="sab_copy", title=..., source="Ke et al. 2018 (SAB), Table 2",
                  rows=(row("LSTM, full BPTT", recipes.lstm_bptt, {("T=100", "acc."): 99.8}),),
                  settings=lambda preset: [Setting("T=100", "T=10", make_config, (ACC,))])

The types only; the papers' tables (which rows, which configs, the papers' numbers) are recipes in
`experiments/configs/tables.py`. `tca_jax.reproduce.runner` runs a table, `render` writes it.

Presets (`PRESETS`; a table lists those it has in `Table.presets`): `local`, a reduced run for a
CPU; `full`, the paper's settings; `paper` (the TPTT tables), the paper's full training budget.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Mapping, Optional

import ml_collections

from tca_jax import config as config_lib

PRESETS = ("local", "full", "paper")


@dataclasses.dataclass(frozen=True)
class Metric:
  """One number per run: `key` of the run's result, times `scale`, printed as the paper does."""

  label: str  # the paper's column label ("acc.", "CE10", "BPC", "t_max")
  key: str  # "accuracy", "ce_last10", "ce", "loss", "bpc"; "t_max" / "iters" for those kinds
  scale: float = 1.0  # 100 for percentages
  fmt: str = ".3g"


@dataclasses.dataclass(frozen=True)
class Setting:
  """A column group of the table: the paper's setting and the config we run for it."""

  paper: str  # the paper's column group ("T=100", "PTB", "temporal order")
  label: str  # ours: the same as `paper` in the full preset, the reduced one in the local preset
  config: Callable[[], ml_collections.ConfigDict]
  metrics: tuple


@dataclasses.dataclass(frozen=True)
class Row:
  """A method: a learner and how it changes the column's config (`apply(config)` in place)."""

  label: str
  learner: Optional[str]  # None: the paper's row has no tca-jax counterpart
  apply: Optional[Callable[[ml_collections.ConfigDict], None]]
  paper: dict  # {(setting.paper, metric.label): number}; absent = no number in the paper


@dataclasses.dataclass(frozen=True)
class Table:
  name: str
  title: str
  source: Optional[str]  # where the paper numbers come from; None: a table of our own
  rows: tuple
  settings: Callable[[str], list]  # preset -> [Setting]
  kind: str = "final"  # a key of runner.RUN_KINDS
  seeds: tuple = (("local", 1), ("full", 3))
  notes: tuple = ()  # (preset, text) pairs shown under the table
  presets: tuple = ("local", "full")  # the TPTT tables add "paper" (the paper's full budget)
  # kind "transfer" (SAB Table 6): the table whose runs this one tests (rows matched by label),
  # and the paper label of the column they train in there; evaluation only.
  trained_in: Optional["Table"] = None
  trained_setting: str = ""

  def check_preset(self, preset: str) -> None:
    """A one-line ValueError when the table has no preset `preset`, naming those it has."""
    if preset not in self.presets:
      raise ValueError(f"--preset={preset!r} for table {self.name!r}; allowed: "
                       f"{', '.join(self.presets)}")

  def num_seeds(self, preset: str) -> int:
    seeds = dict(self.seeds)
    return seeds[preset] if preset in seeds else seeds["full"]

  def stem(self, preset: str) -> str:
    """The name of the table's files and run folder: NAME (full preset) or NAME_PRESET."""
    return self.name if preset == "full" else f"{self.name}_{preset}"

  def note(self, preset: str) -> str:
    return " ".join(text for p, text in self.notes if p in (preset, "all"))


def config_for(row: Row, setting: Setting, seed: int) -> ml_collections.ConfigDict:
  """The config of one run: the column's config, changed by the row, with `seed`."""
  c = setting.config()
  row.apply(c)
  c.seed = seed
  return c


def learner_of(apply) -> str:
  """The learner a row's `apply` selects (applied to the default config at T=100)."""
  c = config_lib.default_config()
  c.task.length = 100
  apply(c)
  return c.learner.name


def row(label, apply, paper, learner=None) -> Row:
  """A Row whose learner is `learner`, or else the one `apply` selects (None without `apply`)."""
  return Row(label, learner or (learner_of(apply) if apply else None), apply, paper)


@dataclasses.dataclass(frozen=True)
class Catalogue:
  """The tables a binary offers: by name, and under aliases (`sab_table2` for `sab_copy`)."""

  tables: Mapping[str, Table]
  aliases: Mapping[str, str] = dataclasses.field(default_factory=dict)

  def get(self, name: str) -> Table:
    """The table called `name` (or an alias); a ValueError lists the names and aliases."""
    name = self.aliases.get(name, name)
    if name not in self.tables:
      raise ValueError(f"--table={name!r}; allowed: {', '.join(self.tables)} (aliases: "
                       f"{', '.join(self.aliases)})")
    return self.tables[name]
