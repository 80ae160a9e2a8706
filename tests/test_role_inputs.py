"""Bad input fails in the preflight, before any change, with a message naming the variable.

The target is a throwaway Debian container (the community.docker.docker connection), and every run is in
check mode as a second guard: a regression would at worst touch that container.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import REPO, TargetHost, run_playbook

PLAYBOOK = REPO / "tests" / "playbooks" / "role.yml"

pytestmark = pytest.mark.docker


def run_role(target: TargetHost, role: str, tmp_path: Path, extra_vars: dict[str, object]):
    vars_file = tmp_path / "vars.json"
    vars_file.write_text(json.dumps({"test_role": role, **extra_vars}), encoding="utf-8")
    return run_playbook(PLAYBOOK, target.inventory, "--check", "-e", f"@{vars_file}")


def assert_refused(run, *fragments: str) -> None:
    assert run.rc != 0, run.output
    flat = " ".join(run.output.split())
    for fragment in fragments:
        assert fragment in flat, f"{fragment!r} not in:\n{run.output}"
    assert run.recap_changed() == 0, run.output


def test_wrong_type_names_the_variable(target_host, tmp_path):
    run = run_role(target_host, "common", tmp_path, {"common_nofile_limit": "lots"})
    assert_refused(run, "common_nofile_limit", "int")


def test_value_outside_the_allowed_set(target_host, tmp_path):
    run = run_role(target_host, "common", tmp_path, {"common_timesync_implementation": "ntpd"})
    assert_refused(run, "common_timesync_implementation", "timesyncd", "chrony")


def test_removed_variable_says_what_to_write_instead(target_host, tmp_path):
    run = run_role(target_host, "common", tmp_path, {"common_ntp_servers": ["ntp.example.org"]})
    assert_refused(run, "common_ntp_servers was removed: write common_timesync_servers")


def test_cross_variable_rule(target_host, tmp_path):
    run = run_role(target_host, "common", tmp_path, {"common_no_proxy": ["localhost"]})
    assert_refused(run, "common_no_proxy has no effect unless one of them is set")


def test_bad_hosts_entry(target_host, tmp_path):
    entries = [{"address": "10.0.0.300", "names": ["app"]}]
    run = run_role(
        target_host, "common", tmp_path, {"common_etc_hosts": entries, "common_etc_hosts_groups": ["nope"]}
    )
    assert_refused(run, "not IP addresses: 10.0.0.300", "groups that are not in the inventory: nope")


def test_docker_log_max_size_not_a_size(target_host, tmp_path):
    run = run_role(target_host, "docker", tmp_path, {"docker_log_max_size": "ten"})
    assert_refused(run, "docker_log_max_size: 'ten' is not a size", "'50m'")


def test_docker_unknown_log_driver(target_host, tmp_path):
    run = run_role(target_host, "docker", tmp_path, {"docker_log_driver": "jsonfile"})
    assert_refused(run, "docker_log_driver → log-driver: unknown log driver 'jsonfile'")


def test_docker_bad_group_layer_names_the_layer(target_host, tmp_path):
    layer = {"default-address-pools": [{"base": "10.1.0.0/33", "size": 24}]}
    run = run_role(target_host, "docker", tmp_path, {"docker_daemon_json_group": layer})
    assert_refused(run, "docker_daemon_json_group → default-address-pools[0].base")


def test_docker_registry_login_without_vault_secret(target_host, tmp_path):
    logins = [
        {
            "registry": "registry.example.org:5000",
            "username": "deploy",
            "password": "{{ vault_registry_password }}",
        }
    ]
    run = run_role(target_host, "docker", tmp_path, {"docker_registry_logins": logins})
    assert_refused(run, "vault_registry_password")


def test_unsupported_os_is_refused(target_host, tmp_path):
    # Make the container claim another distribution, as its /etc/os-release would on such a host.
    target_host.exec(
        "sh",
        "-c",
        "cp /etc/os-release /etc/os-release.orig && mv /etc/debian_version /etc/debian_version.orig && printf "
        '\'NAME="Alpine Linux"\\nID=alpine\\nVERSION_ID=3.20.3\\nPRETTY_NAME="Alpine Linux v3.20"\\n\' > /etc/os-release',
    )
    try:
        run = run_role(target_host, "common", tmp_path, {})
        assert_refused(run, "3.20.3 is not supported", "Debian 12/13", "common_allow_unsupported_os")
    finally:
        target_host.exec(
            "sh",
            "-c",
            "mv /etc/os-release.orig /etc/os-release && mv /etc/debian_version.orig /etc/debian_version",
        )


def test_docker_user_that_does_not_exist(target_host, tmp_path):
    run = run_role(target_host, "docker", tmp_path, {"docker_users": ["root", "no-such-operator"]})
    assert_refused(run, "docker_users: no-such-operator do(es) not exist")


ASTRA_1_7 = (
    'PRETTY_NAME="Astra Linux"\nNAME="Astra Linux"\nID=astra\nID_LIKE=debian\nVERSION_ID=1.7_x86-64\n'
    "VERSION_CODENAME=1.7_x86-64\n"
)


def test_a_host_whose_os_release_says_astra_linux(target_host, tmp_path):
    """Astra Linux SE 1.7 as a Debian host reports it (ansible-core calls its family "Astra Linux"): the
    roles take the profile from /etc/os-release, Debian's lists with Astra's own docker.io, and the
    pre-flight reports the closed software environment set for the next boot."""
    target_host.exec(
        "sh",
        "-c",
        "cp /etc/os-release /etc/os-release.orig && mv /etc/debian_version /etc/debian_version.orig && "
        f"printf '{ASTRA_1_7}' > /etc/os-release && mkdir -p /etc/digsig && "
        "printf 'DIGSIG_ELF_MODE=1\\nDIGSIG_XATTR_MODE=1\\n' > /etc/digsig/digsig_initramfs.conf",
    )
    try:
        run = run_playbook(REPO / "tests" / "playbooks" / "os_profile.yml", target_host.inventory, "--check")
    finally:
        target_host.exec(
            "sh",
            "-c",
            "mv /etc/os-release.orig /etc/os-release && mv /etc/debian_version.orig /etc/debian_version && "
            "rm -rf /etc/digsig",
        )
    assert run.rc == 0, run.output
    flat = " ".join(run.output.split())
    assert (
        "Astra Linux SE 1.7 is supported (coded, not tested in CI): profile=astra-1.7 engine=docker.io base=14"
        in flat
    )
    assert (
        "closed software environment (ZPS) unknown (at the next boot on), mandatory integrity control unknown"
        in flat
    )
    assert "The closed software environment (ZPS) is on from the next boot" in flat
