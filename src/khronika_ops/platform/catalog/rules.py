"""The catalog's rules that no schema can say: within a module, across modules (dependencies, routes),
and against the inventory and the release (placement, GPUs, minimum resources, host ports)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from khronika_ops.platform.catalog.deployment import PlannedContainer, PublishedPort
from khronika_ops.platform.catalog.inventory import Inventory, InventoryHost
from khronika_ops.platform.catalog.schema import CatalogModule
from khronika_ops.platform.common import HostMinimum
from khronika_ops.quantities import format_size
from khronika_ops.validation import Problem


def module_rules(module: CatalogModule) -> list[Problem]:
    problems = []
    secret_envs = [secret.env for secret in module.secrets]
    for name in sorted({env for env in secret_envs if secret_envs.count(env) > 1}):
        problems.append(Problem(module.name, "secrets", f"environment variable {name} is set by two secrets"))
    for name in sorted(set(secret_envs) & set(module.environment)):
        problems.append(
            Problem(module.name, "secrets", f"{name} is both in environment and in secrets; keep it in one")
        )
    volume_names = [volume.name for volume in module.volumes]
    for name in sorted({name for name in volume_names if volume_names.count(name) > 1}):
        problems.append(Problem(module.name, "volumes", f"volume {name!r} is listed twice"))
    mounts = [volume.mount for volume in module.volumes]
    for mount in sorted({mount for mount in mounts if mounts.count(mount) > 1}):
        problems.append(Problem(module.name, "volumes", f"two volumes are mounted at {mount}"))
    if module.data_check is not None:
        port = module.data_check_port
        tcp = {p.container for p in module.ports if p.host is not None and p.protocol == "tcp"}
        if port not in tcp:
            problems.append(
                Problem(
                    module.name,
                    "data_check",
                    f"asks container port {port}, which is not published on the host over tcp: add it to "
                    "ports with a host port, or give data_check.port",
                )
            )
    if module.http is not None:
        published = {
            port.container for port in module.ports if port.host is not None and port.protocol == "tcp"
        }
        if module.http.upstream_port not in published:
            problems.append(
                Problem(
                    module.name,
                    "http.upstream_port",
                    f"{module.http.upstream_port} is not a container port published on the host (ports[].container "
                    "with a host port); the gateway reaches modules through their host ports",
                )
            )
    if module.healthcheck is not None and module.healthcheck.http is not None and health_port(module) is None:
        problems.append(
            Problem(
                module.name,
                "healthcheck.port",
                "an http check needs a port (or ports, or http.upstream_port)",
            )
        )
    if module.gpus is not None and module.gpus.device_ids is not None and module.replicas > 1:
        # Two replicas pinned to the same devices are rarely what anyone wants; say so early.
        problems.append(
            Problem(
                module.name,
                "gpus.device_ids",
                "pinned GPUs cannot be shared by replicas; use count or replicas 1",
            )
        )
    return problems


def health_port(module: CatalogModule) -> int | None:
    if module.healthcheck is not None and module.healthcheck.port is not None:
        return module.healthcheck.port
    if module.http is not None:
        return module.http.upstream_port
    return module.ports[0].container if module.ports else None


@dataclass(frozen=True)
class DependencyCheck:
    problems: list[Problem]
    cycles: list[list[str]]  # each cycle once, from its smallest module name (find_cycles)

    @property
    def acyclic(self) -> bool:
        return not self.cycles


def check_dependencies(modules: Mapping[str, CatalogModule], entries: Sequence[Any]) -> DependencyCheck:
    """Unknown, disabled and self dependencies; cycles over every entry, invalid ones included."""
    raw_edges: dict[str, list[str]] = {}
    for entry in entries:
        if isinstance(entry, Mapping) and isinstance(entry.get("name"), str):
            depends_on = entry.get("depends_on")
            raw_edges[entry["name"]] = [str(d) for d in depends_on] if isinstance(depends_on, list) else []
    problems = []
    for module in modules.values():
        for index, dependency in enumerate(module.depends_on):
            where = f"depends_on[{index}]"
            if dependency == module.name:
                problems.append(Problem(module.name, where, "a module cannot depend on itself"))
            elif dependency not in raw_edges:
                problems.append(Problem(module.name, where, f"{dependency!r} is not a module of the catalog"))
            elif dependency not in modules:
                continue  # the dependency has errors of its own, reported there
            elif module.enabled and not modules[dependency].enabled:
                problems.append(
                    Problem(
                        module.name, where, f"{dependency!r} is disabled; enable it or drop the dependency"
                    )
                )
    cycles = find_cycles(raw_edges)
    for cycle in cycles:
        path = " -> ".join([*cycle, cycle[0]])
        problems.append(Problem(cycle[0], "depends_on", f"dependency cycle: {path}"))
    return DependencyCheck(problems, cycles)


def find_cycles(edges: Mapping[str, Sequence[str]]) -> list[list[str]]:
    """Each dependency cycle once, as the path of module names starting at its smallest name."""
    cycles: list[list[str]] = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        path.append(node)
        for target in sorted(edges.get(node, ())):
            if target not in edges or target == node:
                continue  # reported as unknown / self-dependency
            if state.get(target) == 1:
                cycle = path[path.index(target) :]
                start = cycle.index(min(cycle))
                cycles.append(cycle[start:] + cycle[:start])
            elif target not in state:
                visit(target)
        path.pop()
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node)
    return cycles


def dependency_levels(modules: Mapping[str, CatalogModule]) -> dict[str, int]:
    """Level of each module (0: no dependencies); acyclic input. Sorting by (level, name) is a topological order."""
    levels: dict[str, int] = {}

    def level(name: str) -> int:
        if name not in levels:
            dependencies = [d for d in modules[name].depends_on if d in modules and d != name]
            levels[name] = 1 + max((level(d) for d in dependencies), default=-1)
        return levels[name]

    for name in modules:
        level(name)
    return levels


def placed_hosts(module: CatalogModule, inventory: Inventory) -> tuple[list[str], list[Problem]]:
    problems = []
    known_groups = inventory.groups
    for index, group in enumerate(module.placement.groups):
        if group not in known_groups:
            problems.append(
                Problem(module.name, f"placement.groups[{index}]", f"group {group!r} is not in the inventory")
            )
    for index, host in enumerate(module.placement.hosts):
        if host not in inventory.hosts:
            problems.append(
                Problem(module.name, f"placement.hosts[{index}]", f"host {host!r} is not in the inventory")
            )
    wanted_groups = set(module.placement.groups)
    selected = sorted(
        name
        for name, host in inventory.hosts.items()
        if name in module.placement.hosts or host.groups & wanted_groups
    )
    if not selected and not problems:
        problems.append(Problem(module.name, "placement", "selects no host of the inventory"))
    return selected, problems


def host_resource_rules(
    module: CatalogModule, host: InventoryHost, minimum: HostMinimum, source: str
) -> list[Problem]:
    problems = []
    needed_gpus = max(module.gpus_needed(), minimum.gpus)
    if needed_gpus and host.gpus == 0:
        problems.append(
            Problem(module.name, "gpus", f"needs GPUs but is placed on {host.name}, which has none")
        )
    elif needed_gpus > host.gpus:
        problems.append(
            Problem(module.name, "gpus", f"needs {needed_gpus} GPU(s) but {host.name} has {host.gpus}")
        )
    if module.gpus is not None and module.gpus.device_ids and host.gpus:
        for device in module.gpus.device_ids:
            if device.isdigit() and int(device) >= host.gpus:
                problems.append(
                    Problem(
                        module.name,
                        "gpus.device_ids",
                        f"GPU {device} does not exist on {host.name} ({host.gpus} GPUs)",
                    )
                )
    checks: list[tuple[str, float, float | None, Callable[[float], str]]] = [
        ("cores", minimum.cores, host.cores, lambda value: f"{value:g} cores"),
        ("memory", minimum.memory, host.memory, lambda value: format_size(int(value))),
        ("disk", minimum.disk, host.disk, lambda value: format_size(int(value))),
    ]
    for name, wanted, available, show in checks:
        if wanted and available is not None and available < wanted:
            problems.append(
                Problem(
                    module.name,
                    f"{source}.{name}",
                    f"needs {show(wanted)} but {host.name} has {show(available)}",
                )
            )
    return problems


def port_clashes(containers: Sequence[PlannedContainer], host: str) -> list[Problem]:
    problems = []
    claimed: list[tuple[PublishedPort, PlannedContainer]] = []
    for container in containers:
        for port in container.ports:
            for other_port, other in claimed:
                unspecified = {None, "0.0.0.0", "::"}
                same_address = (
                    port.bind in unspecified or other_port.bind in unspecified or port.bind == other_port.bind
                )
                if other_port.host == port.host and other_port.protocol == port.protocol and same_address:
                    problems.append(
                        Problem(
                            container.module,
                            "ports",
                            f"host port {port.host}/{port.protocol} on {host} is already taken by {other.name} (module {other.module!r})",
                        )
                    )
            claimed.append((port, container))
    return problems
