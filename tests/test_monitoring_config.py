"""khronika_ops.monitoring: receivers, routes, web configurations, and the typer-free collector entry point."""

from __future__ import annotations

import json
import subprocess
import sys

import yaml

from conftest import REPO, run_playbook
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


def test_scrape_configs_from_the_inventory(tmp_path):
    """The role's scrape jobs come from khronika_ops.monitoring.scrape_configs through the filter:
    rendered here by Ansible from the role's own defaults and vars on a small inventory."""
    role = REPO / "roles" / "monitoring_server"
    out = tmp_path / "jobs.json"
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(
        yaml.safe_dump(
            {
                "all": {
                    "vars": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable},
                    "children": {
                        "khronika": {"hosts": {"app-02": {}, "app-01": {}, "mon": {}}},
                        "khronika_gpu": {"hosts": {"app-02": {}}},
                        "khronika_gateway": {"hosts": {"mon": {}}},
                        "khronika_monitoring": {"hosts": {"mon": {}}},
                    },
                }
            }
        ),
        encoding="utf-8",
    )
    playbook = tmp_path / "render.yml"
    play = {
        "hosts": "mon",
        "gather_facts": False,
        "vars_files": [str(role / "defaults" / "main.yml"), str(role / "vars" / "main.yml")],
        "tasks": [
            {
                "name": "Write the scrape jobs",
                "ansible.builtin.copy": {
                    "content": "{{ _monitoring_server_scrape_configs | to_json }}",
                    "dest": str(out),
                    "mode": "0600",
                },
            }
        ],
    }
    playbook.write_text(yaml.safe_dump([play], sort_keys=False), encoding="utf-8")
    settings = {  # extra vars: above the role files the play loads
        "monitoring_server_gateway_group": "khronika_gateway",
        "monitoring_server_scrape_password": "secret",
        "monitoring_server_module_targets": [{"module": "api", "targets": ["app-01:8080"]}],
    }
    run = run_playbook(playbook, inventory, "-e", json.dumps(settings))
    assert run.rc == 0, run.output
    jobs = {job["job_name"]: job for job in json.loads(out.read_text(encoding="utf-8"))}
    assert list(jobs) == [
        "prometheus",
        "alertmanager",
        "node",
        "khronika-modules",
        "khronika-gateway",
        "dcgm",
    ]
    assert jobs["prometheus"]["static_configs"] == [{"targets": ["mon:9090"]}]
    assert jobs["prometheus"]["scheme"] == "https" and jobs["node"]["basic_auth"]["username"] == "prometheus"
    assert jobs["node"]["static_configs"] == [{"targets": ["app-01:9100", "app-02:9100", "mon:9100"]}]
    assert jobs["khronika-modules"]["static_configs"][0]["labels"] == {
        "module": "api",
        "__metrics_path__": "/metrics",
        "__scheme__": "http",
    }
    assert jobs["khronika-gateway"]["static_configs"] == [{"targets": ["mon:9113"]}]
    assert jobs["dcgm"]["static_configs"] == [{"targets": ["app-02:9400"]}]


def test_scrape_configs_leave_out_empty_jobs():
    jobs = monitoring.scrape_configs(
        server="mon", prometheus_port=9090, alertmanager_port=9093, https={"scheme": "https"},
        extra=[{"job_name": "site-extra", "static_configs": [{"targets": ["x:1"]}]}],
    )  # fmt: skip
    assert [job["job_name"] for job in jobs] == ["prometheus", "alertmanager", "site-extra"]
