"""The update's pre-flight: window, versions, downgrade, downtime class, backups, all problems at once."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import yaml
from platform_helpers import RELEASES, SAMPLE_CATALOG, SAMPLE_INVENTORY

from khronika_ops.platform.catalog import load_yaml_file, resolve_deployment, update_strategies
from khronika_ops.platform.inventory_file import load_inventory
from khronika_ops.platform.release import find_release, list_releases
from khronika_ops.platform.update import (
    HostState,
    MaintenanceWindow,
    UpdateRefused,
    preflight,
    states_from_records,
)

NOW = datetime(2026, 12, 6, 2, 30, tzinfo=UTC)  # a Sunday night


def _check(to: str, states: list[HostState], **options: object):
    catalog = load_yaml_file(SAMPLE_CATALOG)
    target = find_release(RELEASES, to)
    deployment = resolve_deployment(catalog, load_inventory(SAMPLE_INVENTORY), release=target)
    return preflight(
        target=target,
        releases=list_releases(RELEASES),
        deployment=deployment,
        states=states,
        strategies=update_strategies(catalog),
        now=options.pop("now", NOW),  # type: ignore[arg-type]
        **options,  # type: ignore[arg-type]
    )


def test_an_upgrade_in_its_window() -> None:
    window = MaintenanceWindow.model_validate(
        {"start": "2026-11-29T01:00:00", "duration": "4h", "every": "7d"}
    )
    result = _check(
        "1.1.0",
        [HostState(host="app-01", version="1.0.0"), HostState(host="app-02", version="1.0.0")],
        window=window,
    )
    assert result.window == "open until 2026-12-06T05:00:00Z"
    # classifier changes image and is recreated: full downtime; appeals-api rolls.
    assert result.downtime == "full"
    assert "classifier changes image and is updated with recreate" in result.downtime_reasons
    app = result.hosts[0]
    assert (app.host, app.move, app.from_version) == ("app-01", "upgrade", "1.0.0")
    assert app.modules == ["classifier", "appeals-api"]  # dependency order
    assert app.rolling == ["appeals-api"]
    assert app.backups == ["khronika-appeals-api-data"]
    assert all("@sha256:" in image for image in app.images) and len(app.images) == 2
    assert list(result.diffs) == ["1.0.0"]


def test_outside_the_window_says_when_it_opens() -> None:
    window = MaintenanceWindow.model_validate(
        {"start": "2026-11-29T01:00:00", "duration": "4h", "every": "7d"}
    )
    tuesday = datetime(2026, 12, 8, 12, 0, tzinfo=UTC)
    with pytest.raises(UpdateRefused) as refused:
        _check("1.1.0", [HostState(host="app-01", version="1.0.0")], window=window, now=tuesday)
    assert str(refused.value.problems[0]) == (
        "window: outside the maintenance window: it opens at 2026-12-13T01:00:00Z (in 4d 13h) and lasts 4h; "
        "-e khronika_update_force_window=true overrides"
    )
    forced = _check(
        "1.1.0", [HostState(host="app-01", version="1.0.0")], window=window, now=tuesday, force_window=True
    )
    assert forced.window.startswith("forced: outside the maintenance window")
    assert forced.warnings


def test_a_downgrade_needs_the_flag_and_every_problem_is_listed() -> None:
    states = [
        HostState(host="app-01", version="1.2.0"),
        HostState(host="app-02", version="0.9.0"),
        HostState(host="gw-01", error="unreachable: ssh: connect to host gw-01 port 22"),
    ]
    with pytest.raises(UpdateRefused) as refused:
        _check("1.1.0", states)
    problems = [str(problem) for problem in refused.value.problems]
    assert problems == [
        "app-01: runs 1.2.0, newer than 1.1.0: a downgrade needs -e khronika_update_allow_downgrade=true",
        "app-02: runs 0.9.0, which has no manifest in the releases folder",
        "gw-01: cannot read its release record: unreachable: ssh: connect to host gw-01 port 22",
    ]
    allowed = _check("1.1.0", states[:1], allow_downgrade=True)
    assert allowed.hosts[0].move == "downgrade"


def test_first_deployment_and_nothing_to_do() -> None:
    records = {
        "app-01": {"error": "no release recorded (/etc/khronika/release.json missing)", "missing": True},
        "app-02": {"version": "1.1.0", "kind": "change-release"},
    }
    result = _check("1.1.0", states_from_records(records))
    assert [(h.host, h.move, h.downtime) for h in result.hosts] == [
        ("app-01", "first-deployment", "full"),
        ("app-02", "same", "none"),
    ]
    assert result.hosts[1].images == [] and result.hosts[1].backups == []
    # A first deployment has no data yet to copy; the same host upgraded backs its volumes up.
    assert result.hosts[0].backups == [] and result.hosts[0].images
    assert _check("1.1.0", [HostState(host="app-01", version="1.0.0")]).hosts[0].backups
    same = _check("1.1.0", [HostState(host="app-02", version="1.1.0")])
    assert same.downtime == "none" and "nothing to switch" in same.warnings[0]


@pytest.mark.parametrize(
    ("window", "message"),
    [
        ({"start": "2026-12-01T00:00:00", "duration": "0s"}, "greater than 0"),
        ({"start": "2026-12-01T00:00:00", "duration": "8d", "every": "7d"}, "every >= duration"),
        ({"start": "soon", "duration": "1h"}, "datetime"),
    ],
)
def test_bad_windows_are_refused(window: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        MaintenanceWindow.model_validate(window)


def test_a_one_off_window_that_closed() -> None:
    window = MaintenanceWindow.model_validate({"start": "2026-12-01T01:00:00", "duration": "2h"})
    assert (
        window.refusal(NOW)
        == "the maintenance window closed at 2026-12-01T03:00:00Z and does not repeat; set a new one"
    )
    assert window.contains(datetime(2026, 12, 1, 2, 59))
    assert not window.contains(datetime(2026, 12, 1, 3, 0))
    assert yaml.safe_dump(window.model_dump(mode="json"))  # plain data for the report


def test_update_check_reads_the_hosts_records(tmp_path) -> None:
    """`khronika update check` over a real inventory: records read through Ansible, nothing changed."""
    import json
    import sys

    from typer.testing import CliRunner

    from conftest import ansible_env
    from khronika_ops.cli import app

    recorded = tmp_path / "app-01"
    recorded.mkdir()
    (recorded / "release.json").write_text(
        json.dumps({"version": "1.0.0", "kind": "new-version"}), encoding="utf-8"
    )
    inventory = tmp_path / "hosts.ini"
    local = f"ansible_connection=local ansible_python_interpreter={sys.executable}"
    inventory.write_text(
        "[khronika_platform]\n"
        f"app-01 {local} platform_record_dir={recorded}\n"
        f"app-02 {local} platform_record_dir={tmp_path / 'app-02'}\n",
        encoding="utf-8",
    )
    base = ["update", "check", "--release", "1.1.0", "--catalog", str(SAMPLE_CATALOG), "-i", str(inventory)]
    base += ["--dir", str(RELEASES)]
    result = CliRunner().invoke(app, base, env=ansible_env())
    assert result.exit_code == 0, result.output
    assert "update to 1.1.0: downtime full" in result.stdout
    assert "app-01: 1.0.0 -> 1.1.0 (upgrade, downtime full)" in result.stdout
    assert "switch in order: classifier, appeals-api (rolling)" in result.stdout
    assert "app-02: nothing recorded -> 1.1.0 (first-deployment, downtime full)" in result.stdout
    assert "config from 1.0.0: khronika_modules.appeals-api.environment.APPEALS_MAX_BYTES" in result.stdout
    closed = CliRunner().invoke(
        app, [*base, "--window-start", "2020-01-01T00:00:00", "--window-duration", "1h"], env=ansible_env()
    )
    assert closed.exit_code == 1
    assert "window: the maintenance window closed at 2020-01-01T01:00:00Z" in closed.stderr
    data = json.loads(CliRunner().invoke(app, [*base, "--json"], env=ansible_env()).stdout)
    assert [host["move"] for host in data["hosts"]] == ["upgrade", "first-deployment"]


def test_update_check_asks_the_registry_for_every_digest(tmp_path) -> None:
    """Digests the registry does not hold refuse the update before anything stops."""
    import os
    import sys
    from pathlib import Path

    from typer.testing import CliRunner

    from conftest import ansible_env, require_service
    from khronika_ops.cli import app

    state = os.environ.get("KHRONIKA_TEST_REGISTRY_DIR")
    require_service(
        bool(state) and Path(state or "").is_dir(), "the test registry (scripts/test-registry.sh start)"
    )
    assert state is not None
    inventory = tmp_path / "hosts.ini"
    inventory.write_text(
        "[khronika_platform]\n"
        + "".join(
            f"{host} ansible_connection=local ansible_python_interpreter={sys.executable} "
            f"platform_record_dir={tmp_path / host}\n"
            for host in ("app-01", "app-02")
        ),
        encoding="utf-8",
    )
    password = (Path(state) / "password").read_text(encoding="utf-8").strip()
    args = ["update", "check", "--release", "1.1.0", "--catalog", str(SAMPLE_CATALOG), "-i", str(inventory)]
    args += [
        "--dir",
        str(RELEASES),
        "--registry",
        "127.0.0.1:5000",
        "--registry-ca",
        os.environ["KHRONIKA_TEST_REGISTRY_CA"],
    ]
    args += ["--registry-user", os.environ["KHRONIKA_TEST_REGISTRY_USER"]]
    result = CliRunner().invoke(app, args, env=ansible_env(KHRONIKA_REGISTRY_PASSWORD=password))
    assert result.exit_code == 1, result.output
    assert "2 update pre-flight error(s)" in result.stderr
    assert (
        "127.0.0.1:5000/khronika-samples/appeals-api@sha256:a76cf0dd712a16e28b9af4ba21a70fa176fcf9e19210cf8993d13d3a73963a4a: "
        "cannot be pulled: sha256:a76cf0dd712a16e28b9af4ba21a70fa176fcf9e19210cf8993d13d3a73963a4a is not in "
        "127.0.0.1:5000/khronika-samples/appeals-api"
    ) in result.stderr


def test_each_host_gets_the_downtime_of_the_modules_it_runs() -> None:
    """A host with only rolling modules has partial downtime, even when another host's recreated
    module makes the update as a whole full."""
    from khronika_ops.platform.inventory_file import inventory_from_ansible
    from khronika_ops.platform.release import parse_release

    catalog = [
        {"name": "api", "image": "example/api", "placement": {"groups": ["app"]}, "update": "rolling"},
        {"name": "db", "image": "example/db", "placement": {"hosts": ["app-01"]}},
    ]

    def release(version: str, seed: str):
        return parse_release(
            {
                "version": version,
                "kind": "change-release",
                "date": "2025-01-01",
                "modules": [
                    {"name": name, "image": f"example/{name}@sha256:{(seed + name).encode().hex()[:64]:0<64}"}
                    for name in ("api", "db")
                ],
            }
        )

    old, new = release("1.0.0", "a"), release("1.1.0", "b")
    deployment = resolve_deployment(
        catalog, inventory_from_ansible({"app": ["app-01", "app-02"]}), release=new
    )
    result = preflight(
        target=new,
        releases=[old, new],
        deployment=deployment,
        states=[HostState(host="app-01", version="1.0.0"), HostState(host="app-02", version="1.0.0")],
        strategies=update_strategies(catalog),
        now=NOW,
    )
    by_host = {host.host: host.downtime for host in result.hosts}
    assert by_host == {"app-01": "full", "app-02": "partial"}
    assert result.downtime == "full"
    assert result.downtime_reasons == ["db changes image and is updated with recreate"]
