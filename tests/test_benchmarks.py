"""The benchmark scripts keep working and keep measuring the same thing (they print ratios from one
run; no timing is asserted here). Small sizes: the full runs are in docs/planner.md."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO, docker_available, require_service

pytestmark = pytest.mark.slow


def _run(*args: str) -> str:
    result = subprocess.run(
        [sys.executable, *args], cwd=REPO, capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_quality_benchmark_prints_a_table_per_trace_set() -> None:
    out = _run("benchmarks/quality.py")
    tables = re.split(r"^(NAB|Azure) .*?: (\d+) series", out, flags=re.M)[1:]
    sets = {tables[i]: (int(tables[i + 1]), tables[i + 2]) for i in range(0, len(tables), 3)}
    assert set(sets) == {"NAB", "Azure"}
    assert sets["Azure"][0] == 8  # the attributed sample in tests/data/azure
    for count, body in sets.values():
        rows = {
            m.group(1).strip(): (float(m.group(2)), float(m.group(3)), int(m.group(4)))
            for m in re.finditer(
                r"^(khronika fixed|khronika|p99 x 1\.15|krr p95|VPA p90 \+15 %|oracle)\s+([\d.]+)\s+([\d.]+)\s+(\d+)/",
                body,
                re.M,
            )
        }
        assert set(rows) == {"khronika", "khronika fixed", "p99 x 1.15", "krr p95", "VPA p90 +15 %", "oracle"}
        assert rows["oracle"][2] == count  # the floor is <= 1 % under on every series by construction
        assert "khronika fixed slack above the oracle floor" in body
        assert re.search(r"^series where khronika is worse than khronika fixed: \d+", body, re.M)


def test_quality_benchmark_reports_every_method_and_the_floor() -> None:
    out = _run("benchmarks/quality_nab.py", "--quiet")
    summary = {
        match.group(1).strip(): (int(match.group(2)), float(match.group(3)))
        for match in re.finditer(
            r"^(khronika|krr p95|krr max\*1\.15|vpa p90\+15%|oracle)\s+[\d.]+\s+[\d.]+\s+(\d+)/16\s+([\d.]+)$",
            out,
            re.M,
        )
    }
    assert set(summary) == {"khronika", "krr p95", "krr max*1.15", "vpa p90+15%", "oracle"}
    assert summary["oracle"][0] == 16  # the floor meets the goal everywhere by construction
    # khronika keeps at least as many series within 1 % as either baseline (the level it has reached).
    assert summary["khronika"][0] >= max(summary["krr p95"][0], summary["vpa p90+15%"][0])
    assert "slack floor for <= 1 % under-provisioned (oracle)" in out
    assert "re-planned every day" in out


def test_speed_benchmark_agrees_with_the_pandas_baseline() -> None:
    out = _run(
        "benchmarks/speed.py", "--series", "200", "--baseline-files", "1", "--workers", "1", "--repeat", "2"
    )
    assert "khronika (fixed rule, as the baseline): 200 series sized end to end" in out
    difference = re.search(r"median relative difference ([\d.]+)%, largest ([\d.]+)%", out)
    assert difference is not None and float(difference.group(1)) < 0.5, out
    assert re.search(r"CPU seconds, pandas / khronika default \(calibrated\): [\d.]+x", out)
    assert re.search(r"memory peak: largest khronika worker \d+ MiB; pandas worker \d+ MiB", out)
    table = re.findall(
        r"^(pandas per series|khronika, fixed rule|khronika, default calibrated) .*?([\d.]+)x +(\d+)"
        r"  ([\d.]+) ([\d.]+)$",
        out,
        re.M,
    )
    assert [row[0] for row in table] == [
        "pandas per series",
        "khronika, fixed rule",
        "khronika, default calibrated",
    ]
    assert float(table[0][1]) == 1.0 and all(float(row[1]) > 0 and int(row[2]) > 0 for row in table)
    # Two runs per method, the least CPU one reported: its CPU seconds are the smaller of the two.
    for line in re.findall(r"^(?:pandas per series|khronika, ).*$", out, re.M):
        fields = line.split()
        cpu, runs = float(fields[-6]), [float(fields[-2]), float(fields[-1])]
        assert cpu == pytest.approx(min(runs), abs=0.01), line


def test_downtime_benchmark_measures_ours_and_the_naive_update() -> None:
    """benchmarks/downtime.py on this machine's Docker engine and the test registry, once."""
    state = os.environ.get("KHRONIKA_TEST_REGISTRY_DIR")
    require_service(
        bool(state) and Path(state or "").is_dir() and docker_available(),
        "Docker and the test registry (scripts/test-registry.sh start)",
    )
    result = subprocess.run(
        [sys.executable, "benchmarks/downtime.py", "--rate", "20"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    ratios = dict(re.findall(r"^ratio (ours|naive) / alone: ([\d.]+)", out, re.M))
    assert set(ratios) == {"ours", "naive"}, out
    assert float(ratios["ours"]) > 0 and float(ratios["naive"]) > 0
    assert re.search(r"^alone \(stop \+ start \+ healthy\): [\d.]+ s timed", out, re.M), out


def test_fleet_benchmark_describes_its_measurements() -> None:
    """The fleet benchmark builds labs of 5 and 25 hosts (tens of minutes): here only its interface."""
    out = _run("benchmarks/fleet.py", "--help")
    for word in ("idempotent", "--small", "--large", "pipelining", "fact cache", "strategy free"):
        assert word in out, word
