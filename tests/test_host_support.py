"""Supported operating systems (khronika_ops.host_support)."""

from __future__ import annotations

import pytest

from khronika_ops.host_support import invalid_ip_addresses, os_support


def facts(distribution: str, version: str) -> dict[str, str]:
    return {
        "distribution": distribution,
        "distribution_version": version,
        "distribution_major_version": version.split(".", maxsplit=1)[0],
    }


@pytest.mark.parametrize(
    ("distribution", "version", "supported", "tested"),
    [
        ("Debian", "12.8", True, True),
        ("Debian", "13", True, True),
        ("Debian", "11.11", False, False),
        ("Ubuntu", "24.04", True, False),
        ("Ubuntu", "23.10", False, False),
        ("Rocky", "9.4", True, False),
        ("AlmaLinux", "8.10", False, False),
        ("Alpine", "3.20.3", False, False),
    ],
)
def test_support_matrix(distribution, version, supported, tested):
    result = os_support(facts(distribution, version))
    assert (result["supported"], result["tested"]) == (supported, tested)
    assert result["name"] == f"{distribution} {version}"


def test_unsupported_message_says_what_to_do():
    message = os_support(facts("Alpine", "3.20.3"))["message"]
    assert "Alpine 3.20.3 is not supported" in message
    assert "Debian 12/13" in message
    assert "common_allow_unsupported_os" in message


def test_old_release_message_lists_supported_releases():
    assert "supported: 12, 13" in os_support(facts("Debian", "11.11"))["message"]


def test_invalid_ip_addresses():
    assert invalid_ip_addresses(["10.0.0.1", "::1", "10.0.0.0/8", "host.example", "300.1.1.1"]) == [
        "10.0.0.0/8",
        "host.example",
        "300.1.1.1",
    ]
