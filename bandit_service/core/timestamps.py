"""Timestamps: the service keeps Unix seconds; the wire shows aware UTC datetimes."""

from __future__ import annotations

from datetime import UTC, datetime

__all__ = ["to_datetime"]


def to_datetime(timestamp: float) -> datetime:
    """A Unix timestamp as an aware UTC datetime (the wire format)."""
    return datetime.fromtimestamp(timestamp, UTC)
