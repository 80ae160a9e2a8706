"""`khronika collect` on the real host, and the planner reading what it wrote."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from khronika_ops.collector.sampler import DOCKER_SOCKET, Sample, Sampler, parse_nvidia_smi
from khronika_ops.collector.writers import render_textfile, write_textfile
from khronika_ops.planner.ingest import read_csv

from .helpers import DATA, run_cli

_EXPOSITION_LINE = re.compile(r'^[a-zA-Z_:][a-zA-Z0-9_:]*\{([a-zA-Z_]\w*="(?:[^"\\]|\\.)*",?)*\} \S+$')


@pytest.fixture
def running_container() -> object:
    """A short-lived container, when Docker and a local image with `sleep` exist (no pulls)."""
    docker = pytest.importorskip("docker")
    if not DOCKER_SOCKET.exists():
        yield None
        return
    client = docker.from_env()
    images = [
        tag for image in client.images.list() for tag in image.tags if "busybox" in tag or "alpine" in tag
    ]
    if not images:
        yield None
        return
    container = client.containers.run(
        images[0],
        ["sleep", "60"],
        name=f"khronika-collect-test-{uuid.uuid4().hex[:8]}",
        detach=True,
        auto_remove=True,
    )
    try:
        yield container
    finally:
        container.remove(force=True)


def test_collect_once_real_host(tmp_path: Path, running_container: object) -> None:
    code, _, err = run_cli(
        "collect", "--once", "--csv", str(tmp_path / "csv"), "--textfile", str(tmp_path / "tf")
    )
    assert code == 0, err
    if DOCKER_SOCKET.exists():
        # The daemon answered. A container another test removes between the list and its stats is
        # noted and skipped: this machine's Docker is shared; this test's own container is checked below.
        assert "container metrics skipped" not in err, err
    files = list((tmp_path / "csv").glob("khronika-*.csv"))
    assert len(files) == 1
    series = {str(s.key).split("{")[0] for s in read_csv(files[0])}  # every name is a known metric
    assert {"khronika_host_cpu_utilisation_ratio", "khronika_host_memory_used_bytes"} <= series
    assert "khronika_filesystem_used_bytes" in series
    devices = {s.key.label("device") for s in read_csv(files[0]) if s.key.metric == "khronika_disk_iops"}
    assert not {d for d in devices if d and d.startswith(("loop", "dm-", "ram"))}  # counted below them
    network = [s.key for s in read_csv(files[0]) if s.key.metric == "khronika_network_bytes_per_second"]
    assert {key.label("direction") for key in network} <= {"receive", "transmit"}
    interfaces = {key.label("interface") or "" for key in network}
    assert not {name for name in interfaces if name == "lo" or name.startswith(("veth", "docker", "br-"))}
    if running_container is not None:
        name = running_container.name  # type: ignore[attr-defined]
        keys = [str(s.key) for s in read_csv(files[0])]
        assert any(f'container="{name}"' in key and "memory" in key for key in keys)
        assert any(f'container="{name}"' in key and "cpu_cores" in key for key in keys)
    prom = (tmp_path / "tf" / "khronika.prom").read_text()
    for line in prom.splitlines():
        assert line.startswith("#") or _EXPOSITION_LINE.match(line), line
    assert not list((tmp_path / "tf").glob(".khronika-*"))  # temp file renamed, nothing left behind


def test_planner_reads_collector_csv(tmp_path: Path) -> None:
    run_cli("collect", "--once", "--csv", str(tmp_path))
    path = next(tmp_path.glob("khronika-*.csv"))
    # Named explicitly: containers running on this machine add more memory series to the file.
    series = "khronika_host_memory_used_bytes"
    code, out, err = run_cli(
        "plan", "size", "--csv", str(path), "--resource", "memory", "--series", series, "--json"
    )
    assert code == 0, err
    result = json.loads(out)
    assert result["series"].startswith("khronika_host_memory_used_bytes")
    assert result["insufficient_data"] is True  # one sample is not history
    assert result["recommended"] is None


def test_a_container_gone_between_list_and_stats_costs_only_its_own_sample(tmp_path: Path) -> None:
    """An update replaces containers while the collector reads them: Docker lists a container, then
    answers 404 for its stats. The other containers' samples are kept (a Docker API on a Unix socket
    that answers as the engine does in that race)."""
    import socketserver
    import threading
    from http.server import BaseHTTPRequestHandler

    calls = {"n": 0}

    class Engine(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/containers/json":
                body: object = [{"Id": "a" * 64, "Names": ["/web-1"]}, {"Id": "b" * 64, "Names": ["/gone-1"]}]
            elif self.path.startswith("/containers/" + "a" * 64 + "/stats"):
                calls["n"] += 1
                body = {
                    "cpu_stats": {"cpu_usage": {"total_usage": calls["n"] * 10**9}},
                    "memory_stats": {"usage": 300 * 2**20, "stats": {"inactive_file": 100 * 2**20}},
                }
            else:
                self.send_response(404)
                self.end_headers()
                return
            data = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            pass

    class Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
        daemon_threads = True

        def get_request(self) -> tuple[object, tuple[str, int]]:
            request, _ = super().get_request()
            return request, ("docker", 0)

    path = tmp_path / "docker.sock"
    server = Server(str(path), Engine)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        sampler = Sampler(docker_socket=path, nvidia_smi="")
        samples = sampler.sample()
    finally:
        server.shutdown()
        server.server_close()
    containers = {dict(s.labels)["container"] for s in samples if s.metric.startswith("khronika_container")}
    assert containers == {"web-1"}
    assert any("its sample skipped" in note for note in sampler.notes)
    assert not any("container metrics skipped" in note for note in sampler.notes)


def test_missing_docker_is_a_note(tmp_path: Path) -> None:
    sampler = Sampler(docker_socket=tmp_path / "no.sock", nvidia_smi="")
    samples = sampler.sample()
    assert not any(s.metric.startswith("khronika_container") for s in samples)
    assert any("container metrics skipped" in note for note in sampler.notes)


def test_nvidia_smi_parsing() -> None:
    output = "0, NVIDIA L4, 37, 1024, 23034\n1, NVIDIA L4, [N/A], 0, 23034\n"
    samples = parse_nvidia_smi(output, "h")
    ratio = [s for s in samples if s.metric == "khronika_gpu_utilisation_ratio"]
    assert len(ratio) == 1 and ratio[0].value == pytest.approx(0.37)
    assert dict(ratio[0].labels) == {"gpu": "0", "host": "h", "model": "NVIDIA L4"}


def test_textfile_escapes_and_is_atomic(tmp_path: Path) -> None:
    samples = [Sample("khronika_container_memory_bytes", (("container", 'we"ird\\'),), 1.0)]
    assert 'container="we\\"ird\\\\"' in render_textfile(samples)
    target = write_textfile(tmp_path, samples)
    assert target.read_text().startswith("# HELP khronika_container_memory_bytes")


def test_collector_imports_neither_numpy_nor_pydantic() -> None:
    """Hosts run the collector with psutil alone; the planner (and its heavy dependencies) stay off them."""
    code = (
        "import sys, khronika_ops.collector.service, khronika_ops.collector.sampler;"
        "print(sorted(m for m in sys.modules if m in ('numpy', 'pydantic', 'typer')"
        " or m.startswith('khronika_ops.planner')))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"  # and the vocabulary it shares with the planner is below both


def test_real_h200_collect_output_is_gpu_evidence(tmp_path: Path) -> None:
    """`khronika collect` output from a real H200 host (tests/data/gpu/README.md): 110 s at 2 s under
    a matmul load that held VRAM in 4 GiB steps. The plan shows it as the host's GPU evidence."""
    site = tmp_path / "site.yml"
    site.write_text(
        "gpu_models:\n  - {name: nvidia-h200, vram_gib: 140, throughput: 22, cost: 40000}\n"
        "hosts:\n  - {name: vm, cores: 16, memory_gib: 128, disk_gib: 64, gpus: 1, gpu_model: nvidia-h200}\n"
        "modules:\n  - {name: infer, host: vm, gpu_requests_per_second: 10, gpu_vram_gib: 24}\n",
        encoding="utf-8",
    )
    code, out, err = run_cli(
        "plan", "--csv", str(DATA / "gpu" / "h200-collect.csv"), "--catalog", str(site), "--format", "json"
    )
    assert code == 0, err
    plan = json.loads(out)
    observed = plan["hosts"][0]["gpu_observed"]
    assert observed["utilisation_max"] == 1.0 and observed["utilisation_p95"] == 1.0
    assert 29 < observed["memory_used_gib_max"] < 30 and 140 < observed["memory_total_gib"] < 141
    assert "VRAM used at most 29.6 of 140.4 GiB per GPU" in plan["modules"][0]["reasons"]["gpu"]
