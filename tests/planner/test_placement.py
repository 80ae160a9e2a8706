"""Stable placement: the placement the site runs is the starting point; a replica moves only when the move
buys something the plan names, and then by the fewest, cheapest moves."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from khronika_ops.planner.catalog import load_catalog
from khronika_ops.planner.moves import describe_moves, n_minus_1_advice
from khronika_ops.planner.place import (
    RESTART_COST,
    STATEFUL_COST,
    Replica,
    candidate_bins,
    check_n_minus_1,
    first_fit_decreasing,
    place,
)

from .helpers import run_cli
from .test_plan import GIB


def _catalog(tmp_path: Path, hosts: int = 3, cores: float = 8, memory: float = 32):
    site = {
        "hosts": [
            {"name": f"h{i + 1}", "cores": cores, "memory_gib": memory, "disk_gib": 500} for i in range(hosts)
        ]
    }
    path = tmp_path / "site.yml"
    path.write_text(yaml.safe_dump(site), encoding="utf-8")
    return load_catalog([path])


def _site(web_cores: float = 2.0) -> list[Replica]:
    """web: 2 stateless replicas on h1 and h2; db (with data) on h1; cache on h3; report on h2."""
    return [
        Replica(module="web", index=0, cores=web_cores, memory_gib=2, current_host="h1"),
        Replica(module="web", index=1, cores=web_cores, memory_gib=2, current_host="h2"),
        Replica(module="db", index=0, cores=3, memory_gib=8, current_host="h1", stateful=True, data_gib=40),
        Replica(module="cache", index=0, cores=1, memory_gib=4, current_host="h3"),
        Replica(module="report", index=0, cores=1, memory_gib=1, current_host="h2"),
    ]


def _moves(replicas: list[Replica], assignment: dict[str, str]) -> list[str]:
    return sorted(r.name for r in replicas if assignment[r.name] != r.current_host)


def test_a_site_with_no_pressure_gets_a_plan_with_no_move(tmp_path: Path) -> None:
    """Everything fits where it runs: nothing moves, though fewer hosts could hold it all (the previous
    objective packed the site onto fewer hosts and moved data for it)."""
    catalog = _catalog(tmp_path)
    replicas = _site()
    placement = place(replicas, catalog)
    assert placement.solver == "cp-sat" and placement.n_minus_1_in_objective
    assert _moves(replicas, placement.assignment) == []
    assert placement.cost == 0 and not placement.new_hosts
    drains = check_n_minus_1(replicas, placement, catalog)
    assert all(check.holds for check in drains)
    assert describe_moves(replicas, placement, catalog, drains) == []
    # The heuristic for large sites keeps the placement too.
    greedy = first_fit_decreasing(replicas, candidate_bins(catalog))
    assert _moves(replicas, greedy.assignment) == []


def test_an_overloaded_host_gets_the_fewest_cheapest_moves(tmp_path: Path) -> None:
    """web grows to 4.5 cores a replica: h1 (web#0 + db = 7.5 cores of 8 ... plus growth) no longer fits.
    Moving db would relieve it too, but it carries 40 GiB behind planned downtime: web#0 moves, alone."""
    catalog = _catalog(tmp_path)
    replicas = _site(web_cores=5.5)
    placement = place(replicas, catalog)
    assert _moves(replicas, placement.assignment) == ["web#0"]
    assert placement.assignment["web#0"] == "h3" and not placement.new_hosts
    drains = check_n_minus_1(replicas, placement, catalog)
    [line] = describe_moves(replicas, placement, catalog, drains)
    assert line.startswith("web: move from h1 to h3 (a restart of the replica); buys: h1 no longer fits")
    assert "8.5 of 8 cores" in line


def test_a_move_of_data_is_chosen_only_when_nothing_cheaper_relieves_the_host(tmp_path: Path) -> None:
    """Only db is on the overloaded host: it moves, and the line says what it costs and buys."""
    catalog = _catalog(tmp_path, hosts=2)
    replicas = [
        Replica(module="db", index=0, cores=6, memory_gib=8, current_host="h1", stateful=True, data_gib=12),
        Replica(
            module="batch", index=0, cores=4, memory_gib=2, current_host="h1", stateful=True, data_gib=900
        ),
    ]
    placement = place(replicas, catalog)
    assert _moves(replicas, placement.assignment) == ["db#0"]  # 12 GiB to copy, not 900
    [line] = describe_moves(replicas, placement, catalog, check_n_minus_1(replicas, placement, catalog))
    assert (
        "db: move from h1 to h2 (planned downtime: the module stops while its data is copied (12 GiB))"
        in line
    )
    assert Replica(module="x", index=0, cores=1, memory_gib=1).move_cost == RESTART_COST
    assert replicas[0].move_cost == RESTART_COST + STATEFUL_COST + 12


def test_siblings_on_one_host_are_split_and_the_line_says_why(tmp_path: Path) -> None:
    catalog = _catalog(tmp_path, hosts=2)
    replicas = [
        Replica(module="api", index=0, cores=1, memory_gib=1, current_host="h1"),
        Replica(module="api", index=1, cores=1, memory_gib=1, current_host="h1"),
    ]
    placement = place(replicas, catalog)
    assert sorted(placement.assignment.values()) == ["h1", "h2"]
    [line] = describe_moves(replicas, placement, catalog, check_n_minus_1(replicas, placement, catalog))
    assert "buys: its replicas kept on separate hosts (anti-affinity; h1 has two)" in line


def test_a_cheap_move_that_restores_n_minus_1_is_made_and_named(tmp_path: Path) -> None:
    """h1 runs web (5 cores) and db (3): drained, db finds no host with 3 cores free. Moving the small
    cache from h3 to h2 leaves h3 empty enough for both: one restart buys N-1."""
    catalog = _catalog(tmp_path)
    replicas = _site(web_cores=5.0)
    placement = place(replicas, catalog)
    assert _moves(replicas, placement.assignment) == ["cache#0"]
    drains = check_n_minus_1(replicas, placement, catalog)
    assert all(check.holds for check in drains)
    [line] = describe_moves(replicas, placement, catalog, drains)
    assert line == (
        "cache: move from h3 to h2 (a restart of the replica); buys: N-1 restored (as they run now, "
        "draining h1 strands db#0)"
    )


def test_n_minus_1_that_the_hardware_cannot_give_is_said_with_what_would_fix_it(tmp_path: Path) -> None:
    """Two 8-core hosts each running 6 cores: no placement survives losing one. Nothing is bought for
    N-1 (money comes first), nothing moves for nothing, and the plan says what would fix it."""
    catalog = _catalog(tmp_path, hosts=2)
    replicas = [
        Replica(module="a", index=0, cores=6, memory_gib=4, current_host="h1"),
        Replica(module="b", index=0, cores=6, memory_gib=4, current_host="h2"),
    ]
    placement = place(replicas, catalog)
    assert _moves(replicas, placement.assignment) == [] and not placement.new_hosts
    drains = check_n_minus_1(replicas, placement, catalog)
    assert [check.holds for check in drains] == [False, False]
    advice = n_minus_1_advice(replicas, placement, catalog, drains)
    assert advice[0].startswith(
        "N-1: draining h1 strands a#0: the other hosts lack room for 6 cores and 4 GiB"
    )
    assert ", or one more " in advice[0] and " host (cost " in advice[0]


def test_a_drain_may_put_siblings_together_when_nothing_else_has_room(tmp_path: Path) -> None:
    """api runs a replica on each of two hosts: losing one, its replica shares the other (the module keeps
    serving), which is N-1 holding, not failing."""
    catalog = _catalog(tmp_path, hosts=2)
    replicas = [
        Replica(module="api", index=0, cores=2, memory_gib=2, current_host="h1"),
        Replica(module="api", index=1, cores=2, memory_gib=2, current_host="h2"),
    ]
    placement = place(replicas, catalog)
    assert all(check.holds for check in check_n_minus_1(replicas, placement, catalog))


def _history(path: Path, web_cores: float, step: int = 600, days: float = 3.0) -> Path:
    """Flat history of the modules of `_site`, with web at `web_cores` a replica."""
    import numpy as np

    rows = ["timestamp,metric,labels,value"]
    levels = {"web": web_cores * 2, "db": 3, "cache": 1, "report": 1}
    memory = {"web": 4, "db": 8, "cache": 4, "report": 1}
    rng = np.random.default_rng(5)
    for stamp in 1_700_000_000 + np.arange(int(days * 86400 / step)) * step:
        for module, level in levels.items():
            noise = rng.normal(0, 0.01)
            rows += [
                f"{stamp},khronika_container_cpu_cores,container={module},{level * (0.8 + noise):.4f}",
                f"{stamp},khronika_container_memory_bytes,container={module},{memory[module] * 0.7 * GIB:.0f}",
            ]
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


def _plan_catalog(path: Path) -> Path:
    site = {
        "hosts": [{"name": f"h{i}", "cores": 8, "memory_gib": 32, "disk_gib": 500} for i in (1, 2, 3)],
        "modules": [
            {"name": "web", "replicas": 2, "hosts": ["h1", "h2"], "min_cores": 0.5, "current_cores": 2},
            {"name": "db", "hosts": ["h1"], "stateful": True, "data_gib": 40, "current_cores": 8},
            {"name": "cache", "hosts": ["h3"], "current_cores": 1},
            {"name": "report", "hosts": ["h2"], "current_cores": 1},
        ],
    }
    path.write_text(yaml.safe_dump(site), encoding="utf-8")
    return path


def _full_plan(tmp_path: Path, web_cores: float) -> dict:
    """`khronika plan` of the `_site` modules on three hosts, with web at `web_cores` a replica."""
    history = _history(tmp_path / "history.csv", web_cores=web_cores)
    catalog = _plan_catalog(tmp_path / "site.yml")
    out = tmp_path / "plan.json"
    code, _out, err = run_cli(
        "plan", "--csv", str(history), "--catalog", str(catalog), "--format", "json", "-o", str(out)
    )
    assert code == 0, err
    return json.loads(out.read_text())


def test_the_full_plan_of_a_quiet_site_moves_nothing(tmp_path: Path) -> None:
    plan = _full_plan(tmp_path, web_cores=1.5)
    assert not [change for change in plan["changes"] if ": move from " in change], plan["changes"]
    assert plan["placement"]["assignment"] == {
        "web#0": "h1",
        "web#1": "h2",
        "db#0": "h1",
        "cache#0": "h3",
        "report#0": "h2",
    }
    modules = {m["name"]: m for m in plan["modules"]}
    # Severity against the module's own limits, with a reason to act on.
    assert (
        modules["db"]["severity"] == "WARNING" and "lower its cpus limit" in modules["db"]["severity_reason"]
    )


def test_the_full_plan_of_an_overloaded_host_moves_the_cheapest_replica(tmp_path: Path) -> None:
    plan = _full_plan(tmp_path, web_cores=7.0)
    moves = [change for change in plan["changes"] if ": move from " in change]
    assert len(moves) == 1 and moves[0].startswith("web: move from h1 to h3"), plan["changes"]
    assert "buys: h1 no longer fits what runs there at the horizon" in moves[0]
    assert plan["placement"]["assignment"]["db#0"] == "h1"
    web = next(m for m in plan["modules"] if m["name"] == "web")
    assert web["severity"] == "CRITICAL" and "raise its cpus limit" in web["severity_reason"]


def test_a_disk_without_history_to_size_is_kept_at_its_size_not_zero(tmp_path: Path) -> None:
    """Three samples of a filesystem: too little to size. The disks table says keep, with its size."""
    history = _history(tmp_path / "history.csv", web_cores=1.5)
    with history.open("a", encoding="utf-8") as out:
        for stamp in (1_700_000_000, 1_700_000_600, 1_700_001_200):
            out.write(f"{stamp},khronika_filesystem_used_bytes,host=h1;mount=/srv,{100 * GIB:.0f}\n")
            out.write(f"{stamp},khronika_filesystem_size_bytes,host=h1;mount=/srv,{450 * GIB:.0f}\n")
    catalog = _plan_catalog(tmp_path / "site.yml")
    out = tmp_path / "plan.md"
    code, _out, err = run_cli(
        "plan", "--csv", str(history), "--catalog", str(catalog), "--format", "md", "-o", str(out)
    )
    assert code == 0, err
    [row] = [line for line in out.read_text().splitlines() if line.startswith("| h1 | /srv |")]
    assert "| keep 450.0 |" in row and "| 0.0 |" not in row, row
