"""Reproducing a paper table: its types (`table`), the runner (`runner`) and the rendering
(`render`). The papers' tables themselves are recipes in `experiments/configs/tables.py`; the
binary is `experiments/reproduce.py`."""
