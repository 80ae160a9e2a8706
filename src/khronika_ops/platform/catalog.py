"""The module catalog: which modules a site runs, where, and how; validated and resolved into a plan.

An inventory's catalog is the list `khronika_modules` (e.g. `group_vars/all/khronika_modules.yml`).
`build_plan` checks every rule a schema cannot express (ports on one host, GPUs, dependencies,
placement against the inventory, the release having every enabled module) and returns, per host, the
containers in dependency order: the list the `platform` role loops over without deciding anything.

Decisions worth knowing (docs/modules.md explains them to administrators):
  * `image` is a repository without tag or digest; the release pins the digest. A repository without a
    registry host is pulled from the site's registry (`khronika_registry`) when one is given.
  * A module runs on every host its placement selects; `replicas` is the number of containers per
    host, named `<module>-<n>`. Replica n publishes each host port as `host + n - 1`.
  * Named volumes are per module: Docker volume `khronika-<module>-<volume>`, shared by the module's
    replicas on a host, never by two modules.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BeforeValidator, Field, ValidationError, field_validator, model_validator

from khronika_ops.platform.common import (
    HostMinimum,
    Problem,
    ProblemsError,
    SizeBytes,
    StrictModel,
    problems_from_validation,
)
from khronika_ops.platform.images import ImageReferenceError, parse_repository
from khronika_ops.platform.quantities import format_duration, format_size, parse_duration, parse_size
from khronika_ops.platform.release import Release

CATALOG_KEY = "khronika_modules"
MODULE_NAME_PATTERN = r"^[a-z0-9][a-z0-9-]{0,62}$"  # also a container name and a DNS label
ENV_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
DOCKER_NAME_PATTERN = r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$"
DEFAULT_NETWORK = "khronika"
MANAGED_LABEL = "khronika.managed"
MODULE_LABEL = "khronika.module"

Seconds = Annotated[float, BeforeValidator(parse_duration)]
UpdateStrategy = Literal["recreate", "rolling"]


class CatalogError(ProblemsError):
    what = "catalog"


class Placement(StrictModel):
    groups: list[str] = Field(default_factory=list)
    hosts: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _not_empty(self) -> Placement:
        if not self.groups and not self.hosts:
            raise ValueError("name at least one host group or host")
        return self


class PortSpec(StrictModel):
    container: int = Field(ge=1, le=65535)
    host: int | None = Field(None, ge=1, le=65535)  # None: reachable on the module networks only
    protocol: Literal["tcp", "udp"] = "tcp"
    bind: str | None = None  # host address to publish on; None: every address

    @field_validator("bind")
    @classmethod
    def _address(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                ipaddress.ip_address(value)
            except ValueError:
                raise ValueError(f"{value!r} is not an IPv4 or IPv6 address") from None
        return value


class SecretSpec(StrictModel):
    """A secret handed to the container as an environment variable; the value stays in Ansible Vault."""

    env: str = Field(pattern=ENV_NAME_PATTERN)
    vault_variable: str = Field(pattern=r"^vault_[a-z0-9_]+$")


class VolumeSpec(StrictModel):
    name: str = Field(pattern=DOCKER_NAME_PATTERN)
    mount: str
    read_only: bool = False
    backup: Literal["none", "before-update", "daily"] = "none"
    retention: int = Field(7, ge=1)  # backups kept

    @field_validator("mount")
    @classmethod
    def _absolute(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError(f"mount {value!r} must be an absolute path in the container")
        return value


class ResourceLimits(StrictModel):
    cpus: float | None = Field(None, gt=0)
    memory: SizeBytes | None = None


class GpuRequest(StrictModel):
    """`gpus: 2` is short for `gpus: {count: 2}`; `device_ids` pins particular GPUs (index or UUID)."""

    count: int | None = Field(None, ge=1)
    device_ids: list[str] | None = Field(None, min_length=1)

    @model_validator(mode="after")
    def _one_of(self) -> GpuRequest:
        if (self.count is None) == (self.device_ids is None):
            raise ValueError("give either count or device_ids")
        return self

    @property
    def needed(self) -> int:
        return self.count if self.count is not None else len(self.device_ids or [])


def _gpu_shorthand(value: Any) -> Any:
    return {"count": value} if isinstance(value, int) and not isinstance(value, bool) else value


class Healthcheck(StrictModel):
    http: str | None = None  # path answered with 2xx when healthy
    command: list[str] | None = None  # exec form, as in a Dockerfile HEALTHCHECK
    port: int | None = Field(None, ge=1, le=65535)  # for http; default: http.upstream_port or first port
    interval: Seconds = 10.0
    timeout: Seconds = 5.0
    retries: int = Field(3, ge=1)
    start_period: Seconds = 10.0

    @model_validator(mode="after")
    def _one_check(self) -> Healthcheck:
        if (self.http is None) == (self.command is None):
            raise ValueError("give either http (a path) or command")
        if self.http is not None and not self.http.startswith("/"):
            raise ValueError(f"http path {self.http!r} must start with '/'")
        return self


class HttpRoute(StrictModel):
    """The module is served through the gateway under this path prefix."""

    path_prefix: str = Field(pattern=r"^/[A-Za-z0-9._~/-]*$")
    upstream_port: int = Field(ge=1, le=65535)  # a container port that is published on the host


class ModuleSpec(StrictModel):
    name: str = Field(pattern=MODULE_NAME_PATTERN)
    image: str | None = None  # repository; None: the release's repository
    enabled: bool = True
    placement: Placement
    replicas: int = Field(1, ge=1)
    ports: list[PortSpec] = Field(default_factory=list)
    environment: dict[str, str | int | float | bool] = Field(default_factory=dict)
    secrets: list[SecretSpec] = Field(default_factory=list)
    volumes: list[VolumeSpec] = Field(default_factory=list)
    networks: list[str] = Field(default_factory=lambda: [DEFAULT_NETWORK])
    resources: ResourceLimits = ResourceLimits()
    gpus: Annotated[GpuRequest | None, BeforeValidator(_gpu_shorthand)] = None
    healthcheck: Healthcheck | None = None
    depends_on: list[str] = Field(default_factory=list)
    update: UpdateStrategy = "recreate"
    http: HttpRoute | None = None
    min_host: HostMinimum = HostMinimum()

    @field_validator("image")
    @classmethod
    def _repository(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                parse_repository(value)
            except ImageReferenceError as exc:
                raise ValueError(f"image {value!r}: {exc}") from None
        return value

    @field_validator("environment")
    @classmethod
    def _env_names(cls, value: dict[str, Any]) -> dict[str, Any]:
        bad = [name for name in value if not re.match(ENV_NAME_PATTERN, name)]
        if bad:
            raise ValueError(f"not valid environment variable names: {', '.join(sorted(bad))}")
        return value

    @field_validator("networks")
    @classmethod
    def _network_names(cls, value: list[str]) -> list[str]:
        bad = [name for name in value if not re.match(DOCKER_NAME_PATTERN, name)]
        if bad:
            raise ValueError(f"not valid Docker network names: {', '.join(sorted(bad))}")
        return value

    def gpus_needed(self) -> int:
        return max(self.gpus.needed if self.gpus else 0, self.min_host.gpus)


# --- the inventory, as the catalog needs it -------------------------------------------------------


@dataclass(frozen=True)
class InventoryHost:
    name: str
    groups: frozenset[str]
    gpus: int = 0
    # Known only when the inventory says so (the role's preflight checks facts on the host itself).
    cores: float | None = None
    memory: int | None = None
    disk: int | None = None


@dataclass(frozen=True)
class Inventory:
    hosts: Mapping[str, InventoryHost]

    @property
    def groups(self) -> frozenset[str]:
        return frozenset(group for host in self.hosts.values() for group in host.groups)

    @classmethod
    def from_groups(
        cls,
        groups: Mapping[str, Iterable[str]],
        gpu_counts: Mapping[str, Any] | None = None,
        resources: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> Inventory:
        """From Ansible's `groups` (group -> hosts), GPU counts per host and optional known resources."""
        memberships: dict[str, set[str]] = {}
        for group, members in groups.items():
            for host in members:
                memberships.setdefault(str(host), set()).add(str(group))
        gpu_counts = gpu_counts or {}
        resources = resources or {}
        hosts = {}
        for name in sorted(memberships):
            known = resources.get(name, {})
            hosts[name] = InventoryHost(
                name=name,
                groups=frozenset(memberships[name]),
                gpus=int(gpu_counts.get(name) or 0),
                cores=float(known["cores"]) if known.get("cores") is not None else None,
                memory=parse_size(known["memory"]) if known.get("memory") is not None else None,
                disk=parse_size(known["disk"]) if known.get("disk") is not None else None,
            )
        return cls(hosts)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> Inventory:
        """The plain form: {hosts: {name: {groups: [...], gpus: 0, cores: 8, memory: 32g, disk: 500g}}}."""
        entries = data.get("hosts")
        if not isinstance(entries, Mapping):
            raise CatalogError([Problem(None, "hosts", "an inventory needs a 'hosts' mapping")])
        groups: dict[str, list[str]] = {"all": []}
        gpu_counts, resources = {}, {}
        for name, raw_entry in entries.items():
            entry = raw_entry or {}
            if not isinstance(entry, Mapping):
                raise CatalogError([Problem(None, f"hosts.{name}", "must be a mapping")])
            groups["all"].append(name)
            for group in entry.get("groups", []):
                groups.setdefault(group, []).append(name)
            gpu_counts[name] = entry.get("gpus", 0)
            resources[name] = {key: entry.get(key) for key in ("cores", "memory", "disk")}
        return cls.from_groups(groups, gpu_counts, resources)


# --- the plan --------------------------------------------------------------------------------------


class PublishedPort(StrictModel):
    host: int
    container: int
    protocol: Literal["tcp", "udp"]
    bind: str | None

    @property
    def docker(self) -> str:
        """The `published_ports` item of community.docker.docker_container."""
        address = (
            f"[{self.bind}]:" if self.bind and ":" in self.bind else f"{self.bind}:" if self.bind else ""
        )
        return f"{address}{self.host}:{self.container}/{self.protocol}"


class PlannedVolume(StrictModel):
    docker_name: str
    module: str
    volume: str
    backup: Literal["none", "before-update", "daily"]
    retention: int


class NetworkAttachment(StrictModel):
    name: str
    aliases: list[str]


class PlannedHealthcheck(StrictModel):
    """community.docker.docker_container's `healthcheck`, plus the HTTP probe it was made from."""

    test: list[str]
    interval: str
    timeout: str
    retries: int
    start_period: str
    http_path: str | None = None
    http_port: int | None = None


class PlannedContainer(StrictModel):
    name: str
    module: str
    replica: int
    image: str  # repository@digest when a release is given, else the bare repository
    published_ports: list[str]
    ports: list[PublishedPort]
    exposed_ports: list[str]
    env: dict[str, str]
    secrets: list[SecretSpec]
    mounts: list[str]  # docker_name:/path[:ro]
    networks: list[NetworkAttachment]
    cpus: float | None
    memory: str | None  # "536870912b": what Docker parses exactly
    device_requests: list[dict[str, Any]]
    healthcheck: PlannedHealthcheck | None
    depends_on: list[str]
    update: UpdateStrategy
    labels: dict[str, str]
    level: int  # 0: depends on nothing; n: starts after every module of level < n
    start_order: int  # position in the global dependency order


class HostPlan(StrictModel):
    host: str
    containers: list[PlannedContainer]
    container_names: list[str]
    networks: list[str]
    volumes: list[PlannedVolume]


class GatewayUpstream(StrictModel):
    host: str
    port: int
    container: str


class GatewayRoute(StrictModel):
    module: str
    path_prefix: str
    upstreams: list[GatewayUpstream]


class ReleaseRef(StrictModel):
    version: str
    kind: str


class Plan(StrictModel):
    release: ReleaseRef | None
    order: list[str]  # enabled modules in dependency order
    disabled_modules: list[str]
    hosts: dict[str, HostPlan]
    gateway_routes: list[GatewayRoute]


# --- loading -------------------------------------------------------------------------------------


def catalog_entries(data: Any) -> list[Any]:
    """Accept the group_vars form ({khronika_modules: [...]}, other keys ignored) or a bare list."""
    if isinstance(data, Mapping):
        if CATALOG_KEY not in data:
            raise CatalogError([Problem(None, CATALOG_KEY, "the file has no 'khronika_modules' list")])
        data = data[CATALOG_KEY]
    if data is None:
        return []
    if not isinstance(data, list):
        raise CatalogError([Problem(None, CATALOG_KEY, "must be a list of modules")])
    return data


def load_yaml_file(path: str | Path, error: type[ProblemsError] = CatalogError) -> Any:
    try:
        return yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise error([Problem(None, "", f"cannot read: {exc.strerror}")], str(path)) from exc
    except yaml.YAMLError as exc:
        raise error([Problem(None, "", f"invalid YAML: {exc}")], str(path)) from exc


def parse_modules(entries: Sequence[Any]) -> tuple[list[ModuleSpec], list[Problem]]:
    modules: list[ModuleSpec] = []
    problems: list[Problem] = []
    seen: dict[str, int] = {}
    for index, entry in enumerate(entries):
        if not isinstance(entry, Mapping):
            problems.append(Problem(f"{CATALOG_KEY}[{index}]", "", "a module must be a mapping"))
            continue
        name = entry.get("name")
        label = name if isinstance(name, str) and name else f"{CATALOG_KEY}[{index}]"
        if label in seen:  # by the raw name, so a duplicate is reported even when an entry is invalid
            message = f"duplicate module name (entries {seen[label]} and {index} of {CATALOG_KEY})"
            problems.append(Problem(label, "name", message))
            continue
        seen[label] = index
        try:
            modules.append(ModuleSpec.model_validate(entry))
        except ValidationError as exc:
            problems += problems_from_validation(exc, label)
    return modules, problems


# --- rules across modules and hosts --------------------------------------------------------------


def _module_rules(module: ModuleSpec) -> list[Problem]:
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
    if (
        module.healthcheck is not None
        and module.healthcheck.http is not None
        and _health_port(module) is None
    ):
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


def _health_port(module: ModuleSpec) -> int | None:
    if module.healthcheck is not None and module.healthcheck.port is not None:
        return module.healthcheck.port
    if module.http is not None:
        return module.http.upstream_port
    return module.ports[0].container if module.ports else None


def _dependency_rules(modules: Mapping[str, ModuleSpec], entries: Sequence[Any]) -> list[Problem]:
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
    for cycle in find_cycles(raw_edges):
        path = " -> ".join([*cycle, cycle[0]])
        problems.append(Problem(cycle[0], "depends_on", f"dependency cycle: {path}"))
    return problems


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


def dependency_levels(modules: Mapping[str, ModuleSpec]) -> dict[str, int]:
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


def _placed_hosts(module: ModuleSpec, inventory: Inventory) -> tuple[list[str], list[Problem]]:
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


def _host_resource_rules(
    module: ModuleSpec, host: InventoryHost, minimum: HostMinimum, source: str
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


def _port_clashes(containers: Sequence[PlannedContainer], host: str) -> list[Problem]:
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


# --- resolution -----------------------------------------------------------------------------------


def _resolve_image(
    module: ModuleSpec, release: Release | None, default_registry: str | None
) -> tuple[str | None, Problem | None]:
    pinned = release.module(module.name) if release is not None else None
    if release is not None and pinned is None:
        return None, Problem(
            module.name, "name", f"is enabled but release {release.version} has no image for it"
        )
    if module.image is not None:
        repository = parse_repository(module.image)
    elif pinned is not None:
        repository = parse_repository(pinned.reference.repository)
    else:
        return None, Problem(module.name, "image", "is required when no release is given")
    text = repository.repository
    if repository.registry is None and default_registry:
        text = f"{default_registry.rstrip('/')}/{repository.path}"
    return (f"{text}@{pinned.digest}" if pinned is not None else text), None


def _healthcheck(module: ModuleSpec) -> PlannedHealthcheck | None:
    check = module.healthcheck
    if check is None:
        return None
    if check.command is not None:
        test = ["CMD", *check.command]
        http_port = None
    else:
        http_port = _health_port(module)
        url = f"http://127.0.0.1:{http_port}{check.http}"
        seconds = max(1, int(check.timeout))
        # Whichever client the image has; a vendor image without any of them uses `command` instead.
        probe = (
            f"curl -fsS -m {seconds} -o /dev/null {url} || wget -q -T {seconds} -O /dev/null {url} || "
            f'python3 -c "import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout={seconds})" {url}'
        )
        test = ["CMD-SHELL", probe]
    return PlannedHealthcheck(
        test=test,
        interval=format_duration(check.interval),
        timeout=format_duration(check.timeout),
        retries=check.retries,
        start_period=format_duration(check.start_period),
        http_path=check.http,
        http_port=http_port,
    )


def _device_requests(module: ModuleSpec) -> list[dict[str, Any]]:
    if module.gpus is None:
        return []
    request: dict[str, Any] = {"driver": "nvidia", "capabilities": [["gpu"]]}
    if module.gpus.count is not None:
        request["count"] = module.gpus.count
    else:
        request["device_ids"] = list(module.gpus.device_ids or [])
    return [request]


def _env_value(value: str | int | float | bool) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _containers_for(
    module: ModuleSpec, host: str, image: str, level: int, start_order: int
) -> list[PlannedContainer]:
    containers = []
    for replica in range(1, module.replicas + 1):
        ports = [
            PublishedPort(
                host=port.host + replica - 1, container=port.container, protocol=port.protocol, bind=port.bind
            )
            for port in module.ports
            if port.host is not None
        ]
        containers.append(
            PlannedContainer(
                name=f"{module.name}-{replica}",
                module=module.name,
                replica=replica,
                image=image,
                published_ports=[port.docker for port in ports],
                ports=ports,
                exposed_ports=[f"{port.container}/{port.protocol}" for port in module.ports],
                env={name: _env_value(value) for name, value in sorted(module.environment.items())},
                secrets=module.secrets,
                mounts=[
                    f"{volume_docker_name(module.name, volume.name)}:{volume.mount}{':ro' if volume.read_only else ''}"
                    for volume in module.volumes
                ],
                networks=[
                    NetworkAttachment(name=network, aliases=[module.name]) for network in module.networks
                ],
                cpus=module.resources.cpus,
                memory=f"{module.resources.memory}b" if module.resources.memory else None,
                device_requests=_device_requests(module),
                healthcheck=_healthcheck(module),
                depends_on=module.depends_on,
                update=module.update,
                labels={MANAGED_LABEL: "true", MODULE_LABEL: module.name},
                level=level,
                start_order=start_order,
            )
        )
    return containers


def volume_docker_name(module: str, volume: str) -> str:
    return f"khronika-{module}-{volume}"


def build_plan(
    catalog: Any,
    inventory: Inventory,
    release: Release | None = None,
    default_registry: str | None = None,
    source: str | None = None,
) -> Plan:
    """Validate the catalog against the inventory (and release) and resolve it; CatalogError lists all problems."""
    entries = catalog_entries(catalog)
    modules, problems = parse_modules(entries)
    by_name = {module.name: module for module in modules}
    for module in modules:
        problems += _module_rules(module)
    dependency_problems = _dependency_rules(by_name, entries)
    problems += dependency_problems

    enabled = {name: module for name, module in by_name.items() if module.enabled}
    acyclic = not any("dependency cycle" in problem.message for problem in dependency_problems)
    levels = dependency_levels(enabled) if acyclic else dict.fromkeys(enabled, 0)
    order = sorted(enabled, key=lambda name: (levels[name], name))

    prefixes: dict[str, str] = {}
    for name in order:
        module = enabled[name]
        if module.http is None:
            continue
        if module.http.path_prefix in prefixes:
            problems.append(
                Problem(
                    name,
                    "http.path_prefix",
                    f"{module.http.path_prefix} is already routed to {prefixes[module.http.path_prefix]}",
                )
            )
        prefixes.setdefault(module.http.path_prefix, name)

    host_containers: dict[str, list[PlannedContainer]] = {}
    routes: list[GatewayRoute] = []
    for start_order, name in enumerate(order):
        module = enabled[name]
        hosts, placement_problems = _placed_hosts(module, inventory)
        problems += placement_problems
        if module.update == "rolling" and hosts and module.replicas * len(hosts) < 2:
            problems.append(
                Problem(
                    name,
                    "update",
                    "rolling needs at least 2 replicas in total (replicas x placed hosts); use recreate",
                )
            )
        pinned = release.module(name) if release is not None else None
        release_minimum = pinned.min_resources if pinned is not None else None
        for host in hosts:
            problems += _host_resource_rules(module, inventory.hosts[host], module.min_host, "min_host")
            if release_minimum is not None:
                problems += _host_resource_rules(
                    module, inventory.hosts[host], release_minimum, "release.min_resources"
                )
        image, image_problem = _resolve_image(module, release, default_registry)
        if image_problem is not None:
            problems.append(image_problem)
            continue
        assert image is not None
        upstreams = []
        for host in hosts:
            containers = _containers_for(module, host, image, levels[name], start_order)
            host_containers.setdefault(host, []).extend(containers)
            if module.http is not None:
                upstreams += [
                    GatewayUpstream(host=host, port=port.host, container=container.name)
                    for container in containers
                    for port in container.ports
                    if port.container == module.http.upstream_port and port.protocol == "tcp"
                ]
        if module.http is not None:
            routes.append(GatewayRoute(module=name, path_prefix=module.http.path_prefix, upstreams=upstreams))

    host_plans = {}
    for host in sorted(host_containers):
        containers = host_containers[host]
        problems += _port_clashes(containers, host)
        host_modules = [enabled[name] for name in dict.fromkeys(container.module for container in containers)]
        host_plans[host] = HostPlan(
            host=host,
            containers=containers,
            container_names=[container.name for container in containers],
            networks=sorted({network for module in host_modules for network in module.networks}),
            volumes=[
                PlannedVolume(
                    docker_name=volume_docker_name(module.name, volume.name),
                    module=module.name,
                    volume=volume.name,
                    backup=volume.backup,
                    retention=volume.retention,
                )
                for module in host_modules
                for volume in module.volumes
            ],
        )
    if problems:
        raise CatalogError(_unique(problems), source)
    return Plan(
        release=ReleaseRef(version=release.version, kind=release.kind) if release else None,
        order=order,
        disabled_modules=sorted(name for name, module in by_name.items() if not module.enabled),
        hosts=host_plans,
        gateway_routes=sorted(routes, key=lambda route: route.path_prefix),
    )


def _unique(problems: Iterable[Problem]) -> list[Problem]:
    return list(dict.fromkeys(problems))


def update_strategies(catalog: Any) -> dict[str, UpdateStrategy]:
    """module -> recreate|rolling for the modules of a catalog that parse (for `release diff`)."""
    modules, _ = parse_modules(catalog_entries(catalog))
    return {module.name: module.update for module in modules}
