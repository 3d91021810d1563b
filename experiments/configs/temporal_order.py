r"""Temporal order (Hochreiter & Schmidhuber 1997), as in the TPTT paper (sec. 3.1).

    python -m experiments.train --config=experiments/configs/temporal_order.py --workdir=/tmp/to
    python -m experiments.train --config=experiments/configs/temporal_order.py:paper_bptt \
        --workdir=/tmp/to_bptt --config.task.length=120

Presets: "quick" (default: T=20, LSTM(64) + BPTT with Adam; solves it on a CPU in a few minutes)
and "paper_bptt" (the TPTT paper's BPTT baseline, SRN(100), lr 1e-5; Table 1: BPTT reached
t_max = 120 within 100,000 iterations).
"""

from experiments.configs import recipes


def get_config(preset: str = "quick"):
  return recipes.choose("temporal_order", preset, {
      "quick": lambda: recipes.quick_lstm("temporal_order", 20, 2000),
      "paper_bptt": lambda: recipes.paper_srn("temporal_order", 1e-5),
  })
