"""Backtest each series on its own history: what a size would have cost in under-provisioning and slack.

Rolling origins, as the quality benchmark judges a plan: at each origin the recency-weighted p99 of the
history before it is the base, and the next block (as long as the horizon, at most a quarter of the
history) is what happened after. For every multiplier m of a fixed grid, the block gives
  under(m)  the share of its samples above m x base;
  slack(m)  the mean of (m x base - min(sample, m x base)) / (m x base).
Averaged over the origins, these are the series' own cost curves; `size.py` picks the multiplier that
minimises slack + price x under (`SizingPolicy.calibration = "backtest"`) and applies it to the
forecast's p99 at the horizon. Origins start once a quarter of the history (at least a day) lies before
them and step by half a block; series with no origin (short history) get no curve and keep the fixed rule.

Vectorised over the columns of a block of series sharing one grid (NaN = no sample).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from khronika_ops.planner.models import FloatArray

#: 0.7 ... 4.0 times the base, 1.5 % apart.
MULTIPLIERS: FloatArray = np.exp(np.linspace(np.log(0.7), np.log(4.0), 120))
BASE_LEVEL = 0.99
BLOCK_SHARE = 0.25
STRIDE_SHARE = 0.5
MIN_HISTORY_SHARE = 0.25
MIN_HISTORY_DAYS = 1.0


class Curves(NamedTuple):
    """Per series (columns): mean under and slack for each multiplier (rows), and the origins used."""

    under: FloatArray  # len(MULTIPLIERS) x series
    slack: FloatArray
    origins: FloatArray  # series


def curves(matrix: FloatArray, step_days: float, horizon_days: float, half_life_days: float) -> Curves | None:
    """The cost curves of every column of `matrix` (rows = grid steps); None when no origin fits."""
    # Imported here: forecast.py imports this module.
    from khronika_ops.planner.forecast import weighted_quantiles

    n_rows, n_series = matrix.shape
    span_days = (n_rows - 1) * step_days
    block = round(min(horizon_days, span_days * BLOCK_SHARE) / step_days)
    first_origin = int(np.ceil(max(MIN_HISTORY_DAYS, span_days * MIN_HISTORY_SHARE) / step_days))
    if block < 2 or n_rows - block < first_origin:
        return None
    stride = max(1, round(block * STRIDE_SHARE))
    under = np.zeros((MULTIPLIERS.size, n_series))
    slack = np.zeros((MULTIPLIERS.size, n_series))
    origins = np.zeros(n_series)
    origin = n_rows - block
    while origin >= first_origin:
        ages = (origin - np.arange(origin)) * step_days
        base = weighted_quantiles(matrix[:origin], 0.5 ** (ages / half_life_days), [BASE_LEVEL])[0]
        future = matrix[origin : origin + block]
        finite = np.isfinite(future)
        counts = finite.sum(axis=0)
        usable = np.isfinite(base) & (base > 0) & (counts > 0)
        ratios = np.where(finite & usable[None, :], future / np.where(usable, base, 1.0)[None, :], np.nan)
        ordered = np.sort(ratios, axis=0)  # NaN last
        shares = np.where(usable, 1.0 / np.maximum(counts, 1), 0.0)
        cumulative = np.vstack([np.zeros(n_series), np.nancumsum(ordered, axis=0)])
        for row, multiplier in enumerate(MULTIPLIERS):
            # samples at or below the multiplier, per column (sorted: a count of a prefix)
            below = np.sum(ordered <= multiplier, axis=0)
            capped = cumulative[below, np.arange(n_series)] + multiplier * (counts - below)
            under[row] += (counts - below) * shares
            slack[row] += np.where(usable, 1.0 - capped * shares / multiplier, 0.0)
        origins += usable
        origin -= stride
    if not origins.any():
        return None
    with np.errstate(invalid="ignore", divide="ignore"):
        return Curves(under / origins, slack / origins, origins)


def best_multiplier(under: FloatArray, slack: FloatArray, price: float) -> tuple[float, float, float]:
    """(multiplier, its backtested under, its backtested slack) minimising slack + price x under."""
    index = int(np.argmin(slack + price * under))
    return float(MULTIPLIERS[index]), float(under[index]), float(slack[index])
