"""Automation settings: what the scheduler may do to an experiment on its own (all off by default).

Stored in the experiment's config (`ExperimentConfig.automation`) with its end (`ends_at`,
`max_duration_s`). The rule that acts on them is `core.automation_rules.decide`, applied by the
scheduler's automation pass (`services.automation`); every action is recorded in the audit log
with the report figures that triggered it.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from bandit_service.core.fields import HoldSeconds, Probability

__all__ = ["Automation", "AutomationStep"]


class AutomationStep(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """One step of an automatic gradual completion: the winner's share, held `hold_s` seconds."""

    share: Probability
    hold_s: HoldSeconds | None = None


class Automation(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """The automatic actions an experiment allows (all off by default)."""

    on_guardrail_breach: Literal["pause", "control"] | None = None  # pause, or shift traffic back to control
    on_ship: Literal["complete"] | None = None  # complete with the winner (through `ship_plan` if given)
    ship_plan: Annotated[tuple[AutomationStep, ...], Meta(min_length=1, max_length=100)] | None = None
    on_stop_no_winner: Literal["complete"] | None = None  # complete with the control
