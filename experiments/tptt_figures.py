r"""TPTT's figures from a run of the generic trainer (`experiments.train`).

    python -m experiments.train --config=experiments/configs/tptt.py:temporal_order \
        --workdir=/tmp/tptt_t30 --config.task.length=30 --config.train.diag_every=10 \
        --config.learner.log_local_losses=True
    python -m experiments.tptt_figures --workdir=/tmp/tptt_t30

Writes DIR/angle.png (Fig. 5: angle between the learner's and BPTT's `W_hh` updates, from the
"diag" split's `grad_cosine/core/W_hh`, averaged over 10 diagnostics with 2-std error bars),
DIR/radius.png (Fig. 3: spectral radius of `W_hh` from the "diag" split and the update norm
from the "train" split) and, when the run logged them, DIR/local_losses.png (Fig. 6);
`tca_jax.plotting.tptt_figures` draws them.
"""

import os

from absl import app, flags

from tca_jax import metrics_io, plotting

_WORKDIR = flags.DEFINE_string("workdir", None, "A run directory with metrics.jsonl.")
flags.mark_flags_as_required(["workdir"])


def main(argv):
  del argv
  workdir = _WORKDIR.value
  written = plotting.tptt_figures(metrics_io.read_metrics(workdir), workdir)
  print("wrote " + (", ".join(os.path.join(workdir, w) for w in written) or "nothing"))


if __name__ == "__main__":
  app.run(main)
