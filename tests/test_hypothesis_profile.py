"""The Hypothesis profile: property tests are derandomized under CI and random locally."""

import os

from hypothesis import given, settings
from hypothesis import strategies as st

# Built at import like the suite's own `PROPERTY = settings(...)`: it sets no `derandomize`, so it
# must take it from the profile conftest loaded. (No database: this test leaves nothing behind.)
LIKE_THE_SUITE = settings(max_examples=20, deadline=None, database=None)


def drawn_examples() -> list[int]:
    """The examples Hypothesis generates for a property test decorated like the suite's."""
    seen: list[int] = []

    @LIKE_THE_SUITE
    @given(st.integers(0, 2**64))
    def record(x: int) -> None:
        seen.append(x)

    record()
    return seen


def test_property_tests_are_derandomized_exactly_when_ci_is_set() -> None:
    under_ci = bool(os.environ.get("CI"))
    assert settings.get_current_profile_name() == ("ci" if under_ci else "default")
    assert settings.default.derandomize is under_ci
    assert LIKE_THE_SUITE.derandomize is under_ci
    if under_ci:  # the proof that matters: two runs generate the same examples
        assert drawn_examples() == drawn_examples()
