"""Features: what an app asks for ("which model for NMT?"), with a default and experiments attached in order.

A feature is evaluated like a GrowthBook feature with experiment rules: its experiments in
priority order (lower first; ties broken by experiment key, so every replica picks the same one),
the first that admits the unit serves it, and a unit no experiment admits gets the default payload.
What each attached experiment does in that order (`role_in_feature`):

- active: serves the units its targeting, namespace slice and exposure admit; the others fall through;
- completed with a winner: serves the winner to every unit its targeting matches (the rule is done
  and ships its winner, as a GrowthBook rule released to 100%); not in the experiment, not logged;
- draft, paused, or completed without a winner: skipped, so its units fall through.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import msgspec

from bandit_service.core.errors import InvalidFieldError
from bandit_service.core.fields import Key
from bandit_service.core.json_limits import free_json_problem
from bandit_service.core.model import Experiment
from bandit_service.core.placement import FeatureRole, role_in_feature
from bandit_service.core.targeting import matches

__all__ = ["FeatureRole", "check_feature", "in_priority_order", "role_in_feature", "serves_winner"]


def check_feature(key: str, default_payload: Any) -> None:
    """InvalidFieldError naming `key` (not a slug) or `default_payload` (a value JSON storage refuses)."""
    try:
        msgspec.convert(key, Key)
    except msgspec.ValidationError:
        raise InvalidFieldError(
            f"key {key[:80]!r} is not a slug: 1-64 lowercase letters, digits, '-' and '_', starting with a "
            "letter or digit",
            field="key",
        ) from None
    problem = free_json_problem(default_payload)
    if problem is not None:
        raise InvalidFieldError(f"default_payload: {problem}", field="default_payload")


def in_priority_order(experiments: Iterable[Experiment]) -> list[Experiment]:
    """Experiments by (priority, key): lower priority first; equal priorities by key, the same on every replica."""
    return sorted(experiments, key=lambda e: (e.config.priority, e.key))


def serves_winner(experiment: Experiment, attributes: Mapping[str, Any]) -> bool:
    """Whether a completed experiment serves its winner to a unit with these attributes (its targeting matches)."""
    if role_in_feature(experiment.status, experiment.winner) != "winner":
        return False
    targeting = experiment.config.targeting
    return not targeting or matches(targeting, attributes)
