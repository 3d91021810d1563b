"""launch/: the local sweep runs a grid N at a time and skips finished runs; the TPU launcher's
dry run prints the gcloud commands; the SLURM template is valid bash that JAX's SLURM detection
understands."""

import json
import os
import subprocess
import sys
import textwrap

import pytest

from tca_jax.launch import sweep, tpu_vm

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
         "--workdir=/tmp/runs/a", "--config=experiments/configs/copy.py:sab_t100",
         "--set=learner.name=tbptt", "--queued", "--spot", "--stages=create,setup,run,delete",
         "--repo=https://github.com/example/tca-jax.git", "--dry_run"]
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
  assert "pip install" in setup and "git clone" in setup
  assert ("TCA_JAX_DISTRIBUTED=1 python3 -m experiments.train "
          "--config=experiments/configs/copy.py:sab_t100 --workdir=/tmp/runs/a "
          "--config.learner.name=tbptt") in run
  assert delete.startswith("gcloud compute tpus queued-resources delete tca-qr --force")


def test_tpu_vm_direct_create_and_bad_stage():
  spec = tpu_vm.TPUSpec(name="n", zone="z", accelerator_type="v5litepod-8")
  ((stage, create),) = tpu_vm.commands(spec, ["create"], "c.py", "/w")
  assert stage == "create" and create[:6] == ["gcloud", "compute", "tpus", "tpu-vm", "create", "n"]
  assert "--version=tpu-ubuntu2204-base" in create and "--spot" not in create
  with pytest.raises(ValueError, match="allowed: create, setup, run, delete"):
    tpu_vm.commands(spec, ["launch"], "c.py", "/w")


def test_slurm_template_is_bash_that_jax_detects(monkeypatch):
  path = os.path.join(ROOT, "launch", "slurm.sbatch")
  assert subprocess.run(["bash", "-n", path]).returncode == 0
  text = open(path).read()
  assert "#SBATCH --ntasks-per-node=1" in text and "TCA_JAX_DISTRIBUTED=1" in text
  assert "srun" in text and "python -m experiments.train" in text
  # What an srun step with 2 nodes x 1 task sets; jax.distributed.initialize() reads exactly this.
  slurm = pytest.importorskip("jax._src.clusters.slurm_cluster")
  for k, v in {"SLURM_JOB_ID": "4242", "SLURM_STEP_NODELIST": "gpu[007-008]",
               "SLURM_NTASKS": "2", "SLURM_PROCID": "1", "SLURM_LOCALID": "0"}.items():
    monkeypatch.setenv(k, v)
  cluster = slurm.SlurmCluster
  assert cluster.is_env_present()
  assert cluster.get_process_count() == 2 and cluster.get_process_id() == 1
  assert cluster.get_coordinator_address(None, None).startswith("gpu007:")
