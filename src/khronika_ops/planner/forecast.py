"""Forecast: trend + daily + weekly seasonality by least squares on Fourier terms, per series.

The fit is shared by every series on the same grid (one design and its QR for a whole block, solved for
parts of a few MiB of series at a time), which is what makes thousands of series cheap. From the fit we take:
- the trend, used only when it is upward and significant after correcting for autocorrelated
  residuals (a 14-day history should not be read as a decline that lets capacity shrink), and extrapolated
  at most as far ahead as the history reaches back;
- outliers: residuals beyond `outlier_z` robust standard deviations, flagged and kept in the data;
- demand at the horizon: every historical sample moved along the trend to the horizon's end, times the
  what-if growth, weighted by recency (VPA-style half-life). Its quantiles are "the load we expect then",
  keeping daily/weekly shape and how noise varies over the day;
- the forecast peak: the seasonal curve at the end of the horizon plus the 99th residual percentile.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import NamedTuple

import numpy as np

from khronika_ops.planner import backtest
from khronika_ops.planner.models import (
    BacktestCurve,
    BoolArray,
    CleanSeries,
    FloatArray,
    Forecast,
    ForecastBand,
    ForecastPoint,
    ForecastSettings,
    IntArray,
)

DAY = 86400.0
DEMAND_QUANTILES: dict[str, float] = {
    "p50": 0.50,
    "p90": 0.90,
    "p95": 0.95,
    "p99": 0.99,
    "p99.5": 0.995,
    "p99.8": 0.998,
    "p99.9": 0.999,
    "max": 1.0,
}
# Least history for each seasonal component: two full cycles (less cannot tell cycle from noise).
_DAILY_MIN_DAYS = 2.0
_WEEKLY_MIN_DAYS = 13.5
_MAX_OUTLIER_TIMESTAMPS = 10
_PLOT_POINTS = 600


def forecast(series: CleanSeries, settings: ForecastSettings) -> Forecast:
    return forecast_block([series], settings)[0]


def forecast_block(block: Sequence[CleanSeries], settings: ForecastSettings) -> list[Forecast]:
    """Forecast series that share one grid (same start, step and length) in one vectorised pass."""
    if not block:
        return []
    first = block[0]
    shared = all(
        s.start == first.start and s.step == first.step and s.values.size == first.values.size for s in block
    )
    if not shared:
        return [forecast_block([series], settings)[0] for series in block]
    # Time down the rows, one series per column, each column contiguous (the transpose of one series per
    # row): per-series statistics then read contiguous rows, and elementwise steps keep this layout.
    matrix = np.stack([series.values for series in block]).T
    return _forecast_matrix(block, matrix, settings)


def _design(t_days: FloatArray, daily: int, weekly: int) -> FloatArray:
    columns = [np.ones_like(t_days), t_days]
    for harmonic in range(1, daily + 1):
        angle = 2 * np.pi * harmonic * t_days
        columns += [np.cos(angle), np.sin(angle)]
    for harmonic in range(1, weekly + 1):
        angle = 2 * np.pi * harmonic * t_days / 7.0
        columns += [np.cos(angle), np.sin(angle)]
    return np.column_stack(columns)


class _LeastSquares:
    """Least squares on one design for many columns: the design's thin QR is computed once, the complete
    columns share one solve, the rest are solved one by one on their observed rows."""

    def __init__(self, design: FloatArray) -> None:
        self.design = design
        self.q, self.r = np.linalg.qr(design)
        for array in (self.design, self.q, self.r):
            array.flags.writeable = False  # shared by every block on the same grid (`_fit_design`)

    def solve(self, matrix: FloatArray, mask: BoolArray, complete: BoolArray) -> FloatArray:
        """Coefficients per column of `matrix` (0 where not observed), using only observed points."""
        design = self.design
        coefficients = np.zeros((design.shape[1], matrix.shape[1]))
        if complete.any():
            columns = matrix if complete.all() else matrix[:, complete]
            coefficients[:, complete] = np.linalg.lstsq(self.r, self.q.T @ columns, rcond=None)[0]
        for column in np.flatnonzero(~complete):
            rows = mask[:, column]
            if np.count_nonzero(rows) > design.shape[1]:
                coefficients[:, column] = np.linalg.lstsq(design[rows], matrix[rows, column], rcond=None)[0]
        return coefficients


class _ResidualStats(NamedTuple):
    median: FloatArray
    sigma: FloatArray
    p01: FloatArray
    p99: FloatArray


def _residual_stats(residuals: FloatArray) -> _ResidualStats:
    """Median, noise scale and 1st/99th percentiles per column. The scale is 1.4826 x MAD, floored by the
    central 98 % range (p99 - p1 = 4.65 sigma for normal noise) so that quantised or mostly-constant
    series do not flag a quarter of their points as outliers."""
    rows = np.array(residuals.T, order="C", copy=True)  # one series per row, reordered in place below
    p01, median, p99 = row_quantiles(rows, (0.01, 0.5, 0.99))
    deviations = np.abs(np.subtract(rows, median[:, None], out=rows), out=rows)
    mad = 1.4826 * row_quantiles(deviations, (0.5,))[0]
    sigma = np.maximum(mad, (p99 - p01) / 4.65)
    return _ResidualStats(median, np.where(sigma > 0, sigma, 1e-12), p01, p99)


def quantiles(matrix: FloatArray, levels: Sequence[float]) -> FloatArray:
    """Per-column quantiles, shape (len(levels), m): numpy's default ("linear") definition.

    Without NaN, each column is copied to a contiguous row and just the order statistics the levels
    interpolate between are selected in it (`select_order_statistics`), and the result is interpolated
    exactly as `np.quantile` does (same indices, same gamma, same two-sided lerp), so the figures are
    bit-identical (tests/planner/test_speed_paths.py checks it). NaN-aware only when there are NaNs:
    that path is much slower."""
    return row_quantiles(np.array(matrix.T, order="C", copy=True), levels)


def row_quantiles(rows: FloatArray, levels: Sequence[float]) -> FloatArray:
    """`quantiles` of each row of `rows` (one series per row), shape (len(levels), rows): the values
    are reordered in place (the caller's copy, not needed in order any more)."""
    if np.isnan(rows).any() or rows.shape[1] == 0:
        result: FloatArray = np.nanquantile(rows, levels, axis=1)
        return result
    count = rows.shape[1]
    virtual = (count - 1) * np.asarray(levels, dtype=np.float64)
    lower = np.clip(np.floor(virtual), 0, count - 1).astype(np.intp)
    kth = np.unique(np.concatenate([lower, np.minimum(lower + 1, count - 1)]))
    select_order_statistics(rows, kth.tolist())
    return sorted_quantiles(rows, levels)


def select_order_statistics(rows: FloatArray, kth: Sequence[int], start: int = 0) -> None:
    """Rearrange each row of `rows` in place so that position k holds the row's k-th smallest value for
    every k in `kth` (ascending), the smaller values before it and the larger after, as `np.partition`
    with that list does.

    One position at a time, the middle one first, each half then searched only on its own side: numpy
    selects a single position with its vectorised introselect, several times faster than the multi-
    position partition on a whole row (about 6 ms against 41 ms for 100 x 20,160 values, which is what
    made the previous multi-position `np.partition` the largest cost of a forecast). The position just
    after a selected one (interpolated quantiles need both) is the smallest value beyond it: one pass
    and a swap, not another partition. `start` is where `rows` begins in the caller's row (positions in
    `kth` are the caller's)."""
    if not kth:
        return
    middle = len(kth) // 2
    position = kth[middle]
    rows.partition(position - start, axis=1)
    after = middle + 1  # the first index of `kth` still to place on the right
    if after < len(kth) and kth[after] == position + 1:
        _smallest_first(rows[:, position + 1 - start :])
        after += 1
    select_order_statistics(rows[:, : position - start], kth[:middle], start)
    right = kth[after - 1] + 1
    select_order_statistics(rows[:, right - start :], kth[after:], right)


def _smallest_first(rows: FloatArray) -> None:
    """Swap each row's smallest value into its first position (no NaN)."""
    if rows.shape[1] < 2:
        return
    every = np.arange(rows.shape[0])
    smallest = rows.argmin(axis=1)
    first = rows[:, 0].copy()
    rows[:, 0] = rows[every, smallest]
    rows[every, smallest] = first


def sorted_quantiles(ordered: FloatArray, levels: Sequence[float]) -> FloatArray:
    """`np.quantile(ordered, levels, axis=1)` for rows already sorted ascending (no NaN)."""
    count = ordered.shape[1]
    virtual = (count - 1) * np.asarray(levels, dtype=np.float64)
    previous = np.floor(virtual)
    following = previous + 1
    above = virtual >= count - 1
    previous[above] = -1
    following[above] = -1
    below = virtual < 0
    previous[below] = 0
    following[below] = 0
    gamma = (virtual - previous)[:, None]
    low = ordered[:, previous.astype(np.intp)].T
    high = ordered[:, following.astype(np.intp)].T
    difference = high - low
    result: FloatArray = low + difference * gamma
    np.subtract(high, difference * (1 - gamma), out=result, where=gamma >= 0.5)
    return result


def weighted_quantiles(matrix: FloatArray, weights: FloatArray, quantiles: Sequence[float]) -> FloatArray:
    """Quantiles per column of `matrix` (NaN ignored) with per-row weights; shape (len(quantiles), m).

    The smallest value whose cumulative weight (in ascending order) reaches q x total. Columns are
    ordered as contiguous rows of the transpose (`_ascending_order`), the weights are gathered from the
    1-D weight vector, and each quantile is a binary search in the cumulative weights, which never
    decrease; only the values found are read back."""
    rows = np.ascontiguousarray(matrix.T, dtype=np.float64)
    result = np.empty((len(quantiles), rows.shape[0]))
    if rows.shape[1] == 0:
        result.fill(np.inf)
        return result
    finite = np.isfinite(rows)
    complete = bool(finite.all())
    exact = np.ones(rows.shape[0], dtype=bool)
    keys: IntArray | None = None
    if complete:
        order, keys = _ascending_order(rows)
        cumulative = np.cumsum(weights[order], axis=1)
        counts = np.full(rows.shape[0], rows.shape[1])
    else:
        rows = np.where(finite, rows, np.inf)  # a missing sample sorts last and weighs nothing
        order = np.argsort(rows, axis=1)
        weight_rows = np.where(finite, weights[None, :], 0.0)
        cumulative = np.cumsum(np.take_along_axis(weight_rows, order, axis=1), axis=1)
        counts = finite.sum(axis=1)
    levels = np.asarray(quantiles, dtype=np.float64)
    for column in range(rows.shape[0]):
        index = _weighted_places(cumulative[column], levels, int(counts[column]))
        result[:, column] = rows[column, order[column, index]]
        if keys is not None:
            exact[column] = _found_exactly(rows[column], order[column], keys[column], index)
    for column in np.flatnonzero(~exact).tolist():
        # Values that differ only beyond the packed key's precision: ordered exactly (rare).
        exact_order = np.argsort(rows[column])
        index = _weighted_places(np.cumsum(weights[exact_order]), levels, rows.shape[1])
        result[:, column] = rows[column, exact_order[index]]
    return result


def _weighted_places(cumulative: FloatArray, levels: FloatArray, count: int) -> IntArray:
    """Where in a sorted row each level's weighted quantile lies: the first place whose cumulative
    weight reaches level x total (the last of the `count` observed values for level 1)."""
    index = np.searchsorted(cumulative, levels * cumulative[-1], side="left")
    places: IntArray = np.maximum(np.where(levels >= 1.0, count - 1, np.minimum(index, count - 1)), 0)
    return places


_ALL_BUT_SIGN = np.int64(0x7FFF_FFFF_FFFF_FFFF)


def _ascending_order(rows: FloatArray) -> tuple[IntArray, IntArray]:
    """Each row's positions in ascending order of value (no NaN), and the sort key of each place.

    One integer sort in place of an arg-sort, about a third of its time with numpy's vectorised sorts:
    a float's bits, read as an integer with the magnitude bits of negatives flipped, order as the
    floats do; the lowest bits (as many as a position needs) are replaced by the position, so sorting
    these keys sorts the values and carries each one's position along. Values that share the kept bits
    (equal to about 1e-11 of their size) are then ordered by position, not by value: a true ascending
    order where such values are all equal, which `_found_exactly` checks where it matters."""
    count = rows.shape[1]
    bits = max(1, (count - 1).bit_length())
    low = np.int64((1 << bits) - 1)
    keys = rows.view(np.int64).copy()
    keys ^= (keys >> 63) & _ALL_BUT_SIGN
    keys &= ~low
    keys |= np.arange(count, dtype=np.int64)
    keys.sort(axis=1)
    order: IntArray = keys & low
    keys >>= bits
    return order, keys


def _found_exactly(values: FloatArray, order: IntArray, keys: IntArray, found: IntArray) -> bool:
    """Whether the places `found` in a row ordered by `_ascending_order` hold what a true ascending order
    holds there: everything before a place's run of equal keys is smaller, everything after larger, so
    only a run whose values differ can answer differently (up to the rounding of the cumulative weights,
    summed in another order where runs of equal values lie before the place, as an arg-sort's own
    order of ties would)."""
    at = keys[found]
    first, end = np.searchsorted(keys, at, side="left"), np.searchsorted(keys, at, side="right")
    for run in np.flatnonzero(end - first > 1):
        members = values[order[first[run] : end[run]]]
        if members.min() != members.max():
            return False
    return True


class _LevelShifts(NamedTuple):
    shifted: BoolArray
    row: IntArray  # first row after the shift (0 where none)
    before: FloatArray
    after: FloatArray


def _level_shifts(
    matrix: FloatArray,
    seasonal: tuple[FloatArray, FloatArray] | None,
    grid: _Grid,
    settings: ForecastSettings,
    *,
    bin_days: float = 0.25,
) -> _LevelShifts:
    """One step change in level per series, told apart from a trend (binary segmentation, one split).

    The seasonal part of the fit (its design columns and coefficients) is taken out and the rest averaged
    in 6-hour bins. For every split with at least `level_shift_min_days` on each side, the two-level
    model's squared error is compared with a straight line's. A shift is a split whose two-level error
    is below `level_shift_error_ratio` of the line's (a ramp fits a line far better than a step; a step
    fits two levels far better than a line), and whose size is at least `level_shift_z` times the bins' spread around their levels. Both tests
    depend on the shape alone: scaling the load or adding a constant never changes the verdict (so more
    load can never flip it into a smaller size). Vectorised over the block, like the fit itself."""
    n_rows, n_series = matrix.shape
    mask, step_days, everything = grid.mask, grid.step_days, grid.complete
    none = _LevelShifts(
        np.zeros(n_series, dtype=bool),
        np.zeros(n_series, dtype=np.int64),
        np.zeros(n_series),
        np.zeros(n_series),
    )
    per_bin = max(1, round(bin_days / step_days))
    n_bins = n_rows // per_bin
    min_bins = int(np.ceil(settings.level_shift_min_days / bin_days - 1e-9))
    # Three bins at least: a line through two points always fits them exactly.
    if n_bins < max(2 * min_bins, 3) or n_series == 0:
        return none
    offset = n_rows - n_bins * per_bin  # bins end at the last row; the first rows left over are ignored

    def bin_sums(samples: FloatArray) -> FloatArray:
        """Sums of each series' own (contiguous) rows per bin, as bins x series."""
        summed: FloatArray = samples[offset:].T.reshape(n_series, n_bins, per_bin).sum(axis=2).T
        return summed

    if everything:
        sums = bin_sums(matrix)
        if seasonal is not None:
            # The seasonal curve's bin sums are its design's bin sums times the coefficients: no curve
            # is laid over every sample to be subtracted from it.
            design, coefficients = seasonal
            sums -= design[offset:].reshape(n_bins, per_bin, -1).sum(axis=1) @ coefficients
        counts = np.full((n_bins, n_series), float(per_bin))
    else:
        level = matrix if seasonal is None else matrix - _fitted(*seasonal)
        sums = bin_sums(np.where(mask, level, 0.0))
        counts = bin_sums(mask.astype(np.float64))
    means = np.divide(sums, counts, out=np.zeros_like(sums), where=counts > 0)
    weights = counts
    total_w = weights.sum(axis=0)
    cum_w = np.cumsum(weights, axis=0)
    cum_s = np.cumsum(weights * means, axis=0)
    cum_q = np.cumsum(weights * means**2, axis=0)
    splits = np.arange(min_bins - 1, n_bins - min_bins)  # the left part ends at bin k
    left_w, left_s, left_q = cum_w[splits], cum_s[splits], cum_q[splits]
    right_w, right_s, right_q = total_w - left_w, cum_s[-1] - left_s, cum_q[-1] - left_q
    with np.errstate(divide="ignore", invalid="ignore"):
        error = (left_q - left_s**2 / left_w) + (right_q - right_s**2 / right_w)
    error = np.where((left_w > 0) & (right_w > 0), error, np.inf)
    best = np.argmin(error, axis=0)
    columns = np.arange(n_series)
    step_error = error[best, columns]
    wl, wr = left_w[best, columns], right_w[best, columns]
    before = np.divide(left_s[best, columns], wl, out=np.zeros(n_series), where=wl > 0)
    after = np.divide(right_s[best, columns], wr, out=np.zeros(n_series), where=wr > 0)
    # A straight line through the bin means (weighted least squares, closed form).
    x = np.arange(n_bins, dtype=np.float64)[:, None]
    safe_w = np.maximum(total_w, 1e-300)
    x_mean = (weights * x).sum(axis=0) / safe_w
    m_mean = (weights * means).sum(axis=0) / safe_w
    sxx = (weights * (x - x_mean) ** 2).sum(axis=0)
    sxm = (weights * (x - x_mean) * (means - m_mean)).sum(axis=0)
    smm = (weights * (means - m_mean) ** 2).sum(axis=0)
    line_error = smm - np.divide(sxm**2, sxx, out=np.zeros(n_series), where=sxx > 0)
    change = np.abs(after - before)
    spread = np.sqrt(np.maximum(step_error, 0.0) / safe_w)
    shifted = (
        (step_error < settings.level_shift_error_ratio * line_error)
        & (change > settings.level_shift_z * spread)
        & np.isfinite(step_error)
    )
    row = np.where(shifted, offset + (splits[best] + 1) * per_bin, 0)
    return _LevelShifts(shifted, row, before, after)


class _StepRefit(NamedTuple):
    coefficients: FloatArray  # intercept at the new level, no trend, seasonal terms
    before: float
    after: float
    residual_p01: float
    residual_p99: float


def _step_refit(design: FloatArray, values: FloatArray, rows: BoolArray, shift_row: int) -> _StepRefit:
    """Seasonal fit with a level step at `shift_row` in place of the trend."""
    step = (np.arange(values.size) >= shift_row).astype(np.float64)
    columns = np.column_stack([design[:, :1], step, design[:, 2:]])
    solution = np.linalg.lstsq(columns[rows], values[rows], rcond=None)[0]
    before, change = float(solution[0]), float(solution[1])
    residuals = values[rows] - columns[rows] @ solution
    p01, p99 = np.quantile(residuals, (0.01, 0.99))
    coefficients = np.concatenate([[before + change, 0.0], solution[2:]])
    return _StepRefit(coefficients, before, before + change, float(p01), float(p99))


def _iso(epoch: float) -> str:
    return _iso_many(np.array([epoch], dtype=np.float64))[0]


def _iso_many(epochs: FloatArray) -> list[str]:
    """Each epoch as UTC `YYYY-MM-DDTHH:MM:SSZ`, formatted by numpy in one call (a series' outlier
    timestamps cost one call, not ten). The second is `datetime.fromtimestamp`'s: the epoch rounded to
    the microsecond (half to even), then cut to whole seconds."""
    fraction, whole = np.modf(epochs)
    microseconds = np.round(fraction * 1e6)
    whole += (microseconds >= 1e6).astype(np.float64) - (microseconds < 0).astype(np.float64)
    seconds = whole.astype(np.int64).astype("datetime64[s]")
    return [f"{text}Z" for text in np.datetime_as_string(seconds, unit="s").tolist()]


class _Grid(NamedTuple):
    """The shared time grid of a block and what every series has on it."""

    step_days: float
    end_epoch: float
    t_days: FloatArray  # 0 at the end of history, negative before
    mask: BoolArray
    complete: bool  # every sample of every series there (the usual case: no masking needed anywhere)
    counts: IntArray
    spans: FloatArray  # days between each series' first and last sample
    daily: int  # harmonics used (0 when the history is too short for the cycle)
    weekly: int


def _grid(block: Sequence[CleanSeries], matrix: FloatArray, settings: ForecastSettings) -> _Grid:
    first = block[0]
    step_days = first.step / DAY
    n_rows, n_series = matrix.shape
    mask = np.isfinite(matrix)
    complete = bool(mask.all())
    if complete:
        spans = np.full(n_series, (n_rows - 1) * step_days)
    else:
        first_seen = np.argmax(mask, axis=0)
        last_seen = n_rows - 1 - np.argmax(mask[::-1], axis=0)
        spans = (last_seen - first_seen) * step_days
    grid_span = float(spans.max()) if n_series else 0.0
    return _Grid(
        step_days=step_days,
        end_epoch=first.start + first.step * (n_rows - 1),
        t_days=_t_days(n_rows, step_days),
        mask=mask,
        complete=complete,
        counts=mask.sum(axis=0),
        spans=spans,
        daily=settings.daily_harmonics if grid_span >= _DAILY_MIN_DAYS else 0,
        weekly=settings.weekly_harmonics if grid_span >= _WEEKLY_MIN_DAYS else 0,
    )


def _grid_part(grid: _Grid, part: slice) -> _Grid:
    """The grid of some of the block's series (the harmonics stay the whole block's)."""
    mask = grid.mask[:, part]
    return grid._replace(
        mask=mask,
        complete=grid.complete or bool(mask.all()),
        counts=grid.counts[part],
        spans=grid.spans[part],
    )


class _Fit(NamedTuple):
    design: FloatArray
    coefficients: FloatArray
    residuals: FloatArray
    stats: _ResidualStats
    outliers: BoolArray
    trend_t: FloatArray


def _robust_fit(matrix: FloatArray, grid: _Grid, settings: ForecastSettings) -> _Fit:
    """Trend + seasonality by least squares, refitted once with outliers clipped to the band."""
    least_squares = _fit_design(grid.t_days.size, grid.step_days, grid.daily, grid.weekly)
    design = least_squares.design
    complete: BoolArray = np.all(grid.mask, axis=0, keepdims=False)
    everything = grid.complete  # then the masking below changes nothing: skipped
    observed = matrix if everything else np.where(grid.mask, matrix, 0.0)
    coefficients = least_squares.solve(observed, grid.mask, complete)
    fitted = _fitted(design, coefficients)
    residuals = _residuals(matrix, fitted, grid.mask, everything)
    limit = settings.outlier_z * _residual_stats(residuals).sigma
    clipped = np.maximum(observed, fitted - limit)
    np.minimum(clipped, np.add(fitted, limit, out=fitted), out=clipped)
    if not everything:
        clipped[~grid.mask] = 0.0
    coefficients = least_squares.solve(clipped, grid.mask, complete)
    residuals = _residuals(matrix, _fitted(design, coefficients), grid.mask, everything, into_fitted=True)
    stats = _residual_stats(residuals)
    outliers = np.abs(residuals - stats.median) > settings.outlier_z * stats.sigma
    trend_t = _trend_t_statistic(residuals, grid, coefficients[1], settings.outlier_z * stats.sigma)
    return _Fit(design, coefficients, residuals, stats, outliers, trend_t)


def _fitted(design: FloatArray, coefficients: FloatArray) -> FloatArray:
    """design @ coefficients, laid out as the matrix is (each series' column contiguous)."""
    fitted: FloatArray = (coefficients.T @ design.T).T
    return fitted


@lru_cache(maxsize=4)
def _fit_design(n_rows: int, step_days: float, daily: int, weekly: int) -> _LeastSquares:
    """The design (and its QR) of a grid of `n_rows` steps ending at t = 0: files and blocks of one
    plan mostly share a grid, so it is built once for all of them (about a tenth of a 100-series fit)."""
    return _LeastSquares(_design(_t_days(n_rows, step_days), daily, weekly))


def _t_days(n_rows: int, step_days: float) -> FloatArray:
    """A grid's times in days: 0 at its last step, negative before."""
    t_days: FloatArray = (np.arange(n_rows, dtype=np.float64) - (n_rows - 1)) * step_days
    return t_days


def _residuals(
    matrix: FloatArray, fitted: FloatArray, mask: BoolArray, everything: bool, *, into_fitted: bool = False
) -> FloatArray:
    """matrix - fitted where observed, NaN elsewhere (written over `fitted` when it is not needed)."""
    residuals = np.subtract(matrix, fitted, out=fitted) if into_fitted else matrix - fitted
    if not everything:
        residuals[~mask] = np.nan
    return residuals


def _detect_shifts(matrix: FloatArray, grid: _Grid, fit: _Fit, settings: ForecastSettings) -> _LevelShifts:
    """Level shifts in two passes: 6-hour bins less the daily curve, then raw whole-day bins."""
    # Detection takes out the daily curve only: weekly terms fitted over two weeks can absorb part of a
    # step, and would bias the levels either side of it.
    daily_columns = slice(2, 2 + 2 * grid.daily)
    seasonal = (fit.design[:, daily_columns], fit.coefficients[daily_columns])
    shifts = _level_shifts(matrix, seasonal, grid, settings)
    # Over a few days the daily terms can absorb a step themselves; whole-day bins of the raw data
    # average the daily curve out without any fit, and catch what the first pass missed.
    # (Half-day bins below three days of history, where whole days would be too few to tell.)
    raw_bin_days = 1.0 if matrix.shape[0] * grid.step_days >= 3.0 else 0.5
    by_day = _level_shifts(matrix, None, grid, settings, bin_days=raw_bin_days)
    missed = by_day.shifted & ~shifts.shifted
    if not missed.any():
        return shifts
    return _LevelShifts(
        shifts.shifted | missed,
        np.where(missed, by_day.row, shifts.row),
        np.where(missed, by_day.before, shifts.before),
        np.where(missed, by_day.after, shifts.after),
    )


class _SizingModel(NamedTuple):
    """What the outlook extrapolates: the samples that describe today's load, the trend used, the level."""

    sizing_matrix: FloatArray
    slope_used: FloatArray
    trend_used: BoolArray
    level_coefficients: FloatArray
    residual_p01: FloatArray
    residual_p99: FloatArray
    shifts: _LevelShifts


def _sizing_model(
    matrix: FloatArray, grid: _Grid, fit: _Fit, shifts: _LevelShifts, settings: ForecastSettings
) -> _SizingModel:
    slope = fit.coefficients[1]
    # A step is not growth: its least-squares slope must not be extrapolated.
    trend_used = (fit.trend_t > settings.trend_t) & (slope > 0) & ~shifts.shifted
    # After a rise, only the samples since the shift describe today's load; after a fall the whole
    # history is kept (capacity is not planned to shrink on a few days of lower load).
    rose = shifts.shifted & (shifts.after > shifts.before)
    sizing_matrix = matrix
    if rose.any():
        before_shift = (np.arange(matrix.shape[0])[None, :] < np.where(rose, shifts.row, 0)[:, None]).T
        sizing_matrix = np.where(before_shift, np.nan, matrix)
    # The level the seasonal curve rides on at the end: the fitted line's end or, after a shift, the
    # new level from a refit with a step term in place of the trend (shifts are rare: one solve each).
    level_coefficients = fit.coefficients.copy()
    residual_p01, residual_p99 = fit.stats.p01.copy(), fit.stats.p99.copy()
    for shifted in np.flatnonzero(shifts.shifted):
        refit = _step_refit(fit.design, matrix[:, shifted], grid.mask[:, shifted], int(shifts.row[shifted]))
        level_coefficients[:, shifted] = refit.coefficients
        shifts.before[shifted], shifts.after[shifted] = refit.before, refit.after
        # The line's residuals around a step are mostly the misfit: the step model's are the noise.
        residual_p01[shifted], residual_p99[shifted] = refit.residual_p01, refit.residual_p99
    return _SizingModel(
        sizing_matrix,
        np.where(trend_used, slope, 0.0),
        trend_used,
        level_coefficients,
        residual_p01,
        residual_p99,
        shifts,
    )


class _Outlook(NamedTuple):
    """Demand quantiles and forecast peak per series, `days` after the end of history."""

    days: float
    growth: float
    demand: FloatArray  # DEMAND_QUANTILES x series
    peaks: FloatArray


def growth_multiplier(settings: ForecastSettings, days: float) -> float:
    """The what-if load factor, compounded monthly growth over `days`."""
    return float(settings.load_factor * (1.0 + settings.growth_percent_per_month / 100.0) ** (days / 30.0))


def _outlook(grid: _Grid, model: _SizingModel, settings: ForecastSettings, days: float) -> _Outlook:
    growth = growth_multiplier(settings, days)
    demand = _demand(
        model.sizing_matrix,
        t_days=grid.t_days,
        slope_used=model.slope_used,
        spans=grid.spans,
        horizon_days=days,
        growth=growth,
        weights=0.5 ** (-grid.t_days / settings.half_life_days),
        levels=list(DEMAND_QUANTILES.values()),
    )
    # The seasonal curve over the last period before `days` (trend added with each series' own cap).
    period = 7.0 if grid.weekly else 1.0
    future_t = np.linspace(days - min(period, days), days, 288 if period == 1.0 else 2016)
    future_design = _design(future_t, grid.daily, grid.weekly)
    future_design[:, 1] = 0.0
    future_mean = future_design @ model.level_coefficients + model.slope_used * np.minimum(days, grid.spans)
    peaks = (future_mean.max(axis=0) + model.residual_p99) * growth
    return _Outlook(days, growth, demand, peaks)


#: Series fitted together in one pass: a few MiB of samples, so that the many elementwise passes of the
#: fit and the outlook mostly stay in the CPU's cache. A 100-series block of two weeks at 60 s is 16 MiB:
#: in parts of 4 MiB it took a fifth less CPU time (measured with parts of 0.5 to 16 MiB; smaller parts
#: pay more per numpy call than they save).
_PART_BYTES = 4 << 20


def _forecast_matrix(
    block: Sequence[CleanSeries], matrix: FloatArray, settings: ForecastSettings
) -> list[Forecast]:
    grid = _grid(block, matrix, settings)
    n_rows, n_series = matrix.shape
    width = max(1, _PART_BYTES // (8 * max(1, n_rows)))
    results: list[Forecast] = []
    sizing_matrix = matrix
    for first in range(0, n_series, width):
        part = slice(first, first + width)
        samples = matrix[:, part]
        part_results, part_sizing = _forecast_part(block[part], samples, _grid_part(grid, part), settings)
        results += part_results
        if part_sizing is not samples:  # some series sized on the samples since a level shift only
            if sizing_matrix is matrix:
                sizing_matrix = np.array(matrix, order="F", copy=True)
            sizing_matrix[:, part] = part_sizing
    if settings.backtest:
        # On the whole block: its per-origin steps are cheap per series, costly per call.
        curves = backtest.curves(
            sizing_matrix, grid.step_days, settings.horizon_days, settings.half_life_days
        )
        if curves is not None:
            for column, result in enumerate(results):
                if not result.insufficient_data and curves.origins[column] > 0:
                    result.backtest = BacktestCurve(
                        under=curves.under[:, :, column].tolist(),
                        slack=curves.slack[:, :, column].tolist(),
                        origins=int(curves.origins[column]),
                    )
    return results


def _forecast_part(
    block: Sequence[CleanSeries], matrix: FloatArray, grid: _Grid, settings: ForecastSettings
) -> tuple[list[Forecast], FloatArray]:
    """The forecasts of some of a block's series, and the samples each is sized on."""
    fit = _robust_fit(matrix, grid, settings)
    shifts = _detect_shifts(matrix, grid, fit, settings)
    model = _sizing_model(matrix, grid, fit, shifts, settings)
    horizon = _outlook(grid, model, settings, settings.horizon_days)
    window = None
    if settings.maintenance_window is not None and settings.maintenance_window > grid.end_epoch:
        window = _outlook(grid, model, settings, (settings.maintenance_window - grid.end_epoch) / DAY)
    results = _summaries(
        block, matrix, grid=grid, fit=fit, model=model, horizon=horizon, window=window, settings=settings
    )
    return results, model.sizing_matrix


def _summaries(
    block: Sequence[CleanSeries],
    matrix: FloatArray,
    *,
    grid: _Grid,
    fit: _Fit,
    model: _SizingModel,
    horizon: _Outlook,
    window: _Outlook | None,
    settings: ForecastSettings,
) -> list[Forecast]:
    """One Forecast per series: the figures, and the evidence behind them."""
    first = block[0]
    slope, shifts = fit.coefficients[1], model.shifts
    seasonality = (["daily"] if grid.daily else []) + (["weekly"] if grid.weekly else [])
    if grid.complete:
        largest, means = matrix.max(axis=0), matrix.mean(axis=0)
    else:
        largest, means = np.nanmax(matrix, axis=0), np.nanmean(np.where(grid.mask, matrix, np.nan), axis=0)
    observed = np.vstack([quantiles(matrix, (0.5, 0.95, 0.99)), largest[None, :]])
    outlier_rows = np.ascontiguousarray(fit.outliers.T)  # a series' flags contiguous, read per series

    results: list[Forecast] = []
    for column, series in enumerate(block):
        reason = _insufficiency(int(grid.counts[column]), float(grid.spans[column]), settings)
        base = Forecast(
            key=series.key,
            unit=series.unit,
            history_days=round(float(grid.spans[column]), 6),
            horizon_days=horizon.days,
            points_used=int(grid.counts[column]),
        )
        if reason is not None:
            base.insufficient_data = True
            base.reason = reason
            results.append(base)
            continue
        flagged = np.flatnonzero(outlier_rows[column])
        base.observed = {
            "p50": float(observed[0, column]),
            "p95": float(observed[1, column]),
            "p99": float(observed[2, column]),
            "max": float(observed[3, column]),
            "mean": float(means[column]),
        }
        base.demand = _column(horizon.demand, column)
        base.forecast_peak = float(horizon.peaks[column])
        if window is not None:
            base.window = ForecastPoint(
                at=_iso(grid.end_epoch + window.days * DAY),
                days=round(window.days, 6),
                demand=_column(window.demand, column),
                forecast_peak=float(window.peaks[column]),
                growth_multiplier=float(window.growth),
            )
        base.trend_per_day = float(slope[column])
        base.trend_used = bool(model.trend_used[column])
        base.trend_reason = _trend_reason(float(slope[column]), float(fit.trend_t[column]), settings.trend_t)
        if shifts.shifted[column]:
            base.level_shift, base.trend_reason = _shift_evidence(
                first.start + first.step * int(shifts.row[column]),
                float(shifts.before[column]),
                float(shifts.after[column]),
                grid.end_epoch,
            )
        base.seasonality = seasonality
        base.residual_p99 = float(model.residual_p99[column])
        base.outliers_flagged = int(flagged.size)
        base.outlier_timestamps = _iso_many(
            np.asarray(first.start + first.step * flagged[:_MAX_OUTLIER_TIMESTAMPS], dtype=np.float64)
        )
        base.growth_multiplier = float(horizon.growth)
        if settings.keep_band:
            base.band = _band(
                first,
                history=matrix[:, column],
                coefficients=model.level_coefficients[:, column],
                harmonics=(grid.daily, grid.weekly),
                slope_used=float(model.slope_used[column]),
                span=float(grid.spans[column]),
                growth=horizon.growth,
                residual_range=(float(model.residual_p01[column]), float(model.residual_p99[column])),
                horizon=horizon.days,
            )
        results.append(base)
    return results


def _column(demand: FloatArray, column: int) -> dict[str, float]:
    return {name: float(demand[row, column]) for row, name in enumerate(DEMAND_QUANTILES)}


def _shift_evidence(
    at: float, before: float, after: float, end_epoch: float
) -> tuple[dict[str, float | str], str]:
    since = (end_epoch - at) / DAY
    shift: dict[str, float | str] = {
        "at": _iso(at),
        "before": float(f"{before:.6g}"),
        "after": float(f"{after:.6g}"),
        "days_since": round(since, 3),
    }
    relative = before > 0.05 * abs(after)  # "+126796 %" from a level of about zero says nothing
    change = f"{(after / before - 1):+.0%}" if relative else f"{after - before:+.3g}"
    sized = (
        f"sized on the {since:.1f} d since"
        if after > before
        else "the whole history kept (capacity is not planned to shrink)"
    )
    reason = (
        f"level shift at {_iso(at)} from {before:.4g} to {after:.4g} ({change}): a step, not a trend, "
        f"so not extrapolated; {sized}"
    )
    return shift, reason


def _demand(
    matrix: FloatArray,
    *,
    t_days: FloatArray,
    slope_used: FloatArray,
    spans: FloatArray,
    horizon_days: float,
    growth: float,
    weights: FloatArray,
    levels: list[float],
) -> FloatArray:
    # Each sample moves to the horizon's end along the trend; extrapolation is capped at the span.
    # Without a trend used anywhere (the usual case) the samples are read as they are.
    moved = matrix
    if slope_used.any():
        # One buffer in the matrix's layout, three passes.
        moved = np.add.outer(np.minimum(horizon_days, spans), -t_days).T
        np.multiply(moved, slope_used[None, :], out=moved)
        np.add(matrix, moved, out=moved)
    if growth != 1.0:
        moved = moved * growth
    demand = weighted_quantiles(moved, weights, levels)
    demand += 0.0  # a "-0" sample read as is must not print as a demand of -0.0
    return demand


def _trend_t_statistic(residuals: FloatArray, grid: _Grid, slope: FloatArray, clip: FloatArray) -> FloatArray:
    """Slope / standard error, with the error inflated for lag-1 autocorrelation (n_eff = n(1-r)/(1+r))."""
    t_days, mask, everything = grid.t_days, grid.mask, grid.complete
    bounded = np.maximum(residuals, -clip)
    np.minimum(bounded, clip, out=bounded)
    if not everything:
        bounded[~mask] = 0.0
    count = np.maximum(mask.sum(axis=0), 3)
    squares = np.einsum("ij,ij->j", bounded, bounded)
    variance = squares / np.maximum(count - 2, 1)
    lagged = np.einsum("ij,ij->j", bounded[1:], bounded[:-1])
    rho = np.clip(np.divide(lagged, squares + 1e-300), 0.0, 0.99)
    n_eff = np.maximum(count * (1 - rho) / (1 + rho), 3.0)
    if everything:  # every column has the same times: one spread for all
        spread = np.full(slope.shape, float(((t_days - t_days.mean()) ** 2).sum()))
    else:
        t_centered = np.where(mask, t_days[:, None], np.nan)
        spread = np.nansum((t_centered - np.nanmean(t_centered, axis=0)) ** 2, axis=0)
    standard_error = np.sqrt(variance / np.maximum(spread, 1e-300) * (count / n_eff))
    t_statistic: FloatArray = np.divide(
        slope, standard_error, out=np.zeros_like(slope), where=standard_error > 0
    )
    return t_statistic


def _trend_reason(slope: float, t_statistic: float, threshold: float) -> str:
    if slope <= 0:
        return f"flat or falling ({slope:.4g}/day): not extrapolated, capacity is not planned to shrink"
    if t_statistic <= threshold:
        return f"rising {slope:.4g}/day but not significant (t={t_statistic:.2f} <= {threshold:g})"
    return f"rising {slope:.4g}/day, significant (t={t_statistic:.3g}); extrapolated at most one history span"


def _insufficiency(points: int, span_days: float, settings: ForecastSettings) -> str | None:
    if points < settings.min_points:
        return f"only {points} usable points; at least {settings.min_points} are needed"
    if span_days < settings.min_history_days:
        return (
            f"history covers {span_days * 24:.1f} h; at least {settings.min_history_days * 24:g} h are needed"
        )
    return None


def _band(
    first: CleanSeries,
    *,
    history: FloatArray,
    coefficients: FloatArray,
    harmonics: tuple[int, int],
    slope_used: float,
    span: float,
    growth: float,
    residual_range: tuple[float, float],
    horizon: float,
) -> ForecastBand:
    end_epoch = first.start + first.step * (history.size - 1)
    stride = max(1, history.size // _PLOT_POINTS)
    usable = history[: history.size - history.size % stride].reshape(-1, stride)
    pooled = np.full(usable.shape[0], np.nan)
    has_value = np.isfinite(usable).any(axis=1)
    pooled[has_value] = np.nanmax(usable[has_value], axis=1)
    history_t = first.start + first.step * (np.arange(pooled.size) * stride)
    future_days = np.linspace(0.0, horizon, 300)
    design = _design(future_days, *harmonics)
    design[:, 1] = 0.0
    mean = (design @ coefficients + slope_used * np.minimum(future_days, span)) * growth
    return ForecastBand(
        history_t=history_t,
        history_y=pooled,
        future_t=end_epoch + future_days * DAY,
        future_mean=mean,
        future_lower=mean + residual_range[0] * growth,
        future_upper=mean + residual_range[1] * growth,
    )
