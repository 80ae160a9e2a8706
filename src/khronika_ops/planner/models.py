"""Typed values passed between the pipeline stages: ingest -> clean -> forecast -> size.

Series carry numpy arrays (validated as arrays, not copied element by element, so 2,000 series stay
cheap); everything that ends up in a report is plain data that dumps to JSON.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


class SeriesKey(BaseModel):
    """Identity of a series: metric (or column) name plus sorted labels."""

    model_config = ConfigDict(frozen=True)

    metric: str
    labels: tuple[tuple[str, str], ...] = ()

    def label(self, name: str) -> str | None:
        return dict(self.labels).get(name)

    def __str__(self) -> str:
        if not self.labels:
            return self.metric
        inner = ",".join(f'{name}="{value}"' for name, value in self.labels)
        return f"{self.metric}{{{inner}}}"


class RawSeries(BaseModel):
    """A series as read: timestamps in epoch seconds (ascending, maybe repeated), values as given."""

    model_config = ConfigDict(arbitrary_types_allowed=True, frozen=True)

    key: SeriesKey
    unit: str
    counter: bool = False
    source: str
    timestamps: FloatArray
    values: FloatArray
    # 1-based file line of each point, so later checks can name the line; None for API sources.
    lines: IntArray | None = None
    resorted: bool = False


class CleanReport(BaseModel):
    """What cleaning found and did; shown as evidence next to every figure."""

    points_in: int
    points_used: int
    step_seconds: float
    duplicates_merged: int = 0
    counter_resets: int = 0
    missing_values: int = 0
    gaps: int = 0
    longest_gap_seconds: float = 0.0
    resorted: bool = False


class CleanSeries(BaseModel):
    """A series on a regular grid `start + i * step`; NaN marks a gap (never filled in)."""

    model_config = ConfigDict(arbitrary_types_allowed=True, frozen=True)

    key: SeriesKey
    unit: str
    source: str
    start: float
    step: float
    values: FloatArray
    report: CleanReport

    @property
    def timestamps(self) -> FloatArray:
        return self.start + self.step * np.arange(self.values.size, dtype=np.float64)


#: What-if bounds: a load multiplier above 0 and at most 1000; growth above -100 % a month (-100 would
#: be no load at all, below it a negative one) and at most 1000 % (x11 a month).
LOAD_FACTOR_MAX = 1000.0
GROWTH_MIN = -100.0
GROWTH_MAX = 1000.0


class ForecastSettings(BaseModel):
    """Forecast knobs; defaults are documented with their sources in docs/planner.md."""

    # No NaN or infinity anywhere: a what-if of `inf` would print a plan of Infinity (not JSON).
    model_config = ConfigDict(frozen=True, allow_inf_nan=False)

    horizon_days: float = Field(90.0, gt=0)
    # Epoch seconds of the next maintenance window, if known: a second forecast point (Forecast.window,
    # SizeResult.at_window) sized by the same rules as the horizon.
    maintenance_window: float | None = None
    # What-if: multiply all load by k, and compound growth of p percent per 30 days.
    load_factor: float = Field(1.0, gt=0, le=LOAD_FACTOR_MAX)
    growth_percent_per_month: float = Field(0.0, gt=GROWTH_MIN, le=GROWTH_MAX)
    daily_harmonics: int = Field(4, ge=0)
    weekly_harmonics: int = Field(3, ge=0)
    # Robust z-score beyond which a residual is flagged as an outlier (kept in the data).
    outlier_z: float = 6.0
    # A fitted trend is used only when its AR(1)-corrected t-statistic exceeds this.
    trend_t: float = 3.0
    # Weight of a sample halves every this many days back from the end of history (VPA-style decay).
    half_life_days: float = 7.0
    # Level shifts (forecast._level_shifts): each side at least this long, a two-level error below this
    # share of a straight line's, and a change of at least this many spreads of the bins around levels.
    level_shift_min_days: float = Field(1.0, gt=0)
    level_shift_error_ratio: float = Field(0.5, gt=0, le=1)
    level_shift_z: float = Field(4.0, ge=0)
    min_history_days: float = 1.0
    min_points: int = 48
    keep_band: bool = False
    # Backtest each series on its own history (planner/backtest.py), for SizingPolicy.calibration
    # "backtest" (the default); without it every series is sized by the fixed rules.
    backtest: bool = True


class ForecastBand(BaseModel):
    """History and forecast curves for plots (downsampled)."""

    model_config = ConfigDict(arbitrary_types_allowed=True, frozen=True)

    history_t: FloatArray
    history_y: FloatArray
    future_t: FloatArray
    future_mean: FloatArray
    future_lower: FloatArray
    future_upper: FloatArray


class ForecastPoint(BaseModel):
    """The same figures as at the horizon, at another moment (the next maintenance window)."""

    at: str  # ISO 8601, UTC
    days: float  # after the end of history
    demand: dict[str, float]
    forecast_peak: float
    growth_multiplier: float = 1.0


class BacktestCurve(BaseModel):
    """A series' own cost curves from rolling-origin backtests (planner/backtest.py): for each base of
    backtest.BASES and multiplier of backtest.MULTIPLIERS, the mean share of samples above multiplier x
    base and the mean slack."""

    model_config = ConfigDict(frozen=True)

    under: list[list[float]]
    slack: list[list[float]]
    origins: int


class Forecast(BaseModel):
    """Per-series forecast summary: fitted model, demand at the horizon, evidence."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    key: SeriesKey
    unit: str
    insufficient_data: bool = False
    reason: str | None = None
    history_days: float = 0.0
    horizon_days: float = 0.0
    points_used: int = 0
    observed: dict[str, float] = Field(default_factory=dict)
    # Quantiles of the load expected at the end of the horizon (history moved along the trend).
    demand: dict[str, float] = Field(default_factory=dict)
    forecast_peak: float | None = None
    # `--window`: the figures at the next maintenance window, when it falls after the history.
    window: ForecastPoint | None = None
    trend_per_day: float = 0.0
    trend_used: bool = False
    trend_reason: str = ""
    # A step change in level found in the history: at (ISO time), before, after, days_since.
    level_shift: dict[str, float | str] | None = None
    seasonality: list[str] = Field(default_factory=list)
    residual_p99: float = 0.0
    outliers_flagged: int = 0
    outlier_timestamps: list[str] = Field(default_factory=list)
    growth_multiplier: float = 1.0
    band: ForecastBand | None = Field(default=None, exclude=True)
    backtest: BacktestCurve | None = Field(default=None, exclude=True)


class WindowSize(BaseModel):
    """A figure sized for the next maintenance window instead of the horizon (`--window`)."""

    at: str
    days: float
    recommended: float
    forecast_peak: float
    demand: dict[str, float] = Field(default_factory=dict)
    candidates: dict[str, float] = Field(default_factory=dict)


class SizeResult(BaseModel):
    """One sized figure with the reason behind it (the `plan size` JSON)."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    recommended: float | None
    unit: str
    method: str
    resource: str
    insufficient_data: bool = False
    reason: str
    series: str
    source: str
    horizon_days: float
    observed: dict[str, float] = Field(default_factory=dict)
    forecast_peak: float | None = None
    demand: dict[str, float] = Field(default_factory=dict)
    # Every candidate the method considered; the largest wins unless the method says otherwise.
    candidates: dict[str, float] = Field(default_factory=dict)
    points_used: int = 0
    history_days: float = 0.0
    outliers_flagged: int = 0
    outlier_timestamps: list[str] = Field(default_factory=list)
    trend_per_day: float = 0.0
    trend_used: bool = False
    level_shift: dict[str, float | str] | None = None
    cleaning: CleanReport | None = None
    extra: dict[str, Any] = Field(default_factory=dict)
    at_window: WindowSize | None = None
    band: ForecastBand | None = Field(default=None, exclude=True)
