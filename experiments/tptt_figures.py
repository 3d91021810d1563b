r"""TPTT's figures from a run of the generic trainer (`experiments.train`).

    python -m experiments.train --config=experiments/configs/tptt.py:temporal_order \
        --workdir=/tmp/tptt_t30 --config.task.length=30 --config.train.diag_every=10 \
        --config.learner.log_local_losses=True
    python -m experiments.tptt_figures --workdir=/tmp/tptt_t30

Writes DIR/angle.png (Fig. 5: angle between the learner's and BPTT's `W_hh` updates, from the
"diag" split's `grad_cosine/core/W_hh`, averaged over 10 diagnostics with 2-std error bars),
DIR/radius.png (Fig. 3: spectral radius of `W_hh` from the "diag" split and the update norm
from the "train" split) and, when the run logged them, DIR/local_losses.png (Fig. 6).
"""

import os

from absl import app, flags

from tca_jax import metrics_io, plotting

_WORKDIR = flags.DEFINE_string("workdir", None, "A run directory with metrics.jsonl.")
flags.mark_flags_as_required(["workdir"])


def main(argv):
  del argv
  workdir = _WORKDIR.value
  records = metrics_io.read_metrics(workdir)
  diag = [r for r in records if r["split"] == "diag"]
  trains = [r for r in records if r["split"] == "train"]
  written = []
  if diag:
    plotting.plot_update_angle(diag, os.path.join(workdir, "angle.png"))
    written.append("angle.png")
  if diag and trains:
    norm_key = "recurrent_update_norm" if "recurrent_update_norm" in trains[0] else "update_norm"
    # Both series on the iterations of the "train" records; the radius is held between probes.
    radius, j = [], 0
    for r in trains:
      while j + 1 < len(diag) and diag[j + 1]["step"] <= r["step"]:
        j += 1
      radius.append(diag[j].get("spectral_radius"))
    plotting.plot_radius_and_update_norm([r["step"] for r in trains], radius,
                                         [r[norm_key] for r in trains],
                                         os.path.join(workdir, "radius.png"))
    written.append("radius.png")
  if trains and "f_loss/001" in trains[0]:
    n = len([k for k in trains[0] if k.startswith("f_loss/")])
    plotting.plot_local_losses(
        [r["step"] for r in trains],
        [[r[f"f_loss/{t:03d}"] for t in range(1, n + 1)] for r in trains],
        [[r[f"g_loss/{t:03d}"] for t in range(1, n + 1)] for r in trains],
        [r["loss"] for r in trains], os.path.join(workdir, "local_losses.png"),
        every=max(1, n // 10))
    written.append("local_losses.png")
  print("wrote " + (", ".join(os.path.join(workdir, w) for w in written) or "nothing"))


if __name__ == "__main__":
  app.run(main)
