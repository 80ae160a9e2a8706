"""Which operating systems khronika.platform supports, decided from Ansible facts.

Kept in one place so that every role's preflight (and `khronika doctor` for the controller) agrees.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from typing import Any

# distribution (as Ansible reports it) -> supported major versions (Ubuntu: release, e.g. "22.04").
SUPPORTED: dict[str, tuple[str, ...]] = {
    "Debian": ("12", "13"),
    "Ubuntu": ("22.04", "24.04"),
    "RedHat": ("9",),
    "Rocky": ("9",),
    "AlmaLinux": ("9",),
    "OracleLinux": ("9",),
    "CentOS": ("9",),  # CentOS Stream 9
}
TESTED = {"Debian": ("12", "13")}


def describe_supported() -> str:
    return "Debian 12/13, Ubuntu 22.04/24.04, RHEL 9 family (RHEL, Rocky, AlmaLinux, Oracle Linux, CentOS Stream)"


def os_support(facts: Mapping[str, Any]) -> dict[str, Any]:
    """{"supported", "tested", "name", "message"} for a host's `ansible_facts`."""
    distribution = str(facts.get("distribution", "unknown"))
    major = str(facts.get("distribution_major_version", ""))
    version = str(facts.get("distribution_version", major))
    key = version if distribution == "Ubuntu" else major
    name = f"{distribution} {version}".strip()
    supported = key in SUPPORTED.get(distribution, ())
    tested = key in TESTED.get(distribution, ())
    if supported:
        message = f"{name} is supported" + ("" if tested else " (coded, not tested in CI)")
    elif distribution in SUPPORTED:
        message = (
            f"{name} is not a supported release of {distribution}; supported: "
            f"{', '.join(SUPPORTED[distribution])}. Upgrade the host, or set common_allow_unsupported_os: true "
            "to proceed at your own risk"
        )
    else:
        message = (
            f"{name} is not supported. khronika.platform supports {describe_supported()}. Use one of those, or "
            "set common_allow_unsupported_os: true to proceed at your own risk"
        )
    return {"supported": supported, "tested": tested, "name": name, "message": message}


def invalid_ip_addresses(values: Iterable[Any]) -> list[str]:
    """The items that are not IPv4 or IPv6 addresses (CIDRs and host names are invalid here)."""
    invalid = []
    for value in values:
        try:
            ipaddress.ip_address(str(value).strip())
        except ValueError:
            invalid.append(str(value))
    return invalid
