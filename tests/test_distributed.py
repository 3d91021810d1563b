"""Data parallelism over 4 CPU devices and two processes training together on localhost.

Each case runs in a subprocess, because the number of devices and the multi-host runtime are
fixed when JAX starts.
"""

import json
import os
import socket
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SCRIPT = r"""
import json, sys
import jax
from tca_jax import config as config_lib, distributed, train
c = config_lib.default_config()
c.task.name, c.task.length = "temporal_order", 10
c.model.cell, c.model.hidden_size = "lstm", 8
c.train.steps, c.train.batch_size, c.train.log_every = 4, 8, 1
c.train.eval_every, c.train.eval_batches, c.train.eval_batch_size = 0, 1, 16
c.train.test_batches, c.train.checkpoint_every = 1, 0
args = json.loads(sys.argv[1])
for k, v in args.get("distributed", {}).items():
  c.distributed[k] = v
distributed.maybe_initialize(c)
result = train.train_and_evaluate(c, args["workdir"])
losses = [r["loss"] for r in map(json.loads, open(args["workdir"] + "/metrics.jsonl"))
          if r["split"] == "train"] if jax.process_index() == 0 else []
print("RESULT " + json.dumps({"losses": losses, "devices": jax.device_count(),
                              "processes": jax.process_count()}))
"""


def run(args, devices=1, **popen):
  env = dict(os.environ, JAX_PLATFORMS="cpu",
             XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}")
  return subprocess.Popen([sys.executable, "-c", SCRIPT, json.dumps(args)], cwd=ROOT, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen)


def result(proc, timeout=600):
  out, err = proc.communicate(timeout=timeout)
  assert proc.returncode == 0, err[-3000:]
  line = [l for l in out.splitlines() if l.startswith("RESULT ")][-1]
  return json.loads(line[len("RESULT "):])


def test_four_devices_give_the_single_device_result(tmp_path):
  one = result(run({"workdir": str(tmp_path / "one")}, devices=1))
  four = result(run({"workdir": str(tmp_path / "four")}, devices=4))
  assert one["devices"] == 1 and four["devices"] == 4
  assert len(one["losses"]) == 4
  for a, b in zip(one["losses"], four["losses"]):
    assert a == pytest.approx(b, rel=1e-5)


def test_two_processes_train_together(tmp_path):
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
  procs = [run({"workdir": str(tmp_path / "run"),
                "distributed": {"enabled": True, "coordinator_address": f"127.0.0.1:{port}",
                                "num_processes": 2, "process_id": i}}, devices=2)
           for i in range(2)]
  results = [result(p) for p in procs]
  assert all(r["processes"] == 2 and r["devices"] == 4 for r in results)
  losses = results[0]["losses"]
  assert len(losses) == 4 and all(l == l for l in losses)  # finite, written by process 0 only
  records = [json.loads(l) for l in open(tmp_path / "run" / "metrics.jsonl")]
  assert sum(r["split"] == "test" for r in records) == 1
