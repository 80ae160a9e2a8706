"""What update.yml decides while it runs: lockstep switch steps, the batch verdict, the silence, the
gateway checks, the capacity request, and the report and audit entry built from a run's facts."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from platform_helpers import RELEASES, SAMPLE_CATALOG, SAMPLE_INVENTORY

from conftest import REPO, ansible_env
from khronika_ops.platform.catalog import load_yaml_file, resolve_deployment, update_strategies
from khronika_ops.platform.inventory_file import load_inventory
from khronika_ops.platform.release import find_release, list_releases
from khronika_ops.platform.update import HostState, MaintenanceWindow, preflight
from khronika_ops.platform.update_run import (
    audit_entry,
    batch_verdict,
    build_report,
    capacity_request,
    container_evidence,
    gateway_checks,
    manifest_bytes,
    render_markdown,
    silence,
    silence_for,
    switch_steps,
)

NOW = datetime(2026, 12, 6, 2, 30, tzinfo=UTC)


def _deployment(version: str = "1.1.0"):
    return resolve_deployment(
        load_yaml_file(SAMPLE_CATALOG),
        load_inventory(SAMPLE_INVENTORY),
        release=find_release(RELEASES, version),
    )


def _preflight(to: str = "1.1.0", window: MaintenanceWindow | None = None):
    catalog = load_yaml_file(SAMPLE_CATALOG)
    target = find_release(RELEASES, to)
    return preflight(
        target=target,
        releases=list_releases(RELEASES),
        deployment=resolve_deployment(catalog, load_inventory(SAMPLE_INVENTORY), release=target),
        states=[HostState(host="app-01", version="1.0.0"), HostState(host="app-02", version="1.0.0")],
        strategies=update_strategies(catalog),
        now=NOW,
        window=window,
    )


def test_rolling_replicas_switch_one_at_a_time_across_the_batch() -> None:
    steps = switch_steps(_deployment(), ["app-02", "app-01"])
    # classifier (recreate) first, in one step on both hosts; appeals-api rolls: one replica a step.
    assert [(s.module, s.strategy, s.containers) for s in steps] == [
        ("classifier", "recreate", {"app-01": ["classifier-1"], "app-02": ["classifier-1"]}),
        ("appeals-api", "rolling", {"app-01": ["appeals-api-1"]}),
        ("appeals-api", "rolling", {"app-02": ["appeals-api-1"]}),
    ]
    assert [s.index for s in steps] == [0, 1, 2]
    assert steps[0].drain == []
    assert steps[1].drain == ["app-01/appeals-api-1"] and steps[2].drain == ["app-02/appeals-api-1"]


def test_a_batch_takes_only_its_own_hosts() -> None:
    steps = switch_steps(_deployment(), ["app-02"])
    assert all(list(step.containers) == ["app-02"] for step in steps)
    assert switch_steps(_deployment(), ["gw-01"]) == []


@pytest.mark.parametrize(
    ("results", "limit", "stop"),
    [
        ({"a": "updated", "b": "updated"}, 0, False),
        ({"a": "updated", "b": "rolled-back"}, 0, True),
        ({"a": "updated", "b": "rolled-back"}, 50, False),  # exactly the limit: Ansible's "more than"
        ({"a": "updated"}, 0, True),  # b has no outcome: it dropped out, unreachable
        ({"a": "unchanged", "b": "updated"}, 0, False),
    ],
)
def test_batch_verdict(results: dict[str, str], limit: float, stop: bool) -> None:
    verdict = batch_verdict(["b", "a"], results, limit)
    assert verdict.stop is stop
    assert verdict.batch == ["a", "b"]
    if stop:
        assert "the hosts after this batch stay on their release" in verdict.reason


def test_silence_matches_each_host_with_or_without_a_port() -> None:
    import re

    body = silence(
        ["app-01", "gpu.01"],
        "2026-12-06T02:30:00Z",
        "2026-12-06T05:00:00Z",
        comment="update",
        created_by="ops",
    )
    pattern = re.compile(body["matchers"][0]["value"])
    assert body["matchers"][0]["name"] == "instance" and body["matchers"][0]["isRegex"]
    assert (
        pattern.fullmatch("app-01:9100") and pattern.fullmatch("app-01") and pattern.fullmatch("gpu.01:9400")
    )
    assert not pattern.fullmatch("app-011:9100") and not pattern.fullmatch("gpuX01:9100")
    with pytest.raises(ValueError):
        silence([], "a", "b", comment="c", created_by="d")


def test_silence_lasts_until_the_window_closes_or_the_fallback() -> None:
    window = MaintenanceWindow.model_validate({"start": "2026-12-06T01:00:00Z", "duration": "4h"})
    result = _preflight(window=window).model_dump(mode="json")
    assert (
        silence_for(["app-01"], result, comment="c", created_by="o", now=NOW)["endsAt"]
        == "2026-12-06T05:00:00Z"
    )
    assert silence_for(
        ["app-01"], {**result, "window_ends_at": None}, comment="c", created_by="o", now=NOW, fallback="90m"
    )["endsAt"] == ("2026-12-06T04:00:00Z")


def test_gateway_checks_ask_each_route_at_its_health_path() -> None:
    checks = {check.module: check.path for check in gateway_checks(_deployment())}
    assert checks == {"appeals-api": "/api/appeals/health", "classifier": "/api/classify/health"}


def test_manifest_bytes_from_docker_manifest_inspect() -> None:
    single = {
        "Ref": "x",
        "SchemaV2Manifest": {"config": {"size": 100}, "layers": [{"size": 1000}, {"size": 24}]},
    }
    assert manifest_bytes(json.dumps(single)) == 1124
    assert manifest_bytes(json.dumps([single, {"SchemaV2Manifest": {"layers": [{"size": 5}]}}])) == 1124
    assert manifest_bytes("no such manifest") == 0


def test_capacity_request_adds_images_and_backups_to_the_release_minimums() -> None:
    result = _preflight().model_dump(mode="json")
    request = capacity_request(
        result,
        find_release(RELEASES, "1.1.0"),
        {"app-01": {"images_bytes": 100 * 2**20, "backup_bytes": 30 * 2**20}},
        "/var/lib/docker",
        "/b",
    )
    by_name = {m["name"]: m for m in request["modules"]}
    assert by_name["appeals-api"]["memory_mb"] == 384 and by_name["appeals-api"]["disk_mb"] == 1024
    assert request["placement"]["appeals-api"] == ["app-01", "app-02"]
    assert by_name["new images on app-01"]["disk_mb"] == 250  # 100 MiB download, unpacked x2.5
    assert by_name["backups on app-01"] == {"name": "backups on app-01", "disk_mb": 30, "disk_path": "/b"}
    assert request["placement"]["backups on app-01"] == ["app-01"]
    assert "backups on app-02" not in by_name


NO_PAGE = {"site": False, "modules": [], "reasons": []}


def _report(outcomes, probe=None, stopped=None, maintenance=NO_PAGE):
    return build_report(
        preflight=_preflight().model_dump(mode="json"),
        outcomes=outcomes,
        probe=probe,
        started_at="2026-12-06T02:30:00Z",
        finished_at="2026-12-06T02:34:00Z",
        operator="ops",
        controller="ctl",
        maintenance=maintenance,
        silence_id="abc",
        stopped=stopped,
    )


PROBE = {
    "modules": {
        "appeals-api": {"requests": 90, "failed": 0, "down_seconds": 0.0, "outages": []},
        "classifier": {
            "requests": 90,
            "failed": 7,
            "down_seconds": 0.71,
            "outages": [{"start": 1.0, "end": 1.71, "failed": 7, "seconds": 0.71}],
        },
    }
}


def test_a_successful_update_report() -> None:
    outcomes = {
        host: {
            "from_version": "1.0.0",
            "result": "updated",
            "on_version": "1.1.0",
            "switches": [{"module": "classifier", "strategy": "recreate", "seconds": 1.2}],
            "backups": [],
        }
        for host in ("app-01", "app-02")
    }
    report = _report(outcomes, PROBE)
    assert report.result == "succeeded"
    planned = {m.module: m.planned for m in report.probe}
    assert planned == {"appeals-api": "none", "classifier": "restart"}  # appeals-api rolls
    assert report.failed_requests == 7
    text = render_markdown(report)
    assert "| classifier | restart | 0.71 s | 1 | 90 | 7 |" in text
    assert "Failed requests in all: 7." in text
    line = audit_entry(report, "app-01")
    assert line["result"] == "updated" and line["hosts"]["app-01"]["switch_seconds"] == {"classifier": 1.2}
    assert audit_entry(report)["result"] == "succeeded"
    paged = _report(outcomes, PROBE, maintenance={"site": False, "modules": ["classifier"], "reasons": ["x"]})
    assert {m.module: m.planned for m in paged.probe} == {"appeals-api": "none", "classifier": "maintenance"}
    assert "gateway maintenance page: the routes of classifier, during the switch (x)" in render_markdown(
        paged
    )


def test_a_rolled_back_and_an_unreachable_host() -> None:
    outcomes = {
        "app-01": {
            "from_version": "1.0.0",
            "result": "rolled-back",
            "on_version": "1.0.0",
            "failure": "appeals-api-1 is unhealthy; last health check: HTTP 503",
            "restored": ["khronika-appeals-api-data"],
            "evidence": [
                container_evidence(
                    "appeals-api-1",
                    {
                        "State": {
                            "Status": "running",
                            "OOMKilled": False,
                            "Health": {"Log": [{"Output": "HTTP 503"}]},
                        },
                        "RestartCount": 1,
                    },
                    "\n".join(f"line {n}" for n in range(300)) + "\nmigration failed [at 3]",
                    "3\n",
                ).model_dump(mode="json")
            ],
        }
    }
    report = _report(outcomes)
    [evidence] = report.hosts[0].evidence
    assert evidence.exit_codes == [3] and evidence.restarts == 1 and len(evidence.log_tail) == 200
    assert evidence.log_tail[-1] == "migration failed [at 3]" and evidence.health == "HTTP 503"
    assert report.result == "failed"  # app-02 never reported: it stopped answering
    hosts = {host.host: host for host in report.hosts}
    assert hosts["app-02"].result == "unreachable" and hosts["app-02"].on_version is None
    text = render_markdown(report)
    assert "| app-01 | 1.0.0 | rolled-back | 1.0.0 |" in text
    assert "| app-02 | 1.0.0 | unreachable | unknown |" in text
    assert "appeals-api-1 is unhealthy; last health check: HTTP 503" in text
    assert "Volumes restored from the backup: khronika-appeals-api-data" in text
    assert "#### appeals-api-1 before the rollback: running, exit codes 3, restarts 1" in text
    assert "migration failed [at 3]" in text and "Its log, last 30 of 200 lines kept:" in text
    outcomes["app-02"] = {"from_version": "1.0.0", "result": "not-started", "on_version": "1.0.0"}
    assert _report(outcomes, stopped="1 of 1 failed").result == "stopped"
    outcomes["app-02"] = {"from_version": "1.0.0", "result": "updated", "on_version": "1.1.0"}
    assert _report(outcomes).result == "rolled-back"


def test_maintenance_scope_pages_only_the_restarting_modules() -> None:
    from khronika_ops.platform.update_run import maintenance_scope

    result = _preflight().model_dump(mode="json")  # 1.0.0 -> 1.1.0: classifier recreated, appeals-api rolls
    scope = maintenance_scope(result)
    assert (scope.site, scope.modules) == (False, ["classifier"])
    assert maintenance_scope(result, "always").site is True
    assert maintenance_scope(result, "never").modules == []
    result["diffs"]["1.0.0"]["crosses_new_version"] = True
    assert maintenance_scope(result).site is True
    with pytest.raises(ValueError, match="use auto, always or never"):
        maintenance_scope(result, "sometimes")


def test_df_free_mb_reads_every_mount_point() -> None:
    from khronika_ops.platform.update_run import df_free_mb

    text = (
        "Filesystem     1048576-blocks  Used Available Capacity Mounted on\n"
        "overlay               258020 26174     77724      26% /\n"
        "/dev/vda1             258020 26174     77722      26% /var/lib/docker\n"
        "/dev/vdb1               1000   100       900      10% /mnt/with space\n"
    )
    assert df_free_mb(text) == {"/": 77724.0, "/var/lib/docker": 77722.0, "/mnt/with space": 900.0}
    assert df_free_mb("df: /nowhere: No such file or directory") == {}


def test_evidence_pairs_the_looped_results_by_container(tmp_path: Path) -> None:
    """What the rollback reads (roles/update/tasks/switch.yml), through the filter as Ansible calls it."""
    out = tmp_path / "evidence.json"
    book = tmp_path / "evidence.yml"
    book.write_text(
        "- hosts: localhost\n  gather_facts: false\n  tasks:\n"
        "    - ansible.builtin.copy:\n"
        f"        dest: {out}\n"
        '        content: "{{ infos | khronika.platform.khronika_update_evidence(logs, exits) | to_json }}"\n'
        "        mode: '0644'\n"
        "      vars:\n"
        "        infos: [{item: api-1, exists: true, container: {State: {Status: running}, RestartCount: 1}},"
        " {item: gone-1, exists: false}]\n"
        "        logs: [{item: api-1, stdout: 'started', stderr: 'migration failed (exit 3)'}]\n"
        "        exits: [{item: api-1, stdout: \"3\\n\"}, {item: gone-1, stdout: ''}]\n",
        encoding="utf-8",
    )
    done = subprocess.run(
        [
            str(Path(sys.executable).with_name("ansible-playbook")),
            "-i",
            "localhost,",
            "-c",
            "local",
            str(book),
            "-e",
            f"ansible_python_interpreter={sys.executable}",
        ],
        capture_output=True,
        text=True,
        env=ansible_env(),
        cwd=REPO,
        check=False,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    evidence = json.loads(out.read_text())
    assert evidence[0]["container"] == "api-1" and evidence[0]["exit_codes"] == [3]
    assert evidence[0]["restarts"] == 1 and evidence[0]["log_tail"] == [
        "started",
        "migration failed (exit 3)",
    ]
    assert evidence[1] == {
        "container": "gone-1",
        "status": "missing",
        "exit_codes": [],
        "oom_killed": False,
        "restarts": 0,
        "health": None,
        "log_tail": [],
    }


def test_the_rollback_scope_brings_the_switched_hosts_of_a_failed_batch_or_site_back() -> None:
    from khronika_ops.platform.update_run import rollback_peers, rollback_scope

    verdicts = [{"batch": ["a1", "a2"]}, {"batch": ["b1", "b2"]}]
    outcomes = {
        "a1": {"result": "updated"},
        "a2": {"result": "updated"},
        "b1": {"result": "rolled-back"},
        "b2": {"result": "updated"},
    }
    batch = rollback_peers("batch", verdicts, outcomes)
    assert list(batch) == ["b2"] and "b1 failed" in batch["b2"] and "with its batch" in batch["b2"]
    assert sorted(rollback_peers("site", verdicts, outcomes)) == ["a1", "a2", "b2"]
    assert rollback_peers("host", verdicts, outcomes) == {}
    # A host without an outcome did not finish (unreachable): its batch goes back.
    assert list(rollback_peers("batch", [{"batch": ["a1", "a2"]}], {"a1": {"result": "updated"}})) == ["a1"]
    assert rollback_peers("batch", verdicts, {host: {"result": "updated"} for host in outcomes}) == {}
    crossing = {"diffs": {"1.9.0": {"crosses_new_version": True}}}
    assert rollback_scope("auto", crossing) == "site"
    assert rollback_scope("auto", {"diffs": {"1.1.0": {"crosses_new_version": False}}}) == "batch"
    assert rollback_scope("host", crossing) == "host"
    with pytest.raises(ValueError, match="khronika_update_rollback_scope is one of"):
        rollback_scope("everything", crossing)


def test_the_data_check_writes_before_the_switch_and_judges_what_reads_back() -> None:
    from khronika_ops.platform.update_run import data_check_problems, data_check_reads, data_check_writes

    check = {"create": "/appeals", "body": {"text": "check"}, "location_field": "location", "port": 18080}
    containers = [
        {"module": "appeals-api", "replica": 1, "data_check": check},
        {"module": "appeals-api", "replica": 2, "data_check": check | {"port": 18081}},
        {"module": "classifier", "replica": 1, "data_check": None},
    ]
    [write] = data_check_writes(containers, ["appeals-api", "classifier"])
    assert write["url"] == "http://127.0.0.1:18080/appeals" and write["body"] == {"text": "check"}
    assert data_check_writes(containers, ["classifier"]) == []
    [read] = data_check_reads([{"item": write, "json": {"id": "ab", "location": "/appeals/ab"}}])
    assert read["url"] == "http://127.0.0.1:18080/appeals/ab"
    with pytest.raises(ValueError, match="gives no path in 'location'"):
        data_check_reads([{"item": write, "json": {"id": "ab"}}])
    with pytest.raises(ValueError, match="gives no path"):
        data_check_reads([{"item": write, "json": {"location": "http://elsewhere/x"}}])
    assert data_check_problems([{"item": read, "status": 200, "content": '{"text": "check"}'}]) == []
    [gone] = data_check_problems([{"item": read, "status": 404, "content": ""}])
    assert "answered 404 after the switch" in gone
    [changed] = data_check_problems([{"item": read, "status": 200, "content": '{"text": "other"}'}])
    assert "lost text across the switch" in changed
    assert "answered nothing" in data_check_problems([{"item": read, "status": -1}])[0]


def test_a_failure_is_said_in_one_line_with_each_failed_item() -> None:
    from khronika_ops.platform.update_run import failure_text

    result = {
        "msg": "One or more items failed",
        "results": [{"failed": True, "msg": "appeals-api-1 is unhealthy"}, {"failed": False, "msg": "fine"}],
    }
    assert failure_text("Require healthy containers", result) == (
        "Require healthy containers: One or more items failed; appeals-api-1 is unhealthy"
    )
    assert failure_text(None, {"stderr": "docker: not found"}) == "a task: docker: not found"
    assert failure_text("Stop", {}) == "Stop"
    assert len(failure_text("x", {"msg": "y" * 10000})) == 4000


def test_the_data_check_compares_fields_and_the_lease_is_bounded() -> None:
    from khronika_ops.platform.lease import lease_seconds
    from khronika_ops.platform.update_run import data_check_problems

    read = {
        "module": "appeals-api",
        "url": "http://127.0.0.1:1/appeals/x",
        "body": {"text": 'quoted "text" and кириллица'},
    }
    # escaped as JSON escapes it, and wrapped as the sample appeals-api stores it
    answer = json.dumps({"id": "x", "appeal": {"text": 'quoted "text" and кириллица'}})
    assert data_check_problems([{"item": read, "status": 200, "content": answer}]) == []
    assert data_check_problems([{"item": read, "status": 200, "content": json.dumps({"text": "other"})}])
    assert lease_seconds("10m") == 600
    for bad in ("5s", "2h", "soon"):
        with pytest.raises(ValueError):
            lease_seconds(bad)
