"""One duration grammar for the catalog, the collector's interval and the planner's horizon."""

from __future__ import annotations

import pytest

from khronika_ops.collector.service import parse_interval
from khronika_ops.platform.catalog import CatalogModule
from khronika_ops.quantities import format_duration, parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("500ms", 0.5),
        ("10s", 10.0),
        ("1m30s", 90.0),
        ("2h", 7200.0),
        ("90d", 90 * 86400.0),
        ("1w2d", 9 * 86400.0),
        (15, 15.0),
    ],
)
def test_the_grammar(text: object, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


def test_every_reader_uses_it() -> None:
    from khronika_ops.planner.cli import parse_duration_days

    module = CatalogModule.model_validate(
        {
            "name": "api",
            "placement": {"hosts": ["h"]},
            "healthcheck": {"http": "/", "interval": "1m30s", "timeout": "500ms"},
        }
    )
    assert module.healthcheck is not None
    assert (module.healthcheck.interval, module.healthcheck.timeout) == (90.0, 0.5)
    assert parse_interval("1m30s") == 90.0  # the collector (it took one unit only before)
    assert parse_duration_days("1w2d") == 9.0  # the planner's horizon
    assert parse_duration_days("90") == 90.0  # a bare number is in the reader's unit: days here
    assert parse_interval("15") == 15.0  # and seconds here
    assert format_duration(90.0) == "90s"


@pytest.mark.parametrize("text", ["soon", "10 s", "1x", "", "-5s", "inf"])
def test_bad_durations_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


def test_fractions_without_a_leading_digit() -> None:
    assert parse_duration(".5") == 0.5
    assert parse_duration(".5h") == 1800.0
    assert parse_interval("2.") == 2.0
