"""GET /v1/experiments/{key}/report: the experiment report as JSON, or as text with ?format=text."""

from __future__ import annotations

from typing import Annotated, Literal

from litestar import MediaType, Response, get
from litestar.di import NamedDependency
from litestar.params import FromPath, QueryParameter

from bandit_service.core.reporting import Report, SegmentReport, render_segments_text, render_text
from bandit_service.services.reports import ReportService

__all__ = ["read_report"]

Segment = Annotated[
    str | None,
    QueryParameter(
        pattern=r"^[A-Za-z_][A-Za-z0-9_.:-]{0,63}$",
        description="A decision attribute: split every figure by its values.",
    ),
]
Format = Annotated[Literal["json", "text"], QueryParameter(description="json, or text for a fixed-width table.")]


@get("/v1/experiments/{key:str}/report", tags=["reports"], opt={"role": "read"})
async def read_report(
    key: FromPath[str], reports: NamedDependency[ReportService], segment: Segment = None, format: Format = "json"
) -> Response[Report | SegmentReport | str]:
    """Per-arm figures, comparisons with the control, health checks and a recommendation."""
    report = await reports.build(key, segment=segment)
    if format == "json":
        return Response(report, media_type=MediaType.JSON)
    text = render_text(report) if isinstance(report, Report) else render_segments_text(report)
    return Response(text, media_type=MediaType.TEXT)
