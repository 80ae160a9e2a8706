"""Sizing quality on every real trace set at hand: under-provisioning and slack against baselines and
the oracle floor, one table per set, in one run.

Protocol (as `khronika plan size --resource R --horizon <evaluation days>` would be used): each series is
sized on its first 70 % and judged on the remaining 30 %.
  under  share of evaluation samples above the size;
  slack  mean over evaluation samples of (size - min(usage, size)) / size.
Cells are means over a set's series (under / slack, in percent); `<=1 %` counts series at or below 1 %
under, `worst` is the largest under of one series.

Methods, each from the training part only:
  khronika        the planner as `khronika plan size` sizes (calibration "backtest", the default): each
                  series' own rolling-origin backtest prices the base (its forecast p95, p99 or
                  maximum) and the multiplier on it (--target-under, default 1 %);
  khronika fixed  the planner with `calibration = "fixed"` (max(p95 x 1.15, p99.9), the rule before);
  p99 x 1.15      the training p99 with 15 % headroom;
  krr p95         krr's simple CPU rule;
  VPA p90 +15 %   a decaying histogram (24 h half-life), p90, 15 % margin;
  oracle          not a method: the evaluation part's own p99, the least slack any fixed size can have
                  at <= 1 % under (it knows the future: the floor).

Sets: NAB (realAWSCloudwatch, one `timestamp,value` CSV per series, a folder) and the Azure 2017 VM set
(one wide CSV, `timestamp` then one column per VM). Paths are arguments; the repo carries NAB
(src/khronika_ops/data/traces/nab) and an attributed 8-VM sample of the Azure set (tests/data/azure).

Run: .venv/bin/python benchmarks/quality.py [--nab DIR] [--azure FILE ...] [--target-under 1] [--per-series]
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

# The measures and baselines the NAB benchmark defines (this script's folder is on sys.path).
from quality_nab import evaluate, oracle_recommendation, vpa_recommendation  # noqa: E402

from khronika_ops.planner.clean import clean  # noqa: E402
from khronika_ops.planner.forecast import forecast  # noqa: E402
from khronika_ops.planner.ingest import read_csv  # noqa: E402
from khronika_ops.planner.models import FloatArray, ForecastSettings, RawSeries, SeriesKey  # noqa: E402
from khronika_ops.planner.size import SizingPolicy, size_series  # noqa: E402
from khronika_ops.planner.units import Resource  # noqa: E402

DAY = 86400.0
TRAIN_SHARE = 0.7
OVER = 0.01  # the table's "<= 1 %" (the oracle's, in quality_nab)


@dataclass(frozen=True)
class Trace:
    name: str
    resource: Resource
    unit: str
    times: FloatArray
    values: FloatArray


def nab_traces(folder: Path) -> Iterator[Trace]:
    for path in sorted(folder.glob("*.csv")):
        raw = read_csv(path)[0]
        name = path.stem
        resource = Resource.CPU if "cpu" in name or "grok" in name else Resource.REQUESTS
        yield Trace(name, resource, raw.unit, raw.timestamps, raw.values)


def wide_traces(path: Path) -> Iterator[Trace]:
    """A wide CSV: `timestamp` (UTC `YYYY-MM-DD HH:MM:SS` or epoch seconds), then one column per series."""
    with path.open(newline="") as handle:
        rows = list(csv.reader(handle))
    header, body = rows[0], rows[1:]
    times = np.array([_epoch(row[0]) for row in body])
    table = np.array([[float(cell) if cell else np.nan for cell in row[1:]] for row in body])
    for column, name in enumerate(header[1:]):
        yield Trace(name, Resource.CPU, "percent", times, table[:, column])


def _epoch(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return float(np.datetime64(text.replace(" ", "T"), "s").astype(np.int64))


def sizes(
    trace: Trace, policy: SizingPolicy, calibrated: SizingPolicy
) -> tuple[dict[str, float], FloatArray]:
    finite = np.isfinite(trace.values)
    times, values = trace.times[finite], trace.values[finite]
    cut = times[0] + TRAIN_SHARE * (times[-1] - times[0])
    train = times < cut
    future = values[~train]
    horizon = (times[-1] - cut) / DAY
    raw = RawSeries(
        key=SeriesKey(metric=trace.name),
        unit=trace.unit,
        source=trace.name,
        timestamps=times[train],
        values=values[train],
    )
    predicted = forecast(clean(raw), ForecastSettings(horizon_days=horizon, backtest=True))
    found: dict[str, float] = {}
    for label, chosen in (("khronika", calibrated), ("khronika fixed", policy)):
        result = size_series(predicted, trace.resource, chosen, source=trace.name)
        if result.recommended is None:
            raise SystemExit(f"{trace.name}: no size ({result.reason})")
        found[label] = result.recommended
    history = values[train]
    found["p99 x 1.15"] = float(np.quantile(history, 0.99)) * 1.15
    found["krr p95"] = float(np.quantile(history, 0.95))
    found["VPA p90 +15 %"] = vpa_recommendation(times[train], history)
    found["oracle"] = oracle_recommendation(future)
    return found, future


def table(
    label: str, traces: list[Trace], policy: SizingPolicy, calibrated: SizingPolicy, per_series: bool
) -> dict[str, list[tuple[float, float]]]:
    results: dict[str, list[tuple[float, float]]] = {}
    names: list[str] = []
    for trace in traces:
        found, future = sizes(trace, policy, calibrated)
        names.append(trace.name)
        for method, size in found.items():
            results.setdefault(method, []).append(evaluate(size, future))
    print(f"\n{label}: {len(traces)} series, sized on the first {TRAIN_SHARE:.0%}, judged on the rest")
    print(f"{'method':16s}{'under %':>9s}{'slack %':>9s}{'<=1 %':>9s}{'worst %':>9s}")
    for method, figures in results.items():
        under = np.array([u for u, _ in figures]) * 100
        slack = np.array([s for _, s in figures]) * 100
        print(
            f"{method:16s}{under.mean():9.2f}{slack.mean():9.1f}"
            f"{int((under <= OVER * 100 + 1e-9).sum()):>5d}/{len(figures):<3d}{under.max():9.2f}"
        )
    floor = np.mean([s for _, s in results["oracle"]]) * 100
    for method in ("khronika", "khronika fixed"):
        mine = np.mean([s for _, s in results[method]]) * 100
        print(f"{method} slack above the oracle floor: {mine - floor:+.1f} points")
    # "Worse" as the goal reads it: a series the fixed rule kept at or below 1 % under now above it, or
    # a series already above 1 % now further above.
    worse = [
        name
        for name, (mine, _), (before, _) in zip(
            names, results["khronika"], results["khronika fixed"], strict=True
        )
        if mine > before + 1e-12 and mine > OVER + 1e-12
    ]
    print(
        f"series where khronika is worse than khronika fixed: {len(worse)}"
        + (f" ({', '.join(worse)})" if worse else "")
    )
    if per_series:
        print(f"{'series':34s}" + "".join(f"{m[:14]:>16s}" for m in results))
        for index, name in enumerate(names):
            cells = "".join(
                f"{results[m][index][0] * 100:7.2f}/{results[m][index][1] * 100:5.1f}  " for m in results
            )
            print(f"{name[:34]:34s}{cells}")
    return results


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--nab",
        type=Path,
        default=REPO / "src" / "khronika_ops" / "data" / "traces" / "nab",
        help="NAB folder",
    )
    parser.add_argument(
        "--azure", type=Path, action="append", default=None, help="wide CSV of VM series (repeatable)"
    )
    parser.add_argument("--target-under", type=float, default=1.0, help="percent, for khronika (default 1)")
    parser.add_argument("--per-series", action="store_true")
    args = parser.parse_args()
    policy = SizingPolicy(calibration="fixed")
    calibrated = SizingPolicy(target_under=args.target_under / 100)
    started = time.process_time()
    sets: list[tuple[str, Callable[[], list[Trace]]]] = [
        ("NAB " + str(args.nab), lambda: list(nab_traces(args.nab)))
    ]
    for path in args.azure or [REPO / "tests" / "data" / "azure" / "azure_vm_max_cpu_sample.csv"]:
        sets.append((f"Azure {path}", lambda path=path: list(wide_traces(path))))
    for label, load in sets:
        table(label, load(), policy, calibrated, args.per_series)
    print(f"\n{time.process_time() - started:.1f} CPU-seconds")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
