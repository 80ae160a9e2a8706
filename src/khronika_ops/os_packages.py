"""The OS packages each role installs, per host profile (`khronika_ops.host_support`) and source.

The one place these lists live: the roles read them through the filter `khronika_os_packages` (their
`*_packages` defaults), and `khronika archive build --with-os-packages` resolves the same lists, with
their dependencies, into the archive's apt repository for each profile.

A list is looked up by the profile ("astra-1.7"), then its distribution ("astra"), then its family
("debian"): a derivative names only what differs.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from khronika_ops.host_support import OsProfile

# (role, part) -> key (profile, ID or family) -> packages.
_LISTS: dict[tuple[str, str], dict[str, tuple[str, ...]]] = {
    ("common", "base"): {
        "debian": (
            "ca-certificates",
            "curl",
            "gnupg",
            "iproute2",
            "iputils-ping",
            "lsb-release",
            "procps",
            "python3-apt",
            "python3-debian",
            "rsync",
            "tar",
            "util-linux",
            "jq",
            "less",
        ),
        "redhat": (
            "ca-certificates",
            "curl",
            "gnupg2",
            "iproute",
            "iputils",
            "procps-ng",
            "rsync",
            "tar",
            "util-linux",
            "jq",
            "less",
        ),
    },
    ("common", "timesyncd"): {"debian": ("systemd-timesyncd",), "redhat": ("systemd-timesyncd",)},
    ("common", "chrony"): {"debian": ("chrony",), "redhat": ("chrony",)},
    # Docker's engine as the distribution packages it (docker_package_source: distribution); Astra Linux
    # ships its own docker.io in its base repository.
    ("docker", "distribution"): {"debian": ("docker.io",), "redhat": ("moby-engine",)},
    ("docker", "docker-ce"): {
        "debian": (
            "docker-ce",
            "docker-ce-cli",
            "containerd.io",
            "docker-buildx-plugin",
            "docker-compose-plugin",
        ),
        "redhat": (
            "docker-ce",
            "docker-ce-cli",
            "containerd.io",
            "docker-buildx-plugin",
            "docker-compose-plugin",
        ),
    },
    ("docker", "prerequisites"): {
        "debian": ("ca-certificates", "python3-debian"),
        "redhat": ("ca-certificates",),
    },
    # The community.docker modules need the Docker SDK's transport on the host.
    ("docker", "python"): {"debian": ("python3-requests",), "redhat": ("python3-requests",)},
    ("gateway", "packages"): {"debian": ("nginx", "openssl"), "redhat": ("nginx", "openssl")},
    ("monitoring_agent", "node_exporter"): {"debian": ("prometheus-node-exporter",)},
    ("monitoring_agent", "collector"): {"debian": ("python3-venv", "python3-psutil")},
    ("monitoring_server", "prometheus"): {"debian": ("prometheus",)},
    ("monitoring_server", "alertmanager"): {"debian": ("prometheus-alertmanager",)},
}

# What an installation archive carries for a profile: every list a role installs with its defaults
# (the engine from the distribution: docker-ce comes from Docker's own repository, not the archive).
# NVIDIA's driver is left out: its kernel headers must match each host's running kernel.
ARCHIVE_PARTS: tuple[tuple[str, str], ...] = (
    ("common", "base"),
    ("common", "timesyncd"),
    ("docker", "distribution"),
    ("docker", "prerequisites"),
    ("docker", "python"),
    ("gateway", "packages"),
    ("monitoring_agent", "node_exporter"),
    ("monitoring_agent", "collector"),
    ("monitoring_server", "prometheus"),
    ("monitoring_server", "alertmanager"),
)


# Lists that conflict with the set above (chrony replaces systemd-timesyncd): resolved on their own.
ARCHIVE_ALTERNATIVES: tuple[tuple[str, str], ...] = (("common", "chrony"),)


class PackageListError(LookupError):
    """No list for that role, part or profile; the message says which."""


def _keys(profile: OsProfile | Mapping[str, Any]) -> list[str]:
    if isinstance(profile, OsProfile):
        return [profile.profile, profile.id, profile.family]
    return [str(profile.get("profile", "")), str(profile.get("id", "")), str(profile.get("family", ""))]


def packages(profile: OsProfile | Mapping[str, Any], role: str, part: str) -> list[str]:
    """The packages `role` installs for `part` on a host of `profile` (an OsProfile or its as_dict())."""
    lists = _LISTS.get((role, part))
    if lists is None:
        known = ", ".join(sorted(f"{r}/{p}" for r, p in _LISTS))
        raise PackageListError(f"no package list {role}/{part}; known: {known}")
    for key in _keys(profile):
        if key and key in lists:
            return list(lists[key])
    keys = [key for key in _keys(profile) if key]
    raise PackageListError(
        f"{role} has no {part} packages for {' / '.join(keys) or 'an unknown OS'}; it supports "
        f"{', '.join(sorted(lists))}"
    )


def archive_packages(
    profile: OsProfile | Mapping[str, Any], parts: Iterable[tuple[str, str]] = ARCHIVE_PARTS
) -> list[str]:
    """Every package an installation archive carries for `profile` (sorted, once each); the parts a
    profile has no list for (the monitoring roles on RHEL) are left out."""
    names: set[str] = set()
    for role, part in parts:
        try:
            names.update(packages(profile, role, part))
        except PackageListError:
            continue
    return sorted(names)


def archive_groups(profile: OsProfile | Mapping[str, Any]) -> list[list[str]]:
    """The archive's packages for `profile` as groups that each install together: the main set, then
    each alternative (a host installs one of them)."""
    groups = [archive_packages(profile)]
    for part in ARCHIVE_ALTERNATIVES:
        group = archive_packages(profile, [part])
        if group:
            groups.append(group)
    return groups
