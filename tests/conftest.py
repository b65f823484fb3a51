"""Shared fixtures and the Hypothesis profile: derandomized under CI, random locally."""

import os

import numpy as np
import pytest
from hypothesis import settings

# CI replays the same examples on every run, so a red build is the code's fault, not a new seed's;
# local runs keep exploring. Loaded here, before any test module is imported, because a settings
# object (an `@settings(...)` decorator or a module-level constant) copies the profile loaded
# when it is created and inherits every field it does not set: derandomize reaches them all.
settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
settings.load_profile("ci" if os.environ.get("CI") else "default")


@pytest.fixture
def rng() -> np.random.Generator:
    """A fresh generator with a fixed seed, so tests are deterministic."""
    return np.random.default_rng(20261122)
