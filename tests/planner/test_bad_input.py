"""Bad input fails with an error that names the file and the line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from khronika_ops.planner.errors import InputError
from khronika_ops.planner.ingest import read_csv

from .helpers import daily_load, run_cli, write_series


def _size_error(path: Path, resource: str = "cpu", *extra: str) -> str:
    code, out, err = run_cli("plan", "size", "--csv", str(path), "--resource", resource, "--json", *extra)
    assert code != 0
    assert out == ""
    assert str(path) in err
    return err


def test_malformed_value_names_line(tmp_path: Path) -> None:
    path = write_series(tmp_path / "bad.csv", daily_load(2))
    lines = path.read_text().splitlines()
    lines[4] = "2023-11-14 22:35:00,abc"
    path.write_text("\n".join(lines) + "\n")
    assert "line 5" in _size_error(path)


def test_ragged_row_names_line(tmp_path: Path) -> None:
    path = tmp_path / "ragged.csv"
    path.write_text("timestamp,value\n1700000000,1\n1700000300,2,3\n")
    err = _size_error(path)
    assert "line 3" in err and "fields" in err


def test_bad_timestamp_names_line(tmp_path: Path) -> None:
    path = tmp_path / "ts.csv"
    path.write_text("timestamp,value\n2024-01-01 00:00:00,1\nyesterday,2\n")
    assert "line 3" in _size_error(path)


def test_unknown_metric_in_long_file(tmp_path: Path) -> None:
    path = tmp_path / "long.csv"
    path.write_text(
        "timestamp,metric,value\n1700000000,khronika_host_cpu_used_cores,1\n1700000300,cpu_magic,2\n"
    )
    err = _size_error(path)
    assert "line 3" in err and "unknown metric 'cpu_magic'" in err


def test_wrong_units_by_name(tmp_path: Path) -> None:
    path = write_series(tmp_path / "mem.csv", daily_load(2, level=1e9), header="timestamp,memory_used_bytes")
    err = _size_error(path, "cpu")
    assert "line 2" in err and "bytes" in err


def test_wrong_units_ratio_above_one(tmp_path: Path) -> None:
    path = write_series(tmp_path / "ratio.csv", daily_load(2), header="timestamp,cpu_utilisation_ratio")
    err = _size_error(path, "cpu")
    assert "line 2" in err and "above 1 for a ratio" in err


def test_negative_demand(tmp_path: Path) -> None:
    values = daily_load(2)
    values[9] = -5
    err = _size_error(write_series(tmp_path / "neg.csv", values))
    assert "line 11" in err


def test_empty_series(tmp_path: Path) -> None:
    path = tmp_path / "empty.csv"
    path.write_text("timestamp,value\n")
    err = _size_error(path)
    assert "line 1" in err and "empty series" in err


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "nothing.csv"
    path.write_text("")
    assert "empty" in _size_error(path)


def test_all_missing_values(tmp_path: Path) -> None:
    path = tmp_path / "nan.csv"
    path.write_text("timestamp,value\n1700000000,nan\n1700000300,\n")
    assert "no numeric values" in _size_error(path)


def test_non_monotonic_timestamps_name_line(tmp_path: Path) -> None:
    path = write_series(tmp_path / "order.csv", daily_load(2))
    lines = path.read_text().splitlines()
    lines[10], lines[11] = lines[11], lines[10]
    path.write_text("\n".join(lines) + "\n")
    err = _size_error(path)
    assert "line 12" in err and "backwards" in err
    code, out, _ = run_cli("plan", "size", "--csv", str(path), "--resource", "cpu", "--json", "--sort")
    assert code == 0 and '"resorted": true' in out


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "binary.csv"
    path.write_bytes(b"timestamp,value\n\xff\xfe\x00\n")
    with pytest.raises(InputError, match="line 2"):
        read_csv(path)


def test_unknown_unit_option(tmp_path: Path) -> None:
    path = write_series(tmp_path / "u.csv", np.ones(10))
    assert "unknown unit" in _size_error(path, "cpu", "--unit", "furlongs")


def test_a_site_catalog_reports_every_problem_at_once(tmp_path: Path) -> None:
    site = tmp_path / "site.yml"
    site.write_text(
        "hosts:\n  - {name: app-01, cores: 0, memory_gib: 16, disk_gib: 100}\n"
        "  - {name: app-02, cores: 8, memory_gib: 16, disk_gib: 100, colour: blue}\n"
        "nic_max_utilisation: 2\n",
        encoding="utf-8",
    )
    code, _, err = run_cli("plan", "--csv", str(tmp_path / "none.csv"), "--catalog", str(site))
    assert code == 2
    assert f"{site}: 3 site catalog error(s)" in err
    assert "hosts[0] (app-01).cores: Input should be greater than 0" in err
    assert "hosts[1] (app-02).colour: unknown key 'colour'" in err
    assert "nic_max_utilisation: Input should be less than or equal to 1" in err
