"""Property tests: more load never gives less capacity; the same input gives byte-identical JSON."""

from __future__ import annotations

import json

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from khronika_ops.planner.forecast import forecast
from khronika_ops.planner.models import CleanReport, CleanSeries, ForecastSettings, SeriesKey
from khronika_ops.planner.size import SizingPolicy, size_series
from khronika_ops.planner.units import Resource

STEP = 3600.0


def _series(values: np.ndarray) -> CleanSeries:
    return CleanSeries(
        key=SeriesKey(metric="load"),
        unit="cores",
        source="<test>",
        start=1_700_000_000.0,
        step=STEP,
        values=values,
        report=CleanReport(points_in=values.size, points_used=values.size, step_seconds=STEP),
    )


def _recommend(values: np.ndarray, resource: Resource) -> float:
    result = size_series(
        forecast(_series(values), ForecastSettings()), resource, SizingPolicy(), source="<test>"
    )
    assert result.recommended is not None
    return result.recommended


loads = st.lists(st.floats(0.0, 1000.0), min_size=24 * 3, max_size=24 * 15).map(np.array)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    values=loads,
    factor=st.floats(1.0, 10.0),
    offset=st.floats(0.0, 100.0),
    resource=st.sampled_from([Resource.CPU, Resource.MEMORY, Resource.DISK, Resource.REQUESTS]),
)
def test_more_load_never_gives_less_capacity(
    values: np.ndarray, factor: float, offset: float, resource: Resource
) -> None:
    base = _recommend(values, resource)
    assert _recommend(values * factor, resource) >= base * (1 - 1e-9)
    assert _recommend(values + offset, resource) >= base * (1 - 1e-9) - 1e-9


@settings(max_examples=30, deadline=None)
@given(values=loads)
def test_same_input_gives_identical_json(values: np.ndarray) -> None:
    def dump() -> str:
        series = _series(values.copy())
        result = size_series(forecast(series, ForecastSettings()), Resource.CPU, SizingPolicy(), source="x")
        return json.dumps(result.model_dump(mode="json"))

    assert dump() == dump()
