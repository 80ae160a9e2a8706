"""Bad monitoring and GPU inventories fail in the preflight, before any change, with a message naming the
variable and what to write instead (same throwaway target and check-mode guard as test_role_inputs.py)."""

from __future__ import annotations

import pytest

from test_role_inputs import assert_refused, run_role

pytestmark = pytest.mark.docker

SERVER = {"monitoring_server_scrape_password": "scrape-secret"}


def test_unknown_alert_receiver_type(target_host, tmp_path):
    receivers = [
        {"name": "default", "type": "null"},
        {"name": "pager", "type": "sms", "config": {"number": "+100"}},
    ]
    run = run_role(
        target_host,
        "monitoring_server",
        tmp_path,
        {**SERVER, "monitoring_server_alertmanager_receivers": receivers},
    )
    assert_refused(
        run,
        "monitoring_server_alertmanager_receivers[1] (pager): unknown receiver type 'sms'",
        "webhook",
        "email",
    )


def test_route_to_an_undefined_receiver(target_host, tmp_path):
    route = {"receiver": "default", "routes": [{"receiver": "oncall", "matchers": ['severity="critical"']}]}
    run = run_role(
        target_host, "monitoring_server", tmp_path, {**SERVER, "monitoring_server_alertmanager_route": route}
    )
    assert_refused(run, "monitoring_server_alertmanager_route.routes[0]: receiver 'oncall' is not defined")


def test_receiver_missing_its_settings(target_host, tmp_path):
    receivers = [{"name": "default", "type": "webhook", "config": {}}]
    run = run_role(
        target_host,
        "monitoring_server",
        tmp_path,
        {**SERVER, "monitoring_server_alertmanager_receivers": receivers},
    )
    assert_refused(run, "(default): type webhook needs url in config")


def test_invalid_retention_time(target_host, tmp_path):
    run = run_role(
        target_host, "monitoring_server", tmp_path, {**SERVER, "monitoring_server_retention_time": "15 days"}
    )
    assert_refused(run, "monitoring_server_retention_time: '15 days' is not a Prometheus duration", "15d")


def test_invalid_retention_size(target_host, tmp_path):
    run = run_role(
        target_host, "monitoring_server", tmp_path, {**SERVER, "monitoring_server_retention_size": "50G"}
    )
    assert_refused(run, "monitoring_server_retention_size: '50G' is not a size", "50GB")


def test_scrape_password_is_required(target_host, tmp_path):
    run = run_role(target_host, "monitoring_server", tmp_path, {})
    assert_refused(run, "monitoring_server_scrape_password must be set", "vault_monitoring_scrape_password")


def test_unknown_alert_in_durations(target_host, tmp_path):
    run = run_role(
        target_host,
        "monitoring_server",
        tmp_path,
        {**SERVER, "monitoring_server_alert_durations": {"KhronikaDiskFull": "5m"}},
    )
    assert_refused(
        run,
        "monitoring_server_alert_durations names unknown alerts: KhronikaDiskFull",
        "KhronikaFilesystemOutOfSpace",
    )


def test_exporter_needs_users(target_host, tmp_path):
    run = run_role(target_host, "monitoring_agent", tmp_path, {})
    assert_refused(run, "monitoring_agent_web_users must map user names", "vault_monitoring_scrape_password")


def test_gpu_count_expected_but_none_detected(target_host, tmp_path):
    # CI and this container have no NVIDIA GPU; a host expected to have 8 is refused before any change.
    run = run_role(target_host, "nvidia", tmp_path, {"khronika_gpu_expected_count": 8})
    assert_refused(run, "GPU check failed on", "expected 8 GPU(s), found", "khronika_gpu_expected_count")


def test_bad_driver_branch(target_host, tmp_path):
    run = run_role(target_host, "nvidia", tmp_path, {"nvidia_driver_branch": "latest"})
    assert_refused(run, "nvidia_driver_branch a driver branch such as '550' (got 'latest')")
