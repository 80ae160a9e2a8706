"""What a catalog resolves to (`resolve_deployment`): the deployment, per host the containers in
dependency order, their networks and volumes, and the gateway's routes. The `platform` and `gateway`
roles loop over it (as JSON) without deciding anything."""

from __future__ import annotations

from typing import Any, Literal

from khronika_ops.platform.catalog.schema import SecretSpec, UpdateStrategy
from khronika_ops.validation import StrictModel


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


class PlannedDataCheck(StrictModel):
    """The catalog's data_check with the host port its container publishes (docs/modules.md)."""

    create: str
    body: dict[str, str]
    location_field: str
    port: int  # on the host


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
    stop_timeout: int  # seconds (docker_container's stop_timeout)
    labels: dict[str, str]
    level: int  # 0: depends on nothing; n: starts after every module of level < n
    start_order: int  # position in the global dependency order
    data_check: PlannedDataCheck | None = None


class HostDeployment(StrictModel):
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


class DeployPlan(StrictModel):
    release: ReleaseRef | None
    order: list[str]  # enabled modules in dependency order
    disabled_modules: list[str]
    hosts: dict[str, HostDeployment]
    gateway_routes: list[GatewayRoute]
