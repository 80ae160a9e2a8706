"""khronika_ops.monitoring: receivers, routes, web configurations, and the typer-free collector entry point."""

from __future__ import annotations

import subprocess
import sys

from khronika_ops import monitoring


def test_receivers_are_translated_to_alertmanager():
    receivers = [
        {"name": "default", "type": "null"},
        {
            "name": "ops",
            "type": "webhook",
            "config": {"url": "https://hooks.example.org/am", "send_resolved": True},
        },
    ]
    assert (
        monitoring.receiver_errors(receivers, {"receiver": "default", "routes": [{"receiver": "ops"}]}) == []
    )
    assert monitoring.alertmanager_receivers(receivers) == [
        {"name": "default"},
        {"name": "ops", "webhook_configs": [{"url": "https://hooks.example.org/am", "send_resolved": True}]},
    ]


def test_receiver_errors_name_the_variable_and_the_fix():
    errors = monitoring.receiver_errors(
        [{"name": "a", "type": "sms"}, {"name": "a", "type": "email", "config": {}}],
        {"routes": [{"receiver": "b"}]},
    )
    assert errors == [
        "monitoring_server_alertmanager_receivers[0] (a): unknown receiver type 'sms'; use one of email, null, "
        "opsgenie, pagerduty, pushover, slack, sns, telegram, victorops, webex, webhook, wechat",
        "monitoring_server_alertmanager_receivers[1]: receiver name 'a' is used twice",
        "monitoring_server_alertmanager_receivers[1] (a): type email needs to in config",
        "monitoring_server_alertmanager_route: the top route needs a receiver (one of a)",
        "monitoring_server_alertmanager_route.routes[0]: receiver 'b' is not defined in "
        "monitoring_server_alertmanager_receivers (defined: a)",
    ]
    assert monitoring.receiver_errors([], {}) == [
        "monitoring_server_alertmanager_receivers: must be a non-empty list of {name, type, config}"
    ]


def test_web_config_is_stable_and_verifiable():
    first = monitoring.web_config({"prometheus": "s3cret"}, "/c.crt", "/c.key", "host-a")
    again = monitoring.web_config({"prometheus": "s3cret"}, "/c.crt", "/c.key", "host-a")
    other_host = monitoring.web_config({"prometheus": "s3cret"}, "/c.crt", "/c.key", "host-b")
    new_password = monitoring.web_config({"prometheus": "changed"}, "/c.crt", "/c.key", "host-a")
    hashed = first["basic_auth_users"]["prometheus"]
    assert first == again
    assert hashed != other_host["basic_auth_users"]["prometheus"]
    assert hashed != new_password["basic_auth_users"]["prometheus"]
    assert hashed.startswith("$2b$10$") and len(hashed) == 60
    assert first["tls_server_config"] == {"cert_file": "/c.crt", "key_file": "/c.key", "min_version": "TLS12"}


def test_collector_runs_without_typer(tmp_path):
    """The service form (`python -m khronika_ops.collector`) must not need typer, which hosts lack."""
    code = "import sys, runpy; sys.modules['typer'] = None; sys.argv[0] = 'c'; runpy.run_module('khronika_ops.collector', run_name='__main__')"
    proc = subprocess.run(
        [sys.executable, "-c", code, "--once", "--textfile", str(tmp_path), "--interval", "1s"],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    text = (tmp_path / "khronika.prom").read_text(encoding="utf-8")
    assert "khronika_host_cpu_cores" in text


def test_collector_rejects_a_bad_interval():
    proc = subprocess.run(
        [sys.executable, "-m", "khronika_ops.collector", "--interval", "soon", "--once"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2
    assert "'soon' is not a duration such as 10s, 1m30s, 500ms, 12h or 90d" in proc.stderr
