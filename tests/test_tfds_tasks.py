"""Image tasks over TFDS (`seq_mnist`, `pmnist`, `cifar10`) with `tfds.testing.mock_data`.

Also: `import tca_jax` never imports TFDS or TensorFlow, and a missing dataset is a one-line
error raised before the trainer writes anything.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from tca_jax import config as config_lib
from tca_jax import tasks, train

IMAGE_TASKS = {"seq_mnist": (784, 1), "pmnist": (784, 1), "cifar10": (1024, 3)}
N = 12  # mock examples per split


@pytest.fixture
def tfds():
  module = pytest.importorskip("tensorflow_datasets")
  from tca_jax.tasks.data import image  # pylint: disable=g-import-not-at-top
  image._sources.cache_clear()  # pylint: disable=protected-access
  with module.testing.mock_data(num_examples=N):
    yield module
  image._sources.cache_clear()  # pylint: disable=protected-access


def test_core_imports_neither_tfds_nor_tensorflow():
  code = ("import sys, tca_jax, tca_jax.tasks, tca_jax.config, tca_jax.train; "
          "tca_jax.tasks.get('copy', length=5); "
          "bad = [m for m in ('tensorflow', 'tensorflow_datasets') if m in sys.modules]; "
          "assert not bad, bad")
  subprocess.run([sys.executable, "-c", code], check=True, env=dict(os.environ, JAX_PLATFORMS="cpu"),
                 cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_without_tfds_dataset_tasks_name_the_extra(tmp_path, monkeypatch):
  monkeypatch.setitem(sys.modules, "tensorflow_datasets", None)  # import fails as if absent
  for name, options in (("ptb_char", {"length": 100}), ("seq_mnist", {"length": 784})):
    with pytest.raises(config_lib.ConfigError, match=r"tensorflow-datasets.*tca-jax\[data\]"):
      tasks.get(name, data_dir=str(tmp_path), **options)


@pytest.mark.parametrize("name", sorted(IMAGE_TASKS))
def test_image_batches(tfds, name):
  length, channels = IMAGE_TASKS[name]
  task = tasks.get(name, length=length)
  assert task.input_size == channels and task.output_size == 10 and not task.carries_state
  source = task.sources()["train"]
  examples = [source[i] for i in range(len(source))]
  it = task.train_batches(seed=3, batch_size=4)
  epoch = [next(it) for _ in range(N // 4)]
  order = task.pixel_order()
  seen = []
  for batch, reset in epoch:
    assert not reset
    assert batch.inputs.shape == (length, 4, channels) and batch.inputs.dtype == np.float32
    assert batch.targets.shape == batch.mask.shape == (length, 4)
    assert 0.0 <= batch.inputs.min() and batch.inputs.max() <= 1.0
    np.testing.assert_array_equal(batch.mask[-1], 1.0)
    assert batch.mask[:-1].sum() == 0 and np.all(batch.targets[:-1] == 0)
    for b in range(4):  # identify the example: its pixels, in the task's order, and its label
      pixels = batch.inputs[:, b]
      match = [i for i, e in enumerate(examples) if np.allclose(
          np.asarray(e["image"]).reshape(length, channels)[order] / 255.0, pixels)]
      assert match, "a batch row is not one of the split's images"
      assert batch.targets[-1, b] == examples[match[0]]["label"]
      seen.append(match[0])
  assert sorted(seen) == list(range(N))  # an epoch draws every training example once
  # The next epoch is another permutation; the same seed gives the same order, another seed not.
  assert not np.array_equal(next(it)[0].inputs, epoch[0][0].inputs)
  np.testing.assert_array_equal(next(task.train_batches(3, 4))[0].inputs, epoch[0][0].inputs)
  assert not np.array_equal(next(task.train_batches(4, 4))[0].inputs, epoch[0][0].inputs)
  # Resuming at batch k (here in the second epoch) matches the uninterrupted stream.
  for k in (1, N // 4, N // 4 + 1):
    np.testing.assert_array_equal(next(task.train_batches(3, 4, start=k))[0].inputs,
                                  _nth(task.train_batches(3, 4), k).inputs)
  evals = list(task.eval_batches("test", 5))
  assert [b.batch_size for b in evals] == [5, 5, 2]  # the whole split, the last batch partial


def test_pmnist_permutation_is_fixed_by_its_seed(tfds):
  del tfds
  a = tasks.get("pmnist", length=784, permutation_seed=1)
  b = tasks.get("pmnist", length=784, permutation_seed=1)
  c = tasks.get("pmnist", length=784, permutation_seed=2)
  assert sorted(a.pixel_order()) == list(range(784))
  np.testing.assert_array_equal(a.pixel_order(), b.pixel_order())
  assert not np.array_equal(a.pixel_order(), c.pixel_order())
  image = np.random.default_rng(0).integers(0, 256, (1, 28, 28, 1), dtype=np.uint8)
  batch = a.make_batch(image, np.array([7]))
  np.testing.assert_allclose(batch.inputs[:, 0, 0], image.reshape(-1)[a.pixel_order()] / 255.0)
  assert batch.targets[-1, 0] == 7


def _nth(iterator, k):
  for _ in range(k):
    next(iterator)
  return next(iterator)[0]


def _image_config(name, length):
  c = config_lib.default_config()
  c.task.name = name
  c.task.length = length
  c.model.hidden_size = 8
  c.train.batch_size = 4
  c.train.eval_batch_size = 6
  c.train.steps = 1
  c.train.log_every = 1
  c.train.eval_every = 1
  c.train.eval_batches = 0
  c.train.test_batches = 0
  return c


@pytest.mark.parametrize("name", sorted(IMAGE_TASKS))
def test_one_training_step(tfds, tmp_path, name):
  del tfds
  c = _image_config(name, IMAGE_TASKS[name][0])
  if name == "pmnist":
    c.task.permutation_seed = 5
  result = train.train_and_evaluate(c, str(tmp_path))
  assert np.isfinite(result["loss"]) and 0.0 <= result["accuracy"] <= 1.0
  records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
  assert {r["split"] for r in records} == {"train", "eval", "test"}
  if name == "pmnist":
    saved = json.loads((tmp_path / "permutation.json").read_text())
    assert saved["permutation_seed"] == 5
    assert saved["permutation"] == tasks.get("pmnist", length=784,
                                             permutation_seed=5).pixel_order().tolist()


def _write_array_record_mnist(data_dir, n_train=20, n_test=10):
  """An MNIST-shaped dataset written as the catalog's `mnist` would be, without TensorFlow.

  PIL encodes the PNGs (the catalog builder needs TensorFlow to encode numpy images), so this runs
  where only the `data` extra is installed; it lets the read path be tested on real ArrayRecord
  files and PNG decoding, not on the mock.
  """
  import PIL.Image  # pylint: disable=g-import-not-at-top
  import tensorflow_datasets as tfds_module  # pylint: disable=g-import-not-at-top

  class FakeMnist(tfds_module.core.GeneratorBasedBuilder, skip_registration=True):
    name = "mnist"
    VERSION = tfds_module.builder_cls("mnist").VERSION

    def _info(self):
      return tfds_module.core.DatasetInfo(builder=self, features=tfds_module.features.FeaturesDict({
          "image": tfds_module.features.Image(shape=(28, 28, 1)),
          "label": tfds_module.features.ClassLabel(num_classes=10)}))

    def _split_generators(self, dl_manager):
      del dl_manager
      return {"train": self._generate_examples(n_train, 0),
              "test": self._generate_examples(n_test, 1)}

    def _generate_examples(self, n, seed):
      rng = np.random.default_rng(seed)
      for i in range(n):
        image = rng.integers(0, 256, (28, 28), dtype=np.uint8)
        yield i, {"image": PIL.Image.fromarray(image, mode="L"), "label": (i + seed) % 10}

  tfds_module.disable_progress_bar()
  FakeMnist(data_dir=data_dir, file_format="array_record").download_and_prepare()
  images = {}
  for split, n, seed in (("train", n_train, 0), ("test", n_test, 1)):
    rng = np.random.default_rng(seed)
    images[split] = [(rng.integers(0, 256, (28, 28), dtype=np.uint8), (i + seed) % 10)
                     for i in range(n)]
  return images


def test_reads_prepared_array_record_files(tmp_path):
  pytest.importorskip("tensorflow_datasets")
  from tca_jax.tasks.data import image  # pylint: disable=g-import-not-at-top
  image._sources.cache_clear()  # pylint: disable=protected-access
  written = _write_array_record_mnist(str(tmp_path))
  task = tasks.get("seq_mnist", length=784, data_dir=str(tmp_path), validation_size=5)
  sizes = {s: len(src) for s, src in task.sources().items()}
  assert sizes == {"train": 15, "validation": 5, "test": 10}
  train_images = {img.tobytes(): label for img, label in written["train"]}
  it = task.train_batches(seed=0, batch_size=5)
  rows = set()
  for _ in range(3):  # one epoch of the 15 training images
    batch, _ = next(it)
    for b in range(5):
      pixels = np.round(batch.inputs[:, b, 0] * 255).astype(np.uint8).tobytes()
      assert pixels in train_images  # decoded exactly, in raster order
      assert batch.targets[-1, b] == train_images[pixels]
      rows.add(pixels)
  assert len(rows) == 15
  test = list(task.eval_batches("test", 4))
  assert [b.batch_size for b in test] == [4, 4, 2]
  first = np.round(test[0].inputs[:, 0, 0] * 255).astype(np.uint8)
  assert first.tobytes() in {img.tobytes() for img, _ in written["test"]}
  image._sources.cache_clear()  # pylint: disable=protected-access


def test_tfrecord_dataset_says_how_to_convert(tmp_path):
  pytest.importorskip("tensorflow_datasets")
  from tca_jax.tasks import data  # pylint: disable=g-import-not-at-top
  from tca_jax.tasks.data import image  # pylint: disable=g-import-not-at-top
  image._sources.cache_clear()  # pylint: disable=protected-access
  _write_array_record_mnist(str(tmp_path), n_train=6, n_test=2)
  (version_dir,) = (tmp_path / "mnist").iterdir()
  info = json.loads((version_dir / "dataset_info.json").read_text())
  info["fileFormat"] = "tfrecord"  # as `tfds build mnist` writes it by default
  (version_dir / "dataset_info.json").write_text(json.dumps(info))
  with pytest.raises(data.DataError, match="tfds convert_format") as e:
    tasks.get("seq_mnist", length=784, data_dir=str(tmp_path), validation_size=1)
  assert "\n" not in str(e.value) and str(version_dir) in str(e.value)


def test_missing_dataset_fails_before_writing(tmp_path):
  pytest.importorskip("tensorflow_datasets")
  from tca_jax.tasks import data  # pylint: disable=g-import-not-at-top
  from tca_jax.tasks.data import image  # pylint: disable=g-import-not-at-top
  image._sources.cache_clear()  # pylint: disable=protected-access
  c = _image_config("seq_mnist", 784)
  c.task.data_dir = str(tmp_path / "tfds")
  workdir = tmp_path / "run"
  with pytest.raises(data.DataError) as e:
    train.train_and_evaluate(c, str(workdir))
  msg = str(e.value)
  assert "\n" not in msg and "'mnist'" in msg and str(tmp_path / "tfds") in msg
  assert "python -m tca_jax.tasks.data.prepare mnist" in msg
  assert not workdir.exists()


@pytest.mark.parametrize("module", ["seq_mnist", "pmnist", "cifar10"])
def test_experiment_configs_build(tfds, module):
  del tfds
  import importlib  # pylint: disable=g-import-not-at-top
  configs = importlib.import_module(f"experiments.configs.{module}")
  for preset in configs.PRESETS:
    setup = config_lib.build(configs.get_config(preset))
    assert setup.task.name == module and setup.task.output_size == 10


def test_wrong_length_is_a_config_error(tfds):
  del tfds
  with pytest.raises(config_lib.ConfigError, match="task.length=100.*784"):
    tasks.get("seq_mnist", length=100)


def test_tiny_shakespeare_from_the_catalog(tfds):
  from tca_jax.tasks.data import text  # pylint: disable=g-import-not-at-top
  text.corpus.cache_clear()
  task = tasks.get("tiny_shakespeare", length=5)
  vocab, splits = task.corpus()
  assert set(vocab) <= set(" abcdefghij") and task.input_size == len(vocab)  # mock text
  assert all(len(ids) > 0 for ids in splits.values())
  batch, reset = next(task.train_batches(0, 2))
  assert reset and batch.inputs.shape == (5, 2, len(vocab)) and task.carries_state
  text.corpus.cache_clear()
