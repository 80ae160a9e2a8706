"""Place: module replicas onto the existing hosts, and onto purchasable shapes when they do not fit.

The placement the site runs is the starting point: a replica moves only when the move buys something,
in this order: nothing stays unplaced, the cost of hosts bought, N-1 (each host can be drained onto the
others), then the cost of the moves themselves (a restart for a stateless replica; planned downtime and
the bytes its volumes carry for a module with data). So a site with no pressure gets a plan with no move,
and an overloaded host the fewest, cheapest moves that relieve it.

Exact: OR-Tools CP-SAT (one boolean per replica and host, capacity and anti-affinity constraints; for
N-1 one more boolean per drained host, replica and target, capacity only, while the model stays small).
It runs single-threaded with a deterministic time budget, so the same input gives the same plan. Large
inputs (or a solver without a solution) fall back to first-fit-decreasing seeded with the current
placement, which opens the cheapest fitting shape when nothing existing fits.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from khronika_ops.planner.catalog import Catalog, HostShape
from khronika_ops.planner.replicas import replica_id

# Beyond this many replica-host pairs the exact model gets slow; FFD is within a few % there.
EXACT_LIMIT = 20_000
# Beyond this many drained-host x replica x target triples, N-1 leaves the objective (still checked).
N1_EXACT_LIMIT = 60_000
_SCALE = 1000  # CP-SAT works on integers: milli-cores and MiB
# What a move costs, in points: a stateless replica's restart; a module with data stops behind its
# maintenance page while its volumes are copied (planned downtime) and pays for each GiB it carries.
RESTART_COST = 1
STATEFUL_COST = 20
COST_PER_GIB = 1


class Replica(BaseModel):
    module: str
    index: int
    cores: float
    memory_gib: float
    gpus: int = 0
    gpu_model: str | None = None
    anti_affinity: bool = True
    current_host: str | None = None  # where it runs now (None: a replica the plan adds)
    stateful: bool = False
    data_gib: float = 0.0

    @property
    def name(self) -> str:
        return replica_id(self.module, self.index)

    @property
    def move_cost(self) -> int:
        """Points a move of this replica costs (RESTART_COST, STATEFUL_COST, COST_PER_GIB)."""
        if not self.stateful:
            return RESTART_COST
        return RESTART_COST + STATEFUL_COST + COST_PER_GIB * int(-(-self.data_gib // 1))


class Bin(BaseModel):
    name: str
    shape: HostShape
    existing: bool

    def fits(self, replica: Replica, used: tuple[float, float, int]) -> bool:
        if replica.gpus and replica.gpu_model not in (None, self.shape.gpu_model):
            return False
        return (
            used[0] + replica.cores <= self.shape.cores + 1e-9
            and used[1] + replica.memory_gib <= self.shape.memory_gib + 1e-9
            and used[2] + replica.gpus <= self.shape.gpus
        )


class Placement(BaseModel):
    solver: str
    status: str
    cost: float
    assignment: dict[str, str] = Field(default_factory=dict)  # replica -> host
    new_hosts: dict[str, str] = Field(default_factory=dict)  # host -> shape
    unplaced: list[str] = Field(default_factory=list)
    # Whether N-1 was part of the objective (False: the model was too large; it is still checked).
    n_minus_1_in_objective: bool = False


class DrainCheck(BaseModel):
    host: str
    holds: bool
    unplaced: list[str] = Field(default_factory=list)


def candidate_bins(catalog: Catalog) -> list[Bin]:
    bins = [Bin(name=host.name, shape=host, existing=True) for host in catalog.hosts]
    for shape in catalog.host_shapes:
        bins += [
            Bin(name=f"new-{shape.name}-{copy + 1}", shape=shape, existing=False)
            for copy in range(catalog.max_new_hosts_per_shape)
        ]
    return bins


def place(replicas: list[Replica], catalog: Catalog, *, exact_limit: int = EXACT_LIMIT) -> Placement:
    bins = candidate_bins(catalog)
    if replicas and len(replicas) * len(bins) <= exact_limit:
        result = _place_exact(replicas, bins)
        if result is not None:
            return result
    return first_fit_decreasing(replicas, bins)


def _cost(bins: list[Bin], used: set[str]) -> float:
    return sum(b.shape.cost for b in bins if b.name in used and not b.existing)


def _resources(replica: Replica) -> tuple[int, int, int]:
    return round(replica.cores * _SCALE), round(replica.memory_gib * 1024), replica.gpus


def _capacity(host: Bin) -> tuple[int, int, int]:
    return round(host.shape.cores * _SCALE), round(host.shape.memory_gib * 1024), host.shape.gpus


def _place_exact(replicas: list[Replica], bins: list[Bin]) -> Placement | None:
    from ortools.sat.python import cp_model

    model = cp_model.CpModel()
    assign = {}
    for r, replica in enumerate(replicas):
        for b, host in enumerate(bins):
            if host.fits(replica, (0.0, 0.0, 0)):
                assign[r, b] = model.new_bool_var(f"x_{r}_{b}")
    used = [model.new_bool_var(f"used_{b}") for b in range(len(bins))]
    for r in range(len(replicas)):
        options = [assign[r, b] for b in range(len(bins)) if (r, b) in assign]
        if not options:
            return None  # nothing can hold it; FFD reports it as unplaced
        model.add_exactly_one(options)
    for b, host in enumerate(bins):
        items = [(r, assign[r, b]) for r in range(len(replicas)) if (r, b) in assign]
        for _, var in items:
            model.add_implication(var, used[b])
        if host.existing:
            model.add(used[b] == 1)  # an existing host is there whether or not it runs anything
        for dimension, limit in enumerate(_capacity(host)):
            model.add(sum(_resources(replicas[r])[dimension] * v for r, v in items) <= limit)
        by_module: dict[str, list[cp_model.IntVar]] = {}
        for r, var in items:
            if replicas[r].anti_affinity:
                by_module.setdefault(replicas[r].module, []).append(var)
        for variables in by_module.values():
            if len(variables) > 1:
                model.add_at_most_one(variables)
    for b in range(1, len(bins)):  # identical new hosts: use copy k only if copy k-1 is used
        if not bins[b].existing and not bins[b - 1].existing and bins[b].shape == bins[b - 1].shape:
            model.add_implication(used[b], used[b - 1])
    index = {host.name: b for b, host in enumerate(bins)}
    # (points, the variable "it stays on its current host"; None: it cannot stay, the move is forced)
    moved: list[tuple[int, Any]] = []
    for r, replica in enumerate(replicas):
        current = index.get(replica.current_host or "")
        if current is None:
            continue  # new replica, or its host is gone: placing it is no move to choose
        moved.append((replica.move_cost, assign.get((r, current))))
    all_moves = sum(points for points, _ in moved)
    n1_fails = _n_minus_1_terms(model, replicas, bins, assign, used)
    # Lexicographic by weights: money first, then N-1, then the moves' cost.
    n1_weight = all_moves + 1
    money_weight = n1_weight * (len(bins) + 1)
    terms: list[Any] = [
        round(host.shape.cost) * money_weight * used[b] for b, host in enumerate(bins) if not host.existing
    ]
    if n1_fails is not None:
        terms += [n1_weight * fail for fail in n1_fails]
    terms += [points * (1 - stays) if stays is not None else points for points, stays in moved]
    model.minimize(sum(terms))
    solver = cp_model.CpSolver()
    solver.parameters.num_workers = 1
    solver.parameters.random_seed = 0
    solver.parameters.max_deterministic_time = 20.0
    status = solver.solve(model)
    if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        return None
    assignment = {
        replicas[r].name: bins[b].name for (r, b), var in sorted(assign.items()) if solver.boolean_value(var)
    }
    used_names = set(assignment.values())
    return Placement(
        solver="cp-sat",
        status="optimal" if status == cp_model.OPTIMAL else "feasible",
        cost=_cost(bins, used_names),
        assignment=assignment,
        new_hosts={b.name: b.shape.name for b in bins if b.name in used_names and not b.existing},
        n_minus_1_in_objective=n1_fails is not None,
    )


def _n_minus_1_terms(
    model: Any, replicas: list[Replica], bins: list[Bin], assign: dict[tuple[int, int], Any], used: list[Any]
) -> list[Any] | None:
    """One boolean per host that may run replicas: true when draining it leaves a replica without room
    on the other hosts (capacity only: a drained replica may share a host with its siblings). None when
    the model would be too large (the plan then only checks N-1)."""
    targets = {b for (_, b) in assign}
    size = sum(1 for (r, d) in assign for b in targets if b != d and (r, b) in assign)
    if size > N1_EXACT_LIMIT:
        return None
    fails = []
    for d in sorted(targets):
        on_d = [r for r in range(len(replicas)) if (r, d) in assign]
        ok = model.new_bool_var(f"n1_{d}")
        moves: dict[tuple[int, int], Any] = {}
        for r in on_d:
            options = []
            for b in sorted(targets - {d}):
                if (r, b) not in assign:
                    continue
                var = model.new_bool_var(f"z_{d}_{r}_{b}")
                model.add_implication(var, assign[r, d])
                model.add_implication(var, used[b])
                moves[r, b] = var
                options.append(var)
            # Drained, each of d's replicas finds one other host (when the drain is to hold).
            model.add(sum(options) >= assign[r, d]).only_enforce_if(ok)
        for b in sorted(targets - {d}):
            incoming = [(r, var) for (r, target), var in moves.items() if target == b]
            if not incoming:
                continue
            staying = [(r, assign[r, b]) for r in range(len(replicas)) if (r, b) in assign]
            for dimension, limit in enumerate(_capacity(bins[b])):
                model.add(
                    sum(_resources(replicas[r])[dimension] * v for r, v in staying)
                    + sum(_resources(replicas[r])[dimension] * v for r, v in incoming)
                    <= limit
                )
        fails.append(ok.Not())
    return fails


def _size_key(replica: Replica) -> tuple[float, float, float, str]:
    return (-replica.gpus, -replica.cores, -replica.memory_gib, replica.name)


def first_fit_decreasing(replicas: list[Replica], bins: list[Bin]) -> Placement:
    """Each replica stays on its current host while that host takes it; the rest first fit, largest first."""
    load: dict[str, tuple[float, float, int]] = {}
    modules_on: dict[str, set[str]] = {}
    assignment: dict[str, str] = {}
    unplaced: list[str] = []
    opened: list[Bin] = [b for b in bins if b.existing]
    spare = sorted((b for b in bins if not b.existing), key=lambda b: (b.shape.cost, b.name))
    by_name = {b.name: b for b in opened}

    def put(replica: Replica, target: Bin) -> None:
        cores, memory, gpus = load.get(target.name, (0.0, 0.0, 0))
        load[target.name] = (cores + replica.cores, memory + replica.memory_gib, gpus + replica.gpus)
        modules_on.setdefault(target.name, set()).add(replica.module)
        assignment[replica.name] = target.name

    rest = []
    for replica in sorted(replicas, key=_size_key):
        current = by_name.get(replica.current_host or "")
        if current is not None and _can_take(current, replica, load, modules_on):
            put(replica, current)
        else:
            rest.append(replica)
    for replica in rest:
        target = next((b for b in opened if _can_take(b, replica, load, modules_on)), None)
        if target is None:
            target = next((b for b in spare if _can_take(b, replica, load, modules_on)), None)
            if target is not None:
                spare.remove(target)
                opened.append(target)
        if target is None:
            unplaced.append(replica.name)
            continue
        put(replica, target)
    used = set(assignment.values())
    return Placement(
        solver="first-fit-decreasing",
        status="complete" if not unplaced else "incomplete",
        cost=_cost(bins, used),
        assignment=dict(sorted(assignment.items())),
        new_hosts={b.name: b.shape.name for b in bins if b.name in used and not b.existing},
        unplaced=unplaced,
    )


def _can_take(
    host: Bin, replica: Replica, load: dict[str, tuple[float, float, int]], modules_on: dict[str, set[str]]
) -> bool:
    if replica.anti_affinity and replica.module in modules_on.get(host.name, set()):
        return False
    return host.fits(replica, load.get(host.name, (0.0, 0.0, 0)))


def host_loads(
    replicas: list[Replica], assignment: dict[str, str], leave_out: str | None = None
) -> dict[str, tuple[float, float, int]]:
    """Cores, memory (GiB) and GPUs the replicas of `assignment` take on each host (but `leave_out`)."""
    load: dict[str, tuple[float, float, int]] = {}
    for replica in replicas:
        host = assignment.get(replica.name)
        if host and host != leave_out:
            cores, memory, gpus = load.get(host, (0.0, 0.0, 0))
            load[host] = (cores + replica.cores, memory + replica.memory_gib, gpus + replica.gpus)
    return load


def check_n_minus_1(replicas: list[Replica], placement: Placement, catalog: Catalog) -> list[DrainCheck]:
    """For each host in use: can its replicas move to the other hosts of the plan (the existing ones and
    those bought; nothing more bought)? Siblings are kept apart when there is room to, and share a host
    when there is not (the module keeps serving). First fit decides fast; where it fails, an exact
    packing of that host's replicas decides."""
    bins = candidate_bins(catalog)
    by_name = {b.name: b for b in bins}
    in_use = sorted(set(placement.assignment.values()))
    available = [b.name for b in bins if b.existing] + sorted(placement.new_hosts)
    checks: list[DrainCheck] = []
    for drained in in_use:
        remaining = [by_name[name] for name in available if name != drained and name in by_name]
        load = host_loads(replicas, placement.assignment, leave_out=drained)
        modules_on: dict[str, set[str]] = {}
        for replica in replicas:
            host = placement.assignment.get(replica.name)
            if host and host != drained:
                modules_on.setdefault(host, set()).add(replica.module)
        moving = sorted((r for r in replicas if placement.assignment.get(r.name) == drained), key=_size_key)
        unplaced = _drain_first_fit(moving, remaining, dict(load), modules_on)
        if unplaced and not _drain_exact(moving, remaining, load):
            checks.append(DrainCheck(host=drained, holds=False, unplaced=unplaced))
        else:
            checks.append(DrainCheck(host=drained, holds=True))
    return checks


def _drain_first_fit(
    moving: list[Replica],
    remaining: list[Bin],
    load: dict[str, tuple[float, float, int]],
    modules_on: dict[str, set[str]],
) -> list[str]:
    unplaced = []
    for replica in moving:
        target = next((b for b in remaining if _can_take(b, replica, load, modules_on)), None)
        if target is None:  # no host without a sibling has room: any host with room
            target = next((b for b in remaining if b.fits(replica, load.get(b.name, (0.0, 0.0, 0)))), None)
        if target is None:
            unplaced.append(replica.name)
            continue
        cores, memory, gpus = load.get(target.name, (0.0, 0.0, 0))
        load[target.name] = (cores + replica.cores, memory + replica.memory_gib, gpus + replica.gpus)
        modules_on.setdefault(target.name, set()).add(replica.module)
    return unplaced


def _drain_exact(
    moving: list[Replica], remaining: list[Bin], load: dict[str, tuple[float, float, int]]
) -> bool:
    """Whether `moving` packs into what `remaining` has left (capacity and GPU model only)."""
    if not moving or not remaining or len(moving) * len(remaining) > EXACT_LIMIT:
        return False
    from ortools.sat.python import cp_model

    model = cp_model.CpModel()
    options: dict[tuple[int, int], cp_model.IntVar] = {}
    for r, replica in enumerate(moving):
        for b, host in enumerate(remaining):
            if host.fits(replica, (0.0, 0.0, 0)):
                options[r, b] = model.new_bool_var(f"y_{r}_{b}")
        if not any((r, b) in options for b in range(len(remaining))):
            return False
        model.add_exactly_one(var for (rr, _), var in options.items() if rr == r)
    for b, host in enumerate(remaining):
        have = load.get(host.name, (0.0, 0.0, 0))
        taken = (round(have[0] * _SCALE), round(have[1] * 1024), have[2])
        for dimension, limit in enumerate(_capacity(host)):
            model.add(
                sum(_resources(moving[r])[dimension] * var for (r, bb), var in options.items() if bb == b)
                <= limit - taken[dimension]
            )
    solver = cp_model.CpSolver()
    solver.parameters.num_workers = 1
    solver.parameters.max_deterministic_time = 5.0
    return solver.solve(model) in (cp_model.OPTIMAL, cp_model.FEASIBLE)
