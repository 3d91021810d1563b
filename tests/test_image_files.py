"""seq_mnist / pmnist / cifar10 from their standard files in task.manual_dir, numpy only.

The test writes tiny files in the distribution formats: MNIST's idx files (gzip), CIFAR-10's
cifar-10-python.tar.gz (pickled batches of channel-major rows).
"""

import gzip
import io
import json
import os
import pickle
import struct
import subprocess
import sys
import tarfile

import numpy as np
import pytest

from tca_jax import tasks
from tca_jax.tasks.data import DataError, image_files

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def idx_bytes(array: np.ndarray) -> bytes:
  return (bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}i", *array.shape)
          + array.astype(np.uint8).tobytes())


def write_mnist(directory, n_train=12, n_test=6, seed=0, gz=True):
  rng = np.random.default_rng(seed)
  arrays = {"train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28)),
            "train-labels-idx1-ubyte": rng.integers(0, 10, n_train),
            "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28)),
            "t10k-labels-idx1-ubyte": rng.integers(0, 10, n_test)}
  os.makedirs(directory, exist_ok=True)
  for name, a in arrays.items():
    data = idx_bytes(a)
    with open(os.path.join(directory, name + (".gz" if gz else "")), "wb") as f:
      f.write(gzip.compress(data) if gz else data)
  return {k: v.astype(np.uint8) for k, v in arrays.items()}


def write_cifar10(directory, per_batch=2, n_test=3, seed=0):
  """Images [N, 32, 32, 3]; each file row is R plane, G plane, B plane (1024 each)."""
  rng = np.random.default_rng(seed)
  images, labels = [], []
  buf = io.BytesIO()
  with tarfile.open(fileobj=buf, mode="w:gz") as tar:
    for name, n in [(f"data_batch_{i}", per_batch) for i in range(1, 6)] + [("test_batch",
                                                                            n_test)]:
      x = rng.integers(0, 256, (n, 32, 32, 3)).astype(np.uint8)
      y = rng.integers(0, 10, n).tolist()
      images.append(x)
      labels.append(np.asarray(y))
      rows = x.transpose(0, 3, 1, 2).reshape(n, 3072)
      data = pickle.dumps({b"batch_label": name.encode(), b"labels": y, b"data": rows,
                           b"filenames": [b"f.png"] * n}, protocol=2)
      info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
      info.size = len(data)
      tar.addfile(info, io.BytesIO(data))
  os.makedirs(directory, exist_ok=True)
  with open(os.path.join(directory, "cifar-10-python.tar.gz"), "wb") as f:
    f.write(buf.getvalue())
  return (np.concatenate(images[:5]), np.concatenate(labels[:5]), images[5], labels[5])


def test_idx_and_cifar_files_read_back_exactly(tmp_path):
  a = write_mnist(tmp_path / "mnist")
  train_x, train_y, test_x, test_y = image_files.load_mnist(str(tmp_path / "mnist"))
  assert train_x.shape == (12, 28, 28, 1) and train_x.dtype == np.uint8
  np.testing.assert_array_equal(train_x[..., 0], a["train-images-idx3-ubyte"])
  np.testing.assert_array_equal(test_y, a["t10k-labels-idx1-ubyte"])
  write_mnist(tmp_path / "raw", gz=False)  # uncompressed copies are read too
  assert image_files.load_mnist(str(tmp_path / "raw"))[0].shape == (12, 28, 28, 1)

  want = write_cifar10(tmp_path / "cifar")
  got = image_files.load_cifar10(str(tmp_path / "cifar"))
  assert got[0].shape == (10, 32, 32, 3) and got[2].shape == (3, 32, 32, 3)
  for g, w in zip(got, want):
    np.testing.assert_array_equal(g, w)
  with tarfile.open(tmp_path / "cifar" / "cifar-10-python.tar.gz") as tar:  # the extracted dir
    tar.extractall(tmp_path / "extracted", filter="data")
  np.testing.assert_array_equal(image_files.load_cifar10(str(tmp_path / "extracted"))[0], want[0])

  with pytest.raises(ValueError, match="bad magic"):
    image_files.parse_idx(b"\x01\x02\x08\x01")
  with pytest.raises(DataError, match=r"task.manual_dir=.*cannot read MNIST.*t10k-labels"):
    image_files.load_mnist(str(tmp_path / "cifar"))
  with pytest.raises(DataError, match=r"cannot read CIFAR-10.*cifar-10-python.tar.gz"):
    image_files.load_cifar10(str(tmp_path / "mnist"))


@pytest.mark.parametrize("name", ["seq_mnist", "pmnist", "cifar10"])
def test_image_tasks_from_manual_dir(tmp_path, name):
  if name == "cifar10":
    train_x, train_y, test_x, _ = write_cifar10(tmp_path)
    length = 1024
  else:
    a = write_mnist(tmp_path)
    train_x, train_y = a["train-images-idx3-ubyte"][..., None], a["train-labels-idx1-ubyte"]
    test_x = a["t10k-images-idx3-ubyte"][..., None]
    length = 784
  task = tasks.get(name, length=length, manual_dir=str(tmp_path), validation_size=2)
  n_train = len(train_x) - 2
  srcs = task.sources()
  assert (len(srcs["train"]), len(srcs["validation"])) == (n_train, 2)
  assert len(srcs["test"]) == len(test_x)
  batch, reset = next(task.train_batches(seed=3, batch_size=4))
  order = np.random.default_rng([3, 0]).permutation(n_train)[:4]  # the task's epoch-0 order
  channels = train_x.shape[-1]
  pixels = train_x[order].reshape(4, length, channels)[:, task.pixel_order()]
  np.testing.assert_allclose(batch.inputs, pixels.transpose(1, 0, 2) / 255.0, rtol=1e-6)
  np.testing.assert_array_equal(batch.targets[-1], train_y[order])
  assert not reset and batch.mask[-1].sum() == 4 and batch.mask[:-1].sum() == 0
  validation = next(task.eval_batches("validation", 8))
  np.testing.assert_allclose(
      validation.inputs[:, 0], train_x[-2].reshape(length, channels)[task.pixel_order()] / 255.0,
      rtol=1e-6)


def test_training_from_mnist_files_without_tfds(tmp_path):
  """A run from the files in a fresh process: neither TFDS nor TensorFlow is imported."""
  write_mnist(tmp_path / "mnist")
  script = f"""
import sys, json
from tca_jax import config as config_lib, train
c = config_lib.default_config()
c.task.name, c.task.length, c.task.manual_dir = "pmnist", 784, {str(tmp_path / "mnist")!r}
c.task.validation_size = 4
c.model.cell, c.model.hidden_size = "srn", 4
c.train.steps, c.train.batch_size, c.train.log_every = 2, 4, 1
c.train.eval_every, c.train.eval_batches, c.train.test_batches = 2, 0, 0
c.train.eval_batch_size, c.train.checkpoint_every, c.train.warmup_steps = 8, 0, 0
result = train.train_and_evaluate(c, {str(tmp_path / "run")!r})
print("RESULT", json.dumps(result), "tensorflow_datasets" in sys.modules,
      "tensorflow" in sys.modules)
"""
  env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=ROOT)
  out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env,
                       timeout=300, cwd=ROOT)
  assert out.returncode == 0, out.stderr[-3000:]
  line = [l for l in out.stdout.splitlines() if l.startswith("RESULT")][-1]
  assert line.endswith("False False")
  result = json.loads(line.split(" ", 1)[1].rsplit(" ", 2)[0])
  assert 0.0 <= result["accuracy"] <= 1.0
  records = [json.loads(l) for l in open(tmp_path / "run" / "metrics.jsonl")]
  assert [r["split"] for r in records][-1] == "test"
  assert len(json.load(open(tmp_path / "run" / "permutation.json"))["permutation"]) == 784


def test_prepare_with_manual_dir_checks_the_image_files(tmp_path):
  write_mnist(tmp_path)
  cmd = [sys.executable, "-m", "tca_jax.tasks.data.prepare", "mnist", f"--manual_dir={tmp_path}"]
  env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=ROOT)
  out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120, cwd=ROOT)
  assert out.returncode == 0, out.stderr[-2000:]
  assert "mnist: 12 train and 6 test images readable" in out.stdout
  bad = subprocess.run(cmd[:3] + ["cifar10", f"--manual_dir={tmp_path}"], capture_output=True,
                       text=True, env=env, timeout=120, cwd=ROOT)
  assert bad.returncode == 1 and "cannot read CIFAR-10" in bad.stderr
