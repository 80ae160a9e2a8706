"""The OS packages each role installs, per host profile (`khronika_ops.host_support`) and source.

The one place these lists live: the roles read them through the filter `khronika_os_packages` (their
`*_packages` defaults), and `khronika archive build --with-os-packages` resolves the same lists, with
their dependencies, into the archive's apt repository for each profile.

A list is looked up by the profile ("astra-1.7"), then its distribution ("astra"), then its family
("debian"): a derivative names only what differs.
"""

from __future__ import annotations

import re
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


# The inventory variables that change what a role installs (each overrides the profile's list).
SETTINGS = (
    "common_packages",
    "common_timesync_implementation",
    "docker_package_source",
    "docker_ce_packages",
    "docker_distribution_packages",
    "gateway_packages",
    "monitoring_agent_node_exporter_packages",
    "monitoring_server_prometheus_packages",
    "monitoring_server_alertmanager_packages",
)


def host_packages(
    profile: OsProfile | Mapping[str, Any], roles: Iterable[str], settings: Mapping[str, Any]
) -> list[str]:
    """What `roles` install on a host of `profile` with the inventory's `settings` (SETTINGS; absent: the
    roles' defaults): the set an offline install checks against the archive before changing a host."""
    names: list[str] = []

    def given(name: str, role: str, part: str) -> list[str]:
        value = settings.get(name)
        return [str(item) for item in value] if value else packages(profile, role, part)

    for role in roles:
        if role == "common":
            names += packages(profile, "common", "base") + [
                str(item) for item in settings.get("common_packages") or []
            ]
            chosen = str(settings.get("common_timesync_implementation") or "auto")
            family = profile.family if isinstance(profile, OsProfile) else str(profile.get("family", ""))
            if chosen == "auto":  # the role keeps an installed chrony; a new host gets the family's default
                chosen = "chrony" if family == "redhat" else "timesyncd"
            names += packages(profile, "common", chosen)
        elif role == "docker":
            names += packages(profile, "docker", "prerequisites") + packages(profile, "docker", "python")
            if str(settings.get("docker_package_source") or "docker-ce") == "docker-ce":
                names += given("docker_ce_packages", "docker", "docker-ce")
            else:
                names += given("docker_distribution_packages", "docker", "distribution")
        elif role == "gateway":
            names += given("gateway_packages", "gateway", "packages")
        elif role == "monitoring_agent":
            names += given("monitoring_agent_node_exporter_packages", "monitoring_agent", "node_exporter")
        elif role == "monitoring_server":
            names += given("monitoring_server_prometheus_packages", "monitoring_server", "prometheus")
            names += given("monitoring_server_alertmanager_packages", "monitoring_server", "alertmanager")
        else:
            raise PackageListError(
                f"no package lists for role {role}; known: common, docker, gateway, monitoring_agent, monitoring_server"
            )
    return list(dict.fromkeys(names))


_APT_MAX_OUTPUT = 1 << 20
_UNLOCATABLE = re.compile(r"^E: Unable to locate package ([A-Za-z0-9][A-Za-z0-9+.:~-]*)", re.MULTILINE)
_NO_CANDIDATE = re.compile(r"^E: Package '([^']+)' has no installation candidate", re.MULTILINE)
_UNMET = re.compile(
    r"(?:Depends|PreDepends|Pre-Depends): ([A-Za-z0-9][A-Za-z0-9+.-]*)[^\n]*?but it is not (?:installable|going to be installed)"
)


def apt_unresolvable(output: str) -> list[str]:
    """The package names an `apt-get -s install` run could not resolve (not found, no candidate, or a
    dependency not installable), from its output (bounded to 1 MiB), sorted."""
    text = output[:_APT_MAX_OUTPUT]
    found = set(_UNLOCATABLE.findall(text)) | set(_NO_CANDIDATE.findall(text)) | set(_UNMET.findall(text))
    return sorted(found)
