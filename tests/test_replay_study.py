"""The replay figure's library function on a tiny sweep: rows and a PNG."""

import os

import pytest

from tca_jax import replay_study


@pytest.mark.slow
def test_tiny_replay_sweep_and_plot(tmp_path):
  rows = replay_study.sweep(str(tmp_path), sigmas=(0.0, 0.5), fractions=(1.0, 0.5), length=3,
                            hidden_size=4, steps=2, seeds=1)
  assert [(r["sigma"], r["fraction"]) for r in rows] == [(0.0, 1.0), (0.5, 1.0), (0.0, 0.5)]
  assert abs(rows[0]["grad_cosine"] - 1) < 1e-4  # noiseless full replay is BPTT
  assert rows[1]["grad_cosine"] < rows[0]["grad_cosine"]
  replay_study.plot(rows, str(tmp_path / "fig.png"))
  assert os.path.getsize(tmp_path / "fig.png") > 0
