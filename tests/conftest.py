"""Shared fixtures and the Hypothesis profile: derandomized under CI, random locally.

PostgreSQL: the server named by `TEST_POSTGRES_URL` (`.ci/postgres.sh` starts one). Without it
the PostgreSQL cases are skipped with that reason, except under CI, where a missing server fails.
Each PostgreSQL case gets a fresh schema of its own (a module-scoped app: one per module), dropped afterwards.
"""

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import pytest
from hypothesis import settings
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

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


POSTGRES_URL = os.environ.get("TEST_POSTGRES_URL")


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """The test server's URL (a failure under CI when none is set: the half must not vanish silently)."""
    if POSTGRES_URL:
        return POSTGRES_URL
    if os.environ.get("CI"):
        pytest.fail("TEST_POSTGRES_URL is not set: .ci/run must start PostgreSQL (.ci/postgres.sh)")
    pytest.skip('no PostgreSQL server: set TEST_POSTGRES_URL (e.g. eval "$(bash .ci/postgres.sh)")')


@contextmanager
def _schema_of_its_own(postgres_url: str) -> Iterator[str]:
    """A URL whose connections use a fresh schema (search_path), dropped at exit."""
    schema = f"contract_{uuid.uuid4().hex[:12]}"
    admin = create_engine(postgres_url)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = make_url(postgres_url).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture
def postgres_schema_url(postgres_url: str) -> Iterator[str]:
    """A URL whose connections use a fresh schema of their own (search_path), dropped afterwards."""
    with _schema_of_its_own(postgres_url) as url:
        yield url


@pytest.fixture(scope="module")
def postgres_module_schema_url(postgres_url: str) -> Iterator[str]:
    """Like `postgres_schema_url`, shared by the tests of one module (for a module-scoped app)."""
    with _schema_of_its_own(postgres_url) as url:
        yield url
