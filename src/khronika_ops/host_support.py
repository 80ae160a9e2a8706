"""Which operating systems khronika.platform supports, decided from `/etc/os-release` (or Ansible facts).

Kept in one place so that every role's preflight, the archive builder (`khronika archive build`) and
`khronika doctor` agree. A host's *profile* (`debian-12`, `astra-1.7`, ...) names its OS release; the
package lists per profile live in `khronika_ops.os_packages`.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

# os-release ID -> (display name, family, supported releases, releases tested in CI).
# A release is VERSION_ID's major ("12"), Ubuntu's "22.04", Astra's "1.7" (from "1.7_x86-64").
_DISTRIBUTIONS: dict[str, tuple[str, str, tuple[str, ...], tuple[str, ...]]] = {
    "debian": ("Debian", "debian", ("12", "13"), ("12", "13")),
    "astra": ("Astra Linux SE", "debian", ("1.7", "1.8"), ()),
    "ubuntu": ("Ubuntu", "debian", ("22.04", "24.04"), ()),
    "rhel": ("RHEL", "redhat", ("9",), ()),
    "rocky": ("Rocky Linux", "redhat", ("9",), ()),
    "almalinux": ("AlmaLinux", "redhat", ("9",), ()),
    "ol": ("Oracle Linux", "redhat", ("9",), ()),
    "centos": ("CentOS Stream", "redhat", ("9",), ()),
}
# Ansible's `distribution` fact -> os-release ID, for hosts whose os-release was not read.
_ANSIBLE_NAMES = {
    "Debian": "debian",
    "Astra Linux": "astra",
    "Ubuntu": "ubuntu",
    "RedHat": "rhel",
    "Rocky": "rocky",
    "AlmaLinux": "almalinux",
    "OracleLinux": "ol",
    "CentOS": "centos",
}
# The families as the roles name their vars files (Ansible's os_family for the two we support).
_ROLE_FAMILY = {"debian": "Debian", "redhat": "RedHat"}
OS_RELEASE_MAX_BYTES = 16 * 1024
_OS_RELEASE_LINE = re.compile(r"^([A-Z][A-Z0-9_]{0,63})=(.*)$")


class OsReleaseError(ValueError):
    """/etc/os-release could not be read; the message names the line."""


@dataclass(frozen=True)
class OsProfile:
    """A host's operating system as khronika.platform sees it."""

    profile: str  # "debian-12", "astra-1.7", "ubuntu-22.04", "rhel-9"; "" when unknown
    id: str  # os-release ID
    id_like: tuple[str, ...]
    name: str  # "Debian 12", "Astra Linux SE 1.7"
    release: str  # "12", "1.7", "22.04"
    version_id: str  # as os-release says it: "12", "1.7_x86-64"
    codename: str
    family: str  # "debian" | "redhat" | ""
    os_family: str  # the roles' vars file name: "Debian" | "RedHat" | ""
    supported: bool
    tested: bool
    message: str

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["id_like"] = list(self.id_like)
        return data


def describe_supported() -> str:
    return (
        "Debian 12/13, Astra Linux SE 1.7/1.8, Ubuntu 22.04/24.04, RHEL 9 family (RHEL, Rocky, AlmaLinux, "
        "Oracle Linux, CentOS Stream)"
    )


def parse_os_release(text: str) -> dict[str, str]:
    """The KEY=value pairs of os-release(5): quotes and backslash escapes undone, comments skipped.
    Bounded: a file over 16 KiB or a line that is not KEY=value raises OsReleaseError."""
    if len(text) > OS_RELEASE_MAX_BYTES:
        raise OsReleaseError(
            f"os-release is {len(text)} bytes; more than {OS_RELEASE_MAX_BYTES} is not an os-release"
        )
    values: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = _OS_RELEASE_LINE.match(line)
        if match is None:
            raise OsReleaseError(f"os-release line {number} is not KEY=value: {line[:80]!r}")
        key, value = match.groups()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        values[key] = value
    return values


def _release_of(ident: str, version_id: str) -> str:
    if ident == "ubuntu":
        return version_id
    if ident == "astra":  # "1.7_x86-64", "1.8.1", "1.7" -> "1.7"
        match = re.match(r"^(\d+\.\d+)", version_id)
        return match.group(1) if match else version_id
    return version_id.split(".", 1)[0]


def profile_from_os_release(values: Mapping[str, str]) -> OsProfile:
    """The profile of a host from its os-release values (parse_os_release)."""
    ident = str(values.get("ID", "")).strip().lower() or "linux"
    id_like = tuple(str(values.get("ID_LIKE", "")).lower().split())
    version_id = str(values.get("VERSION_ID", "")).strip()
    codename = str(values.get("VERSION_CODENAME", "")).strip()
    release = _release_of(ident, version_id)
    known = _DISTRIBUTIONS.get(ident)
    if known is None:
        family = (
            "debian"
            if "debian" in id_like or "ubuntu" in id_like
            else ("redhat" if {"rhel", "fedora", "centos"} & set(id_like) else "")
        )
        label = str(values.get("NAME", ident)) or ident
        name = f"{label} {version_id}".strip()
        like = f" (like {' '.join(id_like)})" if id_like else ""
        supported = tested = False
        message = (
            f"{name}{like} is not supported. khronika.platform supports {describe_supported()}. Use one of "
            "those, or set common_allow_unsupported_os: true to proceed at your own risk"
        )
    else:
        label, family, supported_releases, tested_releases = known
        name = f"{label} {release}".strip()
        supported = release in supported_releases
        tested = release in tested_releases
        if supported:
            message = f"{name} is supported" + ("" if tested else " (coded, not tested in CI)")
        else:
            message = (
                f"{name} is not a supported release of {label}; supported: {', '.join(supported_releases)}. "
                "Upgrade the host, or set common_allow_unsupported_os: true to proceed at your own risk"
            )
    return OsProfile(
        f"{ident}-{release}" if supported else "",
        ident,
        id_like,
        name,
        release,
        version_id,
        codename,
        family,
        _ROLE_FAMILY.get(family, ""),
        supported,
        tested,
        message,
    )


def profile_from_facts(facts: Mapping[str, Any]) -> OsProfile:
    """The profile from Ansible facts, for a host whose os-release was not read."""
    distribution = str(facts.get("distribution", "unknown"))
    version = str(facts.get("distribution_version", facts.get("distribution_major_version", "")))
    ident = _ANSIBLE_NAMES.get(distribution, distribution.lower())
    values = {
        "ID": ident,
        "VERSION_ID": version,
        "NAME": distribution,
        "VERSION_CODENAME": str(facts.get("distribution_release", "")),
    }
    if str(facts.get("os_family", "")) == "Debian" and ident not in _DISTRIBUTIONS:
        values["ID_LIKE"] = "debian"
    return profile_from_os_release(values)


def os_support(facts: Mapping[str, Any], os_release: str | None = None) -> dict[str, Any]:
    """{"supported", "tested", "name", "message", "profile", ...} for a host: from its os-release text
    when given, else from its `ansible_facts`."""
    if os_release is not None:
        return profile_from_os_release(parse_os_release(os_release)).as_dict()
    return profile_from_facts(facts).as_dict()


# Astra Linux SE: the closed software environment (ZPS: the kernel refuses ELF files without a trusted
# signature) and mandatory integrity control (MIC). Running state from /sys, configured state from /etc.
ASTRA_DIGSIG_RUNNING = "/sys/digsig/elf_mode"
ASTRA_DIGSIG_CONFIG = "/etc/digsig/digsig_initramfs.conf"
ASTRA_MIC_LEVEL = "/sys/module/parsec/parameters/max_ilev"
ASTRA_CMDLINE = "/proc/cmdline"
ASTRA_PROTECTION_FILES = (ASTRA_DIGSIG_RUNNING, ASTRA_DIGSIG_CONFIG, ASTRA_MIC_LEVEL, ASTRA_CMDLINE)


def _first_int(text: str | None) -> int | None:
    match = re.search(r"-?\d+", text or "")
    return int(match.group(0)) if match else None


def astra_protection(files: Mapping[str, str | None]) -> dict[str, Any]:
    """What Astra Linux's closed software environment and integrity control mean for this host, from
    the texts of ASTRA_PROTECTION_FILES (None: absent). {"closed_environment", "closed_environment_at_boot",
    "integrity_control": "on" | "off" | "unknown", "integrity_level": int | None, "messages": [...]}."""
    running = _first_int(files.get(ASTRA_DIGSIG_RUNNING))
    configured = None
    for line in (files.get(ASTRA_DIGSIG_CONFIG) or "").splitlines()[:200]:
        match = re.match(r"^\s*DIGSIG_ELF_MODE\s*=\s*\"?(\d)", line)
        if match:
            configured = int(match.group(1))
    level = _first_int(files.get(ASTRA_MIC_LEVEL))
    if level is None:
        match = re.search(r"\bparsec\.max_ilev=(\d+)", files.get(ASTRA_CMDLINE) or "")
        level = int(match.group(1)) if match else None

    def state(value: int | None) -> str:
        return "unknown" if value is None else ("on" if value > 0 else "off")

    closed, at_boot, integrity = state(running), state(configured), state(level)
    messages: list[str] = []
    if "on" in (closed, at_boot):
        messages.append(
            "The closed software environment (ZPS) is on"
            + (" from the next boot" if closed != "on" else "")
            + ": the kernel refuses ELF files without a signature trusted in /etc/digsig/keys. The Docker "
            "engine from Astra's repository is signed; the installation archive's OS packages (Debian's) are "
            "not, nor are the programs inside the module images. Keep the engine from Astra's "
            "repository (docker_package_source: distribution with Astra's own sources), and have the images' "
            "compatibility with ZPS confirmed by the platform's vendor and Astra's support before enabling it"
        )
    if integrity == "on":
        messages.append(
            f"Mandatory integrity control is on (maximum integrity level {level}): the Docker engine and the "
            "module containers run at the level the engine is given; khronika-ops does not change it"
        )
    if closed == at_boot == integrity == "unknown":
        messages.append("Neither ZPS nor integrity control could be read (no /sys/digsig, no parsec module)")
    return {
        "closed_environment": closed,
        "closed_environment_at_boot": at_boot,
        "integrity_control": integrity,
        "integrity_level": level,
        "messages": messages,
    }


def invalid_ip_addresses(values: Iterable[Any]) -> list[str]:
    """The items that are not IPv4 or IPv6 addresses (CIDRs and host names are invalid here)."""
    invalid = []
    for value in values:
        try:
            ipaddress.ip_address(str(value).strip())
        except ValueError:
            invalid.append(str(value))
    return invalid
