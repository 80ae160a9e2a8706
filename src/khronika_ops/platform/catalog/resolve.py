"""Resolution: a valid catalog on an inventory (and a release) becomes the deployment, per host the
containers in dependency order, which the `platform` role loops over without deciding anything."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from khronika_ops.platform.catalog.deployment import (
    DeployPlan,
    GatewayRoute,
    GatewayUpstream,
    HostDeployment,
    NetworkAttachment,
    PlannedContainer,
    PlannedDataCheck,
    PlannedHealthcheck,
    PlannedVolume,
    PublishedPort,
    ReleaseRef,
)
from khronika_ops.platform.catalog.inventory import Inventory
from khronika_ops.platform.catalog.rules import (
    check_dependencies,
    dependency_levels,
    health_port,
    host_resource_rules,
    module_rules,
    placed_hosts,
    port_clashes,
)
from khronika_ops.platform.catalog.schema import (
    MANAGED_LABEL,
    MODULE_LABEL,
    CatalogError,
    CatalogModule,
    UpdateStrategy,
    catalog_entries,
    parse_modules,
)
from khronika_ops.platform.images import IMAGE_SOURCES, parse_repository
from khronika_ops.platform.release import Release
from khronika_ops.quantities import format_duration
from khronika_ops.validation import Problem


def _resolve_image(
    module: CatalogModule, release: Release | None, default_registry: str | None, image_source: str
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
    if repository.registry is None and default_registry:
        repository = parse_repository(f"{default_registry.rstrip('/')}/{repository.path}")
    if pinned is None:
        return repository.repository, None
    if image_source == "archive":
        return repository.loaded_from_archive(pinned.digest), None
    return repository.with_digest(pinned.digest), None


def _healthcheck(module: CatalogModule) -> PlannedHealthcheck | None:
    check = module.healthcheck
    if check is None:
        return None
    if check.command is not None:
        test = ["CMD", *check.command]
        http_port = None
    else:
        http_port = health_port(module)
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


def _device_requests(module: CatalogModule) -> list[dict[str, Any]]:
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
    module: CatalogModule, host: str, image: str, level: int, start_order: int
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
                stop_timeout=max(0, round(module.stop_timeout)),
                labels={MANAGED_LABEL: "true", MODULE_LABEL: module.name},
                level=level,
                start_order=start_order,
                data_check=_data_check(module, ports),
            )
        )
    return containers


def _data_check(module: CatalogModule, ports: list[PublishedPort]) -> PlannedDataCheck | None:
    check, port = module.data_check, module.data_check_port
    if check is None or port is None:
        return None
    host_port = next((p.host for p in ports if p.container == port and p.protocol == "tcp"), None)
    if host_port is None:
        return None
    return PlannedDataCheck(
        create=check.create, body=dict(check.body), location_field=check.location_field, port=host_port
    )


def volume_docker_name(module: str, volume: str) -> str:
    return f"khronika-{module}-{volume}"


def resolve_deployment(
    catalog: Any,
    inventory: Inventory,
    release: Release | None = None,
    default_registry: str | None = None,
    source: str | None = None,
    *,
    image_source: str = "registry",
) -> DeployPlan:
    """Validate the catalog against the inventory (and release) and resolve it; CatalogError lists all problems.
    `image_source` is where hosts get the images (IMAGE_SOURCES): `registry` runs `repository@digest`,
    `archive` the tag the installation archive's loader gives the same image."""
    if image_source not in IMAGE_SOURCES:
        raise ValueError(f"image source must be one of {', '.join(IMAGE_SOURCES)}, not {image_source!r}")
    try:
        entries = catalog_entries(catalog)
    except CatalogError as exc:
        raise CatalogError(exc.problems, exc.source or source) from None
    modules, problems = parse_modules(entries)
    by_name = {module.name: module for module in modules}
    for module in modules:
        problems += module_rules(module)
    dependencies = check_dependencies(by_name, entries)
    problems += dependencies.problems

    enabled = {name: module for name, module in by_name.items() if module.enabled}
    levels = dependency_levels(enabled) if dependencies.acyclic else dict.fromkeys(enabled, 0)
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
        hosts, placement_problems = placed_hosts(module, inventory)
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
            problems += host_resource_rules(module, inventory.hosts[host], module.min_host, "min_host")
            if release_minimum is not None:
                problems += host_resource_rules(
                    module, inventory.hosts[host], release_minimum, "release.min_resources"
                )
        image, image_problem = _resolve_image(module, release, default_registry, image_source)
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
        problems += port_clashes(containers, host)
        host_modules = [enabled[name] for name in dict.fromkeys(container.module for container in containers)]
        host_plans[host] = HostDeployment(
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
    return DeployPlan(
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
