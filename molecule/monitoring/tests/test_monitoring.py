"""Monitoring scenario: Prometheus and Alertmanager on kh-monitoring-server, exporters on every host.

Queries run on the server with python3 (TLS verified against the monitoring CA), as a site's operator would.
"""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest

SERVER = "kh-monitoring-server"
NODES = ("kh-monitoring-node1", "kh-monitoring-node2")
ALL = (SERVER, *NODES)
SCRAPE = ("prometheus", "molecule-scrape-secret")
ADMIN = ("admin", "molecule-admin-secret")
PROMETHEUS = f"https://{SERVER}:9090"
ALERTMANAGER = f"https://{SERVER}:9093"

_CLIENT = r"""
import base64, json, ssl, sys, urllib.request, urllib.error
url, method, user, password, body = json.loads(sys.argv[1])
context = ssl.create_default_context(cafile="/etc/khronika/tls/ca.crt")
request = urllib.request.Request(url, method=method, data=body.encode() if body else None)
request.add_header("Content-Type", "application/json")
if user:
    request.add_header("Authorization", "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode())
try:
    with urllib.request.urlopen(request, context=context, timeout=10) as answer:
        print(json.dumps({"status": answer.status, "body": answer.read().decode()}))
except urllib.error.HTTPError as error:
    print(json.dumps({"status": error.code, "body": error.read().decode()}))
"""


@pytest.fixture(scope="module")
def server(host):
    return host.get_host(f"ansible://{SERVER}", ansible_inventory=host.backend.ansible_inventory)


def call(server, url: str, method: str = "GET", auth=ADMIN, body: object = None) -> tuple[int, str]:
    args = json.dumps(
        [url, method, auth[0] if auth else "", auth[1] if auth else "", json.dumps(body) if body else ""]
    )
    result = server.run("python3 -c %s %s", _CLIENT, args)
    assert result.rc == 0, result.stderr
    answer = json.loads(result.stdout)
    return answer["status"], answer["body"]


def api(server, url: str, method: str = "GET", body: object = None):
    status, text = call(server, url, method, body=body)
    assert status == 200, (url, status, text)
    return json.loads(text) if text else None


def eventually(check, timeout: float = 90, interval: float = 3):
    deadline = time.monotonic() + timeout
    while True:
        try:
            return check()
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(interval)


def query(server, promql: str) -> list[dict]:
    from urllib.parse import quote

    return api(server, f"{PROMETHEUS}/api/v1/query?query={quote(promql)}")["data"]["result"]


testinfra_hosts = [f"ansible://{SERVER}"]


def test_every_target_is_up(server):
    def check():
        targets = api(server, f"{PROMETHEUS}/api/v1/targets")["data"]["activeTargets"]
        jobs = {(t["labels"]["job"], t["labels"]["instance"]): t["health"] for t in targets}
        expected = {("prometheus", f"{SERVER}:9090"), ("alertmanager", f"{SERVER}:9093")}
        expected |= {("node", f"{name}:9100") for name in ALL}
        assert set(jobs) == expected, jobs
        assert set(jobs.values()) == {"up"}, [t.get("lastError") for t in targets]

    eventually(check)


def test_rules_are_loaded(server):
    groups = api(server, f"{PROMETHEUS}/api/v1/rules")["data"]["groups"]
    names = {group["name"] for group in groups}
    assert {"khronika-recording", "khronika-hosts", "khronika-modules", "khronika-gpus"} <= names
    rules = {rule["name"]: rule for group in groups for rule in group["rules"]}
    for alert in ("KhronikaFilesystemFillingUp", "KhronikaSystemdUnitFailed", "KhronikaGpuXidError"):
        assert rules[alert]["health"] in ("ok", "unknown"), rules[alert]
    assert "khronika_module_requests_per_second" in rules


def test_recording_rules_produce_series(server):
    eventually(
        lambda: _assert_hosts(query(server, "instance:khronika_node_cpu_utilisation:ratio"), "instance")
    )


def _assert_hosts(result: list[dict], label: str) -> None:
    found = {series["metric"][label].split(":")[0] for series in result}
    assert found == set(ALL), found


def test_khronika_collect_metrics_reach_prometheus(server):
    eventually(lambda: _assert_hosts(query(server, "khronika_host_cpu_cores"), "host"))
    memory = query(server, "khronika_host_memory_total_bytes")
    assert all(float(series["value"][1]) > 0 for series in memory)


def test_exporter_refuses_unauthenticated_scrapes(server):
    for node in NODES:
        url = f"https://{node}:9100/metrics"
        assert call(server, url, auth=None)[0] == 401
        assert call(server, url, auth=("prometheus", "wrong"))[0] == 401
        status, text = call(server, url, auth=SCRAPE)
        assert status == 200
        assert "node_systemd_unit_state" in text
    # Prometheus and Alertmanager refuse anonymous API calls too.
    assert call(server, f"{PROMETHEUS}/api/v1/targets", auth=None)[0] == 401
    assert call(server, f"{ALERTMANAGER}/api/v2/alerts", auth=None)[0] == 401


def test_exporter_speaks_only_tls(server):
    result = server.run(
        "python3 -c %s",
        "import urllib.request; urllib.request.urlopen('http://kh-monitoring-node1:9100/metrics', timeout=5)",
    )
    assert result.rc != 0


def test_failed_unit_alerts_and_a_silence_suppresses_it(host, server):
    node = host.get_host(f"ansible://{NODES[0]}", ansible_inventory=host.backend.ansible_inventory)
    unit = f"kh-provoke-{uuid.uuid4().hex[:6]}"
    assert node.run("systemd-run --unit=%s /bin/false", unit).rc == 0
    try:
        # One filter parameter per matcher (Alertmanager API v2).
        matchers = ('alertname="KhronikaSystemdUnitFailed"', f'name="{unit}.service"')
        filters = "&".join(f"filter={_quote(matcher)}" for matcher in matchers)
        url = f"{ALERTMANAGER}/api/v2/alerts?{filters}"

        def firing():
            alerts = api(server, url)
            assert alerts, "no alert in Alertmanager yet"
            return alerts[0]

        alert = eventually(firing, timeout=120)
        assert alert["status"]["state"] == "active"
        assert alert["labels"]["instance"] == f"{NODES[0]}:9100"

        now = datetime.now(UTC)
        silence = api(
            server,
            f"{ALERTMANAGER}/api/v2/silences",
            method="POST",
            body={
                "matchers": [
                    {
                        "name": "alertname",
                        "value": "KhronikaSystemdUnitFailed",
                        "isRegex": False,
                        "isEqual": True,
                    },
                    {"name": "name", "value": f"{unit}.service", "isRegex": False, "isEqual": True},
                ],
                "startsAt": now.isoformat(),
                "endsAt": (now + timedelta(minutes=10)).isoformat(),
                "createdBy": "molecule",
                "comment": "planned downtime test",
            },
        )
        silence_id = silence["silenceID"]

        def suppressed():
            state = api(server, url)[0]["status"]
            assert state["state"] == "suppressed", state
            assert silence_id in state["silencedBy"]

        eventually(suppressed, timeout=30, interval=1)
        active = api(server, f"{ALERTMANAGER}/api/v2/alerts?silenced=false&{filters}")
        assert active == []
        api(server, f"{ALERTMANAGER}/api/v2/silence/{silence_id}", method="DELETE")
    finally:
        node.run("systemctl reset-failed %s.service", unit)


def _quote(text: str) -> str:
    from urllib.parse import quote

    return quote(text, safe="")


def test_no_gpu_here_and_dcgm_exporter_skipped(host):
    for name in ALL:
        other = host.get_host(f"ansible://{name}", ansible_inventory=host.backend.ansible_inventory)
        fact = json.loads(other.check_output("/etc/ansible/facts.d/khronika_gpu.fact"))
        assert (fact["count"], fact["source"]) == (0, "none")
        assert other.service("prometheus-node-exporter").is_running
        assert other.service("khronika-collect").is_running
        assert other.file("/var/lib/prometheus/node-exporter/khronika.prom").exists
        assert other.file("/etc/khronika/tls/host.key").mode == 0o640
