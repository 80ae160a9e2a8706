"""Verify role common on each host of the scenario."""

import pytest

testinfra_hosts = ["ansible://khronika"]

PEERS = ["kh-common-deb12", "kh-common-deb13"]


def test_base_packages(host):
    for name in ["ca-certificates", "curl", "jq", "python3-debian", "htop", "systemd-timesyncd"]:
        assert host.package(name).is_installed, name


def test_timesync_servers(host):
    conf = host.file("/etc/systemd/timesyncd.conf.d/90-khronika.conf")
    assert conf.contains("^NTP=ntp1.khronika.test ntp2.khronika.test$")
    assert conf.contains("^FallbackNTP=ntp3.khronika.test$")
    assert host.service("systemd-timesyncd").is_enabled


def test_sysctl_file_merges_defaults_and_inventory(host):
    conf = host.file("/etc/sysctl.d/90-khronika.conf").content_string
    assert "vm.max_map_count = 524288" in conf  # inventory overrides the default
    assert "kernel.pid_max = 4194304" in conf  # inventory adds a key
    assert "net.ipv4.ip_forward = 1" in conf  # default kept
    assert "fs.inotify.max_user_watches = 524288" in conf
    assert "somaxconn" not in conf  # null removes a default


def test_limits(host):
    assert host.file("/etc/security/limits.d/90-khronika.conf").contains("root hard nofile 524288")
    assert host.file("/etc/systemd/system.conf.d/90-khronika.conf").contains("^DefaultLimitNOFILE=524288$")
    # systemd was re-executed, so new services get the limit
    out = host.check_output("systemctl show --property DefaultLimitNOFILE")
    assert out.strip() == "DefaultLimitNOFILE=524288"


def test_journald_retention_applied(host):
    conf = host.file("/etc/systemd/journald.conf.d/90-khronika.conf")
    assert conf.contains("^SystemMaxUse=512M$")
    assert conf.contains("^MaxRetentionSec=2week$")
    assert host.service("systemd-journald").is_running


@pytest.mark.parametrize("peer", PEERS)
def test_etc_hosts_has_every_platform_host(host, peer):
    block = host.check_output("sed -n '/BEGIN khronika.platform.common hosts/,/END khronika/p' /etc/hosts")
    assert f" {peer}" in block
    assert "192.0.2.50 registry.khronika.test registry" in block
    assert host.run(f"getent hosts {peer}").rc == 0


def test_no_proxy_left_behind(host):
    assert not host.file("/etc/apt/apt.conf.d/95khronika-proxy").exists
    assert not host.file("/etc/environment").contains("khronika.platform.common proxy")
