"""Shared fixtures: a seeded generator for every test that draws random numbers."""

import numpy as np
import pytest


@pytest.fixture
def rng() -> np.random.Generator:
    """A fresh generator with a fixed seed, so tests are deterministic."""
    return np.random.default_rng(20261122)
