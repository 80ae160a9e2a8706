"""The docker role's `/etc/docker/daemon.json`: layered merge and validation.

The docker role is the single owner of daemon.json. Its content is merged from ordered layers: the role's
defaults, contributions other roles left on the host (for example the NVIDIA runtime), then the
inventory's group and host layers. Dicts merge key by key, lists of scalars are unioned in order, and a
later layer wins a scalar conflict; every conflict is reported so that nothing is overridden silently.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

# Log drivers dockerd ships with (docs.docker.com/engine/logging/configure/); plugins use "name:tag".
BUILTIN_LOG_DRIVERS = frozenset(
    {
        "none",
        "local",
        "json-file",
        "syslog",
        "journald",
        "gelf",
        "fluentd",
        "awslogs",
        "splunk",
        "etwlogs",
        "gcplogs",
        "logentries",
    }
)
SIZE_PATTERN = re.compile(r"^[1-9][0-9]*[kmg]$")
# Keys whose values are lists that several layers may each extend.
_LIST_KEYS_UNION = frozenset(
    {"insecure-registries", "registry-mirrors", "dns", "dns-search", "dns-opts", "labels"}
)


@dataclass
class MergeResult:
    config: dict[str, Any]
    conflicts: list[str] = field(default_factory=list)
    sources: dict[str, str] = field(default_factory=dict)


def _union(first: Sequence[Any], second: Sequence[Any]) -> list[Any]:
    merged = list(first)
    for item in second:
        if item not in merged:
            merged.append(item)
    return merged


def _merge_into(
    target: dict[str, Any], layer: Mapping[str, Any], layer_name: str, path: str, result: MergeResult
) -> None:
    for key, value in layer.items():
        where = f"{path}{key}"
        if key not in target:
            target[key] = _copy(value)
            result.sources[where] = layer_name
            continue
        current = target[key]
        if isinstance(current, dict) and isinstance(value, Mapping):
            _merge_into(current, value, layer_name, f"{where}.", result)
        elif (
            isinstance(current, list)
            and isinstance(value, list)
            and (key in _LIST_KEYS_UNION or all(not isinstance(i, (dict, list)) for i in current + value))
        ):
            target[key] = _union(current, value)
            result.sources[where] = f"{result.sources.get(where, '?')}+{layer_name}"
        elif current != value:
            result.conflicts.append(
                f"{where}: {layer_name} sets {value!r}, replacing {current!r} from {_source_of(result.sources, where) or '?'}"
            )
            target[key] = _copy(value)
            result.sources[where] = layer_name


def _copy(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


def merge_layers(layers: Iterable[tuple[str, Mapping[str, Any] | None]]) -> MergeResult:
    """Merge (name, dict) layers in order; empty or None layers are skipped."""
    result = MergeResult(config={})
    for name, layer in layers:
        if not layer:
            continue
        if not isinstance(layer, Mapping):
            raise TypeError(f"daemon.json layer {name!r} must be a mapping, got {type(layer).__name__}")
        _merge_into(result.config, layer, name, "", result)
    result.config = _prune_empty(result.config)
    return result


def _prune_empty(config: dict[str, Any]) -> dict[str, Any]:
    """Drop keys whose value is None or an empty string: a layer's way to say "leave dockerd's default"."""
    pruned: dict[str, Any] = {}
    for key, value in config.items():
        if value is None or value == "":
            continue
        pruned[key] = _prune_empty(value) if isinstance(value, dict) else value
    return pruned


def validate(config: Mapping[str, Any]) -> list[str]:
    """Errors a user can act on, each naming the daemon.json key; empty when the config is sound."""
    errors: list[str] = []
    driver = config.get("log-driver")
    if driver is not None and (
        not isinstance(driver, str) or (driver not in BUILTIN_LOG_DRIVERS and ":" not in driver)
    ):
        errors.append(
            f"log-driver: unknown log driver {driver!r}; use one of {', '.join(sorted(BUILTIN_LOG_DRIVERS))} "
            "or a plugin as name:tag"
        )
    log_opts = config.get("log-opts", {})
    if not isinstance(log_opts, Mapping):
        errors.append("log-opts: must be a mapping of strings")
        log_opts = {}
    for key, value in log_opts.items():
        if not isinstance(value, str):
            errors.append(f"log-opts.{key}: dockerd only accepts strings here, got {value!r}; quote it")
    max_size = log_opts.get("max-size")
    if isinstance(max_size, str) and not SIZE_PATTERN.match(max_size):
        errors.append(
            f"log-opts.max-size: {max_size!r} is not a size; write a number and a unit k, m or g, e.g. '50m'"
        )
    max_file = log_opts.get("max-file")
    if isinstance(max_file, str) and not (max_file.isdigit() and int(max_file) >= 1):
        errors.append(f"log-opts.max-file: {max_file!r} must be a positive whole number, e.g. '5'")
    for key in ("insecure-registries", "registry-mirrors"):
        value = config.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            errors.append(f"{key}: must be a list of non-empty strings")
    for mirror in config.get("registry-mirrors", []) or []:
        if isinstance(mirror, str) and not mirror.startswith(("http://", "https://")):
            errors.append(f"registry-mirrors: {mirror!r} needs a scheme, e.g. 'https://{mirror}'")
    for registry in config.get("insecure-registries", []) or []:
        if isinstance(registry, str) and "://" in registry:
            errors.append(
                f"insecure-registries: {registry!r} must be host[:port] or a CIDR, without a scheme"
            )
    errors.extend(_validate_pools(config.get("default-address-pools")))
    bip = config.get("bip")
    if bip is not None:
        try:
            interface = ipaddress.ip_interface(str(bip))
            if interface.ip == interface.network.network_address or "/" not in str(bip):
                raise ValueError("use the bridge's own address with a prefix")
        except ValueError as exc:
            errors.append(
                f"bip: {bip!r} must be the bridge address with its prefix, e.g. '10.200.0.1/24' ({exc})"
            )
    data_root = config.get("data-root")
    if data_root is not None and (not isinstance(data_root, str) or not data_root.startswith("/")):
        errors.append(f"data-root: {data_root!r} must be an absolute path")
    live_restore = config.get("live-restore")
    if live_restore is not None and not isinstance(live_restore, bool):
        errors.append(f"live-restore: must be true or false, got {live_restore!r}")
    runtimes = config.get("runtimes", {})
    if not isinstance(runtimes, Mapping) or not all(
        isinstance(v, Mapping) and isinstance(v.get("path"), str) for v in runtimes.values()
    ):
        errors.append("runtimes: each runtime must be a mapping with a 'path' string")
    default_runtime = config.get("default-runtime")
    if default_runtime not in (None, "runc") and default_runtime not in (runtimes or {}):
        errors.append(f"default-runtime: {default_runtime!r} is not defined under 'runtimes'")
    return errors


# The docker role's variables behind each key of its own layer, so that errors name what to edit.
ROLE_LAYER = "role settings"
ROLE_LAYER_VARIABLES = {
    "log-driver": "docker_log_driver",
    "log-opts.max-size": "docker_log_max_size",
    "log-opts.max-file": "docker_log_max_file",
    "live-restore": "docker_live_restore",
    "data-root": "docker_data_root",
    "insecure-registries": "docker_insecure_registries",
    "registry-mirrors": "docker_registry_mirrors",
    "default-address-pools": "docker_default_address_pools",
}


def explain_errors(result: MergeResult) -> list[str]:
    """validate() errors, each prefixed with the variable or layer that set the offending key."""
    explained = []
    for error in validate(result.config):
        key = error.split(":", 1)[0]
        base_key = re.sub(r"\[\d+\].*$", "", key)
        source = _source_of(result.sources, base_key)
        origins = []
        for layer in source.split("+"):
            if layer == ROLE_LAYER:
                origins.append(ROLE_LAYER_VARIABLES.get(base_key, "the docker role's settings"))
            elif layer:
                origins.append(layer)
        explained.append(f"{' + '.join(origins) or 'daemon.json'} → {error}")
    return explained


def _source_of(sources: Mapping[str, str], key: str) -> str:
    """The layer(s) that set `key`, or the nearest enclosing key a layer set as a whole."""
    while key:
        if key in sources:
            return sources[key]
        key = key.rpartition(".")[0]
    return ""


def _validate_pools(pools: Any) -> list[str]:
    if pools is None:
        return []
    if not isinstance(pools, list):
        return ["default-address-pools: must be a list of {base: CIDR, size: prefix length}"]
    errors = []
    networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
    for index, pool in enumerate(pools):
        where = f"default-address-pools[{index}]"
        if not isinstance(pool, Mapping) or set(pool) != {"base", "size"}:
            errors.append(f"{where}: must have exactly the keys base and size")
            continue
        try:
            network = ipaddress.ip_network(str(pool["base"]), strict=True)
        except ValueError as exc:
            errors.append(f"{where}.base: {exc}")
            continue
        size = pool["size"]
        if (
            not isinstance(size, int)
            or isinstance(size, bool)
            or not network.prefixlen <= size <= network.max_prefixlen
        ):
            errors.append(
                f"{where}.size: must be a prefix length between {network.prefixlen} and {network.max_prefixlen}"
            )
        for other in networks:
            if network.overlaps(other):
                errors.append(f"{where}.base: {network} overlaps {other}")
        networks.append(network)
    return errors
