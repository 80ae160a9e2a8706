"""Size one series from a CSV file: the engine behind `khronika plan size` (a stable interface)."""

from __future__ import annotations

from pathlib import Path

from khronika_ops.metrics import lookup
from khronika_ops.planner.aggregate import sum_on_grid
from khronika_ops.planner.clean import clean, validate_for_resource
from khronika_ops.planner.errors import InputError
from khronika_ops.planner.forecast import forecast
from khronika_ops.planner.ingest.csvfile import read_csv
from khronika_ops.planner.models import (
    ForecastSettings,
    RawSeries,
    SizeResult,
)
from khronika_ops.planner.size import SizingPolicy, size_series
from khronika_ops.planner.units import Resource


def size_csv(
    path: str | Path,
    resource: Resource,
    *,
    settings: ForecastSettings | None = None,
    policy: SizingPolicy | None = None,
    unit: str | None = None,
    series_name: str | None = None,
    allow_unsorted: bool = False,
    extra_bytes: float = 0.0,
    capacity: float | None = None,
) -> SizeResult:
    settings = settings or ForecastSettings()
    policy = policy or SizingPolicy()
    raw = _select(
        read_csv(path, unit=unit, allow_unsorted=allow_unsorted, metric=series_name), resource, series_name
    )
    for series in raw:
        validate_for_resource(series, resource)
    cleaned = [clean(series) for series in raw]
    combined = cleaned[0] if len(cleaned) == 1 else sum_on_grid(cleaned)
    result = size_series(
        forecast(combined, settings),
        resource,
        policy,
        source=str(path),
        cleaning=combined.report,
        extra_bytes=extra_bytes,
        capacity=capacity,
    )
    if len(cleaned) > 1:
        result.extra["aggregated"] = f"sum of {len(cleaned)} series: " + ", ".join(
            str(s.key) for s in cleaned
        )
    return result


def _select(series: list[RawSeries], resource: Resource, name: str | None) -> list[RawSeries]:
    source = series[0].source if series else None
    if name is not None:
        chosen = [s for s in series if s.key.metric == name or str(s.key) == name]
        if not chosen:
            available = ", ".join(sorted({str(s.key) for s in series}))
            raise InputError(f"no series named {name!r}; available: {available}", source=source)
        return chosen
    if len(series) > 1 and any(lookup(s.key.metric) is not None for s in series):
        # A long file of known metrics (e.g. `khronika collect` output): keep this resource's demand.
        matching = [s for s in series if (info := lookup(s.key.metric)) and info.resource is resource]
        if not matching:
            raise InputError(f"no {resource.value} metric in the file; name one with --series", source=source)
        demand = [s for s in matching if "total" not in s.key.metric and "size" not in s.key.metric]
        return demand or matching
    return series
