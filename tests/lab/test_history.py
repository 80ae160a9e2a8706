"""The lab's replayed history (khronika_ops/lab/history.py): the rules each kind of series follows, and the
whole stage against a real Prometheus scraping a real endpoint: promtool's blocks loaded on a restart,
the markers read back by the planner under the keys of the series it plans, a second run leaving it be."""

from __future__ import annotations

import http.server
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from conftest import require_service
from khronika_ops.lab import history
from khronika_ops.lab.history import POINTS, STEP, LiveSeries
from khronika_ops.planner.ingest import prometheus as prom
from planner.helpers import run_cli

H1 = (("host", "h1"), ("instance", "127.0.0.1:1"), ("job", "khronika"))


def test_each_kind_of_series_follows_its_rule() -> None:
    cores = LiveSeries("khronika_host_cpu_cores", H1, 4.0)
    used = LiveSeries("khronika_host_cpu_used_cores", H1, 0.6)
    idle = LiveSeries("khronika_container_cpu_cores", (*H1, ("container", "web-1")), 0.001)
    memory = LiveSeries("khronika_container_memory_bytes", (*H1, ("container", "web-1")), 300e6)
    size = LiveSeries("khronika_filesystem_size_bytes", (*H1, ("mount", "/srv")), 100e9)
    filled = LiveSeries("khronika_filesystem_used_bytes", (*H1, ("mount", "/srv")), 20e9)
    sent = LiveSeries("node_network_transmit_bytes_total", (*H1, ("device", "eth0")), 2e6)
    replays = {
        r.series.metric: r for r in history.plan_replays([cores, used, idle, memory, size, filled, sent])
    }
    assert all(r.values.shape == (POINTS,) and np.isfinite(r.values).all() for r in replays.values())
    # Sizes stay what they are today.
    assert set(replays["khronika_host_cpu_cores"].values) == {4.0}
    assert replays["khronika_host_cpu_cores"].trace == ""
    # A load: the trace's shape, today's level at the trace's 99th percentile, never above the cores.
    cpu = replays["khronika_host_cpu_used_cores"]
    assert cpu.trace.startswith("nab/ec2_cpu_utilization_")
    assert np.percentile(cpu.values, 99) == pytest.approx(0.6, rel=0.02)
    assert cpu.values.max() <= 4.0 and cpu.values.std() > 0
    # An idle container still gets a load to plan on (the floor).
    assert np.percentile(replays["khronika_container_cpu_cores"].values, 99) == pytest.approx(0.05, rel=0.02)
    # Memory swings at most 30 % around today's value.
    swing = replays["khronika_container_memory_bytes"].values / 300e6
    assert swing.min() >= 0.7 - 1e-9 and swing.max() <= 1.3 + 1e-9 and swing.std() > 0.001
    # A filesystem fills along a disk trace's writes, ending at today's value.
    fill = replays["khronika_filesystem_used_bytes"]
    assert fill.trace.startswith("nab/ec2_disk_write_bytes_")
    assert np.all(np.diff(fill.values) >= 0) and fill.values[-1] == pytest.approx(20e9)
    assert fill.values[0] == pytest.approx(20e9 - min(0.1 * 80e9, 0.25 * 20e9), rel=0.01)
    # A counter: the running sum of a network trace's rate, today's rate at its 99th percentile.
    counter = replays["node_network_transmit_bytes_total"]
    assert counter.trace.startswith("nab/ec2_network_in_") and np.all(np.diff(counter.values) >= 0)
    assert np.percentile(np.diff(counter.values) / STEP, 99) == pytest.approx(2e6, rel=0.02)
    # The same series always gets the same trace; the hosts of a lab get different ones.
    assert history.pick_trace("cpu", used) == history.pick_trace("cpu", used)
    others = {
        history.pick_trace("cpu", LiveSeries(used.metric, (("host", f"app{i}"),), 1.0)) for i in range(12)
    }
    assert len(others) > 2


def test_markers_carry_the_keys_the_planner_builds() -> None:
    """Counters feed the rates the planner sums (one key for a module's replicas); gauges keep their keys."""
    replicas = [
        LiveSeries(
            "khronika_module_requests_total",
            (("instance", f"app{i}:18081"), ("job", "khronika-modules"), ("module", "classifier")),
            5.0,
        )
        for i in (1, 2)
    ]
    nic = LiveSeries(
        "node_network_receive_bytes_total",
        (("device", "eth0"), ("instance", "app1:9100"), ("job", "node")),
        1e6,
    )
    gauge = LiveSeries("khronika_host_cpu_used_cores", (("host", "app1"), ("instance", "app1:9101")), 0.3)
    marked = history.markers(history.plan_replays([*replicas, nic, gauge]))
    assert set(marked) == {
        (("metric", "khronika_module_requests_per_second"), ("module", "classifier")),
        (
            ("direction", "receive"),
            ("host", "app1"),
            ("interface", "eth0"),
            ("metric", "khronika_network_bytes_per_second"),
        ),
        (("host", "app1"), ("metric", "khronika_host_cpu_used_cores")),
    }
    assert all(trace.startswith("nab/") for trace in marked.values())


def test_the_openmetrics_text_is_bounded_and_escapes_labels(monkeypatch: pytest.MonkeyPatch) -> None:
    odd = LiveSeries("khronika_container_memory_bytes", (("container", 'we"b\\1\n'), ("host", "h1")), 1e6)
    text = history.openmetrics(history.plan_replays([odd]), 1_800_000_000)
    assert 'container="we\\"b\\\\1\\n"' in text and text.endswith("# EOF\n")
    assert text.count("\nkhronika_container_memory_bytes{") == POINTS
    assert f"1 {1_800_000_000}\n" in text  # the last marker sample at the end
    monkeypatch.setattr(history, "MAX_OPENMETRICS_BYTES", 1000)
    with pytest.raises(history.HistoryError, match="larger than 1000 bytes"):
        history.openmetrics(history.plan_replays([odd]), 1_800_000_000)


# --- the whole stage against a real Prometheus ------------------------------------------------------------

METRICS = (
    b'khronika_host_cpu_cores{host="h1"} 4\n'
    b'khronika_host_cpu_used_cores{host="h1"} 0.6\n'
    b'khronika_host_memory_total_bytes{host="h1"} 8e9\n'
    b'khronika_host_memory_used_bytes{host="h1"} 3e9\n'
    b'khronika_container_cpu_cores{host="h1",container="web-1"} 0.3\n'
    b'khronika_container_memory_bytes{host="h1",container="web-1"} 3e8\n'
    b'khronika_filesystem_size_bytes{host="h1",mount="/srv",device="/dev/sdb1"} 1e11\n'
    b'khronika_filesystem_used_bytes{host="h1",mount="/srv",device="/dev/sdb1"} 2e10\n'
)


STARTED = time.monotonic()


class _Metrics(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.end_headers()
        # Counters: 3 MB/s received on eth0, 2 requests a second to web.
        elapsed = time.monotonic() - STARTED
        self.wfile.write(
            METRICS
            + f'node_network_receive_bytes_total{{device="eth0"}} {3e6 * elapsed:.0f}\n'.encode()
            + f'node_network_receive_bytes_total{{device="lo"}} {9e6 * elapsed:.0f}\n'.encode()
            + f'khronika_module_requests_total{{module="web"}} {2 * elapsed:.0f}\n'.encode()
        )

    def log_message(self, *_args: object) -> None:
        pass


@dataclass
class Lab:
    client: prom.PrometheusClient
    url: str
    storage: Path
    restart: object


@pytest.fixture
def lab_prometheus(tmp_path: Path) -> Iterator[Lab]:
    binaries = [shutil.which(name) for name in ("prometheus", "promtool")]
    require_service(all(binaries), "prometheus and promtool (apt-get install prometheus)")
    prometheus = str(binaries[0])
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Metrics)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s}\nscrape_configs:\n"
        f"  - job_name: khronika\n    static_configs: [{{targets: ['127.0.0.1:{server.server_port}']}}]\n"
        # Named as a site's inventory names it (the planner selects hosts by instance).
        "    relabel_configs: [{target_label: instance, replacement: 'h1:9101'}]\n"
    )
    storage = tmp_path / "tsdb"
    port = _free_port()
    argv = [
        prometheus,
        f"--config.file={config}",
        f"--storage.tsdb.path={storage}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--storage.tsdb.retention.time=30d",
    ]
    processes = [subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]

    def restart() -> None:
        processes[-1].terminate()
        processes[-1].wait(timeout=30)
        processes.append(subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))

    url = f"http://127.0.0.1:{port}"
    client = prom.PrometheusClient(url)
    deadline = time.monotonic() + 60
    while len(history.live_series(client, time.time()) if _ready(client) else []) < 10:
        assert time.monotonic() < deadline, "Prometheus did not scrape the endpoint within 60 s"
        time.sleep(0.5)
    try:
        yield Lab(client, url, storage, restart)
    finally:
        processes[-1].terminate()
        processes[-1].wait(timeout=30)
        server.shutdown()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _ready(client: prom.PrometheusClient) -> bool:
    try:
        client.get_json("/-/ready", expect_json=False)
    except Exception:
        return False
    return True


def test_the_stage_replays_two_weeks_that_the_planner_reads_and_marks(
    lab_prometheus: Lab, tmp_path: Path
) -> None:
    def install(source: Path) -> None:
        blocks = tmp_path / "blocks"
        subprocess.run(
            [
                "promtool",
                "tsdb",
                "create-blocks-from",
                "openmetrics",
                "--max-block-duration=24h",
                str(source),
                str(blocks),
            ],
            check=True,
            capture_output=True,
            timeout=300,
        )
        for block in blocks.iterdir():
            block.rename(lab_prometheus.storage / block.name)
        lab_prometheus.restart()  # type: ignore[operator]

    said: list[str] = []
    outcome = history.replay_history(lab_prometheus.client, install, tmp_path, said.append)
    # 8 gauges and 2 counters (lo is no NIC the planner plans: not replayed).
    assert outcome.replayed == 10 and "10 series replayed" in outcome.line(), outcome.line()
    client = lab_prometheus.client
    # Prometheus is left as found: its target scraped again since the restart.
    assert [target["health"] for target in history._targets(client)] == ["up"]
    now = time.time()
    # Two weeks of each series before the live samples: hourly points all the way back.
    [(_labels, points)] = client.query_range(
        'khronika_host_cpu_used_cores{host="h1"}', now - 14 * 86400 + 3600, now, 3600
    )
    assert len(points) >= 14 * 24 - 2, len(points)
    assert max(v for _, v in points) <= 4.0
    # The planner reads the markers under the same keys as the series it plans.
    series = prom.fetch_plan_series(client, now - 14 * 86400, now, 300, hosts=["h1"])
    replayed = prom.fetch_replayed(client, now, 14 * 86400)
    assert len(replayed) == 10 and set(replayed) <= {s.key for s in series}
    assert {trace.split("_")[0] for trace in replayed.values()} >= {"nab/ec2", "nab/rds", "nab/elb", "size"}
    [nic] = [s for s in series if s.key.metric == "khronika_network_bytes_per_second"]
    assert nic.key in replayed and nic.timestamps[0] < now - 13 * 86400
    # A plan on it: nothing short of data among the replayed series, the report says which were replayed.
    out = tmp_path / "reports"
    code, _, err = run_cli(
        "plan",
        "--prometheus",
        lab_prometheus.url,
        "--history",
        "14d",
        "--step",
        "5m",
        "--format",
        "md,json",
        "-o",
        str(out),
    )
    assert code == 0, err
    report = (out / "capacity-plan.md").read_text()
    assert "## Replayed history" in report and "- Replayed history: 10 of the" in report
    assert 'khronika_container_cpu_cores{container="web-1",host="h1"}' in report
    # Again: the Prometheus holds history before its head now; nothing is replayed twice.
    again = history.replay_history(client, install, tmp_path, said.append)
    assert again.replayed == 0 and "already holds history" in again.line()


def test_a_figure_of_summed_replicas_names_the_trace_of_each() -> None:
    from khronika_ops.planner.plan import Plan
    from khronika_ops.planner.report import replayed_traces

    one, two = 'm{container="c-1",host="a"}', 'm{container="c-1",host="b"}'
    plan = Plan.model_construct(replayed_series={one: "nab/x.csv", two: "nab/y.csv", "m": "nab/z.csv"})
    assert replayed_traces(plan, f"sum({one},{two})") == ["nab/x.csv", "nab/y.csv"]
    assert replayed_traces(plan, one) == ["nab/x.csv"]
    assert replayed_traces(plan, 'm{container="c-2",host="a"}') == []


def test_the_monitoring_hosts_script_moves_promtools_blocks_in_and_leaves_no_work_folder(
    tmp_path: Path,
) -> None:
    """`promtool_script` as the monitoring host runs it (a real sh and promtool; only systemctl is a
    stand-in that records its arguments): blocks in the storage path, owned as asked, no temp folder left."""
    require_service(shutil.which("promtool") is not None, "promtool (apt-get install prometheus)")
    storage = tmp_path / "storage with space"
    storage.mkdir()
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "systemctl").write_text(f'#!/bin/sh\necho "$@" > {tmp_path}/systemctl.args\n')
    (bin_dir / "systemctl").chmod(0o755)
    series = LiveSeries("khronika_host_cpu_cores", (("host", "h1"),), 2.0)
    text = history.openmetrics(history.plan_replays([series]), 1_800_000_000)
    before = set(Path("/var/tmp").glob("khronika-history.*"))
    owner = subprocess.run(["id", "-un"], capture_output=True, text=True, check=True).stdout.strip()
    done = subprocess.run(
        ["sh", "-c", history.promtool_script(str(storage), service="prom-x", owner=owner)],
        input=text,
        text=True,
        capture_output=True,
        env={"PATH": f"{bin_dir}:/usr/bin:/bin"},
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    blocks = [p for p in storage.iterdir() if (p / "meta.json").is_file()]
    assert len(blocks) >= 14, sorted(p.name for p in storage.iterdir())
    assert (tmp_path / "systemctl.args").read_text().split() == ["restart", "prom-x"]
    assert set(Path("/var/tmp").glob("khronika-history.*")) == before
