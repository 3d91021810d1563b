"""tca-jax: temporal credit assignment for recurrent networks, in JAX."""

import os
import re

import setuptools

# The version lives in tca_jax/__init__.py only; read, not imported (importing needs jax).
with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "tca_jax", "__init__.py"),
          encoding="utf-8") as f:
  VERSION = re.search(r'^__version__ = "([^"]+)"', f.read(), re.M).group(1)

REPOSITORY = "https://github.com/tca-jax/tca-jax"

setuptools.setup(
    name="tca-jax",
    version=VERSION,
    url=REPOSITORY,
    license="Apache-2.0",
    description=(
        "Temporal credit assignment in recurrent networks: BPTT, TBPTT, RTRL, UORO, "
        "SAB and TPTT behind one API, jit-compiled."
    ),
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.11",
    packages=setuptools.find_packages(include=["tca_jax", "tca_jax.*", "experiments", "experiments.*"]),
    # The native CPU kernels' source, compiled on first use (tca_jax/ops/native.py).
    package_data={"tca_jax.ops": ["native_kernels.cc"]},
    install_requires=[
        "jax>=0.4.30",
        "optax>=0.2.2",
        "absl-py>=2.0",
        "ml_collections>=0.1.1",
        "numpy>=1.26",
        "matplotlib>=3.8",
        "orbax-checkpoint>=0.5",
        # Run directories and data paths, local or gs:// (also what orbax and TFDS use).
        "etils[epath]>=1.5",
        # TensorBoard event files beside metrics.jsonl (written by default, train.tensorboard):
        # tensorboardX writes them without TensorFlow and needs only numpy and protobuf.
        "tensorboardX>=2.6",
    ],
    extras_require={
        # The dataset tests need TFDS (not TensorFlow): they read mock and self-written data; the
        # notebook test executes notebooks/quickstart.ipynb.
        # tensorboard's EventAccumulator reads the event files back; flax and chex for their
        # tests (chex only asserts shapes in tests/test_cells.py, so it is not a library need).
        "test": ["pytest>=8", "pytest-xdist>=3.5", "tensorflow-datasets>=4.9.10",
                 "importlib_resources", "nbclient>=0.10", "nbformat>=5.10", "ipykernel>=6.29",
                 "tensorboard>=2.16", "flax>=0.10", "chex>=0.1.86"],
        # model.cell=flax: a flax.linen / flax.nnx RNN cell (tca_jax/cells/flax_cell.py).
        "flax": ["flax>=0.10"],
        # gs:// workdirs without TensorFlow: etils.epath's fsspec backend and orbax's GCS client.
        "gcs": ["gcsfs", "google-cloud-storage"],
        # Reading prepared datasets (tfds.data_source over ArrayRecord) and building ptb_char /
        # text8 need no TensorFlow; building mnist, cifar10, tiny_shakespeare does ("data-build").
        # See docs/DATASETS.md.
        "data": ["tensorflow-datasets>=4.9.10", "importlib_resources"],
        "data-build": ["tensorflow-datasets>=4.9.10", "importlib_resources", "tensorflow-cpu>=2.16"],
        "bench": ["torch"],
    },
)
