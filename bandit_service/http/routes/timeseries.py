"""GET /v1/experiments/{key}/timeseries: per UTC day and arm, traffic and means, as JSON or CSV.

The series for the dashboard's charts and for "metrics by date range and variant": one row per
(day, arm) and metric, from the counters of the trials opened that day (see
`core.reporting.timeseries`). `from` and `to` as on the report.
"""

from __future__ import annotations

from typing import Annotated, Literal

from litestar import MediaType, Response, get
from litestar.di import NamedDependency
from litestar.params import FromPath, QueryParameter

from bandit_service.core.reporting.timeseries import Timeseries, timeseries_csv
from bandit_service.http.routes.reports import Since, Until, utc_day
from bandit_service.services.reports import ReportService

__all__ = ["read_timeseries"]

Format = Annotated[
    Literal["json", "csv"], QueryParameter(description="json, or csv: one row per (day, arm, metric) with a header.")
]


@get("/v1/experiments/{key:str}/timeseries", tags=["reports"], opt={"role": "read"})
async def read_timeseries(
    key: FromPath[str],
    reports: NamedDependency[ReportService],
    since: Since = None,
    until: Until = None,
    format: Format = "json",
) -> Response[Timeseries | str]:
    """Per UTC day and arm: units, trials, exposures, rewarded, and the mean of each metric with its interval."""
    series = await reports.timeseries(key, utc_day(since, "from"), utc_day(until, "to"))
    if format == "json":
        return Response(series, media_type=MediaType.JSON)
    # Served as text/plain, as the document says of every text answer (a spreadsheet opens it as CSV all the same).
    return Response(timeseries_csv(series), media_type=MediaType.TEXT)
