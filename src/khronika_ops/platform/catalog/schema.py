"""The catalog's schema: what one module entry of `khronika_modules` may say, and reading the list.

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
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, ValidationError, field_validator, model_validator

from khronika_ops import safe_yaml
from khronika_ops.platform.common import HostMinimum, Seconds, SizeBytes
from khronika_ops.platform.images import ImageReferenceError, parse_repository
from khronika_ops.validation import (
    Problem,
    ProblemsError,
    StrictModel,
    problems_from_validation,
    yaml_problem,
)

CATALOG_KEY = "khronika_modules"
MODULE_NAME_PATTERN = r"^[a-z0-9][a-z0-9-]{0,62}$"  # also a container name and a DNS label
ENV_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
DOCKER_NAME_PATTERN = r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$"
DEFAULT_NETWORK = "khronika"
MANAGED_LABEL = "khronika.managed"
MODULE_LABEL = "khronika.module"

UpdateStrategy = Literal["recreate", "rolling"]


class CatalogError(ProblemsError):
    what = "catalog"


class PlacementSpec(StrictModel):
    groups: list[str] = Field(default_factory=list)
    hosts: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _not_empty(self) -> PlacementSpec:
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


class DataCheck(StrictModel):
    """What must hold across an update's switch: a record written through the module before the switch
    (POST `create` with the JSON `body`, on the host's published port) and read back after it (GET the
    path in the answer's `location_field`): it must answer 2xx with every value of `body`. A release
    that loses or rewrites the data fails its health gate and is rolled back with the volumes restored."""

    create: str = Field(pattern=r"^/[A-Za-z0-9._~/-]*$")
    body: dict[str, str] = Field(min_length=1, max_length=20)
    location_field: str = Field("location", pattern=r"^[A-Za-z0-9_]+$")
    port: int | None = Field(None, ge=1, le=65535)  # container port; default http.upstream_port or the first


class HttpRoute(StrictModel):
    """The module is served through the gateway under this path prefix."""

    path_prefix: str = Field(pattern=r"^/[A-Za-z0-9._~/-]*$")
    upstream_port: int = Field(ge=1, le=65535)  # a container port that is published on the host

    @field_validator("path_prefix")
    @classmethod
    def _plain_segments(cls, value: str) -> str:
        # nginx normalises `..` and `.` before it matches a location: a prefix holding them would route
        # a path the operator did not write (or one outside the module), and `//` matches nothing.
        segments = value.split("/")[1:]
        if any(segment in {".", ".."} for segment in segments):
            raise ValueError(f"{value!r} holds a '.' or '..' segment; give the path as it is served")
        if "" in segments[:-1]:
            raise ValueError(f"{value!r} holds an empty segment ('//')")
        return value


class CatalogModule(StrictModel):
    name: str = Field(pattern=MODULE_NAME_PATTERN)
    image: str | None = None  # repository; None: the release's repository
    enabled: bool = True
    placement: PlacementSpec
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
    # How long Docker waits after the stop signal before it kills the container (an update's downtime
    # includes it; a server that ignores SIGTERM as PID 1 waits the whole time).
    stop_timeout: Seconds = Field(10.0, ge=0, le=3600)
    http: HttpRoute | None = None
    data_check: DataCheck | None = None
    # A late rollback (the release channel, after the new release served traffic): `keep` when the
    # previous release reads the data the newer one wrote (it switches back on it, nothing restored);
    # `restore` when it may not (the newer data is copied aside, the pre-update copy restored when the
    # channel's policy allows, else the channel halts with the module left on the newer release).
    rollback_data: Literal["restore", "keep"] = "restore"
    min_host: HostMinimum = HostMinimum()

    @property
    def data_check_port(self) -> int | None:
        """The container port the data check asks: its own, else the gateway's, else the first."""
        if self.data_check is None:
            return None
        if self.data_check.port is not None:
            return self.data_check.port
        if self.http is not None:
            return self.http.upstream_port
        return self.ports[0].container if self.ports else None

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


_EMPTY_HINT = (
    "list the modules under khronika_modules, or write `khronika_modules: []` for a site without any"
)


def catalog_entries(data: Any) -> list[Any]:
    """Accept the group_vars form ({khronika_modules: [...]}, other keys ignored) or a bare list. An
    empty file, or a `khronika_modules:` without a value, is an error: a site without modules says
    so with an explicit `khronika_modules: []`."""
    if data is None:
        raise CatalogError([Problem(None, "", f"the catalog is empty; {_EMPTY_HINT}")])
    if isinstance(data, Mapping):
        if CATALOG_KEY not in data:
            raise CatalogError([Problem(None, CATALOG_KEY, "the file has no 'khronika_modules' list")])
        data = data[CATALOG_KEY]
        if data is None:
            raise CatalogError([Problem(None, CATALOG_KEY, f"has no value; {_EMPTY_HINT}")])
    if not isinstance(data, list):
        raise CatalogError([Problem(None, CATALOG_KEY, "must be a list of modules")])
    return data


def load_yaml_file(path: str | Path, error: type[ProblemsError] = CatalogError) -> Any:
    try:
        return safe_yaml.load_file(path)
    except OSError as exc:
        raise error([Problem(None, "", f"cannot read: {exc.strerror}")], str(path)) from exc
    except safe_yaml.YamlError as exc:
        raise error([yaml_problem(exc)], str(path)) from None


def parse_modules(entries: Sequence[Any]) -> tuple[list[CatalogModule], list[Problem]]:
    modules: list[CatalogModule] = []
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
            modules.append(CatalogModule.model_validate(entry))
        except ValidationError as exc:
            problems += problems_from_validation(exc, label)
    return modules, problems
