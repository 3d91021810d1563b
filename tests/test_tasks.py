"""Task invariants: exact definitions, so results are comparable with the papers."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tca_jax import tasks
from tca_jax.registry import ConfigError
from tca_jax.types import Batch

B = 64


def symbols(batch):
  return np.asarray(jnp.argmax(batch.inputs, -1))  # [T, B]


def test_copy(key):
  task = tasks.get("copy", length=15)
  b = task.sample(key, B)
  seq = symbols(b)
  assert b.inputs.shape == (35, B, 10) and b.targets.shape == (35, B)
  digits = seq[:10]
  assert digits.min() >= 1 and digits.max() <= 8
  assert (seq[10:24] == 0).all() and (seq[24] == 9).all() and (seq[25:] == 0).all()
  np.testing.assert_array_equal(b.targets[-10:], digits)
  assert (np.asarray(b.targets[:-10]) == 0).all()
  np.testing.assert_allclose(b.mask.sum(0), 1.0, rtol=1e-6)
  last = tasks.get("copy", length=15, loss_on="last10").sample(key, B)
  assert (np.asarray(last.mask[:-10]) == 0).all()
  np.testing.assert_allclose(last.mask[-10:], 0.1)


def test_copy_metrics_of_a_perfect_predictor(key):
  task = tasks.get("copy", length=5)
  b = task.sample(key, 8)
  logits = 50.0 * jax.nn.one_hot(b.targets, 10)
  m = task.metrics(logits, b)
  assert m["accuracy"] == 1.0 and m["ce_last10"] < 1e-6 and m["ce"] < 1e-6


@pytest.mark.parametrize("name,lo1,hi1,lo2,hi2,scale",
                         [("adding", 0, 50, 50, 100, 1.0), ("adding_pascanu", 0, 10, 10, 50, 0.5)])
def test_adding_markers_and_targets(name, lo1, hi1, lo2, hi2, scale, key):
  b = tasks.get(name, length=100).sample(key, 512)
  values, markers = np.asarray(b.inputs[..., 0]), np.asarray(b.inputs[..., 1])
  assert (markers.sum(0) == 2).all()
  t1 = markers.argmax(0)
  t2 = 99 - markers[::-1].argmax(0)
  assert t1.min() >= lo1 and t1.max() < hi1 and t2.min() >= lo2 and t2.max() < hi2
  assert t1.min() == lo1 and t2.max() == hi2 - 1  # the ranges are covered, not just bounded
  np.testing.assert_allclose(b.targets[-1, :, 0], scale * (values * markers).sum(0), rtol=1e-6)
  assert (np.asarray(b.mask[-1]) == 1).all() and float(b.mask.sum()) == 512


def test_adding_pascanu_jitter(key):
  task = tasks.get("adding_pascanu", length=100, jitter=True)
  lengths = {task.draw_length(jax.random.fold_in(key, i)) for i in range(200)}
  assert min(lengths) >= 100 and max(lengths) < 110 and len(lengths) > 5
  b = task.sample(key, 4, 107)
  assert b.inputs.shape == (107, 4, 2)
  assert tasks.get("adding_pascanu", length=100).draw_length(key) == 100
  release = tasks.get("adding_pascanu", length=100, variant="release")
  assert release.jittered and len({release.draw_length(jax.random.fold_in(key, i))
                                   for i in range(50)}) > 1
  assert not tasks.get("adding_pascanu", length=100, variant="release", jitter=False).jittered


@pytest.mark.parametrize("name", ["adding", "adding_pascanu"])
def test_adding_success_criteria_and_mse(name):
  """The text: |error| < 0.04 is right. The TPTT release: wrong only when the squared error
  exceeds 0.04. `mse` is the last step's mean squared error (SAB's Table 3 number)."""
  errors = np.array([0.0, 0.039, 0.041, 0.1, 0.199, 0.25])
  targets = jnp.zeros((3, 6, 1)).at[-1, :, 0].set(0.5)
  outputs = targets.at[-1, :, 0].add(jnp.asarray(errors, jnp.float32))
  batch = Batch(jnp.zeros((3, 6, 2)), targets, jnp.zeros((3, 6)).at[-1].set(1.0))
  m = tasks.get(name, length=10).metrics(outputs, batch)
  np.testing.assert_allclose(m["accuracy"], 2 / 6, rtol=1e-6)
  np.testing.assert_allclose(m["mse"], np.mean(errors ** 2), rtol=1e-5)
  np.testing.assert_allclose(m["mse"], m["loss"], rtol=1e-5)
  if name == "adding_pascanu":
    m = tasks.get(name, length=10, variant="release").metrics(outputs, batch)
    np.testing.assert_allclose(m["accuracy"], 5 / 6, rtol=1e-6)  # 0.25^2 > 0.04 only


@pytest.mark.parametrize("name,ranges", [
    ("temporal_order", [(10, 20), (40, 50)]),
    ("temporal_order_3bit", [(10, 20), (30, 40), (60, 70)]),
])
def test_temporal_order_labels_match_positions(name, ranges, key):
  task = tasks.get(name, length=100)
  b = task.sample(key, 256)
  seq = symbols(b)
  assert task.output_size == 2 ** len(ranges)
  for i in range(256):
    pos = np.nonzero(seq[:, i] >= 4)[0]
    assert len(pos) == len(ranges)
    label = 0
    for p, (lo, hi) in zip(pos, ranges):
      assert lo <= p < hi
      label = 2 * label + int(seq[p, i] == 5)
    assert int(b.targets[-1, i]) == label
  assert seq.max() <= 5 and len(np.unique(np.asarray(b.targets[-1]))) == task.output_size


@pytest.mark.parametrize("variant,lo,vocabulary", [("paper", 3, 101), ("release", 2, 100)])
def test_permutation(key, variant, lo, vocabulary):
  task = tasks.get("permutation", length=30, variant=variant)
  assert task.input_size == task.output_size == vocabulary
  b = task.sample(key, 256)
  assert b.inputs.shape == (30, 256, vocabulary)
  seq = symbols(b)
  assert set(np.unique(seq[0])) == {0, 1}
  assert seq[1:].min() == lo and seq[1:].max() == vocabulary - 1
  np.testing.assert_array_equal(b.targets[-1], seq[0])


def test_temporal_order_release_positions(key):
  """The TPTT release puts the second symbol in [T/2, 6T/10); 3-bit agrees with the text."""
  b = tasks.get("temporal_order", length=100, variant="release").sample(key, 256)
  pos = [np.nonzero(symbols(b)[:, i] >= 4)[0] for i in range(256)]
  second = np.array([p[1] for p in pos])
  assert second.min() == 50 and second.max() == 59
  assert tasks.get("temporal_order_3bit", length=100, variant="release").ranges() == \
      tasks.get("temporal_order_3bit", length=100).ranges()
  with pytest.raises(ConfigError, match="task.variant"):
    tasks.get("temporal_order", length=100, variant="code")


def test_bad_task_input():
  with pytest.raises(ConfigError, match="task.name='nope'.*allowed: copy, adding"):
    tasks.get("nope", length=10)
  with pytest.raises(ConfigError, match="task.length"):
    tasks.get("temporal_order", length=5)
  with pytest.raises(ConfigError, match="task.length"):
    tasks.get("copy", length=0)
  with pytest.raises(ConfigError, match="task.loss_on"):
    tasks.get("copy", length=10, loss_on="first")
  with pytest.raises(ConfigError, match="task.jitter is not an option of task 'copy'"):
    tasks.get("copy", length=10, jitter=True)
