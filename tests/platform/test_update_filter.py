"""The update filters, run by ansible-playbook exactly as update.yml calls them."""

from __future__ import annotations

import json

from platform_helpers import REPO

from conftest import run_playbook

PLAYBOOK = REPO / "tests/platform/playbooks/update_filters.yml"


def test_update_filters_in_a_playbook(tmp_path):
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(
        "---\nall:\n  children:\n    khronika_platform:\n      hosts:\n        app-01:\n        app-02:\n"
        "    khronika_gateway:\n      hosts:\n        gw-01:\n"
    )
    output = tmp_path / "results.json"
    run = run_playbook(PLAYBOOK, inventory, "-e", f"output_file={output}")
    assert run.rc == 0, run.output
    result = json.loads(output.read_text())
    preflight = result["preflight"]
    assert preflight["window"] == "open until 2026-12-06T05:00:00Z"
    assert preflight["window_ends_at"] == "2026-12-06T05:00:00Z"
    assert "switch in order: classifier, appeals-api (rolling)" in preflight["text"]
    assert [(s["module"], s["strategy"]) for s in result["steps"]] == [
        ("classifier", "recreate"),
        ("appeals-api", "rolling"),
        ("appeals-api", "rolling"),
    ]
    assert {c["module"]: c["path"] for c in result["checks"]}["appeals-api"] == "/api/appeals/health"
    assert result["scope"]["modules"] == ["classifier"] and not result["scope"]["site"]
    assert result["silence"]["matchers"][0]["value"] == "(app\\-01)(:[0-9]+)?"
    assert result["verdict"]["stop"] is True and result["verdict"]["failed"] == ["app-02"]
    assert any(m["name"] == "new images on app-01" for m in result["capacity"]["modules"])
    assert result["df"] == {"/": 9.0}
    assert result["image_check"] == {"image": "img", "ok": False, "reason": "no such manifest"}
    # app-02 left no outcome: it stopped answering, and the update failed.
    assert result["report"]["report"]["result"] == "failed"
    assert "| app-02 | 1.0.0 | unreachable | unknown |" in result["report"]["markdown"]
    assert "| app-01 | 1.0.0 | updated | 1.1.0 |" in result["report"]["markdown"]
    assert result["report"]["audit"]["app-01"]["result"] == "updated"
    assert (
        "runs 1.1.0, newer than 1.0.0: a downgrade needs -e khronika_update_allow_downgrade=true"
        in result["downgrade"]
    )
