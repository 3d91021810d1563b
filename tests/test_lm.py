"""Char-level LM data: the ptb_char / text8 TFDS builders and the carried recurrent state.

The builders are run on small files the tests write into a manual_dir (offline); the carried
state is checked through the trainer's own `train_step` and loop.
"""

import os
import tarfile
import zipfile

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tca_jax import config as config_lib
from tca_jax import train
from tca_jax.learners import base as learner_base

tfds = pytest.importorskip("tensorflow_datasets")

# pylint: disable=g-import-not-at-top,wrong-import-position
from tca_jax.tasks import data
from tca_jax.tasks.data import builders, text


@pytest.fixture(autouse=True)
def _fresh_caches():
  text.corpus.cache_clear()
  yield
  text.corpus.cache_clear()


def _ptb_files(directory, lines_per_split=(5, 3, 3), words=4):
  """Writes ptb.char.*.txt: lines of `words` words of 1-3 letters, '_' between words."""
  rng = np.random.default_rng(0)
  contents = {}
  for split, n in zip(("train", "valid", "test"), lines_per_split):
    lines = []
    for _ in range(n):
      ws = ["".join(rng.choice(list("abcdefgh"), size=rng.integers(1, 4))) for _ in range(words)]
      lines.append(" " + " _ ".join(" ".join(w) for w in ws) + " ")
    contents[split] = "\n".join(lines) + "\n"
    with open(os.path.join(directory, f"ptb.char.{split}.txt"), "w", encoding="utf-8") as f:
      f.write(contents[split])
  return contents


def _decode(ids, vocab):
  return [vocab[i] for i in ids]


def test_ptb_char_builder_from_manual_dir(tmp_path, monkeypatch):
  manual = tmp_path / "manual"
  manual.mkdir()
  contents = _ptb_files(manual)
  monkeypatch.setattr(builders, "CHUNK", 16)  # several chunks per split: order must survive
  vocab, splits = text.corpus("ptb_char", str(tmp_path / "tfds"), str(manual))
  symbols = {s: builders.ptb_symbols(contents[f]) for s, f in
             (("train", "train"), ("validation", "valid"), ("test", "test"))}
  assert list(vocab) == sorted(set().union(*map(set, symbols.values())))
  assert builders.EOL in vocab and "_" in vocab and " " not in vocab
  for split, expected in symbols.items():
    assert len(splits[split]) == len(expected)  # every token and one EOL per line
    decoded = _decode(splits[split], vocab)
    assert decoded == expected
    assert builders.ptb_text(decoded).split("\n")[:-1] == [
        " ".join(line.split()) for line in contents[
            {"train": "train", "validation": "valid", "test": "test"}[split]].splitlines()]
  # A second task reads what was built (no manual_dir needed any more).
  text.corpus.cache_clear()
  vocab2, splits2 = text.corpus("ptb_char", str(tmp_path / "tfds"))
  assert vocab2 == vocab and np.array_equal(splits2["test"], splits["test"])


def test_ptb_char_builder_from_archive(tmp_path):
  files = tmp_path / "files"
  files.mkdir()
  contents = _ptb_files(files)
  manual = tmp_path / "manual"
  manual.mkdir()
  with tarfile.open(manual / "simple-examples.tgz", "w:gz") as tar:
    for split in contents:
      tar.add(files / f"ptb.char.{split}.txt", f"./simple-examples/data/ptb.char.{split}.txt")
  vocab, splits = text.corpus("ptb_char", str(tmp_path / "tfds"), str(manual))
  assert _decode(splits["validation"], vocab) == builders.ptb_symbols(contents["valid"])


def test_download_without_network_fails_fast(tmp_path, monkeypatch):
  # A closed local port stands for an unreachable host: refused at once, no TFDS retries.
  monkeypatch.setitem(data.DOWNLOAD_HOSTS, "ptb_char", ("127.0.0.1", 9))
  with pytest.raises(data.DataError, match="cannot download 'ptb_char'.*task.manual_dir") as e:
    text.PtbChar(data_dir=str(tmp_path / "tfds"), download=True)
  assert "\n" not in str(e.value)
  assert not os.path.exists(tmp_path / "tfds" / "ptb_char")


@pytest.mark.parametrize("archive", [False, True])
def test_text8_builder_split_and_round_trip(tmp_path, archive):
  manual = tmp_path / "manual"
  manual.mkdir()
  rng = np.random.default_rng(1)
  content = "".join(rng.choice(list("abcdefghijklmnopqrstuvwxyz "), size=2000))
  if archive:
    with zipfile.ZipFile(manual / "text8.zip", "w") as z:
      z.writestr("text8", content)
  else:
    (manual / "text8").write_text(content)
  vocab, splits = text.corpus("text8", str(tmp_path / "tfds"), str(manual))
  assert "".join(vocab) == "".join(sorted(set(content)))
  assert [len(splits[s]) for s in ("train", "validation", "test")] == [1800, 100, 100]
  assert "".join(_decode(np.concatenate([splits[s] for s in ("train", "validation", "test")]),
                         vocab)) == content


def test_missing_data_is_one_line_error(tmp_path):
  with pytest.raises(data.DataError) as e:
    text.PtbChar(data_dir=str(tmp_path / "nothing"))
  msg = str(e.value)
  assert "\n" not in msg and "'ptb_char'" in msg and str(tmp_path / "nothing") in msg
  assert "task.manual_dir" in msg and "python -m tca_jax.tasks.data.prepare ptb_char" in msg
  # A manual_dir without the files: still one line, naming the files expected.
  empty = tmp_path / "empty"
  empty.mkdir()
  (empty / "README").write_text("nothing here")
  with pytest.raises(data.DataError) as e:
    text.PtbChar(data_dir=str(tmp_path / "d"), manual_dir=str(empty))
  assert "\n" not in str(e.value) and "ptb.char.train.txt" in str(e.value)
  assert not os.path.exists(tmp_path / "d" / "ptb_char" / "1.0.0")


@pytest.mark.parametrize("module", ["ptb_char", "text8"])
def test_experiment_configs_build(tmp_path, module):
  import importlib  # pylint: disable=g-import-not-at-top
  configs = importlib.import_module(f"experiments.configs.{module}")
  manual = tmp_path / "manual"
  manual.mkdir()
  _ptb_files(manual)
  (manual / "text8").write_text("abc de fgh " * 50)
  for preset in configs.PRESETS:
    c = configs.get_config(preset)
    c.task.data_dir = str(tmp_path / "tfds")
    c.task.manual_dir = str(manual)
    setup = config_lib.build(c)
    assert setup.task.name == module and setup.task.carries_state


def test_streams_are_contiguous_and_targets_shifted():
  ids = np.arange(103)
  x, y, n = text.streams(ids, batch_size=2, length=10, offset=3)
  assert n == 4 and x.shape == (2, 40)
  np.testing.assert_array_equal(y, x + 1)
  np.testing.assert_array_equal(x[0], np.arange(3, 43))
  np.testing.assert_array_equal(x[1], np.arange(43, 83))


def _lm_task(tmp_path, reset="epoch", length=10):
  manual = tmp_path / "manual"
  manual.mkdir(exist_ok=True)
  # 5 train lines of 9 symbols + EOL = 50 symbols: exactly 2 batches of 2 x 10 per epoch.
  for split, n in (("train", 5), ("valid", 3), ("test", 3)):
    (manual / f"ptb.char.{split}.txt").write_text(
        "".join(f" a b {'c' if i % 2 else 'd'} _ e f _ g h\n" for i in range(n)))
  return text.PtbChar(length=length, data_dir=str(tmp_path / "tfds"), manual_dir=str(manual),
                      reset=reset)


def test_train_batches_continue_streams_and_flag_resets(tmp_path):
  task = _lm_task(tmp_path)
  assert task.carries_state and task.input_size == task.output_size == len(task.vocab)
  it = task.train_batches(seed=0, batch_size=2)
  got = [next(it) for _ in range(6)]
  assert [r for _, r in got] == [True, False] * 3  # a fresh state at each epoch start
  b1, b2 = got[0][0], got[1][0]
  assert b1.inputs.shape == (10, 2, task.input_size) and b1.targets.shape == (10, 2)
  np.testing.assert_allclose(b1.mask.sum(0), 1.0, rtol=1e-6)
  # Batch 2 continues every row of batch 1: its first input is batch 1's last target.
  np.testing.assert_array_equal(np.argmax(b2.inputs[0], -1), b1.targets[-1])
  np.testing.assert_array_equal(np.argmax(b1.inputs[1:], -1), b1.targets[:-1])
  # Resuming at batch k yields what an uninterrupted iterator yields from batch k on.
  for k in (1, 2, 3):
    batch, reset = next(task.train_batches(seed=0, batch_size=2, start=k))
    np.testing.assert_array_equal(batch.inputs, got[k][0].inputs)
    assert reset == got[k][1]
  never = _lm_task(tmp_path, reset="never").train_batches(0, 2)
  assert not any(next(never)[1] for _ in range(6))
  assert not _lm_task(tmp_path, reset="batch").carries_state


def _lm_config(tmp_path, reset="epoch"):
  c = config_lib.default_config()
  c.task.name = "ptb_char"
  c.task.length = 10
  c.task.data_dir = str(tmp_path / "tfds")
  c.task.manual_dir = str(tmp_path / "manual")
  c.task.reset = reset
  c.model.hidden_size = 8
  c.train.batch_size = 2
  c.train.eval_batch_size = 2
  c.train.steps = 5
  c.train.log_every = 1
  c.train.eval_every = 0
  c.train.eval_batches = 0
  c.train.test_batches = 0
  return c


def test_carried_state_crosses_batch_boundary(tmp_path):
  _lm_task(tmp_path)  # writes the files
  c = _lm_config(tmp_path)
  setup = config_lib.build(c)
  task, model, learner = setup.task, setup.model, setup.learner
  params = jax.jit(model.init, static_argnums=1)(jax.random.PRNGKey(0), task.input_size)
  lparams, lstate = learner.init(jax.random.PRNGKey(1), model, params, 2)
  optimizer = train.make_optimizer(c.train, learner, task.sequence_length)
  state = jax.tree.map(jnp.array, train.TrainState(
      jnp.asarray(0, jnp.int32), params, lparams, optimizer.init((params, lparams)), lstate,
      jnp.asarray(-1, jnp.int32)))
  step = train.make_train_step(setup, optimizer)
  it = task.train_batches(0, 2)
  (b1, _), (b2, _) = next(it), next(it)
  zeros = model.initial_state(2)
  unroll = jax.jit(model.unroll)  # one compile for the three reference unrolls

  params0 = jax.tree.map(np.array, state.params)
  state, _ = step(state, b1, jax.random.PRNGKey(2))
  final1, _ = unroll(params0, zeros, b1.inputs)
  # The learner state leaving batch 1 is the model's state after batch 1's last step.
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=1e-5),
               state.lstate.model_state, final1)

  params1 = jax.tree.map(np.array, state.params)
  carried = jax.tree.map(np.array, state.lstate.model_state)
  state, metrics = step(state, b2, jax.random.PRNGKey(3))
  loss_carried = learner_base.window_loss(task.loss, unroll(params1, carried, b2.inputs)[1], b2)
  loss_fresh = learner_base.window_loss(task.loss, unroll(params1, zeros, b2.inputs)[1], b2)
  np.testing.assert_allclose(metrics["learner_loss"], loss_carried, rtol=1e-5)
  assert abs(float(loss_carried) - float(loss_fresh)) > 1e-4  # the carried state mattered


def test_trainer_resets_only_where_configured(tmp_path, monkeypatch):
  """reset="epoch": fresh states at steps 1, 3, 5 only (2 batches an epoch); the iterator's
  flags for "never" and "batch" are checked above."""
  _lm_task(tmp_path)
  calls = []
  original = learner_base.Learner.init_state

  def counting(self, model, params, batch_size):
    calls.append(batch_size)
    return original(self, model, params, batch_size)

  monkeypatch.setattr(learner_base.Learner, "init_state", counting)
  result = train.train_and_evaluate(_lm_config(tmp_path, "epoch"), str(tmp_path / "run"))
  # One call from learner.init; then one per epoch start (5 steps, 2 batches an epoch: 1, 3, 5).
  assert len(calls) == 1 + 3
  assert np.isfinite(result["bpc"]) and result["bpc"] == pytest.approx(result["loss"] / np.log(2))
  lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
  assert any('"test"' in line and '"bpc"' in line for line in lines)


@pytest.mark.slow
@pytest.mark.parametrize("learner,cell,options", [
    ("tbptt", "lstm", {"learner.truncation": 3}),
    ("rtrl", "srn", {}),
    ("uoro", "srn", {}),
    ("kf_rtrl", "srn", {}),
    ("snap1", "srn", {}),
    ("tptt", "srn", {}),
    ("sab", "sab_lstm", {"learner.k_trunc": 5, "model.k_top": 2, "model.k_att": 5}),
])
def test_every_learner_trains_a_carried_state_lm(tmp_path, learner, cell, options):
  _lm_task(tmp_path)
  c = _lm_config(tmp_path)
  c.model.cell = cell
  c.model.hidden_size = 6
  c.learner.name = learner
  for field, value in options.items():
    section, key = field.split(".")
    c[section][key] = value
  c.train.steps = 3
  result = train.train_and_evaluate(c, str(tmp_path / "run"))
  assert np.isfinite(result["bpc"])
