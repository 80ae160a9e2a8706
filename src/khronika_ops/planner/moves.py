"""What the placement changes against what runs now, and what each move buys; what N-1 would need.

A move is only worth its cost (a restart; for a module with data, planned downtime and a copy) when it
buys something a reader can check: the host it leaves is gone or no longer fits what runs there at the
horizon, siblings kept apart, or N-1 that the placement as it is does not have.
"""

from __future__ import annotations

from collections import Counter, defaultdict

from khronika_ops.planner.catalog import Catalog
from khronika_ops.planner.place import DrainCheck, Placement, Replica, check_n_minus_1, host_loads


def staying(replicas: list[Replica], catalog: Catalog) -> Placement:
    """Every replica left where it runs (replicas without a current host left out)."""
    hosts = {host.name for host in catalog.hosts}
    return Placement(
        solver="as it runs",
        status="current",
        cost=0.0,
        assignment={r.name: r.current_host for r in replicas if r.current_host in hosts and r.current_host},
    )


def describe_moves(
    replicas: list[Replica], placement: Placement, catalog: Catalog, drains: list[DrainCheck]
) -> list[str]:
    """One line per module with a replica that leaves its host: from where to where, what it costs, and
    what it buys."""
    hosts = {host.name: host for host in catalog.hosts}
    now = staying(replicas, catalog)
    load_now = host_loads(replicas, now.assignment)
    siblings = Counter((r.module, r.current_host) for r in replicas if r.anti_affinity)
    crowded = {key for key, count in siblings.items() if count > 1}
    n1_plan = {check.host: check.holds for check in drains}
    restored = [
        f"draining {check.host} strands {', '.join(check.unplaced)}"
        for check in check_n_minus_1(replicas, now, catalog)
        if not check.holds and n1_plan.get(check.host, True)
    ]
    by_module: dict[str, list[Replica]] = defaultdict(list)
    for replica in replicas:
        target = placement.assignment.get(replica.name)
        if replica.current_host and target and target != replica.current_host:
            by_module[replica.module].append(replica)
    lines = []
    for module, moved in sorted(by_module.items()):
        reasons: list[str] = []
        for replica in moved:
            source = replica.current_host or ""
            host = hosts.get(source)
            if host is None:
                reasons.append(f"{source} is not among the plan's hosts")
                continue
            cores, memory, _gpus = load_now.get(source, (0.0, 0.0, 0))
            if cores > host.cores + 1e-9 or memory > host.memory_gib + 1e-9:
                reasons.append(
                    f"{source} no longer fits what runs there at the horizon ({cores:.3g} of {host.cores:g} "
                    f"cores, {memory:.3g} of {host.memory_gib:g} GiB)"
                )
            elif (module, source) in crowded:
                reasons.append(f"its replicas kept on separate hosts (anti-affinity; {source} has two)")
        if not reasons and restored:
            reasons.append(f"N-1 restored (as they run now, {'; '.join(restored)})")
        if not reasons:
            reasons.append("the fewest moves that fit the sizes at the horizon")
        sources = sorted({r.current_host or "" for r in moved})
        targets = sorted({placement.assignment[r.name] for r in moved})
        cost = (
            "planned downtime: the module stops while its data is copied"
            if any(r.stateful for r in moved)
            else "a restart of the replica"
        )
        data = sum(r.data_gib for r in moved if r.stateful)
        if data:
            cost += f" ({data:.3g} GiB)"
        lines.append(
            f"{module}: move from {', '.join(sources)} to {', '.join(targets)} ({cost}); buys: "
            + "; ".join(dict.fromkeys(reasons))
        )
    return lines


def n_minus_1_advice(
    replicas: list[Replica], placement: Placement, catalog: Catalog, drains: list[DrainCheck]
) -> list[str]:
    """For each host whose drain strands replicas: which, how much room they need, and the cheapest shape
    that would hold them (what would make N-1 hold)."""
    by_name = {replica.name: replica for replica in replicas}
    lines = []
    for check in drains:
        if check.holds:
            continue
        stranded = [by_name[name] for name in check.unplaced if name in by_name]
        cores = sum(r.cores for r in stranded)
        memory = sum(r.memory_gib for r in stranded)
        gpus = sum(r.gpus for r in stranded)
        fitting = sorted(
            (
                shape
                for shape in catalog.host_shapes
                if shape.cores >= cores and shape.memory_gib >= memory and shape.gpus >= gpus
            ),
            key=lambda shape: (shape.cost, shape.name),
        )
        fix = f"{cores:.3g} cores and {memory:.3g} GiB" + (f" and {gpus} GPUs" if gpus else "")
        option = f", or one more {fitting[0].name} host (cost {fitting[0].cost:g})" if fitting else ""
        lines.append(
            f"N-1: draining {check.host} strands {', '.join(check.unplaced)}: the other hosts lack room for "
            f"{fix}; free that much on them{option}"
        )
    return lines
