"""Size one series from a CSV file: the engine behind `khronika plan size` (a stable interface)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from khronika_ops.metrics import lookup
from khronika_ops.planner.clean import clean, validate_for_resource
from khronika_ops.planner.errors import InputError
from khronika_ops.planner.forecast import forecast
from khronika_ops.planner.ingest.csvfile import read_csv
from khronika_ops.planner.models import (
    CleanReport,
    CleanSeries,
    ForecastSettings,
    RawSeries,
    SeriesKey,
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


def sum_on_grid(series: list[CleanSeries]) -> CleanSeries:
    """Sum series (components of one demand) on the first series' step; a cell is NaN only if all are."""
    step = series[0].step
    start = min(s.start for s in series)
    end = max(s.start + s.step * (s.values.size - 1) for s in series)
    total = np.full(round((end - start) / step) + 1, np.nan)
    for item in series:
        index = np.rint((item.timestamps - start) / step).astype(np.int64)
        finite = np.isfinite(item.values)
        cells = np.zeros_like(total)
        np.add.at(cells, index[finite], item.values[finite])
        seen = np.zeros(total.size, dtype=bool)
        seen[index[finite]] = True
        total = np.where(seen, np.nan_to_num(total) + cells, total)
    reports = [s.report for s in series]
    report = CleanReport(
        points_in=sum(r.points_in for r in reports),
        points_used=int(np.count_nonzero(np.isfinite(total))),
        step_seconds=step,
        duplicates_merged=sum(r.duplicates_merged for r in reports),
        counter_resets=sum(r.counter_resets for r in reports),
        missing_values=sum(r.missing_values for r in reports),
        gaps=max(r.gaps for r in reports),
        longest_gap_seconds=max(r.longest_gap_seconds for r in reports),
        resorted=any(r.resorted for r in reports),
    )
    units = {s.unit for s in series}
    return CleanSeries(
        key=SeriesKey(metric="sum(" + ",".join(str(s.key) for s in series) + ")"),
        unit=units.pop() if len(units) == 1 else "mixed",
        source=series[0].source,
        start=start,
        step=step,
        values=total,
        report=report,
    )
