"""The lab's appeal traffic: its daily curve, its bounds, and a real run against a loopback HTTPS
server that answers like the gateway (appeals stored and read back, texts classified)."""

from __future__ import annotations

import json
import ssl
import subprocess
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

from khronika_ops.lab.traffic import MAX_RATE, Traffic, TrafficError, day_shape


def test_the_day_is_quiet_at_night_and_peaks_after_noon():
    hours = [day_shape(h / 24) for h in range(24)]
    assert all(0.15 <= value <= 1.0 for value in hours)
    assert max(hours[0:5]) < 0.2 and hours[13] > 0.95
    assert hours[13] > hours[9] > hours[4] and hours[19] > hours[23]


@pytest.mark.parametrize(
    ("address", "kwargs", "message"),
    [
        ("8.8.8.8", {}, "neither loopback nor a private address"),
        ("gateway.example.org", {}, "must be given as an address"),
        ("127.0.0.1", {"peak_rate": MAX_RATE + 1}, "peak rate"),
        ("127.0.0.1", {"seconds": 0}, "duration"),
    ],
)
def test_out_of_bounds_is_refused_before_any_request(address, kwargs, message):
    with pytest.raises(TrafficError, match=message):
        Traffic(address, **kwargs)


class _Gateway(BaseHTTPRequestHandler):
    appeals: ClassVar[dict[str, dict]] = {}
    seen: ClassVar[list[str]] = []

    def log_message(self, *_args):  # quiet
        pass

    def _answer(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.seen.append(f"POST {self.path}")
        if self.path == "/api/appeals/appeals":
            appeal_id = uuid.uuid4().hex
            self.appeals[appeal_id] = body
            self._answer(201, {"id": appeal_id})
        elif self.path == "/api/classify/classify":
            self._answer(200, {"label": "roads", "tokens": len(body["text"].split())})
        else:
            self._answer(404, {})

    def do_GET(self):
        self.seen.append("GET appeal")
        appeal_id = self.path.rsplit("/", 1)[-1]
        self._answer(200 if appeal_id in self.appeals else 404, self.appeals.get(appeal_id, {}))


def _self_signed(subject: str, key: Path | str, cert: Path | str) -> None:
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            subject,
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )


@pytest.fixture
def gateway(tmp_path: Path):
    cert, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    _self_signed("/CN=lab gateway", str(key), str(cert))
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Gateway)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1], cert
    server.shutdown()


def test_traffic_writes_reads_and_classifies_through_the_gateway(gateway):
    port, cert = gateway
    ticks: list[float] = []
    traffic = Traffic("127.0.0.1", port=port, ca_file=str(cert), peak_rate=30, seconds=4, seed=7)
    report = traffic.run(on_tick=lambda elapsed, rate: ticks.append(rate), tick_seconds=1)
    data = report.as_dict()
    appeals, classifier = data["modules"]["appeals-api"], data["modules"]["classifier"]
    assert report.sent >= 10 and ticks
    assert appeals["statuses"].get("201", 0) == classifier["statuses"]["200"] == classifier["requests"]
    assert appeals["statuses"].get("200", 0) >= 1  # appeals read back
    assert set(appeals["statuses"]) <= {"200", "201"}
    assert appeals["p95_ms"] is not None and "visits" in report.line()


def test_a_gateway_with_another_certificate_is_not_trusted(gateway, tmp_path):
    port, _cert = gateway
    other = tmp_path / "other.crt"
    _self_signed("/CN=someone else", str(tmp_path / "other.key"), str(other))
    report = Traffic("127.0.0.1", port=port, ca_file=str(other), peak_rate=20, seconds=1, seed=1).run()
    statuses = set(report.by_module["appeals-api"])
    assert statuses == {"SSLCertVerificationError"}
