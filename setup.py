"""tca-jax: temporal credit assignment for recurrent networks, in JAX."""

import setuptools

setuptools.setup(
    name="tca-jax",
    version="0.1.0",
    description=(
        "Temporal credit assignment in recurrent networks: BPTT, TBPTT, RTRL, UORO, "
        "SAB and TPTT behind one API, jit-compiled."
    ),
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.11",
    packages=setuptools.find_packages(include=["tca_jax", "tca_jax.*", "experiments", "experiments.*"]),
    install_requires=[
        "jax>=0.4.30",
        "optax>=0.2.2",
        "absl-py>=2.0",
        "ml_collections>=0.1.1",
        "numpy>=1.26",
        "matplotlib>=3.8",
        "orbax-checkpoint>=0.5",
    ],
    extras_require={
        # The dataset tests need TFDS (not TensorFlow): they read mock and self-written data; the
        # notebook test executes notebooks/quickstart.ipynb.
        "test": ["pytest>=8", "chex>=0.1.86", "pytest-xdist>=3.5", "tensorflow-datasets>=4.9.10",
                 "importlib_resources", "nbclient>=0.10", "nbformat>=5.10", "ipykernel>=6.29"],
        # Reading prepared datasets (tfds.data_source over ArrayRecord) and building ptb_char /
        # text8 need no TensorFlow; building mnist, cifar10, tiny_shakespeare does ("data-build").
        # See docs/DATASETS.md.
        "data": ["tensorflow-datasets>=4.9.10", "importlib_resources"],
        "data-build": ["tensorflow-datasets>=4.9.10", "importlib_resources", "tensorflow-cpu>=2.16"],
        "bench": ["torch"],
    },
)
