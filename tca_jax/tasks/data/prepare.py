r"""Prepares a dataset for tca-jax: `python -m tca_jax.tasks.data.prepare NAME [...]`.

    python -m tca_jax.tasks.data.prepare ptb_char                        # downloads
    python -m tca_jax.tasks.data.prepare text8 --manual_dir=~/text8      # offline, from text8(.zip)
    python -m tca_jax.tasks.data.prepare mnist --data_dir=/data/tfds     # needs tensorflow-cpu

NAME is ptb_char, text8 (builders of tca-jax; no TensorFlow needed) or a TFDS catalog dataset
(mnist, cifar10, tiny_shakespeare: TFDS builds them with TensorFlow). `mnist` and `cifar10` with
`--manual_dir` only check that the standard files there are readable: the tasks read them with
numpy (`task.manual_dir`), nothing is built. The dataset is written to
`--data_dir` (default $TFDS_DATA_DIR or ~/tensorflow_datasets) in the ArrayRecord format that the
tasks read with `tfds.data_source`, without TensorFlow.
"""

import sys

from absl import app, flags

from tca_jax.tasks import data

_DATA_DIR = flags.DEFINE_string("data_dir", None, "Where TFDS keeps datasets.")
_MANUAL_DIR = flags.DEFINE_string("manual_dir", None,
                                  "Build offline from the canonical files in this directory.")


def main(argv):
  if len(argv) != 2:
    raise app.UsageError("usage: python -m tca_jax.tasks.data.prepare NAME [--data_dir=DIR] "
                         "[--manual_dir=DIR]")
  name = argv[1]
  if name in data.IMAGE_FILES and _MANUAL_DIR.value:
    # Nothing to build: the image tasks read these files themselves, with numpy only.
    from tca_jax.tasks.data import image_files  # pylint: disable=g-import-not-at-top
    try:
      train_x, _, test_x, _ = image_files.LOADERS[name](_MANUAL_DIR.value)
    except data.DataError as e:
      sys.exit(f"error: {e}")
    print(f"{name}: {len(train_x)} train and {len(test_x)} test images readable in "
          f"{_MANUAL_DIR.value}; nothing to build: run with --config.task.manual_dir="
          f"{_MANUAL_DIR.value}")
    return
  try:
    builder = data.prepare(name, _DATA_DIR.value, _MANUAL_DIR.value)
  except data.DataError as e:
    sys.exit(f"error: {e}")
  except Exception as e:  # pylint: disable=broad-except
    hint = data.prepare_hint(name, data.resolve_data_dir(_DATA_DIR.value))
    sys.exit(f"error: preparing {name!r} failed ({type(e).__name__}: "
             f"{data._first_line(e)}); {hint}")  # pylint: disable=protected-access
  splits = {k: v.num_examples for k, v in builder.info.splits.items()}
  print(f"{name} prepared in {builder.data_dir}: examples per split {splits}")


if __name__ == "__main__":
  app.run(main)
