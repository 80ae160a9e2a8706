"""Ingest from a real Prometheus (Debian's `prometheus` + `promtool`), fed with TSDB blocks made by
`promtool tsdb create-blocks-from openmetrics`. Skipped when the binaries are missing, unless
KHRONIKA_REQUIRE_SERVICES=1 (CI), where missing binaries fail the test."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from khronika_ops.planner.ingest import prometheus as prom

from .helpers import run_cli
from .test_plan import write_catalog

STEP = 60
DAYS = 2


def _binaries() -> tuple[str, str]:
    prometheus, promtool = shutil.which("prometheus"), shutil.which("promtool")
    if prometheus and promtool:
        return prometheus, promtool
    if os.environ.get("KHRONIKA_REQUIRE_SERVICES") == "1":
        pytest.fail(
            "prometheus/promtool not installed (apt-get install prometheus) and KHRONIKA_REQUIRE_SERVICES=1"
        )
    pytest.skip("prometheus/promtool not installed (apt-get install prometheus)")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _openmetrics(end: int) -> str:
    times = np.arange(end - DAYS * 86400, end, STEP)
    phase = np.sin(2 * np.pi * times / 86400)
    lines = []
    series = {
        "khronika_host_cpu_used_cores": [('instance="h1:9100"', 2.0), ('instance="h2:9100"', 1.0)],
        "khronika_container_cpu_cores": [('instance="h1:9100",container="web"', 1.5)],
        "khronika_container_memory_bytes": [('instance="h1:9100",container="web"', 2.0 * 1024**3)],
        "khronika_filesystem_used_bytes": [('instance="h2:9100",mount="/var/lib/khronika"', 400.0 * 1024**3)],
    }
    for metric, members in series.items():
        lines.append(f"# TYPE {metric} gauge")
        for labels, level in members:
            lines += [
                f"{metric}{{{labels}}} {level * (1 + 0.3 * p):.6f} {t}"
                for t, p in zip(times, phase, strict=True)
            ]
    # One sharp one-minute peak: a 5-minute query step must still see it (max_over_time).
    lines.append('khronika_host_cpu_used_cores{instance="h3:9100"} 1 ' + str(int(times[100])))
    return "\n".join(lines) + "\n# EOF\n"


@pytest.fixture(scope="module")
def prometheus_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    prometheus, promtool = _binaries()
    root = tmp_path_factory.mktemp("prometheus")
    end = (int(time.time()) // 3600) * 3600 - 3600
    source = root / "data.om"
    source.write_text(_openmetrics(end), encoding="utf-8")
    storage = root / "tsdb"
    subprocess.run(
        [promtool, "tsdb", "create-blocks-from", "openmetrics", str(source), str(storage)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    config = root / "prometheus.yml"
    config.write_text("global:\n  scrape_interval: 1h\n", encoding="utf-8")
    port = _free_port()
    process = subprocess.Popen(
        [
            prometheus,
            f"--config.file={config}",
            f"--storage.tsdb.path={storage}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--storage.tsdb.retention.time=30d",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(150):
            try:
                with urllib.request.urlopen(f"{url}/-/ready", timeout=1) as response:
                    if response.status == 200:
                        break
            except OSError:
                time.sleep(0.2)
        else:
            pytest.fail("prometheus did not become ready")
        yield url, end
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()


def test_query_range_batched_and_chunked(
    prometheus_url: tuple[str, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, end = prometheus_url
    monkeypatch.setattr(prom, "MAX_POINTS_PER_QUERY", 100)  # forces several chunks
    client = prom.PrometheusClient(url)
    spec = prom._gauge("khronika_host_cpu_used_cores", "cores")
    selectors = prom.selector_batches("instance", ["h1", "h2", "h3"], suffix="(:[0-9]+)?", size=2)
    assert len(selectors) == 2
    series = client.fetch(spec, end - DAYS * 86400, end, 300, selectors)
    by_host = {s.key.label("host"): s for s in series}
    assert set(by_host) == {"h1", "h2", "h3"}
    h1 = by_host["h1"]
    assert np.all(np.diff(h1.timestamps) == 300)
    assert h1.values.max() == pytest.approx(2.6, rel=0.01)  # peak of 2 x (1 + 0.3)
    assert by_host["h3"].values.max() == 1  # a one-minute spike survives the 5-minute step


def test_size_and_plan_from_prometheus(prometheus_url: tuple[str, int], tmp_path: Path) -> None:
    url, end = prometheus_url
    client = prom.PrometheusClient(url)
    raw = prom.fetch_plan_series(client, end - DAYS * 86400, end, 300, hosts=["h1", "h2"])
    metrics = {s.key.metric for s in raw}
    assert {"khronika_container_cpu_cores", "khronika_filesystem_used_bytes"} <= metrics
    catalog = write_catalog(tmp_path / "site.yml")
    code, out, err = run_cli(
        "plan", "--prometheus", url, "--history", f"{DAYS}d", "--catalog", str(catalog), "--format", "json"
    )
    assert code == 0, err
    plan = json.loads(out)
    web = next(m for m in plan["modules"] if m["name"] == "web")
    assert any(f["series"].startswith("khronika_container_cpu_cores") for f in web["figures"])


def test_unreachable_prometheus_names_the_url() -> None:
    url = f"http://127.0.0.1:{_free_port()}"
    code, _, err = run_cli("plan", "--prometheus", url, "--format", "json")
    assert code != 0 and url in err


def test_bad_query_names_the_query(prometheus_url: tuple[str, int]) -> None:
    url, end = prometheus_url
    client = prom.PrometheusClient(url)
    with pytest.raises(prom.InputError, match="query"):
        client.query_range("sum(", end - 3600, end, 60)
