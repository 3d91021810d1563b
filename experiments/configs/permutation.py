r"""Random permutation problem, as in the TPTT paper (sec. 3.1).

    python -m experiments.train --config=experiments/configs/permutation.py --workdir=/tmp/perm

Presets: "quick" (default: T=20, LSTM(64) + BPTT with Adam) and "paper_bptt" (SRN(100), lr 0.01;
Table 1: BPTT reached t_max = 70).
"""

from experiments.configs import recipes


def get_config(preset: str = "quick"):
  return recipes.choose("permutation", preset, {
      "quick": lambda: recipes.quick_lstm("permutation", 20, 1000),
      "paper_bptt": lambda: recipes.paper_srn("permutation", 0.01),
  })
