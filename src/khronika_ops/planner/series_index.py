"""Cleaned series and their forecasts by metric and labels, and one figure for a group of them."""

from __future__ import annotations

from collections.abc import Sequence

from khronika_ops.metrics import Resource
from khronika_ops.planner.aggregate import sum_on_grid
from khronika_ops.planner.forecast import forecast_block
from khronika_ops.planner.models import CleanSeries, Forecast, SizeResult
from khronika_ops.planner.plan import PlanRequest
from khronika_ops.planner.size import size_series


class SeriesIndex:
    """Cleaned series and forecasts by metric and labels."""

    def __init__(self, cleaned: list[CleanSeries], forecasts: list[Forecast]) -> None:
        self.items = list(zip(cleaned, forecasts, strict=True))

    def find(self, metrics: Sequence[str], **labels: str) -> list[CleanSeries]:
        found = []
        for series, _ in self.items:
            if series.key.metric not in metrics:
                continue
            if all(_label_matches(series.key.label(name), value) for name, value in labels.items()):
                found.append(series)
        return found

    def labels(self, metric: str, name: str) -> list[str]:
        return sorted({v for s, _ in self.items if s.key.metric == metric and (v := s.key.label(name))})


def _label_matches(actual: str | None, wanted: str) -> bool:
    if actual is None:
        return False
    return actual == wanted or actual.startswith((f"{wanted}-", f"{wanted}_", f"{wanted}."))


def size_total(
    series: list[CleanSeries], resource: Resource, request: PlanRequest, **kwargs: float
) -> SizeResult | None:
    if not series:
        return None
    combined = series[0] if len(series) == 1 else sum_on_grid(series)
    result = forecast_block([combined], request.settings)[0]
    return size_series(
        result, resource, request.policy, source=combined.source, cleaning=combined.report, **kwargs
    )
