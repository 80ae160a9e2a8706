"""Supported operating systems (khronika_ops.host_support)."""

from __future__ import annotations

import pytest

from khronika_ops.host_support import (
    ASTRA_CMDLINE,
    ASTRA_DIGSIG_CONFIG,
    ASTRA_DIGSIG_RUNNING,
    ASTRA_MIC_LEVEL,
    OsReleaseError,
    astra_protection,
    invalid_ip_addresses,
    os_support,
    parse_os_release,
)


def facts(distribution: str, version: str) -> dict[str, str]:
    return {
        "distribution": distribution,
        "distribution_version": version,
        "distribution_major_version": version.split(".", maxsplit=1)[0],
    }


@pytest.mark.parametrize(
    ("distribution", "version", "supported", "tested", "name", "profile"),
    [
        ("Debian", "12.8", True, True, "Debian 12", "debian-12"),
        ("Debian", "13", True, True, "Debian 13", "debian-13"),
        ("Debian", "11.11", False, False, "Debian 11", ""),
        ("Ubuntu", "24.04", True, False, "Ubuntu 24.04", "ubuntu-24.04"),
        ("Ubuntu", "23.10", False, False, "Ubuntu 23.10", ""),
        ("Rocky", "9.4", True, False, "Rocky Linux 9", "rocky-9"),
        ("AlmaLinux", "8.10", False, False, "AlmaLinux 8", ""),
        # What ansible-core 2.19 reports for Astra Linux (no Astra in its OS_FAMILY_MAP).
        ("Astra Linux", "1.7_x86-64", True, False, "Astra Linux SE 1.7", "astra-1.7"),
        ("Alpine", "3.20.3", False, False, "Alpine 3.20.3", ""),
    ],
)
def test_support_matrix(distribution, version, supported, tested, name, profile):  # noqa: PLR0917 - parametrized
    result = os_support(facts(distribution, version))
    assert (result["supported"], result["tested"]) == (supported, tested)
    assert (result["name"], result["profile"]) == (name, profile)


ASTRA_1_8 = """PRETTY_NAME="Astra Linux"
NAME="Astra Linux"
ID=astra
ID_LIKE=debian
ANSI_COLOR="1;31"
HOME_URL="https://astralinux.ru"
SUPPORT_URL="https://astralinux.ru/support"
LOGO=astra
VERSION_ID=1.8_x86-64
VERSION_CODENAME=1.8_x86-64
"""


def test_os_release_decides_the_profile():
    astra = os_support({"distribution": "Debian", "distribution_major_version": "12"}, ASTRA_1_8)
    assert astra["profile"] == "astra-1.8" and astra["family"] == "debian" and astra["os_family"] == "Debian"
    assert astra["id_like"] == ["debian"] and astra["version_id"] == "1.8_x86-64" and not astra["tested"]
    unknown = os_support({}, 'ID=mintlike\nID_LIKE="ubuntu debian"\nVERSION_ID="21"\nNAME="Some Mint"\n')
    assert unknown["family"] == "debian" and not unknown["supported"] and unknown["profile"] == ""
    assert "Some Mint 21 (like ubuntu debian) is not supported" in unknown["message"]
    assert parse_os_release('# c\nNAME="A \\"quoted\\" name"\n\nID=x\n') == {
        "NAME": 'A "quoted" name',
        "ID": "x",
    }
    with pytest.raises(OsReleaseError, match="line 2 is not KEY=value"):
        parse_os_release("ID=debian\nthis is not os-release\n")
    with pytest.raises(OsReleaseError, match="more than 16384 is not an os-release"):
        parse_os_release("A=" + "x" * 20000)


def test_astra_protection_reads_zps_and_integrity_control():
    on = astra_protection(
        {ASTRA_DIGSIG_RUNNING: "1\n", ASTRA_DIGSIG_CONFIG: "DIGSIG_ELF_MODE=1\n", ASTRA_MIC_LEVEL: "63\n"}
    )
    assert (on["closed_environment"], on["closed_environment_at_boot"], on["integrity_control"]) == (
        "on",
        "on",
        "on",
    )
    assert on["integrity_level"] == 63 and "refuses ELF files without a signature" in on["messages"][0]
    pending = astra_protection(
        {ASTRA_DIGSIG_CONFIG: "# x\nDIGSIG_ELF_MODE=1\n", ASTRA_CMDLINE: "ro parsec.max_ilev=0"}
    )
    assert pending["closed_environment"] == "unknown" and pending["closed_environment_at_boot"] == "on"
    assert pending["integrity_control"] == "off" and "from the next boot" in pending["messages"][0]
    off = astra_protection(
        {ASTRA_DIGSIG_RUNNING: "0", ASTRA_DIGSIG_CONFIG: "DIGSIG_ELF_MODE=0", ASTRA_MIC_LEVEL: "0"}
    )
    assert off["messages"] == []
    assert "could be read" in astra_protection({})["messages"][0]


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
