r"""The speed table of issue 17: tca-jax against its references, timed side by side in one process.

    python -m benchmarks.compare [--quick] [--rounds=5] [--steps=5] [--rows=bptt_lstm,rtrl64] \
        [--sab_port=/path/to/adapter.py] [--out=compare.json]

Every candidate (a tca-jax step or a reference) is built and compiled first; then `--rounds`
rounds run, and in each round every candidate runs one warm-up call and `--steps` timed calls in
turn, so the load of a shared machine hits all of them alike. A candidate's time is the median
over rounds of the per-round medians, divided by its unit (time steps or iterations per call).
Absolute times on a loaded machine are not comparable to a quiet machine's; the *ratios*
(tca-jax / reference, both from this process) are what the table is for.

Rows (the issue's shapes; `--quick` shrinks every shape so the run takes about a minute):

* `bptt_lstm`: the trainer's step (`tca_jax.train.make_train_step`), BPTT, LSTM(128), copy
  T=100 (120 steps), batch 32, Adam, clipping 1, against `torch.nn.LSTM` + Linear (PyTorch on as
  many threads as XLA uses). Target: ratio <= 0.8. The same step with `learner.kernel=native`
  (the LSTM core as jax.ffi kernels) is timed beside it (`jax_bptt_native`, "native kernel";
  also `jax_bptt_big_native` in the next row).
* `bptt_lstm_peak`: the same at H=256, batch 128, as a fraction of the matmul peak measured in
  this process (`common.matmul_peak_gflops`). Target >= 0.6.
* `sab`: SAB (k_trunc = k_top = k_att = 5) against `benchmarks/torch_ref.py`'s Python-loop SAB;
  `sab_port`: against the public port of the SAB release when `--sab_port` names an adapter file
  (outside the repository; it must define `make_step(length, hidden, batch, k_trunc, k_top,
  k_att) -> callable` running one training step of the port). Target: ratio <= 0.1 (10x faster).
* `sab_vs_tbptt5`: SAB against TBPTT(5), both tca-jax. Target <= 1.3.
* `rtrl64`, `rtrl128`: RTRL, SRN(N), batch 32, `update_every=1`, per time step (the trainer's
  step on a window of `--rtrl_steps` time steps, divided by them), against NumPy's (OpenBLAS)
  batched matmul `[32, N, N] @ [32, N, P]` of the influence update, the bound to beat; XLA's
  `jnp.einsum` of that shape is printed beside it. The target is on the fraction of the matmul
  peak that the influence update's `2 N^2 P B` FLOPs reach: >= 0.5. The tca-jax step runs the
  default `learner.kernel` ("auto", XLA on every backend); the same step with
  `learner.kernel=native` (the influence update as a BLAS-backed jax.ffi kernel) is timed beside
  it (`jax_rtrlN_native`, printed as "native kernel").
* `rtrl64_b1`: RTRL, SRN(64), batch 1, per time step, against `NumpyRTRL` (below), a batch-1
  NumPy RTRL written in the style of omarschall/vanilla-rtrl. Target: ratio <= 1/3.
* `tptt_protocol`: one iteration of the TPTT paper's protocol (SRN(100), batch 20, T=60, the
  validation on 10,000 samples every 100 iterations included), as `tptt_protocol.build_runner`'s
  jitted period divided by its iterations, against the period's matmul FLOPs at the peak. The
  measure is the unsolved period with the early-exit validation (the default
  `protocol.validation=early_exit`, limit 1, from the initial state: what almost every period of
  a run costs); the period with the full validation (a solved or nearly solved model) is printed
  beside it. Target: <= 3 ms an iteration.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import math
import os
import statistics
from typing import Any, Callable, Dict, List, Optional

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import common, jax_step, torch_ref

ROWS = ("bptt_lstm", "bptt_lstm_peak", "sab", "sab_port", "sab_vs_tbptt5", "rtrl64", "rtrl128",
        "rtrl64_b1", "tptt_protocol")


@dataclasses.dataclass
class Candidate:
  """A zero-argument `fn` that runs one call to completion; its time is divided by `per`."""

  fn: Callable[[], Any]
  per: int = 1
  flops: Optional[float] = None  # matmul FLOPs of one call (for a fraction of the peak)


@dataclasses.dataclass(frozen=True)
class Shapes:
  """Every shape the table uses (the issue's, or `--quick`'s)."""

  T: int = 100  # pylint: disable=invalid-name
  hidden: int = 128
  batch: int = 32
  peak_hidden: int = 256
  peak_batch: int = 128
  k: int = 5
  rtrl_n: tuple = (64, 128)
  rtrl_batch: int = 32
  rtrl_steps: int = 4
  b1_hidden: int = 64
  b1_steps: int = 20
  tptt_hidden: int = 100
  tptt_batch: int = 20
  tptt_T: int = 60  # pylint: disable=invalid-name
  tptt_every: int = 100
  tptt_val: int = 10_000
  tptt_val_batch: int = 1000
  peak_n: int = 2048


QUICK = Shapes(T=10, hidden=16, batch=4, peak_hidden=32, peak_batch=8, k=2, rtrl_n=(8, 16),
               rtrl_batch=4, rtrl_steps=2, b1_hidden=8, b1_steps=4, tptt_hidden=8, tptt_batch=4,
               tptt_T=10, tptt_every=5, tptt_val=20, tptt_val_batch=10, peak_n=256)


# ---------------------------------------------------------------------------------------------
# tca-jax candidates

def _stateful(compiled, state, *args):
  holder = [state]

  def run():
    new_state, metrics = compiled(holder[0], *args)
    common.block((new_state, metrics))
    holder[0] = new_state

  return run


def train_step(learner: str, cell: str, length: int, hidden: int, batch: int,
               options: Optional[Dict[str, Any]] = None, window: Optional[int] = None
               ) -> Candidate:
  """The trainer's compiled step on a copy batch; with `window`, on its first `window` steps
  only (the time is then per time step: `per = window`)."""
  config = jax_step.make_config(learner, cell, length, hidden, batch, options)
  step, state, data, key = jax_step.build_step(config)
  if window:
    data = data.window(0, window)
  compiled = step.lower(state, data, key).compile()
  flops = common.matmul_flops_bounds(step, state, data, key)[1]
  return Candidate(_stateful(compiled, state, data, key), window or 1, flops)


def sab_options(length: int, k: int) -> Dict[str, Any]:
  return {"learner.k_trunc": k, "model.k_top": k, "model.k_att": k,
          "model.max_memories": math.ceil((length + 20) / k)}


def tptt_period(s: Shapes, limit: Optional[int] = None) -> Candidate:
  """One validation period of the TPTT protocol (iterations + validation), per iteration.

  `limit`: the validation's early-exit limit (`protocol.validation=early_exit`, the default:
  the validation stops once its mistakes reach the limit); each call then starts from the
  initial (unsolved) state, the case of almost every period of a protocol run. None: the full
  validation, what a solved or nearly solved period costs; the state is carried."""
  from experiments.configs import tptt as tptt_config  # pylint: disable=g-import-not-at-top
  from tca_jax import tptt_protocol  # pylint: disable=g-import-not-at-top
  c = tptt_config.get_config("temporal_order")
  c.model.hidden_size = s.tptt_hidden
  c.train.batch_size = s.tptt_batch
  c.protocol.validate_every = s.tptt_every
  c.protocol.max_iters = s.tptt_every
  c.protocol.val_samples, c.protocol.val_batch_size = s.tptt_val, s.tptt_val_batch
  protocol = tptt_protocol.protocol_from_config(c)
  runner = tptt_protocol.build_runner(c, protocol, s.tptt_T)
  start = jnp.asarray(0, jnp.int32)
  args = (start,) if limit is None else (start, jnp.asarray(limit, jnp.int32))
  compiled = runner.period.lower(runner.state, *args).compile()
  flops = common.matmul_flops_bounds(runner.period, runner.state, *args)[1]
  holder = [runner.state]

  def run():
    state, metrics, val = compiled(holder[0], *args)
    common.block((state, metrics, val))
    if limit is None:
      holder[0] = state

  return Candidate(run, s.tptt_every, flops)


# ---------------------------------------------------------------------------------------------
# References

def numpy_bmm(batch: int, n: int, p: int, seed: int = 0) -> Candidate:
  """NumPy's (OpenBLAS) `[B, N, N] @ [B, N, P]` into a preallocated output (float32)."""
  rng = np.random.default_rng(seed)
  a = rng.standard_normal((batch, n, n), dtype=np.float32)
  b = rng.standard_normal((batch, n, p), dtype=np.float32)
  out = np.empty((batch, n, p), np.float32)
  return Candidate(lambda: np.matmul(a, b, out=out), 1, 2.0 * batch * n * n * p)


def xla_bmm(batch: int, n: int, p: int) -> Candidate:
  """The same product as a jitted `jnp.einsum` (XLA's CPU dot)."""
  ka, kb = jax.random.split(jax.random.PRNGKey(0))
  a = jax.random.normal(ka, (batch, n, n))
  b = jax.random.normal(kb, (batch, n, p))
  f = jax.jit(lambda a, b: jnp.einsum("bji,bip->bjp", a, b)).lower(a, b).compile()
  return Candidate(lambda: jax.block_until_ready(f(a, b)), 1, 2.0 * batch * n * n * p)


class NumpyRTRL:
  """Batch-1 RTRL of a tanh SRN with a softmax readout in NumPy (float32), one time step a call,
  organised as omarschall/vanilla-rtrl organises it (written here, not copied): a network that
  steps its state and keeps `a_hat = [a_prev; x; 1]`, a learner that updates the influence
  matrix `dadw` from the Jacobian `D W_rec` and the immediate term `papw`, then the gradient of
  the step loss `q . dadw` and an SGD step. The immediate term is added on its diagonal blocks
  (vanilla-rtrl forms it as a dense Kronecker product `kron(a_hat, I)`, which costs as much as
  the update); parameters are `W = [W_rec W_in b]` flattened row by row, so `dadw` is
  `[N, N, N + in + 1]` and unit j's row of W only moves `a_j` directly.
  """

  def __init__(self, n: int, n_in: int, n_out: int, seed: int = 0, lr: float = 1e-3,
               dtype=np.float32):
    rng = np.random.default_rng(seed)
    self.n, self.n_in, self.lr = n, n_in, lr
    k = n + n_in + 1
    self.W = (rng.standard_normal((n, k)) / math.sqrt(n)).astype(dtype)
    self.W_out = (rng.standard_normal((n_out, n)) / math.sqrt(n)).astype(dtype)
    self.b_out = np.zeros(n_out, dtype)
    self.a = np.zeros(n, dtype)
    self.dadw = np.zeros((n, n, k), dtype)
    self.diag = np.arange(n)
    self.x = np.eye(n_in, dtype=dtype)[rng.integers(0, n_in, 256)]
    self.y = rng.integers(0, n_out, 256)
    self.t = 0

  def step(self):
    x, label = self.x[self.t % 256], self.y[self.t % 256]
    self.t += 1
    a_hat = np.concatenate([self.a, x, np.ones(1, self.a.dtype)])
    self.a = np.tanh(self.W @ a_hat)
    d = 1.0 - self.a * self.a
    w_rec = self.W[:, :self.n]
    # dadw_t = D (W_rec dadw_{t-1} + papw): one GEMM [N, N] @ [N, N K], then the diagonal.
    self.dadw = (w_rec @ self.dadw.reshape(self.n, -1)).reshape(self.dadw.shape)
    self.dadw[self.diag, self.diag, :] += a_hat
    self.dadw *= d[:, None, None]
    logits = self.W_out @ self.a + self.b_out
    prob = np.exp(logits - logits.max())
    prob /= prob.sum()
    err = prob
    err[label] -= 1.0
    q = self.W_out.T @ err
    self.grad_w = (q @ self.dadw.reshape(self.n, -1)).reshape(self.W.shape)
    self.W -= self.lr * self.grad_w
    self.W_out -= self.lr * np.outer(err, self.a)
    self.b_out -= self.lr * err


def numpy_rtrl(n: int, steps: int) -> Candidate:
  net = NumpyRTRL(n, torch_ref.SYMBOLS, torch_ref.SYMBOLS)

  def run():
    for _ in range(steps):
      net.step()

  return Candidate(run, steps)


def torch_step(kind: str, length: int, hidden: int, batch: int, k: int) -> Candidate:
  step = torch_ref.make_step(kind, length, hidden, batch, device="cpu",
                             sab_options={"k_top": k, "k_att": k, "k_trunc": k})
  return Candidate(step)


def sab_port_step(path: str, length: int, hidden: int, batch: int, k: int) -> Candidate:
  """The public SAB port's step through an adapter file outside the repository (see above)."""
  spec = importlib.util.spec_from_file_location("sab_port_adapter", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return Candidate(module.make_step(length, hidden, batch, k, k, k))


# ---------------------------------------------------------------------------------------------
# The table

@dataclasses.dataclass
class Row:
  """One line of the table: `measure(times, peak)` is the quantity the `target` bounds."""

  name: str
  workload: str
  tca: str  # candidate names
  ref: Optional[str]
  measure: Callable[[Dict[str, float], Dict[str, Candidate], float], float]
  target: tuple  # ("<=" or ">=", value)
  target_text: str
  note: str = ""
  skipped: Optional[str] = None


def _ratio(tca, ref):
  return lambda t, c, peak: t[tca] / t[ref]


def _frac_of_peak(name, flops=None):
  def f(t, c, peak):
    fl = flops if flops is not None else c[name].flops / c[name].per
    return fl / (t[name] * 1e-3) / 1e9 / peak
  return f


def plan(rows: List[str], s: Shapes, sab_port: Optional[str] = None, echo=print):
  """`(candidates {name: builder}, rows)` for the wanted rows."""
  builders: Dict[str, Callable[[], Candidate]] = {}
  out: List[Row] = []
  have_torch = torch_ref.available()
  no_torch = "torch is not installed (pip install torch, the [bench] extra): reference not timed"
  lstm = f"LSTM({s.hidden}), copy T={s.T}, batch {s.batch}"
  if "bptt_lstm" in rows:
    builders["jax_bptt"] = lambda: train_step("bptt", "lstm", s.T, s.hidden, s.batch)
    builders["jax_bptt_native"] = lambda: train_step("bptt", "lstm", s.T, s.hidden, s.batch,
                                                     {"learner.kernel": "native"})
    if have_torch:
      builders["torch_lstm"] = lambda: torch_step("lstm_bptt", s.T, s.hidden, s.batch, s.k)
    out.append(Row("bptt_lstm", f"BPTT {lstm}", "jax_bptt", "torch_lstm",
                   _ratio("jax_bptt", "torch_lstm"), ("<=", 0.8), "ratio <= 0.8",
                   skipped=None if have_torch else no_torch))
  if "bptt_lstm_peak" in rows:
    builders["jax_bptt_big"] = lambda: train_step("bptt", "lstm", s.T, s.peak_hidden,
                                                  s.peak_batch)
    builders["jax_bptt_big_native"] = lambda: train_step(
        "bptt", "lstm", s.T, s.peak_hidden, s.peak_batch, {"learner.kernel": "native"})
    out.append(Row("bptt_lstm_peak", f"BPTT LSTM({s.peak_hidden}), batch {s.peak_batch}",
                   "jax_bptt_big", None, _frac_of_peak("jax_bptt_big"), (">=", 0.6),
                   "fraction of peak >= 0.6"))
  if any(r in rows for r in ("sab", "sab_port", "sab_vs_tbptt5")):
    builders["jax_sab"] = lambda: train_step("sab", "sab_lstm", s.T, s.hidden, s.batch,
                                             sab_options(s.T, s.k))
  sab = f"SAB k={s.k}, {lstm}"
  if "sab" in rows:
    if have_torch:
      builders["torch_sab"] = lambda: torch_step("sab", s.T, s.hidden, s.batch, s.k)
    out.append(Row("sab", f"{sab} vs torch_ref loop", "jax_sab", "torch_sab",
                   _ratio("jax_sab", "torch_sab"), ("<=", 0.1), "ratio <= 0.1 (10x faster)",
                   skipped=None if have_torch else no_torch))
  if "sab_port" in rows:
    if sab_port:
      builders["port_sab"] = lambda: sab_port_step(sab_port, s.T, s.hidden, s.batch, s.k)
    out.append(Row("sab_port", f"{sab} vs public port", "jax_sab", "port_sab",
                   _ratio("jax_sab", "port_sab"), ("<=", 0.1), "ratio <= 0.1 (10x faster)",
                   skipped=None if sab_port else "no --sab_port adapter given"))
  if "sab_vs_tbptt5" in rows:
    builders["jax_tbptt5"] = lambda: train_step("tbptt", "lstm", s.T, s.hidden, s.batch,
                                                {"learner.truncation": s.k})
    out.append(Row("sab_vs_tbptt5", f"{sab} vs TBPTT({s.k})", "jax_sab", "jax_tbptt5",
                   _ratio("jax_sab", "jax_tbptt5"), ("<=", 1.3), "ratio <= 1.3"))
  for i, n in enumerate(s.rtrl_n):
    name = ("rtrl64", "rtrl128")[i] if i < 2 else f"rtrl{n}"
    if name not in rows:
      continue
    p = n * (n + torch_ref.SYMBOLS + 1)
    b = s.rtrl_batch
    builders[f"jax_{name}"] = (lambda n=n: train_step(
        "rtrl", "srn", s.T, n, b, {"train.update_every": 1}, window=s.rtrl_steps))
    builders[f"jax_{name}_native"] = (lambda n=n: train_step(
        "rtrl", "srn", s.T, n, b, {"train.update_every": 1, "learner.kernel": "native"},
        window=s.rtrl_steps))
    builders[f"numpy_bmm{n}"] = lambda n=n, p=p: numpy_bmm(b, n, p)
    builders[f"xla_bmm{n}"] = lambda n=n, p=p: xla_bmm(b, n, p)
    out.append(Row(name, f"RTRL SRN({n}), batch {b}, per time step", f"jax_{name}",
                   f"numpy_bmm{n}", _frac_of_peak(f"jax_{name}", 2.0 * n * n * p * b),
                   (">=", 0.5), "influence update >= 0.5 of peak",
                   note=f"reference: NumPy [{b},{n},{n}]@[{b},{n},{p}]; XLA's einsum: xla_bmm{n}"))
  if "rtrl64_b1" in rows:
    n = s.b1_hidden
    builders["jax_rtrl_b1"] = lambda: train_step("rtrl", "srn", s.T, n, 1,
                                                 {"train.update_every": 1}, window=s.b1_steps)
    builders["jax_rtrl_b1_native"] = lambda: train_step(
        "rtrl", "srn", s.T, n, 1, {"train.update_every": 1, "learner.kernel": "native"},
        window=s.b1_steps)
    builders["numpy_rtrl_b1"] = lambda: numpy_rtrl(n, s.b1_steps)
    out.append(Row("rtrl64_b1", f"RTRL SRN({n}), batch 1, per time step", "jax_rtrl_b1",
                   "numpy_rtrl_b1", _ratio("jax_rtrl_b1", "numpy_rtrl_b1"), ("<=", 1 / 3),
                   "ratio <= 0.33 (3x faster)"))
  if "tptt_protocol" in rows:
    builders["jax_tptt"] = lambda: tptt_period(s, limit=1)
    builders["jax_tptt_full"] = lambda: tptt_period(s)
    out.append(Row("tptt_protocol",
                   f"TPTT protocol iteration, SRN({s.tptt_hidden}), batch {s.tptt_batch}, "
                   f"T={s.tptt_T}, validation included", "jax_tptt", None,
                   lambda t, c, peak: t["jax_tptt"], ("<=", 3.0), "<= 3 ms an iteration",
                   note="reference: the period's matmul FLOPs at the measured peak"))
  return builders, out


def time_rounds(candidates: Dict[str, Candidate], rounds: int, steps: int) -> Dict[str, dict]:
  """Interleaved rounds: every candidate runs 1 warm-up and `steps` timed calls in turn."""
  per_round: Dict[str, List[float]] = {name: [] for name in candidates}
  for _ in range(rounds):
    for name, cand in candidates.items():
      per_round[name].append(common.median_time_ms(cand.fn, steps=steps, warmup=1)["step_ms"]
                             / cand.per)
  return {name: {"ms": statistics.median(v), "rounds": v} for name, v in per_round.items()}


def compare(rows=ROWS, quick=False, rounds=5, steps=5, sab_port=None, echo=print) -> dict:
  """Builds, times and tabulates; returns `{"machine", "peak_gflops", "times", "rows"}`."""
  s = QUICK if quick else Shapes()
  if torch_ref.available():
    torch_ref.set_threads(common.jax_threads())
  builders, table = plan(list(rows), s, sab_port, echo)
  candidates = {}
  for name, build in builders.items():
    echo(f"building {name}")
    candidates[name] = build()
  load_before = os.getloadavg()[0]
  peak = common.matmul_peak_gflops(s.peak_n, repeats=5)
  times = time_rounds(candidates, rounds, steps)
  peak = common.matmul_peak_gflops(s.peak_n, repeats=5, fresh=True)  # the best of both
  load_after = os.getloadavg()[0]
  t = {name: v["ms"] for name, v in times.items()}
  results = []
  for row in table:
    r = {"row": row.name, "workload": row.workload, "tca_ms": t.get(row.tca),
         "ref": row.ref, "ref_ms": t.get(row.ref) if row.ref else None,
         "target": row.target_text, "note": row.note, "skipped": row.skipped}
    if row.name == "tptt_protocol":
      c = candidates[row.tca]
      r["ref_ms"] = c.flops / c.per / (peak * 1e9) * 1e3
    if row.name.startswith("rtrl") and row.name != "rtrl64_b1":
      r["xla_bmm_ms"] = t.get(row.ref.replace("numpy", "xla"))
    if row.name.startswith(("rtrl", "bptt_lstm")):
      r["native_kernel_ms"] = t.get(row.tca + "_native")
    if row.name == "tptt_protocol":
      r["full_validation_ms"] = t.get("jax_tptt_full")
    if row.skipped is None:
      r["ratio"] = r["tca_ms"] / r["ref_ms"] if r["ref_ms"] else None
      r["measure"] = row.measure(t, candidates, peak)
      op, value = row.target
      r["met"] = r["measure"] <= value if op == "<=" else r["measure"] >= value
    results.append(r)
  info = common.machine_info()
  out = {"machine": info, "xla_flags": os.environ.get("XLA_FLAGS", ""), "quick": quick,
         "rounds": rounds, "steps": steps,
         "load_avg_before": load_before, "load_avg_after": load_after,
         "peak_gflops": peak, "times": times, "rows": results}
  echo(format_table(out))
  return out


def format_table(out: dict) -> str:
  lines = [f"{out['machine'].get('cpu_model', '?')}, {out['machine']['cpu_count']} cores, "
           f"jax {out['machine']['jax']}; matmul peak {out['peak_gflops']:.0f} GFLOP/s; "
           f"{out['rounds']} interleaved rounds x {out['steps']} calls; load average "
           f"{out['load_avg_before']:.1f} -> {out['load_avg_after']:.1f}; "
           f"XLA_FLAGS={out.get('xla_flags') or '(unset)'}",
           "| workload | tca-jax | reference | ratio | measure | target | met |",
           "| --- | --- | --- | --- | --- | --- | --- |"]
  for r in out["rows"]:
    tca = f"{r['tca_ms']:.3g} ms" if r["tca_ms"] is not None else "-"
    if r.get("full_validation_ms"):
      tca += f" (a full validation: {r['full_validation_ms']:.3g} ms)"
    if r.get("native_kernel_ms"):
      tca += f" (native kernel {r['native_kernel_ms']:.3g} ms)"
    if r["row"] == "tptt_protocol":
      ref = f"its matmul FLOPs at the peak: {r['ref_ms']:.3g} ms"
    elif r["ref"] is None:
      ref = f"the matmul peak, {out['peak_gflops']:.0f} GFLOP/s"
    else:
      ref = f"{r['ref']}: {r['ref_ms']:.3g} ms" if r.get("ref_ms") is not None else "-"
    if r["skipped"]:
      lines.append(f"| {r['workload']} | {tca} | {r['skipped']} | - | - | {r['target']} | - |")
      continue
    ratio = f"{r['ratio']:.2f}x" if r.get("ratio") is not None else "-"
    extra = f" (XLA einsum {r['xla_bmm_ms']:.3g} ms)" if r.get("xla_bmm_ms") else ""
    lines.append(f"| {r['workload']} | {tca} | {ref}{extra} | {ratio} | {r['measure']:.3g} | "
                 f"{r['target']} | {'yes' if r['met'] else 'no'} |")
  return "\n".join(lines)


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--quick", action="store_true", help="tiny shapes (a smoke run)")
  parser.add_argument("--rows", default=",".join(ROWS), help=f"of {', '.join(ROWS)}")
  parser.add_argument("--rounds", type=int, default=5)
  parser.add_argument("--steps", type=int, default=5, help="timed calls per candidate a round")
  parser.add_argument("--sab_port", default=None,
                      help="adapter file defining make_step(length, hidden, batch, k_trunc, "
                      "k_top, k_att) around the public SAB port (kept outside the repository)")
  parser.add_argument("--out", default=None, help="write the results as JSON here")
  a = parser.parse_args(argv)
  rows = a.rows.split(",")
  unknown = [r for r in rows if r not in ROWS]
  if unknown:
    parser.error(f"--rows: unknown {', '.join(unknown)}; allowed: {', '.join(ROWS)}")
  if a.sab_port and not os.path.isfile(a.sab_port):
    parser.error(f"--sab_port={a.sab_port!r} is not a file")
  out = compare(rows, a.quick, a.rounds, a.steps, a.sab_port)
  if a.out:
    with open(a.out, "w", encoding="utf-8") as f:
      json.dump(out, f, indent=1, default=float)
  return out


if __name__ == "__main__":
  main()
