"""Filters of khronika.platform: thin adapters over the khronika_ops package."""

from __future__ import annotations

from typing import Any

from ansible.errors import AnsibleFilterError

try:
    from khronika_ops.lazy import lazy
except ImportError as exc:  # pragma: no cover - depends on the controller's environment
    raise AnsibleFilterError(
        "khronika.platform needs the Python package khronika-ops on the controller: pip install khronika-ops"
    ) from exc

# Imported when a filter first needs them (khronika_ops.lazy says why).
docker_config = lazy("khronika_ops.docker_config")
host_support = lazy("khronika_ops.host_support")
os_packages = lazy("khronika_ops.os_packages")


def merge_daemon_config(layers: list[dict[str, Any]]) -> dict[str, Any]:
    """[{name, config}, ...] -> {config, conflicts, sources} (see khronika_ops.docker_config)."""
    if not isinstance(layers, list):
        raise AnsibleFilterError("merge_daemon_config expects a list of {name, config} layers")
    try:
        result = docker_config.merge_layers((str(layer["name"]), layer.get("config")) for layer in layers)
    except (KeyError, TypeError) as exc:
        raise AnsibleFilterError(f"merge_daemon_config: {exc}") from exc
    return {"config": result.config, "conflicts": result.conflicts, "sources": result.sources}


def daemon_config_errors(merged: dict[str, Any]) -> list[str]:
    """Errors of a merge_daemon_config result, each naming the variable or layer to fix."""
    result = docker_config.MergeResult(config=merged["config"], sources=merged.get("sources", {}))
    return docker_config.explain_errors(result)


def invalid_ip_addresses(values: list[Any]) -> list[str]:
    """The items of `values` that are not IPv4/IPv6 addresses, as strings."""
    return host_support.invalid_ip_addresses(values)


def os_support(facts: dict[str, Any]) -> dict[str, Any]:
    return host_support.os_support(facts)


def khronika_os_packages(profile: dict[str, Any], role: str, part: str) -> list[str]:
    """The packages `role` installs for `part` on a host of `profile` (the fact khronika_os). An empty
    profile gives []: a role's argument validation templates its defaults before its pre-flight reads
    the host's profile; every install comes after it."""
    if profile == {}:
        return []
    if not isinstance(profile, dict):
        raise AnsibleFilterError(
            "khronika_os_packages: give it the fact khronika_os (khronika.platform.os_facts)"
        )
    try:
        return os_packages.packages(profile, role, part)
    except os_packages.PackageListError as exc:
        raise AnsibleFilterError(str(exc)) from exc


def khronika_os_host_packages(
    profile: dict[str, Any], roles: list[str], settings: dict[str, Any]
) -> list[str]:
    """What `roles` install on a host of `profile` with the inventory's settings (os_packages.SETTINGS)."""
    try:
        return os_packages.host_packages(profile, roles, settings or {})
    except os_packages.PackageListError as exc:
        raise AnsibleFilterError(str(exc)) from exc


def khronika_os_settings(names: list[str]) -> list[str]:
    """The names of os_packages.SETTINGS among `names` (the variables a host defines)."""
    return [name for name in os_packages.SETTINGS if name in (names or [])]


def khronika_apt_unresolvable(output: str) -> list[str]:
    """Package names an `apt-get -s install` could not resolve, from its output."""
    return os_packages.apt_unresolvable(str(output or ""))


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {
            "merge_daemon_config": merge_daemon_config,
            "daemon_config_errors": daemon_config_errors,
            "os_support": os_support,
            "khronika_os_packages": khronika_os_packages,
            "khronika_os_host_packages": khronika_os_host_packages,
            "khronika_os_settings": khronika_os_settings,
            "khronika_apt_unresolvable": khronika_apt_unresolvable,
            "invalid_ip_addresses": invalid_ip_addresses,
        }
