"""`khronika plan size`: the stable interface external evaluation uses."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest

from .helpers import daily_load, run_cli, size_json, write_series

REQUIRED_KEYS = {"recommended", "unit", "method", "insufficient_data"}


@pytest.mark.parametrize("name", ["ec2_cpu_utilization_5f5533.csv", "rds_cpu_utilization_e47b3b.csv"])
def test_nab_cpu_sizes_above_observed_p99(nab: Path, name: str) -> None:
    result = size_json(nab / name, "cpu")
    assert result.keys() >= REQUIRED_KEYS
    assert result["insufficient_data"] is False
    assert result["recommended"] >= result["observed"]["p99"]
    assert result["points_used"] == 4032
    assert result["horizon_days"] == 90


def test_nab_duplicates_are_merged_and_reported(nab: Path) -> None:
    result = size_json(nab / "ec2_network_in_5abac7.csv", "requests", "--horizon", "7")
    assert result["cleaning"]["duplicates_merged"] >= 11  # 11 repeated stamps + off-grid samples
    assert result["recommended"] > 0


def test_every_nab_file_sizes_quickly(nab: Path) -> None:
    from khronika_ops.planner.single import size_csv
    from khronika_ops.planner.units import Resource

    for path in sorted(nab.glob("*.csv")):
        started = time.perf_counter()
        result = size_csv(path, Resource.CPU if "cpu" in path.name else Resource.REQUESTS)
        assert time.perf_counter() - started < 1.0, path.name
        assert result.recommended is not None and result.recommended > 0


def test_same_input_gives_byte_identical_json(nab: Path) -> None:
    args = (
        "plan",
        "size",
        "--csv",
        str(nab / "elb_request_count_8c0756.csv"),
        "--resource",
        "requests",
        "--json",
    )
    first, second = run_cli(*args), run_cli(*args)
    assert first[0] == 0
    assert first[1] == second[1]


def test_too_little_history_is_insufficient_not_a_number(tmp_path: Path) -> None:
    path = write_series(tmp_path / "short.csv", daily_load(0.5))
    code, out, _ = run_cli("plan", "size", "--csv", str(path), "--resource", "cpu", "--json")
    result = json.loads(out)
    assert code == 0
    assert result["insufficient_data"] is True
    assert result["recommended"] is None
    assert "history covers" in result["reason"]


def test_headerless_epoch_one_minute_steps(tmp_path: Path) -> None:
    path = write_series(tmp_path / "raw.csv", daily_load(3, step=60), step=60, header=None, iso=False)
    result = size_json(path, "cpu", "--horizon", "30d")
    assert result["cleaning"]["step_seconds"] == 60
    assert result["recommended"] >= result["observed"]["p99"]


def test_iso_t_and_z_and_semicolons(tmp_path: Path) -> None:
    values = daily_load(3)
    rows = [f"2024-03-01T00:00:00Z;{values[0]}"]
    rows += [f"2024-03-{1 + i * 300 // 86400:02d}T{(i * 300 % 86400) // 3600:02d}:{(i * 300 % 3600) // 60:02d}:00Z;"
             f"{v}" for i, v in enumerate(values) if i]  # fmt: skip
    path = tmp_path / "semi.csv"
    path.write_text("time;cpu_percent\n" + "\n".join(rows) + "\n", encoding="utf-8")
    result = size_json(path, "cpu")
    assert result["unit"] == "percent"
    assert result["points_used"] == values.size


def test_memory_never_below_observed_max(tmp_path: Path) -> None:
    values = daily_load(5, level=2e9) * 1.0
    values[100] = 3e9  # one real spike
    path = write_series(tmp_path / "mem.csv", values, header="timestamp,memory_used_bytes")
    result = size_json(path, "memory")
    assert result["unit"] == "bytes"
    assert result["recommended"] >= 3e9
    assert result["outliers_flagged"] >= 1


def test_disk_keeps_usage_under_85_percent_and_counts_days(tmp_path: Path) -> None:
    days = np.arange(14 * 288) / 288
    used = 100e9 + 2e9 * days + np.random.default_rng(1).normal(0, 1e8, days.size)
    path = write_series(tmp_path / "disk.csv", used, header="timestamp,fs_used_bytes")
    result = size_json(path, "disk", "--horizon", "30", "--reserve", "5e9", "--capacity", "200e9")
    assert result["trend_used"] is True
    expected_used = used[-1] + 2e9 * 14  # trend extrapolated at most one history span
    assert result["recommended"] >= (expected_used + 5e9) / 0.85 * 0.98
    assert 20 < result["extra"]["days_until_max_usage"] < 40


def test_wide_file_sums_columns(tmp_path: Path) -> None:
    values = daily_load(3)
    lines = ["timestamp,web,worker"] + [
        f"{1_700_000_000 + i * 300},{v},{v / 2}" for i, v in enumerate(values)
    ]
    path = tmp_path / "wide.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    both = size_json(path, "cpu")
    web = size_json(path, "cpu", "--series", "web")
    assert "sum of 2 series" in both["extra"]["aggregated"]
    assert both["recommended"] > web["recommended"]


def test_long_file_of_collector_metrics(tmp_path: Path) -> None:
    values = daily_load(2, level=0.4) / 100
    lines = ["timestamp,metric,labels,value"]
    for i, value in enumerate(values):
        stamp = 1_700_000_000 + i * 300
        lines.append(f"{stamp},khronika_host_cpu_utilisation_ratio,host=a,{value}")
        lines.append(f"{stamp},khronika_host_memory_used_bytes,host=a,{1e9 + i}")
    path = tmp_path / "long.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = size_json(path, "memory")
    assert result["series"] == 'khronika_host_memory_used_bytes{host="a"}'
    assert result["recommended"] >= 1e9 + values.size - 1


def test_what_if_load_factor_scales(nab: Path) -> None:
    base = size_json(nab / "ec2_cpu_utilization_5f5533.csv", "cpu")
    doubled = size_json(nab / "ec2_cpu_utilization_5f5533.csv", "cpu", "--load-factor", "2")
    assert doubled["recommended"] == pytest.approx(2 * base["recommended"], rel=1e-5)


def test_maintenance_window_forecast(nab: Path) -> None:
    result = size_json(nab / "ec2_cpu_utilization_5f5533.csv", "cpu", "--window", "2014-03-09T02:00:00")
    assert result["recommended"] > 0


def test_plain_text_output(nab: Path) -> None:
    code, out, _ = run_cli("plan", "size", "--csv", str(nab / "grok_asg_anomaly.csv"), "--resource", "cpu")
    assert code == 0
    assert "recommended" in out
