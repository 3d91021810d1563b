r"""Adding problem, two variants.

    python -m experiments.train --config=experiments/configs/adding.py --workdir=/tmp/add
    python -m experiments.train --config=experiments/configs/adding.py:pascanu --workdir=/tmp/addp

Presets: "quick" (default: the SAB/Hochreiter variant `adding`, T=50, LSTM(64) + BPTT; target
X1 + X2) and "pascanu" (the TPTT paper's `adding_pascanu` with its BPTT baseline, SRN(100),
lr 0.001; Table 1: BPTT reached t_max = 90). `accuracy` is the fraction of samples with absolute
error below 0.04.
"""

from experiments.configs import recipes


def get_config(preset: str = "quick"):
  return recipes.choose("adding", preset, {
      "quick": lambda: recipes.quick_lstm("adding", 50, 2000),
      "pascanu": lambda: recipes.paper_srn("adding_pascanu", 1e-3),
  })
