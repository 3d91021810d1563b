"""Shared test fixtures: float64 for exactness tests, a fixed key."""

import jax
import pytest


@pytest.fixture
def x64():
  """Runs the test with 64-bit floats (exactness claims are checked in float64)."""
  with jax.enable_x64(True):
    yield


@pytest.fixture
def key():
  return jax.random.PRNGKey(0)
