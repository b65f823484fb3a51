"""GET /v1/experiments/{key}/report: the experiment report as JSON, or as text with ?format=text.

`from` and `to` (ISO dates, UTC days, inclusive) restrict the report to the trials opened in
that range; a malformed date or a `from` after `to` is a problem naming the parameter.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Literal

from litestar import MediaType, Response, get
from litestar.di import NamedDependency
from litestar.params import FromPath, QueryParameter

from bandit_service.core.errors import InvalidFieldError
from bandit_service.core.reporting import Report, SegmentReport, render_segments_text, render_text
from bandit_service.services.reports import ReportService

__all__ = ["Since", "Until", "read_report", "utc_day"]

Segment = Annotated[
    str | None,
    QueryParameter(
        pattern=r"^[A-Za-z_][A-Za-z0-9_.:-]{0,63}$",
        description="A decision attribute: split every figure by its values.",
    ),
]
Format = Annotated[Literal["json", "text"], QueryParameter(description="json, or text for a fixed-width table.")]
# Text, parsed by `utc_day`: the problem then names `from` or `to` and says what a date looks like.
Since = Annotated[
    str | None,
    QueryParameter(
        name="from",
        format="date",
        description="First UTC day (YYYY-MM-DD, inclusive): count only trials opened from this day.",
    ),
]
Until = Annotated[
    str | None,
    QueryParameter(
        name="to", format="date", description="Last UTC day (YYYY-MM-DD, inclusive): count only trials opened up to it."
    ),
]
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def utc_day(value: str | None, field: str) -> dt.date | None:
    """An ISO date (YYYY-MM-DD) from a query parameter; InvalidFieldError naming `field` if it is not one."""
    if value is None:
        return None
    try:
        if _DATE.fullmatch(value) is None:  # fromisoformat also takes 20261201 and week dates
            raise ValueError(value)
        return dt.date.fromisoformat(value)
    except ValueError:
        raise InvalidFieldError(f"{field}: {value!r} is not a date (YYYY-MM-DD)", field=field) from None


@get("/v1/experiments/{key:str}/report", tags=["reports"], opt={"role": "read"})
async def read_report(
    key: FromPath[str],
    reports: NamedDependency[ReportService],
    segment: Segment = None,
    format: Format = "json",
    since: Since = None,
    until: Until = None,
) -> Response[Report | SegmentReport | str]:
    """Per-arm figures, comparisons with the control, health checks and a recommendation."""
    window = {"since": utc_day(since, "from"), "until": utc_day(until, "to")}
    report = await reports.build(key, segment=segment, **window)
    if format == "json":
        return Response(report, media_type=MediaType.JSON)
    text = render_text(report) if isinstance(report, Report) else render_segments_text(report)
    return Response(text, media_type=MediaType.TEXT)
