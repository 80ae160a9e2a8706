"""Series that are parts of one demand, summed on one grid (a host's disks, a module's replicas, the
exporter terms of one collector metric). Every stage that combines series uses this one rule."""

from __future__ import annotations

import numpy as np

from khronika_ops.planner.models import CleanReport, CleanSeries, SeriesKey


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
