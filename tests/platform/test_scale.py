"""Scaling from a capacity plan: the scaled catalog, what changes where, the refusals, the report."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from platform_helpers import RELEASES, SAMPLE_CATALOG

from khronika_ops.planner.document import read_plan
from khronika_ops.planner.replicas import replica_module
from khronika_ops.platform.catalog import load_yaml_file
from khronika_ops.platform.release import find_release
from khronika_ops.platform.scale import (
    ScaleRefused,
    audit_entry,
    build_report,
    preflight,
    render_markdown,
    render_text,
    scaled_catalog,
)
from khronika_ops.platform.update import MaintenanceWindow

NOW = datetime(2026, 12, 6, 2, 30, tzinfo=UTC)
GROUPS = {"khronika": ["app-01", "app-02", "app-03"], "khronika_platform": ["app-01", "app-02", "app-03"]}
GIB_MB = 1024


def _facts(cores: int = 8, memory_gib: float = 32) -> dict[str, Any]:
    return {
        "ansible_facts": {
            "processor_vcpus": cores,
            "memtotal_mb": int(memory_gib * GIB_MB * 0.97),
            "mounts": [],
        }
    }


HOSTVARS = {host: _facts() for host in GROUPS["khronika"]}


def _catalog() -> list[dict[str, Any]]:
    """The sample catalog on app-01 and app-02 only (app-03 is the host a plan can add)."""
    modules = [m for m in copy.deepcopy(load_yaml_file(SAMPLE_CATALOG)["khronika_modules"]) if m["enabled"]]
    for module in modules:
        module["placement"] = {"hosts": ["app-01", "app-02"]}
    return modules


def _plan(assignment: dict[str, str], **modules: tuple[float, float]) -> dict[str, Any]:
    """A plan as `khronika plan --format json` writes it, with only what scaling reads."""
    sized = {"appeals-api": (1.0, 0.25), "classifier": (2.0, 0.5)} | modules
    return {
        "modules": [
            {"name": name, "replicas": 0, "cores_per_replica": cores, "memory_gib_per_replica": memory}
            for name, (cores, memory) in sized.items()
        ],
        "hosts": [
            {"name": host, "cores": 8, "memory_gib": 32, "gpus": 0}
            for host in sorted(set(assignment.values()))
        ],
        "placement": {"solver": "test", "status": "OPTIMAL", "cost": 0, "assignment": assignment},
    }


SAME = {
    "appeals-api#1": "app-01",
    "appeals-api#2": "app-02",
    "classifier#1": "app-01",
    "classifier#2": "app-02",
}


def _check(plan: dict[str, Any], **options: Any):
    records = options.pop("records", {host: {"version": "1.1.0"} for host in ("app-01", "app-02")})
    return preflight(
        catalog=options.pop("catalog", _catalog()),
        plan=plan,
        groups=GROUPS,
        hostvars=options.pop("hostvars", HOSTVARS),
        records=records,
        docker_roots=options.pop("docker_roots", {}),
        release=find_release(RELEASES, "1.1.0"),
        now=NOW,
        **options,
    )


def test_a_plan_that_matches_the_site_changes_nothing() -> None:
    result = _check(_plan(SAME))
    assert not result.changed and result.modules == [] and result.hosts == []
    assert result.downtime == "none"
    assert "Nothing to change" in render_text(result)


def test_limits_are_resized_in_place_without_downtime() -> None:
    result = _check(_plan(SAME, classifier=(1.5, 0.75)))
    (change,) = result.modules
    assert change.module == "classifier" and change.downtime == "none"
    assert change.what == ["CPU limit 2.0 -> 1.5", "memory limit 512 MiB -> 768 MiB"]
    assert [(h.host, [r.container for r in h.resize], h.recreate, h.downtime) for h in result.hosts] == [
        ("app-01", ["classifier-1"], [], "none"),
        ("app-02", ["classifier-1"], [], "none"),
    ]
    assert result.hosts[0].resize[0].memory == f"{768 * 1024 * 1024}b"
    assert result.downtime == "none" and result.maintenance_modules == []


def test_a_stateless_module_starts_on_a_new_host_before_it_leaves_the_old() -> None:
    plan = _plan(SAME | {"classifier#2": "app-03"})
    result = _check(plan)
    (change,) = result.modules
    assert change.what == ["starts on app-03", "leaves app-02"] and change.downtime == "none"
    assert change.hosts_to == ["app-01", "app-03"]
    by_host = {h.host: h for h in result.hosts}
    assert by_host["app-03"].start == ["classifier-1"] and by_host["app-02"].remove == ["classifier-1"]
    assert result.volume_moves == []
    classifier = next(m for m in result.catalog if m["name"] == "classifier")
    assert classifier["placement"] == {"hosts": ["app-01", "app-03"]}


def test_a_module_with_data_moves_with_its_volumes_and_is_paged() -> None:
    result = _check(_plan(SAME | {"appeals-api#2": "app-03"}))
    (change,) = result.modules
    assert change.downtime == "module"
    assert change.what == ["moves with its data (khronika-appeals-api-data) from app-02 to app-03"]
    (move,) = result.volume_moves
    assert (move.volume, move.from_host, move.to_host) == ("khronika-appeals-api-data", "app-02", "app-03")
    by_host = {h.host: h for h in result.hosts}
    assert by_host["app-03"].recreate == ["appeals-api-1"] and by_host["app-03"].downtime == "none"
    assert by_host["app-02"].downtime == "partial"
    assert result.downtime == "partial" and result.maintenance_modules == ["appeals-api"]


def test_uneven_replicas_round_up_and_say_so() -> None:
    plan = _plan(SAME | {"classifier#3": "app-01"})
    catalog, notes = scaled_catalog(_catalog(), read_plan(plan), ["app-01", "app-02", "app-03"])
    classifier = next(m for m in catalog if m["name"] == "classifier")
    assert classifier["replicas"] == 2
    assert notes == [
        "classifier: the plan puts 2 on app-01, 1 on app-02; the catalog runs the same count on each "
        "of its hosts, so 2 on each"
    ]


def test_a_host_to_buy_must_be_in_the_inventory_and_can_be_mapped() -> None:
    plan = _plan(SAME | {"classifier#2": "new-medium-1"})
    with pytest.raises(ScaleRefused) as refused:
        _check(plan)
    assert "the plan places it on new-medium-1, which the inventory does not have" in str(refused.value)
    mapped = _check(plan, host_map={"new-medium-1": "app-03"})
    assert mapped.modules[0].hosts_to == ["app-01", "app-03"]


def test_every_refusal_at_once_before_any_change() -> None:
    window = MaintenanceWindow.model_validate({"start": "2026-12-07T01:00:00", "duration": "4h"})
    plan = _plan(SAME | {"appeals-api#2": "app-03"}, unknown=(1, 1))
    plan["hosts"][0]["cores"] = 16
    with pytest.raises(ScaleRefused) as refused:
        _check(
            plan,
            window=window,
            records={"app-01": {"version": "1.0.0"}, "app-02": {"error": "unreachable"}},
            docker_roots={
                "app-01": {
                    "root": "/var/lib/docker",
                    "wanted": "/srv/docker",
                    "used_mb": 9000,
                    "free_mb": 2000,
                }
            },
        )
    text = str(refused.value)
    assert "outside the maintenance window: it opens at 2026-12-07T01:00:00Z" in text
    assert (
        "app-01: runs release 1.0.0, not 1.1.0 (the site's release: the site state's, else khronika_release_version): finish the update"
        in text
    )
    assert "app-02: cannot read its release record: unreachable" in text
    assert "module 'unknown', field 'catalog': the plan sizes it, but the catalog has no such module" in text
    assert "app-01: has 8 cores, the plan sized it with 16: change the hardware first" in text
    assert (
        "Docker's data (9000 MB in /var/lib/docker) does not fit where docker_data_root /srv/docker goes"
        in text
    )
    assert text.startswith("6 scale pre-flight error(s)")


def test_two_hosts_of_data_cannot_move_at_once() -> None:
    catalog = _catalog()
    with pytest.raises(
        ScaleRefused, match="move a module with data from one host to one other host at a time"
    ):
        preflight(
            catalog=catalog,
            plan=_plan(
                {
                    "appeals-api#1": "app-03",
                    "appeals-api#2": "app-04",
                    "classifier#1": "app-01",
                    "classifier#2": "app-02",
                }
            ),
            groups={"khronika_platform": ["app-01", "app-02", "app-03", "app-04"]},
            hostvars={},
            records={},
            docker_roots={},
            release=find_release(RELEASES, "1.1.0"),
            now=NOW,
        )


def test_a_data_root_move_stops_the_whole_host() -> None:
    roots = {
        "app-01": {"root": "/var/lib/docker", "wanted": "/srv/docker", "used_mb": 900, "free_mb": 20000},
        "app-02": {"root": "/var/lib/docker", "wanted": "", "used_mb": 900, "free_mb": 20000},
    }
    result = _check(_plan(SAME), docker_roots=roots)
    (host,) = result.hosts
    assert host.host == "app-01" and host.downtime == "full"
    assert host.data_root is not None and host.data_root.to_root == "/srv/docker"
    # One host at a time: app-02 serves both modules meanwhile.
    assert result.downtime == "partial" and result.maintenance_modules == []
    assert "Docker's data root /var/lib/docker -> /srv/docker (900 MB copied" in render_text(result)


def test_the_report_says_what_changed_and_what_was_copied() -> None:
    result = _check(_plan(SAME | {"appeals-api#2": "app-03"}, classifier=(1.5, 0.5)))
    report = build_report(
        result.model_dump(mode="json"),
        started_at="2026-12-06T02:30:00Z",
        result="succeeded",
        failure=None,
        copies=[{"volume": "khronika-appeals-api-data", "sha256": "ab" * 32, "bytes": 4096}],
        seconds={"data copied": 1.234},
        probe={
            "modules": {"appeals-api": {"requests": 50, "failed": 3, "down_seconds": 0.4, "outages": [{}]}}
        },
        operator="ops",
        controller="ctl",
        now=NOW,
    )
    text = render_markdown(report)
    assert text.startswith("# Scale of release 1.1.0: succeeded")
    assert "| classifier | CPU limit 2.0 -> 1.5 | none |" in text
    assert f"| khronika-appeals-api-data | app-02 | app-03 | 4096 | {'ab' * 32} |" in text
    assert "| appeals-api | 50 | 3 | 0.40 | 1 |" in text
    assert "| data copied | 1.2 |" in text
    entry = audit_entry(report)
    assert entry["kind"] == "scale" and entry["result"] == "succeeded"
    assert entry["changes"]["appeals-api"] == [
        "moves with its data (khronika-appeals-api-data) from app-02 to app-03"
    ]


def test_a_plan_is_read_through_its_typed_document() -> None:
    """Another schema, a size that is not a finite positive number, a placement on a host or of a module
    the plan does not size: refused, each with its place in the plan."""
    plan = _plan(SAME)
    with pytest.raises(ScaleRefused, match="schema_version: is 7"):
        _check(plan | {"schema_version": 7})
    broken = _plan(SAME)
    broken["modules"][0]["cores_per_replica"] = float("nan")
    with pytest.raises(ScaleRefused, match=r"the plan: modules\[0\].cores_per_replica"):
        _check(broken)
    stray = _plan(SAME | {"ghost#1": "app-01"})
    with pytest.raises(ScaleRefused, match="ghost#1 belongs to no module the plan sizes"):
        _check(stray)
    assert read_plan(plan).schema_version == 1  # a plan without the field is of the first schema


def test_a_real_plan_from_the_planner_is_what_scale_reads(tmp_path: Path) -> None:
    """planner -> scale: a plan made by `khronika plan` from history and a site catalog of these hosts is
    read by the scale's pre-flight as it is written (schema, sizes, placement)."""
    from planner.helpers import run_cli
    from planner.test_plan import write_history

    history = write_history(tmp_path / "history.csv", days=2)
    text = history.read_text().replace("host=h1;container=web", "host=app-01;container=classifier")
    text = text.replace("host=h2;container=db", "host=app-02;container=appeals-api").replace(
        "module=web", "module=classifier"
    )
    history.write_text(text)
    site = {
        "hosts": [
            {"name": host, "cores": 8, "memory_gib": 32, "disk_gib": 500, "disk_class": "ssd"}
            for host in ("app-01", "app-02")
        ],
        "modules": [
            {"name": "classifier", "replicas": 2, "host": "app-01"},
            {"name": "appeals-api", "replicas": 2, "host": "app-02"},
        ],
    }
    (tmp_path / "site.yml").write_text(yaml.safe_dump(site))
    code, out, err = run_cli(
        "plan",
        "--csv",
        str(history),
        "--catalog",
        str(tmp_path / "site.yml"),
        "--format",
        "json",
        "--horizon",
        "30d",
    )
    assert code == 0, err
    written = json.loads(out)
    assert written["schema_version"] == 1
    document = read_plan(written)
    assert {m.name for m in document.modules} == {"classifier", "appeals-api"}
    scale = _check(written)
    placed = {replica_module(r) for r in document.placement.assignment}
    assert placed == {"classifier", "appeals-api"}
    for module in scale.catalog:
        sized = document.module(module["name"])
        assert sized is not None and module["resources"]["cpus"] == round(sized.cores_per_replica, 2)
