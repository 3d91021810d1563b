"""Shared test fixtures: float64 for exactness tests, a fixed key."""

import os

# On a GPU each pytest-xdist worker would otherwise reserve 75% of the device's memory at start,
# and with `-n 2` or more the later workers fail to allocate (seen on an H100 with -n 8).
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

import jax  # pylint: disable=g-import-not-at-top,wrong-import-position
import pytest  # pylint: disable=g-import-not-at-top,wrong-import-position


@pytest.fixture
def x64():
  """Runs the test with 64-bit floats (exactness claims are checked in float64)."""
  with jax.enable_x64(True):
    yield


@pytest.fixture
def key():
  return jax.random.PRNGKey(0)
