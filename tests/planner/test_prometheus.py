"""Ingest from a real Prometheus (Debian's `prometheus` + `promtool`), fed with TSDB blocks made by
`promtool tsdb create-blocks-from openmetrics`, served the way the monitoring_server role serves it:
TLS with a certificate from our own CA, and basic auth (bcrypt hash from `htpasswd`). Skipped when the
binaries are missing, unless KHRONIKA_REQUIRE_SERVICES=1 (CI), where missing binaries fail the test."""

from __future__ import annotations

import json
import os
import shutil
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import yaml

from conftest import REPO, ansible_env, run_playbook
from khronika_ops.planner.ingest import prometheus as prom

from .helpers import run_cli
from .test_plan import write_catalog

STEP = 60
DAYS = 2
USER = "planner"
PASSWORD = "s3cret-plan"


def _binaries() -> tuple[str, str, str, str]:
    tools = [shutil.which(name) for name in ("prometheus", "promtool", "openssl", "htpasswd")]
    if all(tools):
        return tools[0], tools[1], tools[2], tools[3]  # type: ignore[return-value]
    missing = "prometheus/promtool/openssl/htpasswd (apt-get install prometheus openssl apache2-utils)"
    if os.environ.get("KHRONIKA_REQUIRE_SERVICES") == "1":
        pytest.fail(f"{missing} not installed and KHRONIKA_REQUIRE_SERVICES=1")
    pytest.skip(f"{missing} not installed")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _openmetrics(end: int) -> str:
    times = np.arange(end - DAYS * 86400, end, STEP)
    phase = np.sin(2 * np.pi * times / 86400)
    lines = []
    gauges = {
        "khronika_host_cpu_used_cores": [('instance="h1:9100"', 2.0), ('instance="h2:9100"', 1.0)],
        "khronika_container_cpu_cores": [
            ('instance="h1:9100",container="web"', 1.5),
            ('instance="localhost:9100",container="web-1"', 0.8),  # the plan.yml test's host
        ],
        "khronika_container_memory_bytes": [('instance="h1:9100",container="web"', 2.0 * 1024**3)],
        "khronika_filesystem_used_bytes": [
            ('instance="h2:9100",mount="/var/lib/khronika"', 400.0 * 1024**3),
            ('instance="h1:9100",mount="/data"', 100.0 * 1024**3),  # the collector and node_exporter both
        ],
        "khronika_module_request_duration_seconds": [('instance="h1:8080",module="web"', 0.045)],
        # node_exporter on h1: a real filesystem and a tmpfs (left out), size constant, free shrinking.
        "node_filesystem_size_bytes": [
            ('instance="h1:9100",mountpoint="/srv",fstype="ext4",device="/dev/sdb1"', 500.0 * 1024**3),
            ('instance="h1:9100",mountpoint="/data",fstype="ext4",device="/dev/sdc1"', 500.0 * 1024**3),
            ('instance="h1:9100",mountpoint="/run",fstype="tmpfs",device="tmpfs"', 1.0 * 1024**3),
            # A file the container runtime bind-mounts (a host that is a container): ext4, and not a disk.
            ('instance="h1:9100",mountpoint="/etc/hosts",fstype="ext4",device="/dev/sdb1"', 500.0 * 1024**3),
        ],
        "node_filesystem_free_bytes": [
            ('instance="h1:9100",mountpoint="/srv",fstype="ext4",device="/dev/sdb1"', 300.0 * 1024**3),
            ('instance="h1:9100",mountpoint="/data",fstype="ext4",device="/dev/sdc1"', 400.0 * 1024**3),
            ('instance="h1:9100",mountpoint="/run",fstype="tmpfs",device="tmpfs"', 0.5 * 1024**3),
            ('instance="h1:9100",mountpoint="/etc/hosts",fstype="ext4",device="/dev/sdb1"', 300.0 * 1024**3),
        ],
        # dcgm-exporter on h1 (percent and MiB).
        "DCGM_FI_DEV_GPU_UTIL": [('instance="h1:9400",gpu="0",modelName="NVIDIA H100 80GB HBM3"', 50.0)],
        "DCGM_FI_DEV_FB_USED": [('instance="h1:9400",gpu="0",modelName="NVIDIA H100 80GB HBM3"', 20480.0)],
    }
    for metric, members in gauges.items():
        lines.append(f"# TYPE {metric} gauge")
        for labels, level in members:
            wave = 0.0 if metric == "node_filesystem_size_bytes" else 0.3
            lines += [
                f"{metric}{{{labels}}} {level * (1 + wave * p):.6f} {t}"
                for t, p in zip(times, phase, strict=True)
            ]
    # node_exporter counters on h1: per-second rates are known (100 + 50 reads/writes per second on sda,
    # 3 MB/s + 1 MB/s on eth0); dm-0 and lo carry the same traffic again and must be left out.
    counters = {
        "node_disk_reads_completed": [
            ('instance="h1:9100",device="sda"', 100.0),
            ('instance="h1:9100",device="dm-0"', 100.0),
        ],
        "node_disk_writes_completed": [
            ('instance="h1:9100",device="sda"', 50.0),
            ('instance="h1:9100",device="dm-0"', 50.0),
        ],
        "node_network_receive_bytes": [
            ('instance="h1:9100",device="eth0"', 3e6),
            ('instance="h1:9100",device="lo"', 9e6),
        ],
        "node_network_transmit_bytes": [
            ('instance="h1:9100",device="eth0"', 1e6),
            ('instance="h1:9100",device="lo"', 9e6),
        ],
    }
    for family, members in counters.items():
        lines.append(f"# TYPE {family} counter")
        for labels, rate in members:
            lines += [f"{family}_total{{{labels}}} {rate * (t - times[0]):.1f} {t}" for t in times]
    # One sharp one-minute peak: a 5-minute query step must still see it (max_over_time).
    lines.append("# TYPE khronika_host_cpu_used_cores gauge")
    lines.append('khronika_host_cpu_used_cores{instance="h3:9100"} 1 ' + str(int(times[100])))
    return "\n".join(lines) + "\n# EOF\n"


def _tls(root: Path, openssl: str) -> tuple[Path, Path, Path]:
    """A CA and a server certificate for localhost / 127.0.0.1 signed by it."""

    def run(*args: str) -> None:
        subprocess.run([openssl, *args], cwd=root, check=True, capture_output=True, timeout=60)

    run(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=test monitoring CA",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
    )
    run(
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=localhost",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
    )
    (root / "san.ext").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n", encoding="utf-8")
    run(
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "san.ext",
        "-out",
        "server.crt",
    )
    return root / "ca.crt", root / "server.crt", root / "server.key"


@dataclass(frozen=True)
class Served:
    url: str
    end: int
    ca: Path
    root: Path

    def client(self, **kwargs: str) -> prom.PrometheusClient:
        options: dict[str, str] = {"ca_file": str(self.ca), "username": USER, "password": PASSWORD}
        options.update(kwargs)
        return prom.PrometheusClient(self.url, **options)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    prometheus, promtool, openssl, htpasswd = _binaries()
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
    ca, cert, key = _tls(root, openssl)
    hashed = (
        subprocess.run([htpasswd, "-nbBC", "10", USER, PASSWORD], check=True, capture_output=True, text=True)
        .stdout.strip()
        .split(":", 1)[1]
    )
    web = root / "web.yml"
    web.write_text(
        f"tls_server_config:\n  cert_file: {cert}\n  key_file: {key}\n"
        f"basic_auth_users:\n  {USER}: '{hashed}'\n",
        encoding="utf-8",
    )
    config = root / "prometheus.yml"
    config.write_text("global:\n  scrape_interval: 1h\n", encoding="utf-8")
    port = _free_port()
    process = subprocess.Popen(
        [
            prometheus,
            f"--config.file={config}",
            f"--web.config.file={web}",
            f"--storage.tsdb.path={storage}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--storage.tsdb.retention.time=30d",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"https://localhost:{port}"
    context = ssl.create_default_context(cafile=str(ca))
    try:
        for _ in range(150):
            try:
                with urllib.request.urlopen(f"{url}/-/ready", timeout=1, context=context):
                    break
            except urllib.error.HTTPError:
                break  # 401: up and asking for credentials
            except OSError:
                time.sleep(0.2)
        else:
            pytest.fail("prometheus did not become ready")
        yield Served(url, end, ca, root)
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()


def test_query_range_batched_and_chunked(served: Served, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(prom, "MAX_POINTS_PER_QUERY", 100)  # forces several chunks
    client = served.client()
    spec = prom._gauge("khronika_host_cpu_used_cores", "cores")
    selectors = prom.selector_batches("instance", ["h1", "h2", "h3"], suffix="(:[0-9]+)?", size=2)
    assert len(selectors) == 2
    series = client.fetch(spec, served.end - DAYS * 86400, served.end, 300, selectors)
    by_host = {s.key.label("host"): s for s in series}
    assert set(by_host) == {"h1", "h2", "h3"}
    h1 = by_host["h1"]
    assert np.all(np.diff(h1.timestamps) == 300)
    assert h1.values.max() == pytest.approx(2.6, rel=0.01)  # peak of 2 x (1 + 0.3)
    assert by_host["h3"].values.max() == 1  # a one-minute spike survives the 5-minute step


def test_node_exporter_and_dcgm_series_in_collector_names(served: Served) -> None:
    """Filesystem used = size - free (tmpfs left out), IOPS and bytes/s from counter rates (dm-* and lo
    left out), GPU utilisation as a ratio and VRAM in bytes, all under the collector's names."""
    raw = prom.fetch_plan_series(served.client(), served.end - DAYS * 86400, served.end, 300, hosts=["h1"])
    found = {(s.key.metric, s.key.labels): s for s in raw}

    def one(metric: str, **labels: str) -> np.ndarray:
        matches = [
            s.values
            for (name, key), s in found.items()
            if name == metric and all((k, v) in key for k, v in labels.items())
        ]
        assert len(matches) == 1, (metric, labels, sorted(k for k in found if k[0] == metric))
        return matches[0]

    used = one("khronika_filesystem_used_bytes", host="h1", mount="/srv")
    assert used.max() / 1024**3 == pytest.approx(500 - 300 * 0.7, rel=0.01)  # size - lowest free
    assert one("khronika_filesystem_size_bytes", host="h1", mount="/srv").max() == 500 * 1024**3
    # Where the collector reports a mount too, its series is the one kept (no double counting).
    assert one("khronika_filesystem_used_bytes", host="h1", mount="/data").max() / 1024**3 == pytest.approx(
        130
    )
    assert not [k for k in found if k[0].startswith("khronika_filesystem") and ("mount", "/run") in k[1]]
    # The collector's rule (metrics.is_disk_mount): no file bind-mounted by a container runtime.
    assert not [k for k in found if ("mount", "/etc/hosts") in k[1]]
    assert np.median(one("khronika_disk_iops", host="h1", device="sda")) == pytest.approx(150, rel=0.01)
    assert not [k for k in found if ("device", "dm-0") in k[1]]
    received = one("khronika_network_bytes_per_second", host="h1", interface="eth0", direction="receive")
    sent = one("khronika_network_bytes_per_second", host="h1", interface="eth0", direction="transmit")
    assert (np.median(received), np.median(sent)) == (
        pytest.approx(3e6, rel=0.01),
        pytest.approx(1e6, rel=0.01),
    )
    assert not [k for k in found if ("interface", "lo") in k[1]]
    assert one("khronika_gpu_utilisation_ratio", host="h1", gpu="0").max() == pytest.approx(0.65, rel=0.01)
    vram = one("khronika_gpu_memory_used_bytes", host="h1", gpu="0", model="NVIDIA H100 80GB HBM3")
    assert vram.max() / 1024**3 == pytest.approx(20 * 1.3, rel=0.01)


def test_plan_from_prometheus_one_run_every_format(
    served: Served, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    catalog = write_catalog(tmp_path / "site.yml")
    monkeypatch.setenv("KHRONIKA_PROMETHEUS_PASSWORD", PASSWORD)
    out_dir = tmp_path / "reports"
    code, _, err = run_cli(
        "plan",
        "--prometheus",
        served.url,
        "--prometheus-ca",
        str(served.ca),
        "--prometheus-user",
        USER,
        "--history",
        f"{DAYS}d",
        "--catalog",
        str(catalog),
        "--format",
        "json,md",
        "--format",
        "html",
        "-o",
        str(out_dir),
    )
    assert code == 0, err
    assert sorted(p.name for p in out_dir.iterdir()) == [
        "capacity-plan.html",
        "capacity-plan.json",
        "capacity-plan.md",
    ]
    plan = json.loads((out_dir / "capacity-plan.json").read_text())
    web = next(m for m in plan["modules"] if m["name"] == "web")
    assert any(f["series"].startswith("khronika_container_cpu_cores") for f in web["figures"])
    # 45 ms x (1 + 0.3 sin): p95 about 58 ms against web's 50 ms target.
    assert web["reasons"]["latency"].startswith("observed p95 0.05")
    assert web["reasons"]["latency"].endswith(
        "against the 0.05 s target: above the target: the current size is short"
    )
    h1 = next(h for h in plan["hosts"] if h["name"] == "h1")
    # 3 MB/s received = 0.024 Gbit/s, the busier direction (full duplex); lo left out.
    assert "p99 0.024 Gbit/s (receive, the busier direction)" in h1["network_reason"]
    assert h1["gpu_observed"]["utilisation_max"] == pytest.approx(0.65, rel=0.01)
    markdown = (out_dir / "capacity-plan.md").read_text()
    assert "## Network and GPUs" in markdown and "Gbit/s NIC" in markdown
    # The three files come from one plan: the Markdown embedded in the HTML is the same text.
    assert "capacity plan" in (out_dir / "capacity-plan.html").read_text()


def test_credentials_and_tls_are_checked(served: Served, monkeypatch: pytest.MonkeyPatch) -> None:
    start, end = served.end - 3600, served.end
    anonymous = prom.PrometheusClient(served.url, ca_file=str(served.ca))
    with pytest.raises(prom.InputError, match=r"access refused \(401\).*KHRONIKA_PROMETHEUS_PASSWORD"):
        anonymous.query_range("up", start, end, 60)
    with pytest.raises(prom.InputError, match=r"access refused \(401\): check the user name and password"):
        served.client(password="wrong").query_range("up", start, end, 60)
    untrusted = prom.PrometheusClient(served.url, username=USER, password=PASSWORD)
    with pytest.raises(prom.InputError, match=r"TLS check failed.*--prometheus-ca"):
        untrusted.query_range("up", start, end, 60)
    monkeypatch.delenv("KHRONIKA_PROMETHEUS_PASSWORD", raising=False)
    code, _, err = run_cli("plan", "--prometheus", served.url, "--prometheus-user", USER, "--format", "json")
    assert code != 0 and "KHRONIKA_PROMETHEUS_PASSWORD" in err


def test_several_formats_need_a_directory(tmp_path: Path) -> None:
    csv = tmp_path / "cpu.csv"
    csv.write_text("timestamp,value\n1,1\n", encoding="utf-8")
    code, _, err = run_cli("plan", "--csv", str(csv), "--format", "md,json")
    assert code != 0 and "-o DIRECTORY" in err
    code, _, err = run_cli("plan", "--csv", str(csv), "--format", "pdf")
    assert code != 0 and "'pdf' is not a format" in err


def test_plan_playbook_reads_the_inventory(served: Served, tmp_path: Path) -> None:
    """playbooks/plan.yml finds Prometheus, its CA and the vaulted web user in the inventory (the way
    the monitoring roles set them), compares with the site as it is (facts of every reachable host,
    modules resolved from khronika_modules) and writes md, html and json from one planner run."""
    inventory = tmp_path / "site"
    tls = inventory / "files" / "monitoring-tls"
    tls.mkdir(parents=True)
    shutil.copy(served.ca, tls / "ca.crt")
    port = served.url.rsplit(":", 1)[1]
    hosts = {
        "all": {
            "vars": {
                "khronika_modules": [
                    {
                        "name": "web",
                        "image": "khronika-samples/appeals-api",
                        "placement": {"hosts": ["localhost"]},
                        "resources": {"cpus": 0.5, "memory": "256m"},
                    }
                ]
            },
            "children": {
                "khronika": {
                    "children": {
                        "khronika_monitoring": {
                            "hosts": {
                                "localhost": {
                                    "ansible_connection": "local",
                                    "ansible_python_interpreter": "{{ ansible_playbook_python }}",
                                    "khronika_nic_gbps": 25,
                                    "monitoring_server_prometheus_port": int(port),
                                    "monitoring_server_web_users": {USER: PASSWORD},
                                }
                            }
                        },
                        # Nothing listens on ghost: the plan goes on without it and says so. localhost
                        # also runs the module (a host may be in several groups).
                        "khronika_platform": {
                            "hosts": {
                                "ghost": {"ansible_host": "127.0.0.1", "ansible_port": _free_port()},
                                "localhost": {},
                            }
                        },
                    }
                }
            },
        }
    }
    (inventory / "hosts.yml").write_text(yaml.safe_dump(hosts), encoding="utf-8")
    reports = tmp_path / "reports"
    # A temporary folder of the run's own: the password file must be gone from it afterwards, and
    # another run on the machine (another test session) cannot be mistaken for this one.
    private_tmp = tmp_path / "tmp"
    private_tmp.mkdir()
    env = ansible_env(
        PATH=f"{REPO / '.venv' / 'bin'}{os.pathsep}{os.environ['PATH']}", TMPDIR=str(private_tmp)
    )
    run = run_playbook(
        REPO / "playbooks" / "plan.yml",
        inventory / "hosts.yml",
        "-e",
        f"khronika_plan_report_dir={reports}",
        "-e",
        f"khronika_plan_history={DAYS}d",
        "-vvv",  # even the commands Ansible runs must not show the password
        env=env,
    )
    assert run.rc == 0, run.output
    assert sorted(p.name for p in reports.iterdir()) == [
        "capacity-plan.html",
        "capacity-plan.json",
        "capacity-plan.md",
        "site-catalog.yml",
    ]
    plan = json.loads((reports / "capacity-plan.json").read_text())
    assert plan["history_source"] == served.url
    here = next(h for h in plan["hosts"] if h["name"] == "localhost")
    assert not here["new"] and here["cores"] == os.cpu_count() and here["nic_gbps"] == 25
    web = next(m for m in plan["modules"] if m["name"] == "web")
    assert web["current_hosts"] == ["localhost"] and web["replicas"] == 1
    assert web["cores_per_replica"] >= 0.5  # the Docker limit is the floor
    assert any("ghost: no facts" in warning for warning in plan["warnings"])
    assert PASSWORD not in run.output
    assert f"{private_tmp}/ansible." in run.output  # the password file was made there...
    assert not list(private_tmp.rglob("*.khronika-plan"))  # ...and is gone
    # A wrong CA path is refused before anything runs.
    bad = run_playbook(
        REPO / "playbooks" / "plan.yml",
        inventory / "hosts.yml",
        "-e",
        f"khronika_plan_report_dir={tmp_path / 'never'}",
        "-e",
        "khronika_prometheus_ca=/nonexistent/ca.crt",
        env=env,
    )
    assert bad.rc != 0 and "must exist for https" in bad.output
    assert not (tmp_path / "never").exists()


def test_unreachable_prometheus_names_the_url() -> None:
    url = f"http://127.0.0.1:{_free_port()}"
    code, _, err = run_cli("plan", "--prometheus", url, "--format", "json")
    assert code != 0 and url in err


def test_bad_query_names_the_query(served: Served) -> None:
    with pytest.raises(prom.InputError, match="query"):
        served.client().query_range("sum(", served.end - 3600, served.end, 60)
