"""Parsing the command line's short forms: shares (0.3 or 30%), durations (90, 15m, 2h, 1d), steps, key=value."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

import click

__all__ = ["parse_assignments", "parse_duration", "parse_share", "parse_steps"]

_UNITS = {"": 1, "s": 1, "m": 60, "h": 3_600, "d": 86_400, "w": 604_800}
_DURATION = re.compile(r"^(\d+)([smhdw]?)$")


def parse_share(text: str, name: str) -> float:
    """A share of traffic: `0.3` or `30%`."""
    raw = text.strip()
    try:
        value = float(raw[:-1]) / 100.0 if raw.endswith("%") else float(raw)
    except ValueError:
        raise click.BadParameter(f"{text!r} is not a share (0.3 or 30%)", param_hint=name) from None
    return value


def parse_duration(text: str, name: str) -> int:
    """Seconds from `90`, `90s`, `15m`, `2h`, `1d` or `1w`."""
    found = _DURATION.match(text.strip().lower())
    if found is None:
        raise click.BadParameter(f"{text!r} is not a duration (seconds, or 15m, 2h, 1d, 1w)", param_hint=name)
    return int(found[1]) * _UNITS[found[2]]


def parse_steps(values: Sequence[str], name: str) -> list[tuple[float, int | None]]:
    """Steps `SHARE[:HOLD]` (separate arguments or comma-separated): `0.1:1h 0.5:1d 1.0`."""
    steps: list[tuple[float, int | None]] = []
    for value in values:
        for item in filter(None, (part.strip() for part in value.split(","))):
            share, _, hold = item.partition(":")
            steps.append((parse_share(share, name), parse_duration(hold, name) if hold else None))
    if not steps:
        raise click.BadParameter("give at least one step, e.g. 0.1:1h 0.5:1d 1.0", param_hint=name)
    return steps


def parse_assignments(values: Sequence[str], name: str) -> dict[str, Any]:
    """`key=value` pairs; a value that is JSON (0.5, true, null, {"a": 1}) is decoded, any other is text."""
    out: dict[str, Any] = {}
    for item in values:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"{item!r} is not KEY=VALUE", param_hint=name)
        try:
            value = json.loads(raw)
        except ValueError:
            value = raw
        out[key.strip()] = value
    return out
