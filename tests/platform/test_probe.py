"""The downtime probe against a real HTTP server on loopback that goes down and comes back."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from khronika_ops.platform.probe import Outage, ProbeError, Prober, Sample, check_targets, outages


class _Module(ThreadingHTTPServer):
    healthy = True
    hits = 0


class _Handler(BaseHTTPRequestHandler):
    server: _Module

    def do_GET(self) -> None:
        self.server.hits += 1
        code = 200 if self.server.healthy else 503
        self.send_response(code)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *_args: object) -> None:
        pass


@pytest.fixture
def module_server():
    server = _Module(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_an_outage_is_measured(module_server: _Module) -> None:
    url = f"http://127.0.0.1:{module_server.server_address[1]}/health"
    # A slow answer (a loaded machine) is no outage here: only the 503s are.
    prober = Prober({"api": url}, rate=20, max_seconds=30, timeout=5).start()
    prober.wait(0.8)
    module_server.healthy = False
    down_at = time.time()
    prober.wait(1.0)
    module_server.healthy = True
    up_at = time.time()
    prober.wait(0.8)
    report = prober.stop()["api"]
    assert len(report.outages) == 1, report
    outage = report.outages[0]
    # The measured interval is the real one to within a few probe periods (50 ms each) and scheduling
    # (the prober, the server and two other test workers share two cores).
    assert abs(outage.start - down_at) < 0.6 and abs(outage.end - up_at) < 0.6, (outage, down_at, up_at)
    assert 5 <= report.failed <= 30 and report.failed == outage.failed
    assert report.requests >= 20


def test_a_module_that_never_answers() -> None:
    prober = Prober({"gone": f"http://127.0.0.1:{_closed_port()}/"}, rate=10, max_seconds=0.6, timeout=0.2)
    prober.start().wait(1.0)
    report = prober.stop()["gone"]
    assert report.failed == report.requests > 0 and len(report.outages) == 1


def test_limits_and_allowed_hosts() -> None:
    with pytest.raises(ProbeError, match="at most 50"):
        Prober({"api": "http://127.0.0.1:1/"}, rate=500)
    with pytest.raises(ProbeError, match=r"gw\.example is neither loopback nor an allowed host"):
        check_targets({"api": "https://gw.example/api/health"})
    check_targets({"api": "https://gw-01/api/health"}, allowed_hosts=["gw-01"])
    with pytest.raises(ProbeError, match="not an http"):
        check_targets({"api": "ftp://127.0.0.1/"})


def test_outage_intervals_from_samples() -> None:
    samples = [Sample(0.0, True, 200, 0.01), Sample(1.0, False, 503, 0.01), Sample(2.0, False, None, 0.5)]
    samples += [Sample(3.0, True, 200, 0.01), Sample(4.0, False, 502, 0.01)]
    assert outages(samples) == [Outage(1.0, 3.0, 2), Outage(4.0, 4.01, 1)]


def test_the_command_stops_on_sigterm_and_writes_its_report(module_server: _Module, tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{module_server.server_address[1]}/"
    out = tmp_path / "probe.json"
    khronika = Path(sys.executable).with_name("khronika")
    proc = subprocess.Popen(
        [str(khronika), "update", "probe", "--target", f"api={url}", "--out", str(out), "--rate", "20"],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "NO_COLOR": "1"},
    )
    # Its first requests show the command has started (and installed its handler): then the signal. The
    # server counts a request before it answers, the probe after: two more than the 6 asserted below.
    deadline = time.monotonic() + 60
    while module_server.hits < 8 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None and module_server.hits >= 8, module_server.hits
    proc.send_signal(signal.SIGTERM)
    stdout, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0
    report = json.loads(out.read_text(encoding="utf-8"))["modules"]["api"]
    assert report["requests"] > 5 and report["failed"] == 0 and report["outages"] == []
    assert "api: " in stdout and "0 failed" in stdout


def _closed_port() -> int:
    """A loopback port that nothing listens on (bound, then closed)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
