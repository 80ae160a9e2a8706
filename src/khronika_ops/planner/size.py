"""Size: turn a forecast into a recommended capacity per resource, with the reason for each figure.

Every candidate a method considers is kept in `candidates` (the Netflix "excuses" idea: you can see
what lost and by how much); the larger candidate wins. Defaults and their sources: docs/planner.md.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from khronika_ops.planner import backtest, erlang
from khronika_ops.planner.forecast import DEMAND_QUANTILES
from khronika_ops.planner.models import BacktestCurve, CleanReport, Forecast, SizeResult, WindowSize
from khronika_ops.planner.units import Resource

#: The price of under-provisioning in slack at a 1 % target (slack + price x under is minimised per
#: series); inversely proportional to the target. Chosen on the Azure VM set (docs/planner.md).
UNDER_PRICE_AT_1_PERCENT = 12.0
#: With calibration, the highest load of the history (moved to the horizon) is also covered when it is
#: within this factor of the p99: a thin-tailed series is covered to its maximum for a few percent
#: more, which is what keeps a steady series whole when its level creeps up (NAB, docs/planner.md).
THIN_TAIL = 1.1


class SizingPolicy(BaseModel):
    model_config = ConfigDict(frozen=True)

    # CPU: percentile of forecast demand plus headroom (krr uses p95; the headroom follows VPA's 15 %).
    cpu_percentile: str = "p95"
    cpu_headroom: float = Field(0.15, ge=0)
    # Coverage: the demand quantile that keeps under-provisioned intervals at or below 1 % (chosen on the
    # NAB benchmark: p99.5 missed the goal on 4 of 16 series, p99.9 on 2, both level shifts).
    coverage_percentile: str = "p99.9"
    coverage_margin: float = Field(0.0, ge=0)
    # RAM: peak x 1.15 (VPA's safety margin), never below the observed maximum.
    memory_margin: float = Field(1.15, ge=1)
    # Disk: keep filesystems at most 85 % used (common alert threshold; ext4 reserves 5 % on top).
    disk_max_usage: float = Field(0.85, gt=0, le=1)
    # The request rate Erlang C and the GPU count are sized for: a peak, not an average.
    request_peak_percentile: str = "p99.9"
    # Disk IOPS/throughput (the disk class) and NIC traffic are compared with the hardware at this level.
    io_percentile: str = "p99"
    # Erlang C queueing target for request-serving modules.
    erlang_service_level: float = Field(0.8, gt=0, lt=1)
    # CPU, memory and request rates: "backtest" (the default) = the forecast's p95, p99 or maximum times a
    # multiplier, the pair the series' own backtest (ForecastSettings.backtest) prices best at
    # `target_under`, and the history's maximum where it is within THIN_TAIL of the p99; "fixed" = the
    # rules above (CPU max(cpu_percentile x headroom, coverage_percentile), memory peak x
    # memory_margin), also used where the history is too short for a backtest.
    calibration: Literal["fixed", "backtest"] = "backtest"
    target_under: float = Field(0.01, gt=0, lt=0.5)

    @property
    def description(self) -> str:
        """The sizing rule in one sentence, for the reports."""
        if self.calibration == "backtest":
            return (
                f"CPU, memory and request rates calibrated on each series' own history: the base (its "
                f"forecast p95, p99 or maximum) and the multiplier on it that its rolling-origin backtest "
                f"prices best at a {self.target_under:.2%} under-provisioning target; the fixed rules where "
                f"the history is too short; disk at most {self.disk_max_usage:.0%} used"
            )
        return (
            f"fixed rules: CPU and rates max({self.cpu_percentile} x {1 + self.cpu_headroom:g}, "
            f"{self.coverage_percentile}), memory forecast peak x {self.memory_margin:g}; disk at most "
            f"{self.disk_max_usage:.0%} used"
        )

    @property
    def under_price(self) -> float:
        return UNDER_PRICE_AT_1_PERCENT * 0.01 / self.target_under

    @field_validator("cpu_percentile", "coverage_percentile", "request_peak_percentile", "io_percentile")
    @classmethod
    def _known_quantile(cls, value: str) -> str:
        if value not in DEMAND_QUANTILES:
            raise ValueError(f"{value!r} is not a demand quantile ({', '.join(DEMAND_QUANTILES)})")
        return value


def round_figure(value: float) -> float:
    """Six significant digits: stable JSON across BLAS builds and readable figures."""
    if value == 0 or not math.isfinite(value):
        return value
    return float(f"{value:.6g}")


def size_series(
    forecast: Forecast,
    resource: Resource,
    policy: SizingPolicy,
    *,
    source: str,
    cleaning: CleanReport | None = None,
    extra_bytes: float = 0.0,
    capacity: float | None = None,
) -> SizeResult:
    """Size one series. `extra_bytes` is disk room for release images and backups; `capacity` the
    current size (disk: to report days until full)."""
    if forecast.insufficient_data:
        return _result(
            forecast,
            resource,
            source,
            cleaning,
            recommended=None,
            method="none",
            insufficient_data=True,
            reason=f"insufficient data: {forecast.reason}",
        )
    demand = forecast.demand
    peak = forecast.forecast_peak or 0.0
    extra: dict[str, object] = {}
    candidates, method = _candidates(resource, policy, demand, peak, extra_bytes, curve=forecast.backtest)
    if resource is Resource.DISK and capacity is not None:
        extra["days_until_full"] = _days_until(capacity, forecast)
        extra["days_until_max_usage"] = _days_until(capacity * policy.disk_max_usage, forecast)
    winner = max(candidates, key=lambda name: candidates[name])
    recommended = candidates[winner]
    reason = (
        f"{winner} wins ({round_figure(recommended):g} {forecast.unit}); horizon {forecast.horizon_days:g} d, "
        f"{forecast.points_used} points over {forecast.history_days:.1f} d; trend: {forecast.trend_reason}"
    )
    if forecast.outliers_flagged:
        reason += f"; {forecast.outliers_flagged} outlier points flagged and kept"
    return _result(
        forecast,
        resource,
        source,
        cleaning,
        recommended=round_figure(recommended),
        method=method,
        reason=reason,
        observed={name: round_figure(value) for name, value in forecast.observed.items()},
        forecast_peak=round_figure(peak),
        demand={name: round_figure(value) for name, value in demand.items()},
        candidates={name: round_figure(value) for name, value in candidates.items()},
        outliers_flagged=forecast.outliers_flagged,
        outlier_timestamps=forecast.outlier_timestamps,
        trend_per_day=round_figure(forecast.trend_per_day),
        trend_used=forecast.trend_used,
        level_shift=forecast.level_shift,
        extra=extra,
        band=forecast.band,
        at_window=_at_window(forecast, resource, policy, extra_bytes),
    )


def _candidates(
    resource: Resource,
    policy: SizingPolicy,
    demand: dict[str, float],
    peak: float,
    extra_bytes: float,
    *,
    curve: BacktestCurve | None = None,
) -> tuple[dict[str, float], str]:
    """Every size the resource's rule considers for this demand and peak, and the rule in words."""
    if resource is Resource.DISK:
        needed = max(peak, demand["max"]) + extra_bytes
        method = f"disk: (forecast used at horizon + reserved {extra_bytes:g}) / {policy.disk_max_usage:g} max usage"
        return {f"used_at_horizon_over_{policy.disk_max_usage:g}": needed / policy.disk_max_usage}, method
    if policy.calibration == "backtest" and curve is not None:
        return _calibrated(resource, policy, demand, curve)
    if resource is Resource.MEMORY:
        candidates = {
            f"forecast_peak_x{policy.memory_margin:g}": peak * policy.memory_margin,
            "observed_max_at_horizon": demand["max"],
        }
        method = (
            f"memory: max(forecast peak x {policy.memory_margin:g}, observed maximum moved to the horizon)"
        )
        return candidates, method
    headroom = 1.0 + policy.cpu_headroom
    coverage = demand[policy.coverage_percentile] * (1.0 + policy.coverage_margin)
    candidates = {
        f"{policy.cpu_percentile}_plus_{policy.cpu_headroom:.0%}_headroom": demand[policy.cpu_percentile]
        * headroom,
        f"{policy.coverage_percentile}_plus_{policy.coverage_margin:.0%}": coverage,
    }
    method = (
        f"{resource.value}: max({policy.cpu_percentile} forecast demand x {headroom:g}, "
        f"{policy.coverage_percentile} forecast demand x {1 + policy.coverage_margin:g})"
    )
    return candidates, method


def _calibrated(
    resource: Resource, policy: SizingPolicy, demand: dict[str, float], curve: BacktestCurve
) -> tuple[dict[str, float], str]:
    """The backtested base and multiplier on the forecast, and the maximum where the tail is thin."""
    choice = backtest.best(np.asarray(curve.under), np.asarray(curve.slack), policy.under_price)
    candidates = {
        f"{choice.base}_x{choice.multiplier:.3g}_backtested": demand[choice.base] * choice.multiplier
    }
    thin = demand["max"] <= THIN_TAIL * demand["p99"]
    if thin:
        candidates[f"max_within_{THIN_TAIL:g}_of_p99"] = demand["max"]
    method = (
        f"{resource.value}: forecast {choice.base} x {choice.multiplier:.3g}, the base and multiplier its "
        f"own history prices best at a {policy.target_under:.2%} under-provisioning target (backtested over "
        f"{curve.origins} origins: {choice.under:.2%} under, {choice.slack:.1%} slack)"
    )
    if thin:
        method += f"; the history's maximum is within {THIN_TAIL:g} x its p99, so it is covered too"
    return candidates, method


def _at_window(
    forecast: Forecast, resource: Resource, policy: SizingPolicy, extra_bytes: float
) -> WindowSize | None:
    """The same rule applied to the load expected at the next maintenance window."""
    window = forecast.window
    if window is None:
        return None
    candidates, _ = _candidates(
        resource, policy, window.demand, window.forecast_peak, extra_bytes, curve=forecast.backtest
    )
    return WindowSize(
        at=window.at,
        days=window.days,
        recommended=round_figure(max(candidates.values())),
        forecast_peak=round_figure(window.forecast_peak),
        demand={name: round_figure(value) for name, value in window.demand.items()},
        candidates={name: round_figure(value) for name, value in candidates.items()},
    )


def _result(
    forecast: Forecast, resource: Resource, source: str, cleaning: CleanReport | None, **figures: Any
) -> SizeResult:
    return SizeResult(
        unit=forecast.unit,
        resource=resource.value,
        series=str(forecast.key),
        source=source,
        horizon_days=forecast.horizon_days,
        points_used=forecast.points_used,
        history_days=forecast.history_days,
        cleaning=cleaning,
        **figures,
    )


def _days_until(limit: float, forecast: Forecast) -> float | None:
    """Days until the current level reaches `limit` along the used trend; None if it never does."""
    level = forecast.observed.get("max", 0.0)
    if level >= limit:
        return 0.0
    if not forecast.trend_used or forecast.trend_per_day <= 0:
        return None
    return round_figure((limit - level) / forecast.trend_per_day)


def erlang_cores(
    peak_requests_per_second: float,
    cpu_seconds_per_request: float,
    latency_target_seconds: float,
    policy: SizingPolicy,
) -> erlang.ErlangResult:
    """Cores so that `erlang_service_level` of requests wait at most the latency target for a core."""
    return erlang.servers_for(
        peak_requests_per_second, cpu_seconds_per_request, latency_target_seconds, policy.erlang_service_level
    )
