"""launch/: the local sweep runs a grid N at a time and skips finished runs; the TPU launcher's
dry run prints the gcloud commands; the SLURM template is valid bash that JAX's SLURM detection
understands."""

import json
import os
import shlex
import subprocess
import sys
import textwrap

import pytest

from tca_jax.launch import slurm_array, sweep, tpu_vm

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

TINY_CONFIG = textwrap.dedent("""
    from tca_jax.config import default_config

    def get_config():
      c = default_config()
      c.task.name = "temporal_order"
      c.task.length = 10
      c.model.cell = "srn"
      c.model.hidden_size = 8
      c.train.steps = 5
      c.train.batch_size = 4
      c.train.log_every = 5
      c.train.eval_every = 0
      c.train.eval_batch_size = 8
      c.train.test_batches = 1
      c.train.checkpoint_every = 0
      return c
    """)


def _env():
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  env.pop("XLA_FLAGS", None)
  return env


def test_grid_expands_in_order_and_rejects_bad_specs():
  grid = sweep.parse_grid(["config.learner.name=bptt,tbptt", "seed=0,1,2"])
  assert grid == [("learner.name", ["bptt", "tbptt"]), ("seed", ["0", "1", "2"])]
  points = sweep.expand(grid)
  assert len(points) == 6 and points[1] == {"learner.name": "bptt", "seed": "1"}
  assert sweep.run_name(points[1]) == "learner.name=bptt,seed=1"
  assert sweep.run_name({"task.data_dir": "/a b"}) == "task.data_dir=_a_b"
  for bad in (["seed"], ["seed="], ["=1"], ["seed=1,,2"], ["seed=1", "seed=2"]):
    with pytest.raises(ValueError):
      sweep.parse_grid(bad)


def test_plan_puts_grid_and_fixed_overrides_on_the_command(tmp_path):
  runs = sweep.plan(sweep.expand(sweep.parse_grid(["seed=3"])), "cfg.py:quick", str(tmp_path),
                    fixed={"train.steps": "5", "seed": "9"}, python="PY")
  (run,) = runs
  assert run.workdir == str(tmp_path / "seed=3") and not run.finished
  assert run.command[:3] == ("PY", "-m", "experiments.train")
  assert run.command[3] == f"--config={os.path.abspath('cfg.py')}:quick"
  assert "--config.train.steps=5" in run.command and "--config.seed=3" in run.command
  assert "--config.seed=9" not in run.command  # the grid wins over --set


def test_sweep_runs_two_in_parallel_then_skips_them(tmp_path):
  config = tmp_path / "tiny.py"
  config.write_text(TINY_CONFIG)
  base = tmp_path / "sweep"
  cmd = [sys.executable, os.path.join(ROOT, "launch", "local_sweep.py"), f"--config={config}",
         f"--base_dir={base}", "--grid=seed=0,1", "--set=train.steps=4", "--parallel=2"]
  first = subprocess.run(cmd, capture_output=True, text=True, env=_env(), timeout=300)
  assert first.returncode == 0, first.stdout + first.stderr
  assert "2 done, 0 skipped, 0 failed" in first.stdout
  names = ["seed=0", "seed=1"]
  contents = {}
  for name in names:
    workdir = base / name
    records = [json.loads(l) for l in open(workdir / "metrics.jsonl")]
    assert records[-1]["split"] == "test" and records[-1]["step"] == 4
    assert json.load(open(workdir / "config.json"))["seed"] == int(name.split("=")[1])
    assert sweep.is_finished(str(workdir))
    contents[name] = (workdir / "metrics.jsonl").read_text()

  dry = subprocess.run(cmd + ["--dry_run"], capture_output=True, text=True, env=_env(), timeout=60)
  assert dry.returncode == 0 and dry.stdout.count("# skip (finished): ") == 2

  second = subprocess.run(cmd, capture_output=True, text=True, env=_env(), timeout=60)
  assert second.returncode == 0, second.stdout + second.stderr
  assert "0 done, 2 skipped, 0 failed" in second.stdout
  for name in names:  # nothing ran again
    assert (base / name / "metrics.jsonl").read_text() == contents[name]


def test_is_finished_needs_a_test_record(tmp_path):
  assert not sweep.is_finished(str(tmp_path))
  (tmp_path / "metrics.jsonl").write_text('{"step": 5, "split": "train"}\n{"step": 5, "spl')
  assert not sweep.is_finished(str(tmp_path))
  with open(tmp_path / "metrics.jsonl", "a") as f:
    f.write('\n{"step": 5, "split": "test", "loss": 1.0}\n')
  assert sweep.is_finished(str(tmp_path))


def test_tpu_vm_dry_run_prints_the_gcloud_commands():
  cmd = [sys.executable, os.path.join(ROOT, "launch", "tpu_vm.py"), "--name=tca",
         "--zone=us-central2-b", "--accelerator_type=v4-32", "--project=proj",
         "--repo=https://example.org/tca-jax.git",
         "--workdir=/tmp/runs/a", "--config=experiments/configs/copy.py:sab_t100",
         "--set=learner.name=tbptt", "--queued", "--spot", "--stages=create,setup,run,delete",
         "--dry_run"]
  out = subprocess.run(cmd, capture_output=True, text=True, env=_env(), timeout=60)
  assert out.returncode == 0, out.stderr
  lines = [l for l in out.stdout.splitlines() if l.startswith("gcloud")]
  assert len(lines) == 5  # queued create, describe (poll), setup, run, delete
  create, wait, setup, run, delete = lines
  assert create.startswith("gcloud compute tpus queued-resources create tca-qr --node-id=tca")
  assert "--accelerator-type=v4-32" in create and "--spot" in create
  assert "--zone=us-central2-b" in create and "--project=proj" in create
  assert "queued-resources describe tca-qr" in wait
  for ssh in (setup, run):
    assert ssh.startswith("gcloud compute tpus tpu-vm ssh tca --worker=all")
  assert "pip install" in setup
  assert "git clone --branch main https://example.org/tca-jax.git" in setup
  assert "--runtime-version=tpu-ubuntu2204-base" in create
  assert ("TCA_JAX_DISTRIBUTED=1 python3 -m experiments.train "
          "--config=experiments/configs/copy.py:sab_t100 --workdir=/tmp/runs/a "
          "--config.learner.name=tbptt") in run
  assert delete.startswith("gcloud compute tpus queued-resources delete tca-qr --force")


def test_tpu_vm_direct_create_and_bad_stage():
  spec = tpu_vm.TPUSpec(name="n", zone="z", accelerator_type="v5litepod-8", repo="r")
  ((stage, create),) = tpu_vm.commands(spec, ["create"], "c.py", "/w")
  assert stage == "create" and create[:6] == ["gcloud", "compute", "tpus", "tpu-vm", "create", "n"]
  assert "--version=v2-alpha-tpuv5-lite" in create and "--spot" not in create
  with pytest.raises(ValueError, match="allowed: create, setup, run, delete"):
    tpu_vm.commands(spec, ["launch"], "c.py", "/w")


@pytest.mark.parametrize("accelerator,image", [
    ("v6e-8", "v2-alpha-tpuv6e"), ("v5p-128", "v2-alpha-tpuv5"), ("v5litepod-16",
    "v2-alpha-tpuv5-lite"), ("v5e-4", "v2-alpha-tpuv5-lite"), ("v4-32", "tpu-ubuntu2204-base"),
    ("v3-8", "tpu-ubuntu2204-base"), ("v2-8", "tpu-ubuntu2204-base")])
def test_tpu_runtime_image_follows_the_generation(accelerator, image):
  assert tpu_vm.runtime_for(accelerator) == image
  spec = tpu_vm.TPUSpec(name="n", zone="z", accelerator_type=accelerator, repo="r", queued=True)
  create = tpu_vm.commands(spec, ["create"], "c.py", "/w")[0][1]
  assert f"--runtime-version={image}" in create
  custom = tpu_vm.TPUSpec(name="n", zone="z", accelerator_type=accelerator, repo="r",
                          runtime_version="my-image")
  assert "--version=my-image" in tpu_vm.commands(custom, ["create"], "c.py", "/w")[0][1]


def test_tpu_vm_refuses_unknown_generation_and_missing_repo():
  with pytest.raises(ValueError, match="unknown TPU generation; allowed: v6e"):
    tpu_vm.commands(tpu_vm.TPUSpec(name="n", zone="z", accelerator_type="v9x-8", repo="r"),
                    ["create"], "c.py", "/w")
  with pytest.raises(ValueError, match="--repo is required"):
    tpu_vm.commands(tpu_vm.TPUSpec(name="n", zone="z"), ["setup"], "c.py", "/w")
  cmd = [sys.executable, os.path.join(ROOT, "launch", "tpu_vm.py"), "--name=tca", "--zone=z",
         "--workdir=/w", "--dry_run"]
  out = subprocess.run(cmd, capture_output=True, text=True, env=_env(), timeout=60)
  assert out.returncode != 0 and "--repo" in out.stderr


SLURM_STEP = {"SLURM_JOB_ID": "4242", "SLURM_STEP_NODELIST": "gpu[007-008]",
              "SLURM_NTASKS": "8", "SLURM_PROCID": "6", "SLURM_LOCALID": "2"}


def test_slurm_template_is_bash_that_jax_detects(monkeypatch):
  path = os.path.join(ROOT, "launch", "slurm.sbatch")
  assert subprocess.run(["bash", "-n", path]).returncode == 0
  text = open(path).read()
  # One task per GPU: as many tasks per node as GPUs per node, and srun does not override it.
  tasks = [l for l in text.splitlines() if l.startswith("#SBATCH --ntasks-per-node=")]
  gpus = [l for l in text.splitlines() if l.startswith("#SBATCH --gpus-per-node=")]
  assert len(tasks) == len(gpus) == 1 and tasks[0].split("=")[1] == gpus[0].split("=")[1]
  assert "TCA_JAX_DISTRIBUTED=1" in text and "python -m experiments.train" in text
  srun_line = [l for l in text.splitlines() if l.startswith("srun")]
  assert len(srun_line) == 1 and "--ntasks" not in srun_line[0]
  # What an srun step with 2 nodes x 4 tasks sets; jax.distributed.initialize() reads exactly
  # this (task 6 = node 2's third task).
  slurm = pytest.importorskip("jax._src.clusters.slurm_cluster")
  for k, v in SLURM_STEP.items():
    monkeypatch.setenv(k, v)
  monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
  monkeypatch.delenv("JAX_LOCAL_DEVICE_IDS", raising=False)
  cluster = slurm.SlurmCluster
  assert cluster.is_env_present()
  assert cluster.get_process_count() == 8 and cluster.get_process_id() == 6
  assert cluster.get_coordinator_address(None, None).startswith("gpu007:")


def test_slurm_process_drives_the_gpu_of_its_local_id(monkeypatch):
  """tca_jax.distributed passes local_device_ids; JAX's detection keeps them and fills the rest."""
  from jax._src import clusters  # pylint: disable=g-import-not-at-top
  from tca_jax import config as config_lib, distributed  # pylint: disable=g-import-not-at-top
  for k, v in SLURM_STEP.items():
    monkeypatch.setenv(k, v)
  monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
  monkeypatch.delenv("JAX_LOCAL_DEVICE_IDS", raising=False)
  monkeypatch.delenv("TPU_WORKER_ID", raising=False)
  assert distributed.slurm_local_device_ids() == [2]
  addr, n, pid, ids = clusters.ClusterEnv.auto_detect_unset_distributed_params(
      None, None, None, distributed.slurm_local_device_ids(), None, 300)
  assert (n, pid, ids) == (8, 6, [2]) and addr.startswith("gpu007:")
  # --gpus-per-task=1: SLURM left this task one visible GPU, which is index 0 (JAX alone: [2]).
  monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2")
  assert distributed.slurm_local_device_ids() == [0]
  monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1,2,3")
  assert distributed.slurm_local_device_ids() == [2]
  assert distributed.slurm_local_device_ids({}) is None  # not under SLURM: all devices
  # maybe_initialize hands them to jax.distributed.initialize.
  seen = {}
  monkeypatch.setattr(distributed.jax.distributed, "initialize", lambda **kw: seen.update(kw))
  monkeypatch.setattr(distributed.jax, "process_index", lambda: 6)
  monkeypatch.setattr(distributed.jax, "process_count", lambda: 8)
  c = config_lib.default_config()
  c.distributed.enabled = True
  assert distributed.maybe_initialize(c) and seen == {"local_device_ids": [2]}


def test_slurm_template_runs_one_task_per_gpu(tmp_path):
  """The script itself, with a stand-in `srun` that prints its arguments."""
  fake = tmp_path / "bin"
  fake.mkdir()
  (fake / "srun").write_text('#!/bin/bash\necho "SRUN $*"\n')
  (fake / "srun").chmod(0o755)
  path = os.path.join(ROOT, "launch", "slurm.sbatch")
  env = dict(_env(), PATH=f"{fake}:{os.environ['PATH']}", SLURM_SUBMIT_DIR=str(tmp_path),
             SLURM_GPUS_ON_NODE="4", SLURM_NTASKS_PER_NODE="4")
  out = subprocess.run(["bash", path, "cfg.py:quick", str(tmp_path / "w"), "--config.seed=3"],
                       capture_output=True, text=True, env=env, timeout=30)
  assert out.returncode == 0, out.stderr
  assert ("SRUN --kill-on-bad-exit=1 python -m experiments.train --config=cfg.py:quick "
          f"--workdir={tmp_path / 'w'} --config.seed=3") in out.stdout
  env["SLURM_NTASKS_PER_NODE"] = "1"
  out = subprocess.run(["bash", path, "cfg.py", str(tmp_path / "w")], capture_output=True,
                       text=True, env=env, timeout=30)
  assert out.returncode == 2 and "one process per GPU" in out.stderr and "SRUN" not in out.stdout


def test_grid_submits_as_a_slurm_array_skipping_finished_runs(tmp_path):
  """--submit=slurm --dry_run prints the array job; the script's tasks run the local sweep's
  commands (executed here with a stand-in python that prints its arguments)."""
  base = tmp_path / "sweep"
  (base / "seed=1").mkdir(parents=True)
  (base / "seed=1" / "metrics.jsonl").write_text('{"step": 5, "split": "test", "loss": 1.0}\n')
  cmd = [sys.executable, os.path.join(ROOT, "launch", "local_sweep.py"), "--config=cfg.py:quick",
         f"--base_dir={base}", "--grid=seed=0,1,2,3", "--set=train.steps=4", "--submit=slurm",
         "--slurm_option=partition=gpu", "--slurm_option=gpus-per-task=",
         "--slurm_option=exclusive",
         "--slurm_max_parallel=2", "--dry_run"]
  out = subprocess.run(cmd, capture_output=True, text=True, env=_env(), timeout=60)
  assert out.returncode == 0, out.stderr
  script = out.stdout
  assert "#SBATCH --array=0,2-3%2" in script  # seed=1 finished: no index for it
  assert "#SBATCH --partition=gpu" in script and "#SBATCH --exclusive\n" in script
  assert "gpus-per-task" not in script and "#SBATCH --requeue" in script
  assert f"#SBATCH --output={base}/slurm-%A_%a.out" in script
  assert script.rstrip().endswith(f"# sbatch --parsable {base / 'sweep.sbatch'}")
  assert not (base / "sweep.sbatch").exists()  # a dry run writes nothing
  runs = sweep.plan(sweep.expand(sweep.parse_grid(["seed=0,1,2,3"])), "cfg.py:quick", str(base),
                    fixed={"train.steps": "4"})
  for i, run in enumerate(runs):  # index i is grid point i, with the local sweep's command
    assert f"  {i}) WORKDIR={run.workdir}; CMD=({' '.join(run.command)}) ;;" in script
  assert subprocess.run(["bash", "-n"], input=script, text=True).returncode == 0

  # Run task 2 and task 1 of the script: the unfinished one trains, the finished one is skipped.
  fake = tmp_path / "bin"
  fake.mkdir()
  body = script.replace(f"CMD=({shlex.quote(sys.executable)} ", "CMD=(fake_python ")
  (fake / "fake_python").write_text('#!/bin/bash\necho "TRAIN $*"\n')
  (fake / "fake_python").chmod(0o755)
  env = dict(_env(), PATH=f"{fake}:{os.environ['PATH']}", PYTHONPATH=ROOT)
  for index, trained in ((2, True), (1, False)):
    task = subprocess.run(["bash", "-c", body], capture_output=True, text=True, timeout=60,
                          env=dict(env, SLURM_ARRAY_TASK_ID=str(index)))
    assert task.returncode == 0, task.stderr
    log = base / f"seed={index}" / "log.txt"
    if trained:
      text = log.read_text()
      assert text.startswith("TRAIN -m experiments.train --config=") and "--config.seed=2" in text
    else:
      assert "skip (finished)" in task.stdout and not log.exists()

  # Everything finished: nothing to submit.
  for i in (0, 2, 3):
    (base / f"seed={i}").mkdir(exist_ok=True)
    (base / f"seed={i}" / "metrics.jsonl").write_text('{"step": 5, "split": "test"}\n')
  done = subprocess.run(cmd, capture_output=True, text=True, env=_env(), timeout=60)
  assert done.returncode == 0 and "nothing to submit: all 4 runs are finished" in done.stdout


def test_slurm_array_spec_and_options():
  run = lambda finished: sweep.Run("r", "/w", ("py",), finished)
  assert slurm_array.array_spec([run(False)] * 3) == "0-2"
  assert slurm_array.array_spec([run(True), run(False), run(True), run(False), run(False)],
                                max_parallel=3) == "1,3-4%3"
  assert slurm_array.array_spec([run(True)]) is None
  assert slurm_array.parse_options(["--partition=gpu", "exclusive", "time="]) == {
      "partition": "gpu", "exclusive": None, "time": ""}
  with pytest.raises(ValueError, match="KEY=VALUE"):
    slurm_array.parse_options(["=gpu"])


def test_launch_readme_shows_what_the_tpu_launcher_prints():
  readme = open(os.path.join(ROOT, "launch", "README.md")).read()
  block = readme.split("```bash\npython launch/tpu_vm.py ", 1)[1].split("```", 1)[0]
  args = shlex.split("python launch/tpu_vm.py " + block.replace("\\\n", " "))[2:]
  shown = readme.split("prints\n\n```\n", 1)[1].split("```", 1)[0]
  out = subprocess.run([sys.executable, os.path.join(ROOT, "launch", "tpu_vm.py")] + args,
                       capture_output=True, text=True, env=_env(), timeout=60)
  assert out.returncode == 0, out.stderr
  assert out.stdout == shown
