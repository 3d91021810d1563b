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

from ml_collections import config_dict

from tca_jax.config import default_config

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


def get_config(preset: str = "temporal_order"):
  release = preset.endswith("_release")
  task = preset[:-len("_release")] if release else preset
  variant = "tptt"
  for suffix in ("_bptt", "_hx", "_fast"):
    if task.endswith(suffix):
      task, variant = task[:-len(suffix)], suffix[1:]
  if task not in TASKS:
    allowed = [t + s for t in TASKS for s in ("", "_bptt", "_hx", "_fast")]
    raise ValueError(f"tptt config preset {preset!r}; allowed: {', '.join(allowed)} (each also "
                     "with a _release suffix)")

  c = default_config()
  c.task.name = TASKS[task]
  c.task.length = 10
  c.model.cell = "srn"
  c.model.hidden_size = 100
  c.model.activation = "tanh"
  c.model.recurrent_init = "orthogonal"
  c.train.optimizer = "sgd"
  c.train.momentum = 0.9
  c.train.nesterov = True
  c.train.clip_norm = 0.0
  c.train.batch_size = 20
  c.train.steps = 100_000
  c.train.log_every = 100
  c.train.eval_every = 1000
  c.train.eval_batches = 10
  c.train.eval_batch_size = 1000
  if variant == "bptt":
    c.learner.name = "bptt"
    c.train.learning_rate = BPTT_LR[task]
  else:
    c.learner.name = "tptt_hx" if variant == "hx" else "tptt"
    table = {"tptt": TPTT_LR, "fast": TPTT_FAST_LR, "hx": HX_LR}[variant]
    alpha_i, alpha_f, alpha_g = table[task]
    c.learner.alpha_i = alpha_i
    c.learner.alpha_f = alpha_f
    c.learner.alpha_g = alpha_g
    c.learner.sigma = 0.0
    c.learner.p_g = 1.0
    c.train.learning_rate = alpha_f

  c.protocol = config_dict.ConfigDict()
  c.protocol.mode = "curriculum"
  c.protocol.max_iters = 100_000
  c.protocol.validate_every = 100
  c.protocol.val_samples = 10_000
  c.protocol.val_batch_size = 1000
  c.protocol.target_error = 1e-4
  c.protocol.max_radius = 20.0
  c.protocol.start_length = 10
  c.protocol.length_step = 10
  c.protocol.max_length = 0
  c.protocol.train_length = 100
  c.protocol.test_length = 200
  c.protocol.init_std = 0.1
  c.protocol.init = "normal"
  c.protocol.patience = 0
  if release:
    c.task.variant = "release"
    if variant != "bptt":
      c.learner.variant = "release"
    c.protocol.init = "orthogonal"
    c.protocol.init_std = None
    c.protocol.patience = 300
  return c
