"""Filters of khronika.platform for the `platform` and `gateway` roles: thin adapters over khronika_ops.platform.

khronika_catalog_plan(khronika_modules, groups, hostvars, release, registry, image_source)
    -> the deployment (per host: containers in dependency order with image@digest, or the archive's
       local tag when image_source is 'archive'; networks, volumes; gateway routes), or
       AnsibleFilterError listing every catalog error.
khronika_release_record(release, deployed_at, containers)
    -> the JSON written to /etc/khronika/release.json.
khronika_release_version_valid(value)
    -> whether it is a release version such as 1.2.0 (the package's SEMVER_RE).
khronika_container_problems(infos, started, host)
    -> why the containers failed their health gate (khronika_ops.platform.health); empty when they passed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ansible.errors import AnsibleFilterError

try:
    from khronika_ops.ansible_data import plain
    from khronika_ops.lazy import lazy
except ImportError as exc:  # pragma: no cover - depends on the controller's environment
    raise AnsibleFilterError(
        "khronika.platform needs the Python package khronika-ops on the controller: pip install khronika-ops"
    ) from exc

# Imported when a filter first needs them (khronika_ops.lazy says why).
platform_catalog = lazy("khronika_ops.platform.catalog")
platform_release = lazy("khronika_ops.platform.release")
inventory_file = lazy("khronika_ops.platform.inventory_file")
validation = lazy("khronika_ops.validation")
platform_health = lazy("khronika_ops.platform.health")


def _release(release: Any) -> platform_release.Release | None:
    """A release given as a mapping (`lookup('file', ...) | from_yaml`) or as the path of its manifest."""
    if release is None or release == "":
        return None
    if isinstance(release, str):
        return platform_release.load_release(release)
    return platform_release.parse_release(plain(release), "release")


def khronika_catalog_plan(  # noqa: PLR0917 - a Jinja filter takes its arguments by position
    catalog: Any,
    groups: Any,
    gpus: Any = None,
    release: Any = None,
    registry: str | None = None,
    image_source: str | None = None,
) -> dict[str, Any]:
    if not isinstance(groups, Mapping):
        raise AnsibleFilterError("khronika_catalog_plan: the second argument must be `groups`")
    try:
        inventory = inventory_file.inventory_from_ansible(groups, gpus)
        plan = platform_catalog.resolve_deployment(
            plain(catalog),
            inventory,
            release=_release(release),
            default_registry=registry or None,
            image_source=image_source or "registry",
        )
    except validation.ProblemsError as exc:
        raise AnsibleFilterError(f"khronika_catalog_plan: {validation.readable(exc)}") from exc
    except (TypeError, ValueError) as exc:
        raise AnsibleFilterError(f"khronika_catalog_plan: {validation.readable(exc)}") from exc
    return plan.model_dump(mode="json")


def khronika_release_record(release: Any, deployed_at: str, containers: Any = None) -> dict[str, Any]:
    try:
        parsed = _release(release)
    except validation.ProblemsError as exc:
        raise AnsibleFilterError(f"khronika_release_record: {exc}") from exc
    if parsed is None:
        raise AnsibleFilterError("khronika_release_record: no release given")
    return platform_release.release_record(
        parsed, str(deployed_at), plain(containers) if containers else None
    )


def khronika_release_version_valid(value: Any) -> bool:
    """Whether `value` is a release version (semver.org's grammar, khronika_ops.platform.release.SEMVER_RE)."""
    return isinstance(value, str) and platform_release.SEMVER_RE.match(value) is not None


def khronika_container_problems(infos: Any, started: Any, host: str) -> list[str]:
    return platform_health.gate(plain(infos) or [], plain(started) or [], str(host))


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {
            "khronika_catalog_plan": khronika_catalog_plan,
            "khronika_release_record": khronika_release_record,
            "khronika_container_problems": khronika_container_problems,
            "khronika_release_version_valid": khronika_release_version_valid,
        }
