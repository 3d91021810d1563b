"""The TPTT protocol with several seeds in one jitted computation (`tca_jax.tptt_protocol`).

Seed s of a several-seed run must give what the single run with seed s gives. With
`batching="loop"` (the CPU default: each seed's own unbatched computation inside the one jitted
period) that holds bit for bit: results, records, states. With `batching="vmap"` (the default on
an accelerator) it holds to rounding only: XLA's CPU reductions (sums over `[20, 100]`, means)
take another order for a batched array than for one seed's, so the last bits move (matmuls and
elementwise ops agree exactly); the stops and validation mistakes agree on these short runs. A
stopped seed is frozen: its state is that of its stop, whatever the other seeds do.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tca_jax import metrics_io, tptt_protocol
from tca_jax.registry import ConfigError

INTS = ("length", "learner", "solved", "iterations", "reason", "stopped_at", "val_error",
        "test_length")


def _config(hidden=8):
  from experiments.configs import tptt as tptt_config  # pylint: disable=g-import-not-at-top
  c = tptt_config.get_config("temporal_order")
  c.model.hidden_size = hidden
  c.protocol.max_iters, c.protocol.validate_every = 80, 20
  c.protocol.val_samples, c.protocol.val_batch_size = 200, 100
  return c


def _assert_same_run(got, want, rtol):
  """`got` (a seed of a vmapped run) is `want` (its single run): exact stops and mistakes, the
  float records to `rtol`."""
  assert set(got) == set(want)
  for k in INTS:
    assert got.get(k) == want.get(k), (k, got.get(k), want.get(k))
  assert len(got["history"]) == len(want["history"])
  for a, b in zip(got["history"], want["history"]):
    assert set(a) == set(b)
    for k in a:
      if isinstance(b[k], float) and rtol:
        np.testing.assert_allclose(a[k], b[k], rtol=rtol, atol=1e-13, err_msg=k)
      else:
        assert a[k] == b[k], (k, a[k], b[k])
  if "test_accuracy" in want:
    np.testing.assert_allclose(got["test_accuracy"], want["test_accuracy"], rtol=rtol)


def _writer(path):
  path.mkdir()
  return metrics_io.MetricsWriter(str(path))


def _records(path):
  return [{k: v for k, v in r.items() if k != "wall_s"} for r in metrics_io.read_metrics(path)]


def test_seeds_equal_their_single_runs_bit_for_bit_float64(x64, tmp_path):
  """Two seeds in one run at T=10 with a test at T=20 (`generalisation(seeds=...)`): seed 1
  stops (solved) a validation before seed 2 and leaves the batch; each seed's result and records
  are its single run's, bit for bit."""
  c = _config()
  c.protocol.target_error = 0.35  # < 70 mistakes in 200
  c.protocol.train_length, c.protocol.test_length = 10, 20
  protocol = tptt_protocol.protocol_from_config(c)
  seeds = (1, 2)
  writers = {s: _writer(tmp_path / f"seed{s}") for s in seeds}
  stops = []
  multi = tptt_protocol.generalisation(c, protocol, writers, seeds=seeds, batching="loop",
                                       on_run=lambda s, r: stops.append((s, r["stopped_at"])))
  assert list(multi) == list(seeds)
  # The seeds stop at different validations (the stopped one leaves the batch), each reported
  # as it stops.
  assert stops == [(1, 40), (2, 60)]
  for s in seeds:
    want = tptt_protocol.train_until_solved(c, protocol, 10, eval_length=20, seed=s,
                                            writer=_writer(tmp_path / f"single{s}"))
    _assert_same_run(multi[s], want, rtol=0)
    assert _records(str(tmp_path / f"seed{s}")) == _records(str(tmp_path / f"single{s}"))


@pytest.mark.slow
def test_vmapped_seeds_equal_their_single_runs_to_rounding_float64(x64, tmp_path):
  """`batching="vmap"`: the same stops, mistakes and records as the single runs, the floats to
  1e-11; one shared writer tags each record with its seed."""
  c = _config()
  c.protocol.target_error = 0.35
  protocol = tptt_protocol.protocol_from_config(c)
  writer = metrics_io.MetricsWriter(str(tmp_path))
  multi = tptt_protocol.train_until_solved(c, protocol, 10, seeds=(1, 2), writer=writer,
                                           batching="vmap")
  assert (multi[1]["stopped_at"], multi[2]["stopped_at"]) == (40, 60)
  for s in (1, 2):
    _assert_same_run(multi[s], tptt_protocol.train_until_solved(c, protocol, 10, seed=s),
                     rtol=1e-11)
  records = metrics_io.read_metrics(str(tmp_path))
  assert [(r["seed"], r["step"]) for r in records] == [(1, 20), (2, 20), (1, 40), (2, 40),
                                                       (2, 60)]


def test_period_freezes_inactive_seeds_and_matches_single_periods(x64):
  """`period(state, start, keys, active)`: the initial states are the single runs' exactly; an
  inactive seed's state comes back unchanged (bit for bit); an active one's is its single run's
  period (exactly with "loop", to rounding with "vmap")."""
  c = _config()
  protocol = tptt_protocol.protocol_from_config(c)
  seeds = (0, 5)
  singles = [tptt_protocol.build_runner(c, protocol, 10, seed=s) for s in seeds]
  want = [r.period(r.state, 20) for r in singles]
  for batching, rtol in (("loop", 0), ("vmap", 1e-12)):
    runner = tptt_protocol.build_runner(c, protocol, 10, seed=seeds, batching=batching)
    for i, single in enumerate(singles):
      for x, y in zip(jax.tree.leaves(runner.state), jax.tree.leaves(single.state)):
        np.testing.assert_array_equal(np.asarray(x)[i], np.asarray(y))
    got = runner.period(runner.state, 20, runner.keys, jnp.asarray([True, False]))
    for x, y in zip(jax.tree.leaves(got[0]), jax.tree.leaves(runner.state)):
      np.testing.assert_array_equal(np.asarray(x)[1], np.asarray(y)[1])
    for x, y in zip(jax.tree.leaves(got), jax.tree.leaves(want[0])):
      np.testing.assert_allclose(np.asarray(x)[0], np.asarray(y), rtol=rtol, atol=rtol * 1e-3)
    # The frozen seed's metrics are still computed (and discarded by the loop): its period.
    for x, y in zip(jax.tree.leaves(got[1:]), jax.tree.leaves(want[1][1:])):
      np.testing.assert_allclose(np.asarray(x)[1], np.asarray(y), rtol=rtol, atol=rtol * 1e-3)
  with pytest.raises(ConfigError, match="batching='pmap' is not allowed; allowed: vmap, loop"):
    tptt_protocol.build_runner(c, protocol, 10, seed=seeds, batching="pmap")


@pytest.mark.slow
def test_seeds_float32_same_stops_and_mistakes():
  """float32 (the default): "loop" is the single runs bit for bit; "vmap" moves the last bits of
  the reductions, and over a short run the stops and the validation mistakes still agree."""
  c = _config()
  c.protocol.max_iters = 60
  c.protocol.target_error = 0.0
  protocol = tptt_protocol.protocol_from_config(c)
  loop = tptt_protocol.train_until_solved(c, protocol, 10, seeds=(0, 1), batching="loop")
  vmap = tptt_protocol.train_until_solved(c, protocol, 10, seeds=(0, 1), batching="vmap")
  for s in (0, 1):
    want = tptt_protocol.train_until_solved(c, protocol, 10, seed=s)
    _assert_same_run(loop[s], want, rtol=0)
    got = vmap[s]
    assert [h["val_errors"] for h in got["history"]] == [h["val_errors"] for h in want["history"]]
    assert (got["reason"], got["stopped_at"]) == (want["reason"], want["stopped_at"])
    np.testing.assert_allclose([h["loss"] for h in got["history"]],
                               [h["loss"] for h in want["history"]], rtol=1e-4)


@pytest.mark.slow
def test_curriculum_seeds_leave_when_they_fail_and_resume_per_seed(x64):
  """Seeds advance through T together; a seed that fails a T leaves with its t_max; each seed's
  curriculum is its single-seed curriculum; `done` resumes each seed at its own T."""
  c = _config()
  c.protocol.max_iters = 20
  c.protocol.max_length = 30
  # < 140 mistakes in 200 after 20 iterations: T=10 every seed, T=20 seed 1 only (134 against
  # 152, 152), T=30 none (150).
  c.protocol.target_error = 0.7
  protocol = tptt_protocol.protocol_from_config(c)
  seeds = (0, 1, 2)
  saved = []
  multi = tptt_protocol.curriculum(c, protocol, seeds=seeds,
                                   on_run=lambda s, run: saved.append((s, run["length"])))
  assert {s: multi[s]["t_max"] for s in seeds} == {0: 10, 1: 20, 2: 10}
  # As each stops: at T=20 seed 1 is solved at the validation, seeds 0 and 2 reach max_iters.
  assert saved == [(0, 10), (1, 10), (2, 10), (1, 20), (0, 20), (2, 20), (1, 30)]
  for s in seeds:
    c.seed = s
    want = tptt_protocol.curriculum(c, protocol)
    assert multi[s]["t_max"] == want["t_max"]
    assert len(multi[s]["runs"]) == len(want["runs"])
    for got, w in zip(multi[s]["runs"], want["runs"]):
      _assert_same_run(got, w, rtol=0)

  # Resume: seed 0 had finished T=10 only, seed 2 its whole curriculum, seed 1 nothing. Seed 1's
  # T=10 runs first, then seeds 0 and 1 together at T=20; the results are the uninterrupted ones.
  c.seed = 0
  done = {0: multi[0]["runs"][:1], 2: multi[2]["runs"]}
  again = []
  resumed = tptt_protocol.curriculum(c, protocol, seeds=seeds, done=done,
                                     on_run=lambda s, run: again.append((s, run["length"])))
  assert again == [(1, 10), (1, 20), (0, 20), (1, 30)]
  for s in seeds:
    assert resumed[s]["t_max"] == multi[s]["t_max"]
    for got, w in zip(resumed[s]["runs"], multi[s]["runs"]):
      _assert_same_run(got, w, rtol=0)


def test_seed_arguments_are_checked():
  c = _config()
  protocol = tptt_protocol.protocol_from_config(c)
  with pytest.raises(ConfigError, match="repeated seed"):
    tptt_protocol.train_until_solved(c, protocol, 10, seeds=(1, 1))
  with pytest.raises(ConfigError, match="non-empty sequence of integers"):
    tptt_protocol.curriculum(c, protocol, seeds=())
  with pytest.raises(ValueError, match="not in seeds"):
    tptt_protocol.curriculum(c, protocol, seeds=(0,), done={4: []})
  with pytest.raises(ValueError, match="not both"):
    tptt_protocol.train_until_solved(c, protocol, 10, seed=0, seeds=(1,))
