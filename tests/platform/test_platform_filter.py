"""The khronika.platform filters, run by ansible-playbook exactly as the platform role calls them."""

from __future__ import annotations

import json

from platform_helpers import REPO

from conftest import run_playbook

PLAYBOOK = REPO / "tests/platform/playbooks/plan_filter.yml"


def test_plan_and_record_filters_in_a_playbook(tmp_path):
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(
        "---\nall:\n  children:\n"
        "    khronika_platform:\n      hosts:\n        app-01:\n        app-02:\n"
        "    khronika_gpu:\n      hosts:\n        gpu-01: {khronika_gpu_count: 2}\n"
    )
    output = tmp_path / "plan.json"
    run = run_playbook(PLAYBOOK, inventory, "-e", f"output_file={output}")
    assert run.rc == 0, run.output
    result = json.loads(output.read_text())
    plan, record = result["plan"], result["record"]
    containers = plan["hosts"]["app-01"]["containers"]
    assert [c["name"] for c in containers] == ["classifier-1", "appeals-api-1"]
    assert containers[1]["image"].startswith("registry.test:5000/khronika-samples/appeals-api@sha256:")
    assert plan["release"] == {"version": "1.1.0", "kind": "change-release"}
    assert record["version"] == "1.1.0" and record["deployed_at"] == "2025-06-01T02:00:00Z"
    assert {m["name"] for m in record["modules"]} == {"classifier", "appeals-api"}
    refused = (tmp_path / "plan.json.refused").read_text()
    assert "module 'one', field 'depends_on': dependency cycle: one -> two -> one" in refused
    assert "module 'two', field 'ports': host port 8080/tcp on app-01 is already taken by one-1" in refused
