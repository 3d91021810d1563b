"""Faults and mistakes against the binaries, each ending where an uninterrupted run ends.

Subprocess level: `python -m tests.fault_child train|tptt_protocol ...` is the real binary with
faults patched in (a sleep per step so that a signal lands mid-run, a SIGKILL while a checkpoint
write is in flight). Each fault test compares the final `metrics.jsonl` (without timings) with an
uninterrupted run's, value for value. docs/RELIABILITY.md lists the promise each test holds.
"""

import json
import math
import os
import signal
import subprocess
import sys
import time

import shutil

import pytest

from tca_jax import config as config_lib
from tca_jax import workdir as workdir_lib
from tca_jax.registry import ConfigError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# A short copy run ("R" in issue 13): 40 steps, checkpoints every 10, hidden 12.
R = ["--config=experiments/configs/copy.py", "--config.train.steps=40",
     "--config.train.warmup_steps=5", "--config.model.hidden_size=12",
     "--config.train.checkpoint_every=10", "--config.train.eval_every=20",
     "--config.train.log_every=5", "--config.train.eval_batch_size=32",
     "--config.train.test_batches=2", "--config.train.eval_batches=1"]
# The TPTT protocol at T=10, validated every 20 iterations on 200 samples, 100 iterations.
P = ["--config=experiments/configs/tptt.py:temporal_order", "--config.protocol.mode=single",
     "--config.protocol.max_iters=100", "--config.protocol.validate_every=20",
     "--config.protocol.val_samples=200", "--config.protocol.val_batch_size=100",
     "--config.model.hidden_size=8"]
TIMINGS = ("steps_per_sec", "wall_s")


def _env(**extra):
  env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=ROOT, **extra)
  env.pop("XLA_FLAGS", None)
  return env


def _cmd(binary, flags, workdir):
  return [sys.executable, "-m", "tests.fault_child", binary, *flags, f"--workdir={workdir}"]


def _run(binary, flags, workdir, **env):
  return subprocess.run(_cmd(binary, flags, workdir), capture_output=True, text=True, cwd=ROOT,
                        env=_env(**env), timeout=240)


def _start(binary, flags, workdir, **env):
  return subprocess.Popen(_cmd(binary, flags, workdir), stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, cwd=ROOT, env=_env(**env))


def _records(workdir):
  """metrics.jsonl without timing fields (what two runs of one config must share)."""
  out = []
  with open(os.path.join(workdir, "metrics.jsonl"), encoding="utf-8") as f:
    for line in f:
      r = json.loads(line)
      for k in TIMINGS:
        r.pop(k, None)
      out.append(r)
  return out


def _wait_for(predicate, proc, timeout=120.0):
  deadline = time.time() + timeout
  while time.time() < deadline:
    if predicate():
      return
    if proc.poll() is not None:
      raise AssertionError(f"the process ended first (rc {proc.returncode}): "
                           f"{proc.stderr.read()[-2000:]}")
    time.sleep(0.05)
  raise AssertionError("timed out")


def _has_step(workdir, step, split="train"):
  def check():
    path = os.path.join(workdir, "metrics.jsonl")
    if not os.path.exists(path):
      return False
    with open(path, encoding="utf-8") as f:
      for line in f:
        try:
          r = json.loads(line)
        except json.JSONDecodeError:
          continue
        if r["step"] >= step and r["split"] == split:
          return True
    return False
  return check


def _ok(result):
  assert result.returncode == 0, result.stderr[-3000:]
  return result


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
  """The workdir of an uninterrupted run R (tests copy it, never change it)."""
  workdir = str(tmp_path_factory.mktemp("reference"))
  _ok(_run("train", R, workdir))
  return workdir


@pytest.fixture(scope="module")
def reference(finished):
  """The uninterrupted run R's records."""
  return _records(finished)


@pytest.fixture(scope="module")
def protocol_reference(tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp("protocol_reference"))
  _ok(_run("tptt_protocol", P, workdir))
  return _records(workdir)


# ---------------------------------------------------------------------------------- train


def test_kill_9_mid_run_and_a_partial_metrics_line(tmp_path, reference):
  proc = _start("train", R, tmp_path, FAULT_SLOW="0.05")
  _wait_for(_has_step(str(tmp_path), 25), proc)
  proc.kill()
  proc.wait()
  assert len(_records(tmp_path)) < len(reference)  # really interrupted
  with open(os.path.join(tmp_path, "metrics.jsonl"), "a", encoding="utf-8") as f:
    f.write('{"step": 26, "split": "tra')  # a write cut short by the kill
  result = _ok(_run("train", R, tmp_path))  # the kernel released the lock: no stale owner
  assert "dropping its last line" in result.stderr
  assert _records(tmp_path) == reference


def test_kill_9_during_a_checkpoint_save(tmp_path, reference):
  result = _run("train", R, tmp_path, FAULT_KILL_IN_SAVE="30")
  assert result.returncode == -signal.SIGKILL
  _ok(_run("train", R, tmp_path))
  assert _records(tmp_path) == reference


def test_sigterm_saves_and_the_same_command_resumes(tmp_path, reference):
  proc = _start("train", R, tmp_path, FAULT_SLOW="0.05")
  _wait_for(_has_step(str(tmp_path), 15), proc)
  proc.send_signal(signal.SIGTERM)
  _, err = proc.communicate(timeout=120)
  assert proc.returncode == 143, err[-2000:]
  assert "checkpoint saved in" in err and "run the same command to resume" in err
  _ok(_run("train", R, tmp_path))
  assert _records(tmp_path) == reference


@pytest.mark.slow
def test_sigterm_without_checkpoints_says_nothing_was_saved(tmp_path):
  proc = _start("train", R + ["--config.train.checkpoint_every=0"], tmp_path, FAULT_SLOW="0.05")
  _wait_for(_has_step(str(tmp_path), 5), proc)
  proc.send_signal(signal.SIGTERM)
  _, err = proc.communicate(timeout=120)
  assert proc.returncode == 143
  assert "nothing was saved" in err and "checkpoint saved" not in err


@pytest.mark.parametrize("damage", ["truncate", "metadata"])
def test_damaged_latest_checkpoint_falls_back_to_the_one_before(tmp_path, finished, reference,
                                                                damage):
  tmp_path = tmp_path / "run"
  shutil.copytree(finished, tmp_path)
  latest = os.path.join(tmp_path, "checkpoints", "40")
  if damage == "truncate":
    for d, _, files in os.walk(os.path.join(latest, "default")):
      for name in files:
        if not name.startswith("_") and name != "commit_success.txt":
          os.truncate(os.path.join(d, name), 3)
  else:
    os.remove(os.path.join(latest, "default", "_METADATA"))
  result = _ok(_run("train", R, tmp_path))
  assert "the checkpoint at step 40 cannot be restored (" in result.stderr
  assert "resumed from the checkpoint at step 30" in result.stderr
  assert os.path.isdir(os.path.join(tmp_path, "checkpoints_damaged", "40"))
  assert _records(tmp_path) == reference


def test_two_processes_on_one_workdir(tmp_path, reference):
  first = _start("train", R, tmp_path, FAULT_SLOW="0.05")
  _wait_for(lambda: workdir_lib.holder(str(tmp_path)) is not None, first)
  second = _run("train", R, tmp_path)
  assert second.returncode == 1
  line = second.stderr.strip().splitlines()[-1]
  assert line.startswith(f"error: --workdir={str(tmp_path)!r} is in use by another run (pid "
                         f"{first.pid} on host ")
  _, err = first.communicate(timeout=180)
  assert first.returncode == 0, err[-2000:]
  assert _records(tmp_path) == reference  # no row twice, one test record


@pytest.mark.parametrize("change,named", [
    ("--config.train.steps=30", "train.steps: 40 there, 30 asked"),  # shortened
    ("--config.train.steps=60", "train.steps: 40 there, 60 asked"),  # extended
    ("--config.model.hidden_size=13", "model.hidden_size: 12 there, 13 asked"),
])
def test_changed_config_is_refused_and_nothing_changes(finished, reference, change, named):
  before = open(os.path.join(finished, "config.json"), encoding="utf-8").read()
  result = _run("train", R + [change], finished)
  assert result.returncode == 1
  line = result.stderr.strip().splitlines()[-1]
  assert named in line and "--workdir" in line, line
  if "train.steps" in change:
    assert "to resume it, rerun with --config.train.steps=40" in line
  assert open(os.path.join(finished, "config.json"), encoding="utf-8").read() == before
  assert _records(finished) == reference


def test_binary_with_two_seeds_exits_0(tmp_path):
  result = _ok(_run("train", R + ["--config.num_seeds=2", "--config.train.checkpoint_every=0"],
                    tmp_path))
  assert "accuracy_seeds=[" in result.stdout


# ------------------------------------------------------------------------- tptt_protocol


def test_protocol_kill_9_then_rerun_gives_the_same_records(tmp_path, protocol_reference):
  proc = _start("tptt_protocol", P, tmp_path, FAULT_SLOW="0.5")
  _wait_for(_has_step(str(tmp_path), 20), proc)
  proc.kill()
  proc.wait()
  result = _ok(_run("tptt_protocol", P, tmp_path))
  assert "starts again from iteration 0" in result.stderr
  assert _records(tmp_path) == protocol_reference
  again = _ok(_run("tptt_protocol", P, tmp_path))  # finished: printed, not run again
  assert "| 10 | tptt |" in again.stdout
  assert _records(tmp_path) == protocol_reference


# A curriculum whose every length is solved at its first validation (target error 0.99): three
# lengths, T = 10, 20, 30, in seconds.
PC = ["--config=experiments/configs/tptt.py:temporal_order", "--config.protocol.mode=curriculum",
      "--config.protocol.max_iters=40", "--config.protocol.validate_every=20",
      "--config.protocol.val_samples=200", "--config.protocol.val_batch_size=100",
      "--config.protocol.target_error=0.99", "--config.protocol.max_length=30",
      "--config.model.hidden_size=8"]


def test_protocol_curriculum_resumes_after_the_lengths_it_finished(tmp_path):
  reference = tmp_path / "reference"
  _ok(_run("tptt_protocol", PC, reference))
  want = _records(reference)
  assert sorted({r["length"] for r in want}) == [10, 20, 30]
  # As if killed while training T=30: its records are there, its saved result and the protocol's
  # are not.
  work = tmp_path / "work"
  shutil.copytree(reference, work)
  os.remove(work / "protocol.json")
  os.remove(work / "protocol_runs" / "T00030.json")
  result = _ok(_run("tptt_protocol", PC, work))
  assert "resuming an interrupted curriculum after T=20" in result.stderr
  assert _records(work) == want
  assert "| 30 | tptt |" in result.stdout


@pytest.mark.slow
def test_protocol_seeds_write_per_seed_dirs_and_resume_per_seed(tmp_path):
  """`num_seeds=2`: one vmapped curriculum, WORKDIR/seed<s>/{metrics.jsonl, protocol_runs/,
  protocol.json}; killed mid-way (seed 0 had saved T=10, seed 1 T=10 and T=20), a rerun trains only
  the missing lengths and ends with the uninterrupted run's records, seed by seed."""
  flags = PC + ["--config.num_seeds=2", "--config.seed=3"]
  reference = tmp_path / "reference"
  first = _ok(_run("tptt_protocol", flags, reference))
  assert "| 4 | 30 | tptt |" in first.stdout and "t_max = 30 (temporal_order, tptt seed 3)" in (
      first.stdout)
  summary = json.loads((reference / "protocol.json").read_text())
  assert [(r["seed"], r["t_max"]) for r in summary["seeds"]] == [(3, 30), (4, 30)]
  want = {}
  for s in (3, 4):
    runs = sorted(os.listdir(reference / f"seed{s}" / "protocol_runs"))
    assert runs == ["T00010.json", "T00020.json", "T00030.json"]
    assert json.loads((reference / f"seed{s}" / "protocol.json").read_text())["t_max"] == 30
    want[s] = _records(reference / f"seed{s}")
    assert sorted({r["length"] for r in want[s]}) == [10, 20, 30]
  assert not (reference / "metrics.jsonl").exists()

  work = tmp_path / "work"
  shutil.copytree(reference, work)
  os.remove(work / "protocol.json")
  for s, lengths in ((3, (20, 30)), (4, (30,))):
    os.remove(work / f"seed{s}" / "protocol.json")
    for t in lengths:
      os.remove(work / f"seed{s}" / "protocol_runs" / f"T{t:05d}.json")
  result = _ok(_run("tptt_protocol", flags, work))
  assert "after T=10" in result.stderr and "after T=20" in result.stderr
  for s in (3, 4):
    assert _records(work / f"seed{s}") == want[s]
  again = _ok(_run("tptt_protocol", flags, work))  # finished: printed, not run again
  assert "| 3 | 30 | tptt |" in again.stdout
  assert "holds this protocol's results already" in again.stderr


@pytest.mark.slow
def test_protocol_sigterm_then_rerun(tmp_path, protocol_reference):
  proc = _start("tptt_protocol", P, tmp_path, FAULT_SLOW="0.5")
  _wait_for(_has_step(str(tmp_path), 20), proc)
  proc.send_signal(signal.SIGTERM)
  proc.wait(timeout=60)
  _ok(_run("tptt_protocol", P, tmp_path))
  assert _records(tmp_path) == protocol_reference


def test_protocol_two_processes_and_another_config(tmp_path, protocol_reference):
  first = _start("tptt_protocol", P, tmp_path, FAULT_SLOW="0.5")
  _wait_for(lambda: workdir_lib.holder(str(tmp_path)) is not None, first)
  second = _run("tptt_protocol", P, tmp_path)
  assert second.returncode == 1
  assert "is in use by another protocol (pid" in second.stderr.strip().splitlines()[-1]
  _, err = first.communicate(timeout=180)
  assert first.returncode == 0, err[-2000:]
  assert _records(tmp_path) == protocol_reference
  other = _run("tptt_protocol", P + ["--config.model.hidden_size=9"], tmp_path)
  assert other.returncode == 1
  assert "model.hidden_size: 8 there, 9 asked" in other.stderr.strip().splitlines()[-1]
  assert _records(tmp_path) == protocol_reference


# ------------------------------------------------------------------------------ the sweep


def test_sweep_stops_its_child_and_a_rerun_never_doubles_it(tmp_path):
  base = tmp_path / "sweep"
  cmd = [sys.executable, os.path.join(ROOT, "launch", "local_sweep.py"),
         "--config=experiments/configs/copy.py", f"--base_dir={base}", "--grid=seed=0",
         "--set=train.steps=100000", "--set=model.hidden_size=8",
         "--set=train.checkpoint_every=1000", "--set=train.eval_every=0"]
  sweep = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           cwd=ROOT, env=_env())
  run_dir = str(base / "seed=0")
  _wait_for(_has_step(run_dir, 50), sweep)
  child = json.load(open(os.path.join(run_dir, workdir_lib.LOCK_FILE), encoding="utf-8"))["pid"]
  again = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=_env(), timeout=120)
  assert again.returncode == 1
  assert "busy" in again.stdout and f"pid {child}" in again.stderr
  sweep.send_signal(signal.SIGTERM)
  out, _ = sweep.communicate(timeout=120)
  assert sweep.returncode == 143
  assert "stopped  seed=0" in out
  with pytest.raises(ProcessLookupError):
    os.kill(child, 0)  # the child ended with the sweep
  assert workdir_lib.holder(run_dir) is None
  log = open(os.path.join(run_dir, "log.txt"), encoding="utf-8").read()
  assert "checkpoint saved in" in log
  records = _records(run_dir)
  keys = [(r["step"], r["split"]) for r in records]
  assert len(keys) == len(set(keys))  # no row twice


# -------------------------------------------------------------- validation before writing


def _config(**fields):
  c = config_lib.default_config()
  c.train.steps, c.model.hidden_size = 10, 8
  for path, value in fields.items():
    section, name = path.split("__")
    c[section][name] = value
  return c


@pytest.mark.parametrize("fields,message", [
    ({"train__momentum": -3.0}, "train.momentum=-3.0 must be a finite number in [0.0, 1.0)"),
    ({"train__checkpoint_every": -5}, "train.checkpoint_every=-5 must be an integer >= 0"),
    ({"train__learning_rate": math.nan}, "train.learning_rate=nan must be a positive number"),
    ({"train__clip_norm": math.inf}, "train.clip_norm=inf must be a finite number >= 0.0"),
    ({"train__steps": 0}, "train.steps=0 must be an integer >= 1"),
    ({"task__eval_length": 0}, "task.eval_length=0 must be an integer >= 1"),
    ({"train__eval_batches": -1}, "train.eval_batches=-1 must be an integer >= 0"),
    ({"train__log_every": 0}, "train.log_every=0 must be an integer >= 1"),
    ({"task__length": 10_000_000}, "task.length=10000000: one step needs at least"),
    ({"learner__name": "sab", "model__cell": "srn"},
     "model.cell='srn' is not supported by learner 'sab'; allowed: sab_lstm, attn_lstm"),
])
def test_bad_fields_are_refused_by_build(fields, message):
  c = _config(**fields)
  with c.unlocked():
    if "learner__name" in fields:
      c.learner.k_trunc = 5
  with pytest.raises(ConfigError) as e:
    config_lib.build(c)
  assert message in str(e.value) and "\n" not in str(e.value)


def test_memory_estimate_names_the_estimate_and_the_machine():
  c = _config(task__length=10_000_000)
  with pytest.raises(ConfigError, match=r"at least \d+\.\d GiB .* this machine has \d+\.\d GiB"):
    config_lib.build(c)
  # The estimate is a lower bound from shapes: inputs, targets, mask, outputs and states.
  task = config_lib.tasks.get("copy", length=10)
  assert config_lib.memory_estimate_bytes(_config(), task, task) == 4 * max(
      64 * 30 * (10 + 10 + 2 + 8), 256 * 30 * (10 + 10 + 2))


def _binary(args, **kwargs):
  return subprocess.run([sys.executable, "-m", "experiments.train", *args], capture_output=True,
                        text=True, cwd=ROOT, env=_env(), timeout=120, **kwargs)


@pytest.mark.parametrize("args,line", [
    (["--config=experiments/configs/copy.py", "--config.train.stepz=3"],
     "error: --config.train.stepz: 'train.stepz' is not a config field; did you mean "
     "--config.train.steps?"),
    (["--config=experiments/configs/copy.py:nope"],
     "error: flag --config=experiments/configs/copy.py: ValueError: copy config preset 'nope'; "
     "allowed: quick, sab_t100, sab_t200, sab_t300"),
    (["--config=experiments/configs/nope.py"],
     "error: --config: cannot load the config file ([Errno 2] No such file or directory: "
     "'experiments/configs/nope.py')"),
])
def test_flag_mistakes_are_one_line(tmp_path, args, line):
  result = _binary(args + [f"--workdir={tmp_path}/w"])
  assert result.returncode == 2
  assert result.stderr.strip() == line
  assert not os.path.exists(tmp_path / "w")


def test_workdir_that_is_a_file_and_a_truncated_config_json(tmp_path):
  (tmp_path / "file").write_text("x")
  result = _binary(R + [f"--workdir={tmp_path}/file"])
  assert result.stderr.strip().splitlines()[-1] == (
      f"error: --workdir={str(tmp_path / 'file')!r} is a file, not a directory; give a directory")
  (tmp_path / "run").mkdir()
  (tmp_path / "run" / "config.json").write_text('{"seed": 0, "task": {"na')
  result = _binary(R + [f"--workdir={tmp_path}/run"])
  last = result.stderr.strip().splitlines()[-1]
  assert last.startswith(f"error: {tmp_path}/run/config.json is damaged (")
  assert result.returncode == 1


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_workdir_not_writable(tmp_path):
  locked = tmp_path / "ro"
  locked.mkdir()
  os.chmod(locked, 0o500)
  with pytest.raises(ConfigError, match="is not writable"):
    workdir_lib.check_writable(str(locked / "run"))


def test_not_writable_check_uses_the_nearest_existing_parent(tmp_path, monkeypatch):
  monkeypatch.setattr(os, "access", lambda path, mode: str(path) != str(tmp_path))
  with pytest.raises(ConfigError, match=f"--workdir=.*: {str(tmp_path)!r} is not writable"):
    workdir_lib.check_writable(str(tmp_path / "a" / "b"))


def test_sweep_parallel_zero_is_one_line(tmp_path):
  result = subprocess.run(
      [sys.executable, os.path.join(ROOT, "launch", "local_sweep.py"),
       "--config=experiments/configs/copy.py", f"--base_dir={tmp_path}", "--parallel=0"],
      capture_output=True, text=True, cwd=ROOT, env=_env(), timeout=60)
  assert result.returncode == 1
  assert result.stderr.strip().splitlines()[-1] == (
      "error: --parallel=0 must be an integer >= 1 (runs at a time)")


def test_tpu_launcher_needs_a_repo():
  result = subprocess.run(
      [sys.executable, os.path.join(ROOT, "launch", "tpu_vm.py"), "--name=n", "--zone=z",
       "--workdir=w", "--dry_run"], capture_output=True, text=True, cwd=ROOT, env=_env(),
      timeout=60)
  assert result.returncode != 0 and "--repo" in result.stderr
  assert "OWN" + "ER" not in result.stdout  # no placeholder URL (spelled apart for test_packaging)


def test_text_that_is_not_utf8_names_file_and_line(tmp_path):
  path = tmp_path / "metrics.jsonl"
  path.write_bytes(b'{"step": 1, "split": "train"}\n{"step": 2, "split": "tr\xff"}\n')
  with pytest.raises(ConfigError, match=rf"{path}, line 2: not UTF-8 text"):
    workdir_lib.read_jsonl(str(path))


def test_a_damaged_line_that_is_not_the_last_is_an_error(tmp_path):
  path = tmp_path / "metrics.jsonl"
  path.write_text('{"step": 1, "spl\n{"step": 2, "split": "train"}\n')
  with pytest.raises(ConfigError, match=rf"{path}, line 1: not a JSON record"):
    workdir_lib.read_jsonl(str(path))
  path.write_text('{"step": 1, "split": "train"}\n{"step": 2, "spl')
  assert workdir_lib.read_jsonl(str(path)) == [{"step": 1, "split": "train"}]


def test_lock_is_refused_in_process_and_released_on_exit(tmp_path):
  with workdir_lib.owned(str(tmp_path)):
    assert workdir_lib.holder(str(tmp_path)).startswith(f"pid {os.getpid()} on host ")
  assert workdir_lib.holder(str(tmp_path)) is None


def test_paths_with_a_scheme_are_not_locked(tmp_path, caplog):
  with workdir_lib.owned("gs://bucket/run"):
    pass
  assert "no OS lock is possible" in caplog.text


# ---------------------------------------------------------------------------- data sources


def _ptb_dir(directory, words):
  directory.mkdir()
  for split in ("train", "valid", "test"):
    (directory / f"ptb.char.{split}.txt").write_text(
        "\n".join(" " + " _ ".join(" ".join(w) for w in words) + " " for _ in range(3)) + "\n",
        encoding="utf-8")
  return str(directory)


@pytest.fixture
def text_data():
  pytest.importorskip("tensorflow_datasets")
  from tca_jax.tasks.data import text  # pylint: disable=g-import-not-at-top
  text.corpus.cache_clear()
  yield text
  text.corpus.cache_clear()


def test_manual_dir_empty_never_downloads_and_names_the_files(tmp_path, text_data):
  from tca_jax.tasks import data  # pylint: disable=g-import-not-at-top
  for manual in ("", str(tmp_path / "empty")):
    os.makedirs(tmp_path / "empty", exist_ok=True)
    with pytest.raises(data.DataError, match=r"task.manual_dir=.* must be a directory holding "
                       r"ptb.char.train.txt, .* never downloads") as e:
      text_data.corpus("ptb_char", str(tmp_path / "tfds"), manual)
    assert "\n" not in str(e.value)
  assert not os.path.exists(tmp_path / "tfds" / "downloads")


def test_manual_dir_provenance_is_recorded_and_checked(tmp_path, text_data):
  from tca_jax.tasks import data  # pylint: disable=g-import-not-at-top
  small = _ptb_dir(tmp_path / "small", ["ab", "c"])
  large = _ptb_dir(tmp_path / "large", ["abcdefg", "hij", "klm"])
  vocab, _ = text_data.corpus("ptb_char", str(tmp_path / "tfds"), small)
  text_data.corpus.cache_clear()
  assert text_data.corpus("ptb_char", str(tmp_path / "tfds"), small)[0] == vocab  # same source
  text_data.corpus.cache_clear()
  with pytest.raises(data.DataError, match=r"was built from .*small.* not from .*large.*; "
                     r"delete .* to rebuild"):
    text_data.corpus("ptb_char", str(tmp_path / "tfds"), large)
  text_data.corpus.cache_clear()
  assert text_data.corpus("ptb_char", str(tmp_path / "tfds"))[0] == vocab  # unset: as it is


def test_manual_dir_corpus_that_is_not_utf8_names_file_and_line(tmp_path, text_data):
  from tca_jax.tasks import data  # pylint: disable=g-import-not-at-top
  manual = _ptb_dir(tmp_path / "m", ["ab"])
  with open(os.path.join(manual, "ptb.char.valid.txt"), "ab") as f:
    f.write(b" a \xff b \n")
  with pytest.raises(data.DataError, match=r"ptb.char.valid.txt, line 4: not UTF-8 text"):
    text_data.corpus("ptb_char", str(tmp_path / "tfds"), manual)


# ---------------------------------------------------------------------- declared interfaces


def test_every_cell_learner_and_task_declares_its_interface():
  import jax  # pylint: disable=g-import-not-at-top
  from tca_jax import cells, learners, tasks  # pylint: disable=g-import-not-at-top
  for name in cells.names():
    assert issubclass(cells.REGISTRY.factory(name), cells.Cell), name
  for name in learners.names():
    assert issubclass(learners.REGISTRY.factory(name), learners.Learner), name
  for name in ("copy", "adding"):
    assert issubclass(tasks.REGISTRY.factory(name), tasks.Task), name
    assert not tasks.REGISTRY.factory(name).host_data
  for name, options in (("srn", {}), ("lstm", {}), ("gru", {}),
                        ("sab_lstm", {"k_top": 2, "k_att": 2, "max_memories": 3})):
    core = cells.get(name, hidden_size=6, **options)
    params = core.init(jax.random.PRNGKey(0), 3)
    matrix = core.recurrent_matrix(params)
    if name == "lstm":  # four gate blocks [H, 4H], no one square matrix: declared None
      assert matrix is None
    else:
      assert matrix.shape == (6, 6), name
    assert core.hidden(core.initial_state(4)).shape == (4, 6), name
    assert core.has_attention_map == (name == "sab_lstm")
