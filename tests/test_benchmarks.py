"""The benchmark machinery on tiny shapes: row schema, JSON output, FLOP counting. No timings."""

import json
import os

import jax
import jax.numpy as jnp
import pytest

from benchmarks import common, run, torch_ref

ROW_KEYS = {"framework", "group", "learner", "cell", "T", "hidden", "batch", "options",
            "step_ms", "compile_s", "peak_mb", "gflops", "frac_of_peak", "torch_ms",
            "torch_ratio"}


def test_matmul_flops_counts_scan_bodies_times_length():
  t, b, h = 7, 3, 5

  def f(w, xs):
    return jax.lax.scan(lambda c, x: (jnp.tanh(c @ w + x), None), jnp.zeros((b, h)), xs)[0]

  w, xs = jnp.ones((h, h)), jnp.ones((t, b, h))
  assert common.matmul_flops(f, w, xs) == t * 2 * b * h * h
  # The backward pass adds two products per step (dW and dh); the forward is kept.
  assert common.matmul_flops(jax.grad(lambda w: f(w, xs).sum()), w) == 3 * t * 2 * b * h * h


def test_matmul_flops_bounds_of_a_data_dependent_branch():
  def f(p, w, x):
    return jax.lax.cond(p, lambda x: x @ w @ w, lambda x: x, x)

  w, x = jnp.ones((4, 4)), jnp.ones((2, 4))
  assert common.matmul_flops_bounds(f, True, w, x) == (0.0, 2 * 2 * 2 * 4 * 4)


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
  """One tiny benchmark run shared by the tests below: `(result, saved JSON, printed lines)`."""
  out = tmp_path_factory.mktemp("bench")
  specs = [run.Spec("bptt", "lstm", 3, 8, 2, torch="lstm_bptt"),
           run.Spec("bptt", "srn", 5, 8, 2, group="memory", memory_only=True),
           run.Spec("bptt", "srn", 50, 8, 2, group="memory", memory_only=True),
           run.Spec("bptt", "srn", 50, 8, 2, (("learner.remat", True),), group="memory",
                    memory_only=True),
           run.Spec("no_such_learner", "lstm", 3, 8, 2)]
  lines = []
  result = run.run(True, str(out), steps=2, specs=specs, peak_n=64, echo=lines.append)
  with open(os.path.join(out, "quick.json"), encoding="utf-8") as f:
    saved = json.load(f)
  return result, saved, lines


def test_rows_have_the_schema_and_the_json_is_written(bench):
  result, saved, lines = bench
  assert saved["rows"] == json.loads(json.dumps(result["rows"], default=float))
  assert saved["matmul_peak_gflops"] > 0 and "machine" in saved
  for row in saved["rows"]:
    assert ROW_KEYS <= set(row)
  timed, missing = saved["rows"][0], saved["rows"][-1]
  assert (timed["learner"], timed["cell"], timed["T"], timed["hidden"], timed["batch"]) == (
      "bptt", "lstm", 3, 8, 2)
  for key in ("step_ms", "compile_s", "peak_mb", "gflops", "frac_of_peak"):
    assert isinstance(timed[key], float) and timed[key] > 0, key
  if torch_ref.available():
    assert timed["torch_ratio"] == pytest.approx(timed["step_ms"] / timed["torch_ms"])
  else:
    assert timed["torch_ratio"] is None
  assert missing["step_ms"] is None and "learner.name" in missing["skipped"]
  table = lines[-2]
  assert table.splitlines()[0].split()[:5] == ["learner", "cell", "T", "H", "B"]
  assert len(table.splitlines()) == 2 + len(saved["rows"])


def test_memory_rows_grow_with_T_and_remat_stores_less(bench):
  short, long, remat = bench[1]["rows"][1:4]
  for row in (short, long, remat):
    assert row["step_ms"] is None and row["peak_mb"] > 0
  assert long["peak_mb"] > short["peak_mb"]
  assert remat["peak_mb"] < long["peak_mb"]


def test_plan_discovers_registered_learners_and_skips_missing_cells():
  specs = run.plan(True, learner_names=["bptt", "tbptt", "sab"], cell_names=["lstm", "gru"])
  names = {(s.learner, s.group) for s in specs}
  assert ("bptt", "bptt_lstm") in names and ("tbptt", "learners") in names
  assert ("bptt", "cells") in names  # the gru
  sab = [s for s in specs if s.learner == "sab"]
  assert [s.group for s in sab] == ["missing"]  # no sab_lstm cell registered here
  full = run.plan(False, learner_names=["bptt"], cell_names=["lstm"])
  grid = {(s.T, s.hidden, s.batch) for s in full if s.group == "bptt_lstm"}
  assert grid == {(t, h, b) for t in (100, 300, 1000) for h in (128, 256, 1000) for b in (32, 128)}


@pytest.mark.skipif(not torch_ref.available(), reason="torch (the [bench] extra) not installed")
def test_torch_references_run_a_training_step():
  import torch  # pylint: disable=g-import-not-at-top
  for kind in ("lstm_bptt", "sab"):
    torch.manual_seed(0)
    step = torch_ref.make_step(kind, 12, 8, 2, sab_options={"k_top": 2, "k_att": 3,
                                                             "k_trunc": 4})
    step()
    step()
  module = torch_ref.SABLoop(8, k_top=2, k_att=3, k_trunc=4)
  inputs, _ = torch_ref._copy_batch(12, 2, 0)  # pylint: disable=protected-access
  assert module(inputs).shape == (32, 2, 10)


def _event(name, ts, dur, tid=1, pid=1):
  return {"ph": "X", "name": name, "ts": ts, "dur": dur, "pid": pid, "tid": tid}


def test_trace_counts_leaf_events_once():
  """A loop event around its body's ops is left out; markers and other threads are ignored."""
  from benchmarks import trace  # pylint: disable=g-import-not-at-top
  meta = [{"ph": "M", "name": "process_name", "pid": 1, "args": {"name": "/host:CPU"}},
          {"ph": "M", "name": "process_name", "pid": 2, "args": {"name": "/device:GPU:0"}},
          {"ph": "M", "name": "thread_name", "pid": 1, "tid": 1, "args": {"name": "tf_XLAEigen/7"}},
          {"ph": "M", "name": "thread_name", "pid": 1, "tid": 2, "args": {"name": "python"}},
          {"ph": "M", "name": "thread_name", "pid": 2, "tid": 3, "args": {"name": "Stream #14"}}]
  events = [_event("while.1", 0, 100),       # container of the two fusions below
            _event("fusion.1", 10, 30), _event("end: fusion.1", 39, 0),
            _event("fusion.2", 50, 20),
            _event("dot.3", 120, 5),         # after the loop, on the same thread
            _event("$api.py block", 0, 200, tid=2),  # Python thread: not an XLA op
            _event("ThunkExecutor::Execute", 0, 130),
            _event("kernel_a", 0, 2, pid=2, tid=3), _event("kernel_a", 5, 4, pid=2, tid=3)]
  trace_json = {"traceEvents": meta + events}
  cpu = trace.leaf_events(trace_json, "cpu")
  assert sorted(e["name"] for e in cpu) == ["dot.3", "fusion.1", "fusion.2"]
  gpu = trace.leaf_events(trace_json, "gpu")
  assert [e["name"] for e in gpu] == ["kernel_a", "kernel_a"]
  summary = trace.summarize(cpu, steps=2, time_steps=5)
  assert summary["ms_per_step"] == pytest.approx((30 + 20 + 5) / 1e3 / 2)
  assert summary["events_per_step"] == 1.5 and summary["events_per_time_step"] == 0.3
  assert summary["rows"][0] == {"name": "fusion.1", "ms_per_step": 0.015,
                                "count_per_step": 0.5, "us_each": 30.0}
  gpu_summary = trace.summarize(gpu, steps=1, time_steps=2)
  assert gpu_summary["rows"] == [{"name": "kernel_a", "ms_per_step": 0.006,
                                  "count_per_step": 2, "us_each": 3.0}]


def test_trace_self_time_splits_containers_from_their_contents():
  """Self times: a loop keeps its duration less its body's ops; they add up to the busy time."""
  from benchmarks import trace  # pylint: disable=g-import-not-at-top
  meta = [{"ph": "M", "name": "process_name", "pid": 1, "args": {"name": "/host:CPU"}},
          {"ph": "M", "name": "thread_name", "pid": 1, "tid": 1, "args": {"name": "tf_XLAEigen/7"}}]
  events = [_event("while.1", 0, 100), _event("fusion.1", 10, 30), _event("dot.2", 15, 10),
            _event("fusion.2", 50, 20), _event("dot.3", 120, 5)]
  self_times = {e["name"]: e["dur"]
                for e in trace.self_time_events({"traceEvents": meta + events}, "cpu")}
  assert self_times == {"while.1": 50, "fusion.1": 20, "dot.2": 10, "fusion.2": 20, "dot.3": 5}
  assert sum(self_times.values()) == 100 + 5


def test_trace_of_a_real_step_sees_the_recurrent_ops(tmp_path):
  """On this CPU: a TBPTT step at T=2 (22 steps) runs its recurrent ops once per time step."""
  from benchmarks import trace  # pylint: disable=g-import-not-at-top
  out = tmp_path / "trace.json"
  trace.main(["--rows=tbptt5", "--T=2", "--hidden=8", "--batch=2", "--steps=2",
              f"--out={out}"])
  result = json.loads(out.read_text())["results"]["tbptt5"]
  assert result["events_per_step"] > 0 and result["ms_per_step"] > 0
  counts = [r["count_per_step"] for r in result["rows"]]
  # Ops inside the scans run once per step of the 22-step sequence (forward and backward scans).
  assert any(c % 22 == 0 for c in counts)
  assert result["events_per_time_step"] >= 2


def test_numpy_rtrl_reference_influence_is_the_jacobian(x64):
  """The batch-1 NumPy RTRL reference of `benchmarks.compare` carries d a_t / d W exactly."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  from benchmarks import compare  # pylint: disable=g-import-not-at-top
  net = compare.NumpyRTRL(4, 3, 3, lr=0.0, dtype=np.float64)
  w = jnp.asarray(net.W)
  xs = jnp.asarray(net.x[:5])

  def state(w):
    a = jnp.zeros(4)
    for x in xs:
      a = jnp.tanh(w @ jnp.concatenate([a, x, jnp.ones(1)]))
    return a

  for _ in range(5):
    net.step()
  np.testing.assert_allclose(net.a, state(w), rtol=1e-12)
  np.testing.assert_allclose(net.dadw, jax.jacobian(state)(w), rtol=1e-10, atol=1e-13)


def test_compare_prints_the_table_on_tiny_shapes():
  """`python -m benchmarks.compare --quick` on a few rows, 1 round: every row has its times, its
  ratio against the reference timed in the same process, and the target check."""
  from benchmarks import compare  # pylint: disable=g-import-not-at-top
  lines = []
  rows = ("bptt_lstm", "sab_port", "rtrl64", "rtrl64_b1", "tptt_protocol")
  out = compare.compare(rows, quick=True, rounds=1, steps=1, echo=lines.append)
  by = {r["row"]: r for r in out["rows"]}
  assert list(by) == list(rows)
  assert "no --sab_port" in by["sab_port"]["skipped"]
  if not torch_ref.available():
    assert "torch is not installed" in by["bptt_lstm"]["skipped"]
  for r in out["rows"]:
    if r["skipped"]:
      continue
    assert r["tca_ms"] > 0 and r["ref_ms"] > 0 and isinstance(r["met"], bool)
    assert r["ratio"] == pytest.approx(r["tca_ms"] / r["ref_ms"])
  assert by["rtrl64_b1"]["measure"] == by["rtrl64_b1"]["ratio"]
  assert by["rtrl64"]["xla_bmm_ms"] > 0
  assert len(out["times"]["jax_rtrl64"]["rounds"]) == 1
  table = lines[-1].splitlines()
  assert table[1].startswith("| workload | tca-jax | reference | ratio")
  assert len(table) == 3 + len(rows)
