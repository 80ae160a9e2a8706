"""Backtest each series on its own history: what a size would have cost in under-provisioning and slack.

Rolling origins, as the quality benchmark judges a plan: at each origin the recency-weighted p95 and p99
and the maximum of the history before it are the bases, and the next block (as long as the horizon, at
most a fifth of the history) is what happened after. For every base b and multiplier m of a fixed grid,
the block gives
  under(b, m)  the share of its samples above m x b;
  slack(b, m)  the mean of (m x b - min(sample, m x b)) / (m x b).
Averaged over the origins, these are the series' own cost curves; `size.py` picks the base and the
multiplier that minimise slack + price x under (`SizingPolicy.calibration = "backtest"`) and applies them
to the forecast's quantile of that name at the horizon. Origins start once a quarter of the history (at
least a day) lies before them and step by a quarter of a block; series with no origin (short history)
get no curve and keep the fixed rule.

Vectorised over the columns of a block of series sharing one grid (NaN = no sample).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from khronika_ops.planner.models import BoolArray, FloatArray, IntArray

#: The bases, by the forecast's demand quantile names (forecast.DEMAND_QUANTILES), and their levels.
BASES: dict[str, float] = {"p95": 0.95, "p99": 0.99, "max": 1.0}
_P99 = list(BASES).index("p99")
_QUANTILE_LEVELS = np.array(list(BASES.values())[:-1])  # the maximum is the last base
assert list(BASES)[-1] == "max" and all(level < 1.0 for level in _QUANTILE_LEVELS)
_STEPS = 120
_LOG_STEP = float((np.log(4.0) - np.log(0.7)) / (_STEPS - 1))
#: Thresholds in the multipliers' own steps reaching this many steps either side of them (a factor of
#: 10): the p95 and the maximum are placed on this ladder relative to the p99.
_REACH = int(np.ceil(np.log(10.0) / _LOG_STEP))
LADDER: FloatArray = np.exp(np.log(0.7) + np.arange(-_REACH, _STEPS + _REACH) * _LOG_STEP)
#: 0.7 ... 4.0 times the base, 1.5 % apart.
MULTIPLIERS: FloatArray = LADDER[_REACH : _REACH + _STEPS]
BLOCK_SHARE = 0.2
STRIDE_SHARE = 0.25
MIN_HISTORY_SHARE = 0.25
MIN_HISTORY_DAYS = 1.0
#: The share of each sorted column searched first for the quantile bases (the top); the rest only
#: when needed.
TAIL_SHARE = 0.1


class Curves(NamedTuple):
    """Per series (the last axis): mean under and slack for each base (BASES, first axis) and multiplier
    (MULTIPLIERS, second axis), and the origins used. A base that could not be placed at every origin
    (zero, or beyond the ladder's reach of the p99) has an infinite under: it is never chosen."""

    under: FloatArray  # len(BASES) x len(MULTIPLIERS) x series
    slack: FloatArray
    origins: FloatArray  # series


class Choice(NamedTuple):
    """The base and multiplier a series' curves price best, with their backtested under and slack."""

    base: str
    multiplier: float
    under: float
    slack: float


def curves(matrix: FloatArray, step_days: float, horizon_days: float, half_life_days: float) -> Curves | None:
    """The cost curves of every column of `matrix` (rows = grid steps); None when no origin fits.

    Each column is ranked once (its top by a partition, `_Ranked`). A recency weight 0.5^(age /
    half-life) measured from an origin differs from one measured from the end of history by a factor
    common to every row, so a quantile base at an origin is the weighted quantile of the ranked column
    with the rows after the origin masked out: a cumulative sum, no sort per origin; the maximum base is
    a running maximum. The block's ratios to the p99 base are binned between the thresholds of LADDER
    (a ratio r is at or below LADDER[k] exactly when its bin is at most k), and cumulative counts and
    sums of the bins give every threshold's under and capped sum at once. The p99's multipliers are
    ladder steps; the p95 and the maximum are placed on the ladder at the step nearest their ratio to
    the p99 (within half a step, 0.7 %), so their thresholds are read off the same bins."""
    n_rows, n_series = matrix.shape
    span_days = (n_rows - 1) * step_days
    block = round(min(horizon_days, span_days * BLOCK_SHARE) / step_days)
    first_origin = int(np.ceil(max(MIN_HISTORY_DAYS, span_days * MIN_HISTORY_SHARE) / step_days))
    if block < 2 or n_rows - block < first_origin:
        return None
    stride = max(1, round(block * STRIDE_SHARE))
    rows = np.ascontiguousarray(matrix.T)
    finite_rows = np.isfinite(rows)
    ages = (n_rows - 1 - np.arange(n_rows)) * step_days
    complete = bool(finite_rows.all())
    # Complete columns share one row of weights (by age, broadcast: no copy per column); otherwise a
    # missing sample weighs nothing.
    by_age = 0.5 ** (ages / half_life_days)[None, :]
    weights = np.broadcast_to(by_age, rows.shape) if complete else np.where(finite_rows, by_age, 0.0)
    ranked = _Ranked(rows, finite_rows, weights)
    # The origins, ascending (the last leaves one block after it), and the maximum before each: of each
    # stretch between origins, then running.
    starts = np.arange(n_rows - block, first_origin - 1, -stride)[::-1]
    maxima = np.fmax.accumulate(np.fmax.reduceat(rows, np.concatenate(([0], starts)), axis=1), axis=1)
    positions = log_position(rows)  # each sample's place on the multipliers' scale, once for all origins
    bins = LADDER.size + 1  # bin k <= LADDER.size - 1: r <= LADDER[k]; the last: above all
    offsets = (np.arange(n_series) * bins)[:, None]
    steps = np.arange(_STEPS)
    # Accumulated series x bases x multipliers (each series' thresholds contiguous), turned at the end.
    under = np.zeros((n_series, len(BASES), _STEPS))
    slack = np.zeros((n_series, len(BASES), _STEPS))
    origins = np.zeros(n_series)
    placed = np.zeros((n_series, len(BASES)))
    # A column's origin counts once a quarter of its own samples (at least a day) lie before it: a
    # series sized only since a level shift (NaN before) starts its origins later.
    # In time order: the samples and the total weight before each origin (complete columns: one row
    # stands for all).
    seen = np.arange(1, n_rows + 1)[None, :] if complete else np.cumsum(finite_rows, axis=1)
    weight_sums = np.cumsum(weights[:1] if complete else weights, axis=1)
    needed = np.maximum(MIN_HISTORY_DAYS / step_days, MIN_HISTORY_SHARE * seen[:, -1])
    for index, origin in enumerate(starts.tolist()):
        totals = np.broadcast_to(weight_sums[:, origin - 1], (n_series,))
        bases = np.vstack((ranked.bases(totals, origin, _QUANTILE_LEVELS), maxima[:, index]))
        base = bases[_P99]
        future = rows[:, origin : origin + block]
        if complete:  # no masks to build or apply (a column not usable counts nothing: its share is 0)
            counts = np.full(n_series, block)
        else:
            finite = np.isfinite(future)
            counts = finite.sum(axis=1)
        usable = np.isfinite(base) & (base > 0) & (counts > 0) & (seen[:, origin - 1] >= needed)
        divisor = np.where(usable, base, 1.0)
        ratios = future / divisor[:, None]
        # A ratio's place is its sample's place less its base's: no logarithm per origin.
        binned = _bins(positions[:, origin : origin + block] - np.log(divisor)[:, None] * _PER_LOG, ratios)
        if complete:
            flat, sample_ratios = (binned + offsets).ravel(), ratios.ravel()
        else:
            kept = finite & usable[:, None]  # a column not usable counts nothing (its share is 0)
            flat, sample_ratios = (binned + offsets)[finite], np.where(kept, ratios, 0.0)[finite]
        per_bin = np.bincount(flat, minlength=bins * n_series).reshape(n_series, bins)
        sum_bin = np.bincount(flat, weights=sample_ratios, minlength=bins * n_series).reshape(n_series, bins)
        below = np.cumsum(per_bin, axis=1).ravel()  # samples at or below each threshold (and above all)
        below_sum = np.cumsum(sum_bin, axis=1).ravel()
        shares = np.where(usable, 1.0 / np.maximum(counts, 1), 0.0)[:, None, None]
        # Each base's first threshold on the ladder: the p99's at its first multiplier, the others at the
        # step nearest their ratio to it (a base that cannot be placed counts nothing, `placed`).
        with np.errstate(divide="ignore", invalid="ignore"):
            shifts = np.rint(np.log(bases.T / divisor[:, None]) * _PER_LOG)
        fits = usable[:, None] & np.isfinite(shifts) & (np.abs(shifts) <= _REACH)
        first = _REACH + np.where(fits, shifts, 0.0).astype(np.intp)
        ladder = first[:, :, None] + steps  # series x bases x multipliers
        thresholds = LADDER[ladder]
        gathered = ladder + offsets[:, :, None]
        above = counts[:, None, None] - below[gathered]
        capped = below_sum[gathered] + thresholds * above
        under += above * shares
        slack += np.where(usable[:, None, None], 1.0 - capped * shares / thresholds, 0.0)
        placed += fits
        origins += usable
    if not origins.any():
        return None
    with np.errstate(invalid="ignore", divide="ignore"):
        under /= origins[:, None, None]
        slack /= origins[:, None, None]
    unplaced = placed < origins[:, None]
    under[unplaced] = np.inf
    slack[unplaced] = np.inf
    return Curves(np.moveaxis(under, 0, -1), np.moveaxis(slack, 0, -1), origins)


_LOG_FIRST = float(np.log(MULTIPLIERS[0]))
_PER_LOG = 1.0 / _LOG_STEP


def log_position(values: FloatArray) -> FloatArray:
    """Where each value lies on the multipliers' scale: MULTIPLIERS[j] is at j (they are evenly spaced
    in log); at or below zero, minus infinity."""
    with np.errstate(divide="ignore", invalid="ignore"):
        position: FloatArray = (np.log(np.maximum(values, 0.0)) - _LOG_FIRST) * _PER_LOG
    return position


def _bins(position: FloatArray, ratios: FloatArray) -> IntArray:
    """`np.searchsorted(LADDER, ratios, side="left")` for finite ratios, given their `log_position`
    (computed in any way whose error is well below 1e-6 of a bin: float64 is about 1e-12): a ratio's
    bin is the next whole number at or above its position, counted from the ladder's first step. The
    few ratios within 1e-6 of a bin edge are decided exactly by the binary search (about 2 ms against
    18 ms for 400,000 ratios)."""
    with np.errstate(invalid="ignore"):
        near = np.abs(position - np.rint(position)) < 1e-6
        bins: IntArray = np.clip(np.ceil(position) + _REACH, 0, LADDER.size).astype(np.intp)
    if near.any():
        bins[near] = np.searchsorted(LADDER, ratios[near], side="left")
    return bins


class _Ranked:
    """Each column's rows in ascending order of value (a missing sample lowest) as far as the bases need
    them: the highest TAIL_SHARE of the rows found by a partition and sorted; a whole column sorted
    only when its base lies below that (its highest rows mostly after the origin)."""

    def __init__(self, rows: FloatArray, finite: BoolArray, weights: FloatArray) -> None:
        n_rows = rows.shape[1]
        self.rows, self.weights = rows, weights
        # A missing sample (no weight) ranks lowest: the top searched first holds samples only.
        self.keys = np.where(finite, rows, -np.inf)
        self.start = n_rows - min(n_rows, max(64, int(np.ceil(TAIL_SHARE * n_rows))))
        top = np.argpartition(self.keys, self.start, axis=1)[:, self.start :]
        self.order = np.take_along_axis(
            top, np.argsort(np.take_along_axis(self.keys, top, axis=1), axis=1), axis=1
        )
        self.values = np.take_along_axis(rows, self.order, axis=1)
        self.sorted_weights = np.take_along_axis(weights, self.order, axis=1)
        self._whole: dict[int, tuple[IntArray, FloatArray, FloatArray]] = {}

    def bases(self, totals: FloatArray, origin: int, levels: FloatArray) -> FloatArray:
        """Per level (rows) and column, the recency-weighted quantile of the rows before `origin`: the
        smallest sorted value whose cumulative weight reaches level x total (as weighted_quantiles),
        found from the top, where the weight at and above it first exceeds (1 - level) x total."""
        thresholds = (1.0 - levels)[:, None] * totals[None, :]
        inside = _count_above(self.order, self.sorted_weights, origin, thresholds)
        found: FloatArray = np.full(thresholds.shape, np.nan)
        levels_hit, columns_hit = np.nonzero(inside > 0)
        found[levels_hit, columns_hit] = self.values[columns_hit, inside[levels_hit, columns_hit] - 1]
        missed = (inside == 0) & (totals > 0)[None, :]
        for column in np.flatnonzero(missed.any(axis=0)):  # the whole column, once for its levels
            order, values, weights = self._column(int(column))
            counts = _count_above(
                order[None, :], weights[None, :], origin, thresholds[:, column : column + 1]
            )
            levels_missed = missed[:, column]
            found[levels_missed, column] = values[np.maximum(counts[levels_missed, 0] - 1, 0)]
        return found

    def _column(self, column: int) -> tuple[IntArray, FloatArray, FloatArray]:
        if column not in self._whole:
            order = np.argsort(self.keys[column])
            self._whole[column] = (order, self.rows[column, order], self.weights[column, order])
        return self._whole[column]


def _count_above(order: IntArray, weights: FloatArray, origin: int, thresholds: FloatArray) -> IntArray:
    """Per threshold (rows of `thresholds`) and row of sorted rows: how many leading positions have more
    than the threshold of the weight of the rows before `origin` at or above them (the weight above is
    non-increasing along a row)."""
    masked = np.where(order < origin, weights, 0.0)
    above = np.cumsum(masked[:, ::-1], axis=1)[:, ::-1]
    counted: IntArray = (above[None, :, :] > thresholds[:, :, None]).sum(axis=2)
    return counted


def best(under: FloatArray, slack: FloatArray, price: float) -> Choice:
    """The base and multiplier (curves of one series: bases x multipliers) minimising slack + price x
    under, with the backtested under and slack there."""
    base, step = np.unravel_index(int(np.argmin(slack + price * under)), under.shape)
    return Choice(
        list(BASES)[base], float(MULTIPLIERS[step]), float(under[base, step]), float(slack[base, step])
    )
