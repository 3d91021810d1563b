r"""Forward-mode online learners (RTRL, UORO, KF-RTRL, SnAp-1) on temporal order, T=10.

    python -m experiments.train --config=experiments/configs/online.py --workdir=/tmp/online \
        --config.learner.name=rtrl --config.train.update_every=1
    python -m experiments.train --config=experiments/configs/online.py:uoro --workdir=/tmp/uoro

The preset names a learner (`rtrl` is the default; `uoro`, `kf_rtrl`, `snap1`, `bptt`) and sets
its learning rate; every preset updates the parameters after every step (`train.update_every=1`),
the learner carrying its influence trace across steps: fully online learning, no
backpropagation through time. Targets: the temporal order problem (Hochreiter & Schmidhuber 1997;
TPTT paper sec. 3.1) at T=10 with a tanh SRN(32); the command above (RTRL) reaches > 99% test
accuracy on a 2-core CPU (see docs/RESULTS.md for the measured accuracy and time). An explicit
`--config.learner.name=...` on the command line overrides the preset's learner.
"""

from tca_jax.config import default_config

PRESETS = ("rtrl", "uoro", "kf_rtrl", "snap1", "bptt")
# Adam learning rates per learner (the noisy estimators need smaller steps).
LEARNING_RATES = {"rtrl": 3e-3, "uoro": 1e-3, "kf_rtrl": 2e-3, "snap1": 3e-3, "bptt": 3e-3}


def get_config(preset: str = "rtrl"):
  if preset not in PRESETS:
    raise ValueError(f"online config preset {preset!r}; allowed: {', '.join(PRESETS)}")
  c = default_config()
  c.task.name = "temporal_order"
  c.task.length = 10
  c.model.cell = "srn"
  c.model.hidden_size = 32
  c.learner.name = preset
  c.train.optimizer = "adam"
  c.train.batch_size = 32
  c.train.update_every = 1
  c.train.steps = 300
  c.train.learning_rate = LEARNING_RATES[preset]
  c.train.log_every = 50
  c.train.eval_every = 100
  return c
