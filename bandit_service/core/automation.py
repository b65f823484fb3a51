"""Automation: what the scheduler may do to an experiment on its own, and when it ends.

Each action is optional; none is armed unless the operator sets it. The scheduler acts on them
at a reweight (see `services.automation`); every action is recorded in the audit log with the
report figures that triggered it.
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
