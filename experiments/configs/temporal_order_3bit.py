r"""3-bit temporal order, as in the TPTT paper (sec. 3.1): 8 classes.

    python -m experiments.train --config=experiments/configs/temporal_order_3bit.py --workdir=/tmp/t3
    python -m experiments.train --config=experiments/configs/temporal_order_3bit.py:paper_bptt \
        --workdir=/tmp/t3_bptt --config.task.length=70

Presets: "quick" (default: T=20, LSTM(64) + BPTT with Adam) and "paper_bptt" (SRN(100), lr 1e-5;
Table 1: BPTT reached t_max = 70).
"""

from experiments.configs import recipes


def get_config(preset: str = "quick"):
  return recipes.choose("temporal_order_3bit", preset, {
      "quick": lambda: recipes.quick_lstm("temporal_order_3bit", 20, 2000),
      "paper_bptt": lambda: recipes.paper_srn("temporal_order_3bit", 1e-5),
  })
