"""`plotting.tptt_figures`: TPTT's figures from a generic-trainer run's records (what the binary
experiments/tptt_figures.py draws): which files, and the radius held between diagnostics."""

from tca_jax import plotting


def _records():
  def train(step):
    return {"split": "train", "step": step, "loss": 1.0 / step, "update_norm": 0.1 * step,
            "f_loss/001": 0.5, "f_loss/002": 0.25, "g_loss/001": 0.0, "g_loss/002": 0.125}
  return [{"split": "diag", "step": 0, "grad_cosine/core/W_hh": 0.5, "spectral_radius": 1.0},
          train(5),
          {"split": "diag", "step": 10, "grad_cosine/core/W_hh": 0.25, "spectral_radius": 2.0},
          train(10), {"split": "eval", "step": 10, "accuracy": 0.5}, train(15)]


def test_tptt_figures_hold_the_radius_between_diagnostics(tmp_path, monkeypatch):
  drawn = {}
  draw = plotting.plot_radius_and_update_norm

  def spy(steps, radius, update_norm, path, title=""):
    drawn.update(steps=steps, radius=radius, update_norm=update_norm)
    draw(steps, radius, update_norm, path, title)

  monkeypatch.setattr(plotting, "plot_radius_and_update_norm", spy)
  written = plotting.tptt_figures(_records(), str(tmp_path))
  assert written == ["angle.png", "radius.png", "local_losses.png"]
  assert all((tmp_path / name).stat().st_size > 1000 for name in written)
  # The train records' steps; each takes the radius of the last diagnostic at or before it.
  assert drawn == {"steps": [5, 10, 15], "radius": [1.0, 2.0, 2.0],
                   "update_norm": [0.5, 1.0, 1.5]}


def test_tptt_figures_without_diagnostics_draw_what_the_records_hold(tmp_path):
  trains = [r for r in _records() if r["split"] == "train"]
  assert plotting.tptt_figures(trains, str(tmp_path)) == ["local_losses.png"]
  assert plotting.tptt_figures([{"split": "eval", "step": 1}], str(tmp_path / "none")) == []
