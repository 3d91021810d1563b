"""Run directories in a bucket (`gs://...` through etils.epath) and TensorBoard event files.

A `gs://` URL is served here by fsspec's in-memory filesystem registered under the `gs`/`gcs`
protocols (the one epath's fsspec backend asks for), so nothing leaves the machine.
"""

import json
import os
import shutil

import fsspec
from fsspec.implementations.memory import MemoryFileSystem
import pytest

from etils.epath import backend as epath_backend
from tca_jax import checkpoint, metrics_io, paths, train
from tca_jax.registry import ConfigError
from tests.test_train import tiny_config


class _FakeGCS(MemoryFileSystem):
  protocol = ("gs", "gcs")
  root_marker = ""
  store = {}  # its own store, not memory://'s
  pseudo_dirs = [""]

  @classmethod
  def _strip_protocol(cls, path):
    for prefix in ("gs://", "gcs://"):
      if path.startswith(prefix):
        path = path[len(prefix):]
    return MemoryFileSystem._strip_protocol(path)  # pylint: disable=protected-access


@pytest.fixture
def fake_gcs(monkeypatch):
  """`gs://` backed by memory; yields the filesystem to inspect what was written."""
  _FakeGCS.store.clear()
  _FakeGCS.pseudo_dirs[:] = [""]
  fsspec.register_implementation("gs", _FakeGCS, clobber=True)
  fsspec.register_implementation("gcs", _FakeGCS, clobber=True)
  monkeypatch.setenv("EPATH_USE_TF", "0")
  monkeypatch.setattr("etils.epath.gpath._is_tf_installed", lambda: False)
  epath_backend.fsspec_backend._get_filesystem.cache_clear()  # pylint: disable=protected-access
  yield _FakeGCS()
  epath_backend.fsspec_backend._get_filesystem.cache_clear()  # pylint: disable=protected-access


def test_paths_keep_urls(tmp_path):
  assert paths.resolve("gs://b/run") == "gs://b/run"  # os.path.abspath makes it $PWD/gs:/b/run
  assert paths.join("gs://b/run", "checkpoints") == "gs://b/run/checkpoints"
  assert paths.resolve(str(tmp_path / "a" / ".." / "b")) == str(tmp_path / "b")
  assert not paths.has_scheme(str(tmp_path)) and paths.has_scheme("s3://x/y")


def test_training_in_a_bucket_writes_every_file_there(fake_gcs, tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)  # a wrongly local path would appear here as gs:/...
  workdir = "gs://bucket/runs/a"
  c = tiny_config(train__diag_every=3, train__checkpoint_every=0)
  result = train.train_and_evaluate(c, workdir)
  assert not os.listdir(tmp_path)
  files = {os.path.basename(p) for p in fake_gcs.find("gs://bucket/runs/a")}
  assert {"config.json", "metrics.jsonl", "grad_flow.json", "grad_flow.png"} <= files
  assert any(f.startswith("events.out.tfevents.") for f in files)
  records = metrics_io.read_metrics(workdir)
  assert records[-1]["split"] == "test" and records[-1]["loss"] == pytest.approx(result["loss"])
  assert json.loads(fake_gcs.cat("gs://bucket/runs/a/config.json"))["train"]["steps"] == 6
  assert fake_gcs.cat("gs://bucket/runs/a/grad_flow.png")[:4] == b"\x89PNG"
  # The config is checked against the bucket's copy on a second start.
  c2 = tiny_config(train__diag_every=3, train__checkpoint_every=0, model__hidden_size=9)
  with pytest.raises(ConfigError, match="another config"):
    train.train_and_evaluate(c2, workdir)


def test_truncate_and_append_in_a_bucket(fake_gcs):
  path = "gs://bucket/m/metrics.jsonl"
  writer = metrics_io.MetricsWriter("gs://bucket/m")
  for step, split in ((1, "train"), (2, "train"), (2, "diag"), (3, "train"), (3, "test")):
    writer.write(step, split, {"loss": float(step)})
  checkpoint.truncate_records(path, 2)
  assert [(r["step"], r["split"]) for r in metrics_io.read_records(path)] == [
      (1, "train"), (2, "train")]


def _events(workdir):
  # pylint: disable-next=g-import-not-at-top
  from tensorboard.backend.event_processing import event_accumulator
  acc = event_accumulator.EventAccumulator(
      str(workdir), size_guidance={event_accumulator.SCALARS: 0, event_accumulator.IMAGES: 0,
                                   event_accumulator.TENSORS: 0})
  acc.Reload()
  return acc


def test_tensorboard_events_hold_the_metrics_records(tmp_path):
  c = tiny_config(train__diag_every=3, train__checkpoint_every=0)
  train.train_and_evaluate(c, str(tmp_path))
  records = metrics_io.read_metrics(str(tmp_path))
  acc = _events(tmp_path)
  tags = acc.Tags()
  for split in ("train", "eval", "test", "diag"):
    want = [(r["step"], r["loss"] if split != "diag" else r["grad_cosine"])
            for r in records if r["split"] == split]
    tag = f"{split}/loss" if split != "diag" else "diag/grad_cosine"
    assert tag in tags["scalars"], tags["scalars"]
    got = [(e.step, e.value) for e in acc.Scalars(tag)]
    assert [s for s, _ in got] == [s for s, _ in want]
    assert [v for _, v in got] == pytest.approx([v for _, v in want], rel=1e-6)
  assert "grad_flow" in tags["images"]
  image = acc.Images("grad_flow")[-1]
  assert image.step == 5 and image.encoded_image_string[:4] == b"\x89PNG"
  assert image.width > 100 and image.height > 100
  text = acc.Tensors("config/text_summary")[0].tensor_proto.string_val[0].decode()
  assert '"hidden_size": 8' in text


def test_resumed_run_leaves_no_duplicate_points(tmp_path):
  """Resumed from the checkpoint at step 4 of 6 (the one at 6 lost, as if the run had been killed
  before writing it): each step once in the events."""
  config = tiny_config(train__steps=6, train__checkpoint_every=2, train__log_every=1)
  train.train_and_evaluate(config, str(tmp_path))
  shutil.rmtree(tmp_path / "checkpoints" / "6")
  train.train_and_evaluate(config, str(tmp_path))
  records = metrics_io.read_metrics(str(tmp_path))
  acc = _events(tmp_path)
  train_steps = [e.step for e in acc.Scalars("train/loss")]
  assert train_steps == [1, 2, 3, 4, 5, 6]
  assert train_steps == [r["step"] for r in records if r["split"] == "train"]
  assert [e.step for e in acc.Scalars("test/loss")] == [6]  # the first try's test is gone
  assert len(paths.glob(str(tmp_path), metrics_io.EVENTS_PATTERN)) == 1


def test_tensorboard_can_be_switched_off(tmp_path):
  train.train_and_evaluate(tiny_config(train__steps=1, train__tensorboard=False,
                                       train__checkpoint_every=0), str(tmp_path))
  assert not paths.glob(str(tmp_path), metrics_io.EVENTS_PATTERN)


def test_image_files_from_a_bucket(fake_gcs, tmp_path):
  from tca_jax.tasks.data import image_files  # pylint: disable=g-import-not-at-top
  from tests.test_image_files import write_mnist  # pylint: disable=g-import-not-at-top
  arrays = write_mnist(tmp_path)
  for name in os.listdir(tmp_path):
    fake_gcs.pipe(f"gs://bucket/mnist/{name}", (tmp_path / name).read_bytes())
  train_x, _, _, test_y = image_files.load_mnist("gs://bucket/mnist")
  assert (train_x[..., 0] == arrays["train-images-idx3-ubyte"]).all()
  assert (test_y == arrays["t10k-labels-idx1-ubyte"]).all()
