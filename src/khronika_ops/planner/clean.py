"""Clean: counters to rates, missing values, duplicate timestamps, gaps, resampling to one step.

Peaks matter more than means for sizing, so when several samples fall into one step the maximum is
kept (the same reason Prometheus queries use `max_over_time` at the query step). Gaps stay gaps (NaN):
nothing is invented; later stages use only observed points.
"""

from __future__ import annotations

import weakref

import numpy as np

from khronika_ops.planner.errors import InputError
from khronika_ops.planner.models import CleanReport, CleanSeries, FloatArray, IntArray, RawSeries
from khronika_ops.planner.units import Resource, check_unit, rate_unit

_RATIO_TOLERANCE = 1.0 + 1e-6


def validate_for_resource(raw: RawSeries, resource: Resource) -> None:
    """Reject units and values that cannot be this resource's demand, naming file and line."""
    line = int(raw.lines[0]) if raw.lines is not None and raw.lines.size else None
    problem = check_unit(resource, raw.unit)
    if problem is not None:
        raise InputError(
            f"series {raw.key}: {problem}; pass --unit if the name misleads", source=raw.source, line=line
        )
    values = raw.values
    if raw.counter:
        return
    negative = np.flatnonzero(values < 0)
    if negative.size:
        index = int(negative[0])
        raise InputError(
            f"negative value {values[index]:g} cannot be {resource.value} demand",
            source=raw.source,
            line=_line_of(raw, index),
        )
    if raw.unit == "ratio":
        above = np.flatnonzero(values > _RATIO_TOLERANCE)
        if above.size:
            index = int(above[0])
            raise InputError(
                f"value {values[index]:g} is above 1 for a ratio: wrong units? (pass --unit percent if so)",
                source=raw.source,
                line=_line_of(raw, index),
            )


def _line_of(raw: RawSeries, index: int) -> int | None:
    return int(raw.lines[index]) if raw.lines is not None else None


def clean(raw: RawSeries, *, step: float | None = None) -> CleanSeries:
    times = raw.timestamps
    values = raw.values
    points_in = int(values.size)
    if points_in == 0:
        raise InputError(f"series {raw.key} is empty", source=raw.source)
    finite = np.isfinite(values)
    missing = int(points_in - np.count_nonzero(finite))
    if missing:
        times, values = times[finite], values[finite]
    if values.size == 0:
        raise InputError(
            f"series {raw.key} has no numeric values (all {points_in} missing)", source=raw.source
        )
    unit = raw.unit
    resets = 0
    if raw.counter:
        times, values, resets = counter_to_rate(times, values)
        unit = rate_unit(unit)
    start = float(times[0]) if times.size else 0.0
    step, index = _step_and_index(times, step, shared=times is raw.timestamps)
    grid, duplicates = _on_grid(values, index)
    gaps, longest = _gaps(grid, step)
    report = CleanReport(
        points_in=points_in,
        points_used=int(np.count_nonzero(np.isfinite(grid))),
        step_seconds=step,
        duplicates_merged=duplicates,
        counter_resets=resets,
        missing_values=missing,
        gaps=gaps,
        longest_gap_seconds=longest,
        resorted=raw.resorted,
    )
    return CleanSeries(
        key=raw.key, unit=unit, source=raw.source, start=start, step=step, values=grid, report=report
    )


def counter_to_rate(times: FloatArray, values: FloatArray) -> tuple[FloatArray, FloatArray, int]:
    """Per-second rate of a monotonic counter; a drop is a reset, counted from zero (Prometheus rule)."""
    if values.size < 2:
        return times[:0], values[:0], 0
    delta = np.diff(values)
    elapsed = np.diff(times)
    reset = delta < 0
    delta = np.where(reset, values[1:], delta)
    valid = elapsed > 0
    rate = np.divide(delta, elapsed, out=np.zeros_like(delta), where=valid)
    return times[1:][valid], rate[valid], int(np.count_nonzero(reset))


def detect_step(times: FloatArray) -> float:
    """The typical sampling interval: median positive difference, whole seconds when above one."""
    diffs = np.diff(times)
    diffs = diffs[diffs > 0]
    if diffs.size == 0:
        return 60.0
    step = float(np.median(diffs))
    return float(round(step)) if step >= 1.0 else step


def _step_and_index(times: FloatArray, step: float | None, *, shared: bool) -> tuple[float, IntArray | None]:
    """The step (`detect_step` unless given) and each time's grid cell (`_grid_index`). Times read
    as they were (`shared`) and read-only are the one array every series of a wide file carries (the
    CSV reader makes it read-only for that; nothing in the package writes to a series' times): found
    once for all of them."""
    if shared and not times.flags.writeable:
        return _shared_grid(times, step)
    return _find_grid(times, step)


def _find_grid(times: FloatArray, step: float | None) -> tuple[float, IntArray | None]:
    found = detect_step(times) if step is None else step
    return found, _grid_index(times, float(times[0]) if times.size else 0.0, found)


def _grid_index(times: FloatArray, start: float, step: float) -> IntArray | None:
    """Each time's cell on the grid start + i*step; None when the times are exactly the cells 0, 1, ..."""
    if times.size == 0:
        return None
    index = np.rint((times - start) / step).astype(np.int64)
    if index[-1] == index.size - 1 and np.array_equal(index, np.arange(index.size)):
        return None
    return index


_SHARED_GRIDS: dict[int, tuple[weakref.ref[FloatArray], float | None, float, IntArray | None]] = {}


def _shared_grid(times: FloatArray, step: float | None) -> tuple[float, IntArray | None]:
    """`detect_step` and `_grid_index` for read-only times, remembered while the array lives (checked by
    identity through a weak reference, so a new array at a freed address is never mistaken for it)."""
    known = _SHARED_GRIDS.get(id(times))
    if known is not None and known[0]() is times and known[1] == step:
        return known[2], known[3]
    found, index = _find_grid(times, step)
    if len(_SHARED_GRIDS) >= 16:
        _SHARED_GRIDS.clear()
    _SHARED_GRIDS[id(times)] = (weakref.ref(times), step, found, index)
    return found, index


def _on_grid(values: FloatArray, index: IntArray | None) -> tuple[FloatArray, int]:
    """Values placed on the grid cells `index` (None: one value per cell, in order), max per cell, NaN for
    empty cells, and how many values were merged into a cell already taken."""
    if index is None:
        if values.dtype == np.float64 and not values.flags.writeable:
            return values, 0  # read-only: nothing can change it under the series that shares it
        return values.astype(np.float64, copy=True), 0
    size = int(index.max()) + 1
    grid = np.full(size, -np.inf)
    np.maximum.at(grid, index, values)
    grid[np.isneginf(grid)] = np.nan
    occupied = int(np.count_nonzero(np.isfinite(grid)))
    return grid, int(values.size - occupied)


def _gaps(grid: FloatArray, step: float) -> tuple[int, float]:
    missing = np.isnan(grid).astype(np.int8)
    if not missing.any():
        return 0, 0.0
    edges = np.diff(np.concatenate(([0], missing, [0])))
    starts = np.flatnonzero(edges == 1)
    ends = np.flatnonzero(edges == -1)
    lengths = ends - starts
    return int(lengths.size), float(lengths.max() * step)
