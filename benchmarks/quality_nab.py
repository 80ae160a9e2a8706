"""Quality benchmark on the NAB realAWSCloudwatch traces (tests/data/nab).

For each series: size on the first 10 days, evaluate on the rest. Under-provisioned = share of
evaluation intervals whose load exceeds the recommendation; slack = mean over intervals of
max(recommendation - load, 0) / recommendation, the unused share of what was provisioned (Autopilot's
relative slack, EuroSys 2020, bounded to 0..1 so a starved interval is not counted as negative slack). Baselines, computed on the same 10 days:
- krr-simple: p95 (its CPU rule) and max x 1.15 (its memory rule);
- VPA-style: decaying histogram with a 24 h half-life, p90 + 15 % (weighted quantile, no buckets).

Run: nice .venv/bin/python benchmarks/quality_nab.py [--percentile p99.5 --margin 0.05 ...]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from khronika_ops.planner.clean import clean
from khronika_ops.planner.forecast import forecast, weighted_quantiles
from khronika_ops.planner.ingest import read_csv
from khronika_ops.planner.models import CleanSeries, FloatArray, ForecastSettings
from khronika_ops.planner.size import SizingPolicy, size_series
from khronika_ops.planner.units import Resource

DATA = Path(__file__).resolve().parent.parent / "tests" / "data" / "nab"
TRAIN_DAYS = 10.0
DAY = 86400.0


def resource_of(name: str) -> Resource:
    return Resource.CPU if "cpu" in name or "grok" in name else Resource.REQUESTS


def vpa_recommendation(times: FloatArray, values: FloatArray) -> float:
    weights = 0.5 ** ((times[-1] - times) / DAY)
    return float(weighted_quantiles(values[:, None], weights, [0.90])[0, 0]) * 1.15


def evaluate(recommendation: float, future: FloatArray) -> tuple[float, float]:
    under = float(np.mean(future > recommendation))
    if recommendation <= 0:
        return under, 0.0
    slack = float(np.mean(np.clip(recommendation - future, 0.0, None))) / recommendation
    return under, slack


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--percentile", default=SizingPolicy().coverage_percentile)
    parser.add_argument("--margin", type=float, default=SizingPolicy().coverage_margin)
    parser.add_argument("--half-life", type=float, default=ForecastSettings().half_life_days)
    parser.add_argument("--trend-t", type=float, default=ForecastSettings().trend_t)
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args()
    policy = SizingPolicy(coverage_percentile=args.percentile, coverage_margin=args.margin)
    rows: list[tuple[str, dict[str, tuple[float, float]]]] = []
    for path in sorted(DATA.glob("*.csv")):
        raw = read_csv(path)[0]
        series = clean(raw)
        cut = series.start + TRAIN_DAYS * DAY
        train_mask = series.timestamps < cut
        train = CleanSeries(
            key=series.key,
            unit=series.unit,
            source=series.source,
            start=series.start,
            step=series.step,
            values=series.values[train_mask],
            report=series.report,
        )
        future = raw.values[(raw.timestamps >= cut) & np.isfinite(raw.values)]
        train_times = raw.timestamps[raw.timestamps < cut]
        train_values = raw.values[raw.timestamps < cut]
        if future.size == 0:
            if not args.quiet:
                print(f"{path.name}: shorter than {TRAIN_DAYS:g} days, skipped")
            continue
        horizon = (raw.timestamps[-1] - cut) / DAY
        settings = ForecastSettings(horizon_days=horizon, half_life_days=args.half_life, trend_t=args.trend_t)
        result = size_series(forecast(train, settings), resource_of(path.name), policy, source=str(path))
        assert result.recommended is not None
        results = {
            "khronika": evaluate(result.recommended, future),
            "krr p95": evaluate(float(np.quantile(train_values, 0.95)), future),
            "krr max*1.15": evaluate(float(train_values.max()) * 1.15, future),
            "vpa p90+15%": evaluate(vpa_recommendation(train_times, train_values), future),
        }
        rows.append((path.name, results))
    methods = list(rows[0][1])
    if not args.quiet:
        header = f"{'series':42s}" + "".join(f"{m:>24s}" for m in methods)
        print(header + "\n" + " " * 42 + "".join(f"{'under %':>12s}{'slack %':>12s}" for _ in methods))
        for name, results in rows:
            cells = "".join(f"{results[m][0] * 100:12.2f}{results[m][1] * 100:12.1f}" for m in methods)
            print(f"{name:42s}{cells}")
    print(f"\nsummary over {len(rows)} series (train {TRAIN_DAYS:g} d, evaluate the rest)")
    print(
        f"{'method':16s}{'mean under %':>14s}{'median under %':>16s}{'series <=1 %':>14s}{'mean slack %':>14s}"
    )
    for method in methods:
        under = np.array([results[method][0] for _, results in rows])
        slack = np.array([results[method][1] for _, results in rows])
        print(
            f"{method:16s}{under.mean() * 100:14.2f}{np.median(under) * 100:16.2f}"
            f"{int((under <= 0.01).sum()):>9d}/{len(rows):<4d}{slack.mean() * 100:14.1f}"
        )


if __name__ == "__main__":
    main()
