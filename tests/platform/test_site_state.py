"""The site state (one record of what the site should run) and the fencing of module volumes."""

from datetime import UTC, datetime

import pytest

from khronika_ops.platform import fencing, site_state
from khronika_ops.safe_yaml import load_text

VOLUME = "khronika-appeals-api-data"
CATALOG = [
    {
        "name": "appeals-api",
        "placement": {"hosts": ["app1"]},
        "resources": {"cpus": 1, "memory": "256m"},
        "volumes": [{"name": "data", "mount": "/data", "backup": "before-update"}],
        "environment": {"MODE": "x"},
    },
    {"name": "classifier", "placement": {"groups": ["khronika_platform"]}, "replicas": 2},
]
NOW = datetime(2026, 12, 6, 10, 0, tzinfo=UTC)


def moved_catalog():
    catalog = [dict(m) for m in CATALOG]
    catalog[0] = catalog[0] | {"placement": {"hosts": ["app2"]}, "resources": {"cpus": 0.5, "memory": "384m"}}
    return catalog


def state_after_scale(previous=None, volumes=None):
    return site_state.next_state(
        previous,
        kind="scale",
        run="scale-1.1.0-20261206T100000Z",
        operator="ops",
        result="succeeded",
        now=NOW,
        release_version="1.1.0",
        catalog=moved_catalog(),
        volumes=volumes if volumes is not None else {VOLUME: {"app2": 2}},
    )


def test_the_state_overrides_placement_limits_and_release_and_keeps_the_rest():
    state = state_after_scale()
    applied = site_state.apply(CATALOG, state)
    assert applied[0]["placement"] == {"hosts": ["app2"]}
    assert applied[0]["resources"] == {"cpus": 0.5, "memory": "384m"}
    assert applied[0]["environment"] == {"MODE": "x"}  # the operator's, untouched
    assert applied[0]["volumes"] == CATALOG[0]["volumes"]
    assert applied[1]["replicas"] == 2
    assert site_state.release("1.0.0", state) == "1.1.0"
    assert site_state.release("1.0.0", None) == "1.0.0"
    assert site_state.apply(CATALOG, None) == CATALOG


def test_where_the_inventory_says_otherwise_is_named():
    lines = site_state.differences(CATALOG, "1.0.0", state_after_scale())
    assert any("khronika_release_version is 1.0.0" in line and "1.1.0 is deployed" in line for line in lines)
    assert any(
        line.startswith("module appeals-api: the catalog's placement, resources differ") for line in lines
    )
    assert not any("classifier" in line for line in lines)
    assert site_state.differences(moved_catalog(), "1.1.0", state_after_scale()) == []


def test_the_written_file_reads_back_through_the_inventory_loader_and_counts_serials():
    first = state_after_scale()
    text = site_state.render(first)
    assert text.startswith("# The site state")
    loaded = load_text(text, "state")
    again = site_state.parse(loaded[site_state.STATE_VARIABLE])
    assert again == first and again.serial == 1
    second = state_after_scale(first)
    assert second.serial == 2 and site_state.same(first, second)
    assert site_state.diff(first, second) == []
    third = state_after_scale(first, volumes={VOLUME: {"app1": 3}})
    assert not site_state.same(first, third)
    assert site_state.diff(first, third) == [f"{VOLUME}: newest copy {{'app2': 2}} -> {{'app1': 3}}"]


def test_a_damaged_state_is_refused_with_its_place():
    with pytest.raises(site_state.SiteStateError) as caught:
        site_state.parse(
            {"serial": 0, "written_at": "x", "written_by": {"kind": "converge", "run": "r"}, "release": "one"}
        )
    text = str(caught.value)
    assert "serial" in text and "written_by.kind" in text and "release" in text
    assert site_state.parse(None) is None and site_state.parse({}) is None


def test_an_inventory_older_than_the_hosts_state_is_refused():
    first = state_after_scale()
    second = state_after_scale(first, volumes={VOLUME: {"app1": 3}})
    copies = {"app1": second.model_dump(mode="json"), "app2": first.model_dump(mode="json"), "app3": None}
    problem = site_state.stale_inventory(first, copies)
    assert problem is not None and "app1 recorded serial 2" in str(problem) and "has serial 1" in str(problem)
    assert site_state.stale_inventory(second, copies) is None
    assert "has none" in str(site_state.stale_inventory(None, copies))
    assert site_state.stale_inventory(None, {"app1": {"garbage": True}}) is None


# --- fencing ---------------------------------------------------------------------------------------------


def plan_on(*hosts):
    return {
        host: {"volumes": [{"docker_name": VOLUME, "module": "appeals-api"}], "containers": []}
        for host in hosts
    }


def marks(**by_host):
    return {host: fencing.parse_marks(value) for host, value in by_host.items()}


def test_a_move_marks_the_copy_left_behind_stale_and_a_rollback_turns_it_back():
    before = marks(app1={VOLUME: {"module": "appeals-api", "generation": 1}}, app2={})
    move = [{"module": "appeals-api", "volume": VOLUME, "from_host": "app1", "to_host": "app2"}]
    app1 = fencing.after_moves("app1", before["app1"], moves=move, marks_of=before, run="s1", at="t")
    app2 = fencing.after_moves("app2", before["app2"], moves=move, marks_of=before, run="s1", at="t")
    assert app1[VOLUME]["state"] == "stale" and app1[VOLUME]["newest_on"] == "app2"
    assert app2[VOLUME] | {"at": ""} == {
        "module": "appeals-api",
        "generation": 2,
        "state": "current",
        "newest_on": None,
        "run": "s1",
        "at": "",
    }
    after = marks(app1=app1, app2=app2)
    # The converge after the scale: appeals-api on app2, its newest copy: nothing refused.
    assert fencing.check(plan_on("app2"), after, None) == []
    # The inventory edited back by hand: app1's stale copy is refused, naming app2.
    problems = [str(p) for p in fencing.check(plan_on("app1"), after, None)]
    assert (
        len(problems) == 1
        and "on app1 is a stale copy" in problems[0]
        and "the newest is on app2" in problems[0]
    )
    # Without app1's mark (a re-installed host), app2's current copy is named.
    problems = [str(p) for p in fencing.check(plan_on("app1"), {"app1": {}, "app2": after["app2"]}, None)]
    assert len(problems) == 1 and "newest copy of khronika-appeals-api-data (generation 2" in problems[0]
    assert "is on app2, which would no longer run it" in problems[0]
    # Rolled back: app1 current again, a generation above the copy.
    back1 = fencing.after_moves(
        "app1", after["app1"], moves=move, marks_of=after, run="s1", at="t", back=True
    )
    back2 = fencing.after_moves(
        "app2", after["app2"], moves=move, marks_of=after, run="s1", at="t", back=True
    )
    assert back1[VOLUME]["state"] == "current" and back1[VOLUME]["generation"] == 3
    assert back2[VOLUME]["state"] == "stale" and back2[VOLUME]["newest_on"] == "app1"
    assert fencing.check(plan_on("app1"), marks(app1=back1, app2=back2), None) == []


def test_the_site_state_speaks_for_an_unreachable_or_wiped_host():
    state = state_after_scale(volumes={VOLUME: {"app2": 2}})
    # app2 does not answer: the state says its copy is the newest, app1 may not take over.
    problems = [str(p) for p in fencing.check(plan_on("app1"), marks(app1={}), state)]
    assert (
        problems
        and "is on app2" in problems[0]
        and "as group_vars/all/khronika_site_state.yml records" in problems[0]
    )
    # app2 answers but lost its volume (re-installed): starting it there with nothing is refused.
    problems = [str(p) for p in fencing.check(plan_on("app2"), marks(app2={}), state)]
    assert problems and "on app2 is missing, older than generation 2" in problems[0]


def test_a_fresh_site_a_new_host_and_a_module_that_runs_nowhere_pass():
    assert fencing.check(plan_on("app1"), marks(app1={}, app2={}), None) == []
    current = {VOLUME: {"module": "appeals-api", "generation": 1}}
    # A second host for a module with per-host data: its own new copy, the first keeps running.
    assert fencing.check(plan_on("app1", "app2"), marks(app1=current, app2={}), None) == []
    # Disabled: nothing is served from any copy.
    assert fencing.check({"app1": {"volumes": []}}, marks(app1=current), None) == []


def test_deploy_marks_new_volumes_once_and_restores_count_up():
    volumes = [{"docker_name": VOLUME, "module": "appeals-api"}]
    first = fencing.after_deploy("app1", volumes=volumes, marks={}, state=None, run="deploy", at="t1")
    assert first[VOLUME]["generation"] == 1
    again = fencing.after_deploy(
        "app1", volumes=volumes, marks=fencing.parse_marks(first), state=None, run="deploy", at="t2"
    )
    assert again == first  # a converge writes the same file: no change
    recorded = state_after_scale(volumes={VOLUME: {"app1": 4}})
    assert (
        fencing.after_deploy("app1", volumes=volumes, marks={}, state=recorded, run="d", at="t")[VOLUME][
            "generation"
        ]
        == 4
    )
    restored = fencing.after_restores(
        fencing.parse_marks(first), [{"volume": VOLUME, "module": "appeals-api"}], "r", "t"
    )
    assert restored[VOLUME]["generation"] == 2 and restored[VOLUME]["state"] == "current"
    assert fencing.newest(marks(app1=restored)) == {VOLUME: {"app1": 2}}


def test_a_scale_is_fenced_on_its_target_placement_with_its_moves():
    """A scale that adds a host holding a stale copy is refused; one that moves the data there is not."""
    app1 = {VOLUME: {"module": "appeals-api", "generation": 3}}
    app2 = {VOLUME: {"module": "appeals-api", "generation": 2, "state": "stale", "newest_on": "app1"}}
    site = marks(app1=app1, app2=app2)
    # appeals-api on app1 and app2 (per-host data): app2 would start on its stale copy.
    assert "on app2 is a stale copy" in str(fencing.check(plan_on("app1", "app2"), site, None)[0])
    # Moved from app1 to app2: app2's copy is replaced, app1's is what moves.
    move = [{"volume": VOLUME, "from_host": "app1", "to_host": "app2"}]
    assert fencing.check(plan_on("app2"), site, None, move) == []


def test_the_recorded_copies_follow_the_hosts_that_answered():
    previous = {VOLUME: {"app1": 3}, "khronika-x-data": {"app9": 1}}
    now = marks(
        app1={VOLUME: {"module": "appeals-api", "generation": 3, "state": "stale", "newest_on": "app2"}},
        app2={VOLUME: {"module": "appeals-api", "generation": 4}},
    )
    # app9 did not answer: what the state said of it stays.
    assert fencing.recorded_copies(previous, now) == {VOLUME: {"app2": 4}, "khronika-x-data": {"app9": 1}}


def test_a_deployment_never_changes_a_hosts_release_nor_finishes_an_update():
    records = {
        "app1": {"version": "1.1.0"},
        "app2": {
            "version": "1.0.0",
            "switching": {"to": "1.1.0", "run": "update-1.1.0-x", "started_at": "t"},
        },
        "app3": None,
    }
    problems = [str(p) for p in site_state.release_conflicts(records, "1.0.0")]
    assert len(problems) == 2
    assert problems[0].startswith("app1: runs release 1.1.0, and this deployment would run 1.0.0")
    assert "an update to 1.1.0 (run update-1.1.0-x) did not finish here" in problems[1]
    assert site_state.release_conflicts({"app1": {"version": "1.1.0"}, "app3": None}, "1.1.0") == []
