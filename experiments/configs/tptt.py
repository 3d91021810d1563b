r"""TPTT (Manchev & Spratling 2020): the paper's SRN, learning rates and protocol, per task.

    python -m experiments.tptt_protocol --config=experiments/configs/tptt.py:temporal_order \
        --workdir=/tmp/tptt_to [--config.protocol.max_iters=2000]
    python -m experiments.tptt_protocol --config=experiments/configs/tptt.py:temporal_order_bptt \
        --workdir=/tmp/bptt_to
    python -m experiments.train --config=experiments/configs/tptt.py:temporal_order \
        --workdir=/tmp/tptt_t30 --config.task.length=30 --config.train.diag_every=10

Presets `TASK`, `TASK_bptt`, `TASK_hx` for TASK in temporal_order, temporal_order_3bit, adding
(the paper's variant, `adding_pascanu`), permutation: an SRN(100), tanh, orthogonal `W_hh`,
Nesterov momentum 0.9, batch 20, no clipping, the loss on the last step, with the learning rates
behind the paper's t_max (Table 1: TPTT / BPTT; Table A2 and the Table A3 common model: TPTT_hx).
`TASK_fast` uses the fastest TPTT rates of Table 2 where they differ. The paper's numbers:

| task                 | t_max BPTT | t_max TPTT | t_max TPTT_hx | iters BPTT / TPTT at t_max(BPTT) |
| -------------------- | ---------- | ---------- | ------------- | -------------------------------- |
| temporal_order       | 120        | 150        | 210           | 46,500 / 1,600 (T=120)           |
| temporal_order_3bit  | 70         | 150        | 160           | 56,000 / 1,300 (T=70)            |
| adding               | 90         | 60         | 60            | 18,000 / - (T=90)                |
| permutation          | 70         | 300        | 800           | 12,200 / 12,700 (T=70)           |

Every preset takes a `_release` suffix (`adding_release`, `temporal_order_hx_release`,
`permutation_bptt_release`, ...): the authors' release (nmanchev/tptt) where it differs from the
text. Task (`task.variant="release"`): temporal order's Y in [0.5T, 0.6T), adding's length
jitter and squared-error < 0.04 count, permutation's symbols 2..99 and 100 classes. Learner
(`learner.variant="release"`, TPTT only): eq. 9 summed over t = 1..T with noise on h_0 too, G
then F every iteration, targets after the G step, `V_hh` orthogonal. Protocol: every weight
orthogonal (`protocol.init="orthogonal"`), a 300-validation patience stop. The release's default
`W_xh` rule is eq. 13, so its own default run is `TASK_hx_release`. Without the suffix the
presets follow the paper's text; a results row names its preset.

`protocol.mode` picks what `experiments/tptt_protocol.py` runs: "curriculum" (Table 1, Table 2
per T), "generalisation" (train T=100, test T=200, Table 4) or "single" (one T = task.length).
"""

import dataclasses

from ml_collections import config_dict

from experiments.configs import recipes
from tca_jax import tptt_protocol

TASKS = {
    "temporal_order": "temporal_order",
    "temporal_order_3bit": "temporal_order_3bit",
    "adding": "adding_pascanu",
    "permutation": "permutation",
}
# Table 1: BPTT alpha; TPTT (alpha_i, alpha_f, alpha_g).
BPTT_LR = {"temporal_order": 1e-5, "temporal_order_3bit": 1e-5, "adding": 1e-3,
           "permutation": 1e-2}
TPTT_LR = {"temporal_order": (0.1, 0.01, 0.001), "temporal_order_3bit": (0.1, 0.01, 0.001),
           "adding": (0.5, 0.02, 0.07), "permutation": (0.1, 0.01, 0.001)}
# Table 2 "TPTT best" where it differs from the common model.
TPTT_FAST_LR = {"temporal_order": (0.1, 0.01, 0.001), "temporal_order_3bit": (0.1, 0.01, 0.1),
                "adding": (0.5, 0.02, 0.07), "permutation": (0.1, 0.1, 0.01)}
# Table A2 (temporal order) and the Table A3 common model for TPTT_hx; adding from Appendix A.
HX_LR = {"temporal_order": (0.1, 0.01, 0.01), "temporal_order_3bit": (0.1, 0.2, 0.01),
         "adding": (0.02, 0.01, 0.05), "permutation": (0.1, 0.2, 0.01)}


VARIANTS = {"": "tptt", "_bptt": "bptt", "_hx": "hx", "_fast": "fast"}
# preset -> (task, variant, release): "temporal_order", "temporal_order_bptt", ...,
# "permutation_fast", and each with a "_release" suffix (the authors' release's choices).
PRESETS = {task + suffix + rel: (task, variant, bool(rel))
           for task in TASKS for suffix, variant in VARIANTS.items()
           for rel in ("", "_release")}


def _make(task: str, variant: str, release: bool = False):
  c = recipes.tptt_srn(TASKS[task], BPTT_LR[task])
  c.train.log_every = 100
  c.train.eval_every = 1000
  c.train.eval_batches = 10
  c.train.eval_batch_size = 1000
  if variant != "bptt":
    c.learner.name = "tptt_hx" if variant == "hx" else "tptt"
    table = {"tptt": TPTT_LR, "fast": TPTT_FAST_LR, "hx": HX_LR}[variant]
    alpha_i, alpha_f, alpha_g = table[task]
    c.learner.alpha_i = alpha_i
    c.learner.alpha_f = alpha_f
    c.learner.alpha_g = alpha_g
    c.learner.sigma = 0.0
    c.learner.p_g = 1.0
    c.train.learning_rate = alpha_f

  # The protocol's constants: the paper's, as `tptt_protocol.Protocol` defines them.
  c.protocol = config_dict.ConfigDict(
      {"mode": "curriculum", **dataclasses.asdict(tptt_protocol.Protocol())})
  if release:  # the authors' release (docs/TPTT.md): its task variants, init, learner, patience
    c.task.variant = "release"
    if variant != "bptt":
      c.learner.variant = "release"
    c.protocol.init = "orthogonal"
    c.protocol.init_std = None
    c.protocol.patience = 300
  return c


def get_config(preset: str = "temporal_order"):
  return recipes.choose("tptt", preset,
                        {name: (lambda tv=tv: _make(*tv)) for name, tv in PRESETS.items()})
