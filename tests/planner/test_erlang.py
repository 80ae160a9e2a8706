from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from khronika_ops.planner import erlang


def test_reference_vector() -> None:
    # 100 arrivals per 30 min, 180 s handling time, 20 s target, 80 % service level.
    result = erlang.servers_for(100 / 1800, 180, 20, 0.8)
    assert result.servers == 14
    assert result.offered_load == pytest.approx(10.0)
    assert result.p_wait == pytest.approx(0.1741, abs=5e-5)
    assert result.service_level == pytest.approx(0.888, abs=5e-4)


def test_one_server_fewer_misses_the_target() -> None:
    assert erlang.evaluate(13, 100 / 1800, 180, 20).service_level < 0.8


def test_overloaded_servers_always_wait() -> None:
    assert erlang.erlang_c(10, 10.0) == 1.0


@given(
    rate=st.floats(0.01, 500),
    handling=st.floats(0.001, 5),
    extra=st.floats(0.0, 2.0),
)
def test_more_load_never_needs_fewer_servers(rate: float, handling: float, extra: float) -> None:
    base = erlang.servers_for(rate, handling, handling, 0.8).servers
    assert erlang.servers_for(rate * (1 + extra), handling, handling, 0.8).servers >= base
