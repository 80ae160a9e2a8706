"""Sizing calibrated on each series' own history (planner/backtest.py, SizingPolicy.calibration)."""

from __future__ import annotations

import numpy as np
import pytest

from khronika_ops.planner import backtest
from khronika_ops.planner.forecast import forecast, weighted_quantiles
from khronika_ops.planner.models import CleanSeries, ForecastSettings
from khronika_ops.planner.size import SizingPolicy, size_series
from khronika_ops.planner.units import Resource

from .helpers import clean_series

STEP = 300
PER_DAY = 86400 // STEP
P99 = list(backtest.BASES).index("p99")
HALF_STEP = float(np.log(backtest.MULTIPLIERS[1] / backtest.MULTIPLIERS[0]) / 2)


def _series(values: np.ndarray) -> CleanSeries:
    return clean_series(values, float(STEP), metric="cpu")


def _curves(values: np.ndarray, horizon: float = 5.0) -> backtest.Curves:
    found = backtest.curves(values[:, None], STEP / 86400, horizon, 7.0)
    assert found is not None
    return found


def test_the_curves_are_the_blocks_own_under_and_slack() -> None:
    rng = np.random.default_rng(3)
    values = rng.gamma(4.0, 1.0, 20 * PER_DAY)
    found = _curves(values)
    under = found.under[P99, :, 0]
    assert found.origins[0] >= 3
    # more room: never more under, never less slack, on every base
    assert np.all(np.diff(found.under, axis=1) <= 1e-12) and np.all(np.diff(found.slack, axis=1) >= -1e-12)
    # a stationary series: about 1 % above its own p99, as the blocks saw it
    at_one = under[np.argmin(np.abs(backtest.MULTIPLIERS - 1.0))]
    assert 0.003 < at_one < 0.03
    _matches_the_definition(values, found)


def _matches_the_definition(values: np.ndarray, found: backtest.Curves) -> None:
    """The curves against the definition, origin by origin, for a few multipliers of each base: the p99's
    multipliers exactly, the p95's and the maximum's at the ladder step nearest their ratio to the p99."""
    step_days = STEP / 86400
    block = round(min(5.0, (values.size - 1) * step_days * backtest.BLOCK_SHARE) * PER_DAY)
    stride = round(block * backtest.STRIDE_SHARE)
    origin, unders, slacks = values.size - block, [], []
    steps = np.array([0, 40, 80])
    while origin >= int(np.ceil(max(1.0, (values.size - 1) * step_days * 0.25) / step_days)):
        ages = (origin - np.arange(origin)) * step_days
        p95, p99 = weighted_quantiles(values[:origin, None], 0.5 ** (ages / 7.0), [0.95, 0.99])[:, 0]
        future = values[origin : origin + block, None]
        per_base = []
        ladder = backtest.LADDER * p99
        for base in (p95, p99, values[:origin].max()):
            # the threshold of the ladder on the p99 nearest in log to each multiplier x base
            targets = backtest.MULTIPLIERS[steps] * base
            sizes = ladder[np.abs(np.log(ladder)[None, :] - np.log(targets)[:, None]).argmin(axis=1)]
            assert np.all(np.abs(np.log(sizes / targets)) <= HALF_STEP + 1e-12)
            per_base.append(
                (
                    np.mean(future > sizes, axis=0),
                    np.mean((sizes - np.minimum(future, sizes)) / sizes, axis=0),
                )
            )
        unders.append([under for under, _ in per_base])
        slacks.append([slack for _, slack in per_base])
        origin -= stride
    assert list(backtest.BASES) == ["p95", "p99", "max"]
    assert found.origins[0] == len(unders)
    assert found.under[:, steps, 0] == pytest.approx(np.mean(unders, axis=0), abs=1e-12)
    assert found.slack[:, steps, 0] == pytest.approx(np.mean(slacks, axis=0), abs=1e-12)


def test_a_rising_series_matches_the_definition_past_the_searched_top() -> None:
    """A rising series has its highest values after the early origins: the base there lies below the
    top share of the column searched first, and the whole column is ranked for it."""
    rng = np.random.default_rng(8)
    values = np.linspace(1.0, 10.0, 20 * PER_DAY) + rng.gamma(2.0, 0.2, 20 * PER_DAY)
    values[::97] = np.round(values[::97], 1)  # a few repeated values: ties rank either way, same base
    _matches_the_definition(values, _curves(values))


def test_a_block_of_series_gives_each_its_own_curves_and_refuses_a_base_it_cannot_place() -> None:
    """Four series on one grid, each as backtested alone: a plain one; one with no samples before a level
    shift; one idle at zero but for bursts (its p95 is zero: that base is never chosen); one whose early
    spike is beyond the ladder's reach of its p99 (its maximum is never chosen)."""
    rng = np.random.default_rng(21)
    n = 20 * PER_DAY
    plain = rng.gamma(4.0, 1.0, n)
    shifted = np.where(np.arange(n) < 6 * PER_DAY, np.nan, rng.gamma(4.0, 2.0, n))
    bursts = np.where(rng.random(n) < 0.03, rng.gamma(4.0, 5.0, n), 0.0)
    spiked = rng.gamma(4.0, 1.0, n)
    spiked[PER_DAY // 2] = 1000.0
    matrix = np.column_stack([plain, shifted, bursts, spiked])
    together = backtest.curves(matrix, STEP / 86400, 5.0, 7.0)
    assert together is not None
    for column in range(matrix.shape[1]):
        alone = _curves(matrix[:, column])
        assert together.origins[column] == alone.origins[0] > 0
        np.testing.assert_allclose(together.under[:, :, column], alone.under[:, :, 0], rtol=0, atol=1e-12)
        np.testing.assert_allclose(together.slack[:, :, column], alone.slack[:, :, 0], rtol=0, atol=1e-12)
    finite = np.isfinite(together.under)
    assert finite[:, :, :2].all()
    assert not finite[0, :, 2].any() and finite[1:, :, 2].all()  # bursts: no p95
    assert not finite[2, :, 3].any() and finite[:2, :, 3].all()  # the spike: no maximum
    price = SizingPolicy().under_price
    assert backtest.best(together.under[:, :, 2], together.slack[:, :, 2], price).base != "p95"
    assert backtest.best(together.under[:, :, 3], together.slack[:, :, 3], price).base != "max"


def test_a_noisier_future_asks_for_a_larger_multiplier() -> None:
    rng = np.random.default_rng(5)
    days = 20
    calm = rng.gamma(4.0, 1.0, days * PER_DAY)
    growing_noise = calm * np.linspace(1.0, 2.0, calm.size)
    price = SizingPolicy(calibration="backtest").under_price
    calm_curves, noisy_curves = _curves(calm), _curves(growing_noise)
    calm_m, noisy_m = (
        backtest.MULTIPLIERS[np.argmin(found.slack[P99, :, 0] + price * found.under[P99, :, 0])]
        for found in (calm_curves, noisy_curves)
    )
    assert noisy_m > calm_m


def test_a_lower_target_buys_more_room() -> None:
    rng = np.random.default_rng(11)
    values = rng.gamma(4.0, 1.0, 20 * PER_DAY)
    predicted = forecast(_series(values), ForecastSettings(horizon_days=5.0, backtest=True))
    sizes = [
        size_series(predicted, Resource.CPU, SizingPolicy(calibration="backtest", target_under=t), source="t")
        for t in (0.05, 0.01, 0.002)
    ]
    figures = [s.recommended for s in sizes]
    assert figures == sorted(figures) and figures[0] < figures[-1]
    assert "backtested over" in sizes[1].method and "1.00% under-provisioning target" in sizes[1].method
    (name,) = sizes[1].candidates
    assert name.split("_x")[0] in backtest.BASES and name.endswith("_backtested")


def test_without_a_backtest_the_fixed_rule_sizes() -> None:
    rng = np.random.default_rng(13)
    short = rng.gamma(4.0, 1.0, PER_DAY + 20)  # one day: no origin leaves a quarter of history and a block
    predicted = forecast(_series(short), ForecastSettings(horizon_days=30.0, backtest=True))
    assert predicted.backtest is None
    fixed = size_series(predicted, Resource.CPU, SizingPolicy(calibration="fixed"), source="t")
    calibrated = size_series(predicted, Resource.CPU, SizingPolicy(), source="t")
    assert calibrated.recommended == fixed.recommended and calibrated.method == fixed.method


def test_backtests_are_the_default_and_cost_nothing_when_turned_off() -> None:
    values = np.random.default_rng(17).gamma(4.0, 1.0, 20 * PER_DAY)
    assert forecast(_series(values), ForecastSettings(horizon_days=5.0)).backtest is not None
    assert forecast(_series(values), ForecastSettings(horizon_days=5.0, backtest=False)).backtest is None
    assert SizingPolicy().calibration == "backtest"


def test_the_target_is_checked() -> None:
    with pytest.raises(ValueError, match="target_under"):
        SizingPolicy(target_under=0.0)


def test_plan_size_takes_the_calibration_and_the_target() -> None:
    from .helpers import NAB, run_cli, size_json

    path = NAB / "ec2_cpu_utilization_24ae8d.csv"
    fixed = size_json(path, "cpu", "--horizon", "4", "--calibration", "fixed")
    calibrated = size_json(path, "cpu", "--horizon", "4", "--target-under", "1%")
    assert "backtested over" in calibrated["method"] and "backtested" not in fixed["method"]
    assert calibrated["recommended"] < fixed["recommended"]  # this series: 0.2 vs the fixed rule's p99.9
    code, _, err = run_cli(
        "plan",
        "size",
        "--csv",
        str(path),
        "--resource",
        "cpu",
        "--calibration",
        "backtest",
        "--target-under",
        "70",
    )
    assert code == 2 and "a percentage above 0 and below 50" in err


def test_ratio_bins_equal_the_binary_search() -> None:
    """The log-position binning gives the binary search's bins, on and either side of every edge too."""
    rng = np.random.default_rng(12)
    edges = backtest.LADDER
    ratios = np.concatenate(
        [
            rng.gamma(4, 0.25, 100_000),
            edges,
            np.nextafter(edges, 0.0),
            np.nextafter(edges, np.inf),
            [0.0, -0.0, -1.0, -1e300, 5e-324, 1e-300, 1e300, np.inf],
        ]
    )
    expected = np.searchsorted(edges, ratios, side="left")
    assert np.array_equal(backtest._bins(backtest.log_position(ratios), ratios), expected)
    # As the backtest computes the places: the sample's less the base's.
    base = 0.37
    samples = ratios * base
    position = backtest.log_position(samples) - np.log(base) * backtest._PER_LOG
    assert np.array_equal(backtest._bins(position, samples / base), np.searchsorted(edges, samples / base))
