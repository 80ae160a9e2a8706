"""Place: pack module replicas onto existing hosts first, then onto purchasable shapes, at least cost.

Exact: OR-Tools CP-SAT (one boolean per replica and host, capacity and anti-affinity constraints,
minimise the cost of hosts bought). It runs single-threaded with a deterministic time budget, so the
same input gives the same plan. Large inputs (or a solver without a solution) fall back to
first-fit-decreasing, which opens the cheapest fitting shape when nothing existing fits.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from khronika_ops.planner.catalog import Catalog, HostShape
from khronika_ops.planner.replicas import replica_id

# Beyond this many replica-host pairs the exact model gets slow; FFD is within a few % there.
EXACT_LIMIT = 20_000
_SCALE = 1000  # CP-SAT works on integers: milli-cores and MiB


class Replica(BaseModel):
    module: str
    index: int
    cores: float
    memory_gib: float
    gpus: int = 0
    gpu_model: str | None = None
    anti_affinity: bool = True

    @property
    def name(self) -> str:
        return replica_id(self.module, self.index)


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
        model.add(
            sum(round(replicas[r].cores * _SCALE) * v for r, v in items) <= round(host.shape.cores * _SCALE)
        )
        model.add(
            sum(round(replicas[r].memory_gib * 1024) * v for r, v in items)
            <= round(host.shape.memory_gib * 1024)
        )
        model.add(sum(replicas[r].gpus * v for r, v in items) <= host.shape.gpus)
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
    # Cost of hosts bought first; then prefer fewer existing hosts in use (tidier, more room for N-1).
    model.minimize(
        sum(round(host.shape.cost) * 1000 * used[b] for b, host in enumerate(bins) if not host.existing)
        + sum(used[b] for b, host in enumerate(bins) if host.existing)
    )
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
    )


def _size_key(replica: Replica) -> tuple[float, float, float, str]:
    return (-replica.gpus, -replica.cores, -replica.memory_gib, replica.name)


def first_fit_decreasing(replicas: list[Replica], bins: list[Bin]) -> Placement:
    load: dict[str, tuple[float, float, int]] = {}
    modules_on: dict[str, set[str]] = {}
    assignment: dict[str, str] = {}
    unplaced: list[str] = []
    opened: list[Bin] = [b for b in bins if b.existing]
    spare = sorted((b for b in bins if not b.existing), key=lambda b: (b.shape.cost, b.name))
    for replica in sorted(replicas, key=_size_key):
        target = next((b for b in opened if _can_take(b, replica, load, modules_on)), None)
        if target is None:
            target = next((b for b in spare if _can_take(b, replica, load, modules_on)), None)
            if target is not None:
                spare.remove(target)
                opened.append(target)
        if target is None:
            unplaced.append(replica.name)
            continue
        cores, memory, gpus = load.get(target.name, (0.0, 0.0, 0))
        load[target.name] = (cores + replica.cores, memory + replica.memory_gib, gpus + replica.gpus)
        modules_on.setdefault(target.name, set()).add(replica.module)
        assignment[replica.name] = target.name
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


def check_n_minus_1(replicas: list[Replica], placement: Placement, catalog: Catalog) -> list[DrainCheck]:
    """For each host in use: can its replicas move to the other hosts in the plan (nothing bought)?"""
    by_name = {b.name: b for b in candidate_bins(catalog)}
    in_use = sorted(set(placement.assignment.values()))
    checks: list[DrainCheck] = []
    for drained in in_use:
        remaining = [by_name[name] for name in in_use if name != drained]
        load: dict[str, tuple[float, float, int]] = {}
        modules_on: dict[str, set[str]] = {}
        for replica in replicas:
            host = placement.assignment.get(replica.name)
            if host and host != drained:
                cores, memory, gpus = load.get(host, (0.0, 0.0, 0))
                load[host] = (cores + replica.cores, memory + replica.memory_gib, gpus + replica.gpus)
                modules_on.setdefault(host, set()).add(replica.module)
        moving = sorted((r for r in replicas if placement.assignment.get(r.name) == drained), key=_size_key)
        unplaced = []
        for replica in moving:
            # During a drain, anti-affinity is relaxed only if no other host can take the replica.
            target = next((b for b in remaining if _can_take(b, replica, load, modules_on)), None)
            if target is None:
                unplaced.append(replica.name)
                continue
            cores, memory, gpus = load.get(target.name, (0.0, 0.0, 0))
            load[target.name] = (cores + replica.cores, memory + replica.memory_gib, gpus + replica.gpus)
            modules_on.setdefault(target.name, set()).add(replica.module)
        checks.append(DrainCheck(host=drained, holds=not unplaced, unplaced=unplaced))
    return checks
