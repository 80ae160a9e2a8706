"""The roles' OS package lists per host profile and the reading of apt's answers (khronika_ops.os_packages)."""

from __future__ import annotations

import pytest

from khronika_ops.host_support import profile_from_os_release
from khronika_ops.os_packages import (
    PackageListError,
    apt_unresolvable,
    archive_groups,
    host_packages,
    packages,
)

DEBIAN = profile_from_os_release({"ID": "debian", "VERSION_ID": "12", "VERSION_CODENAME": "bookworm"})
ASTRA = profile_from_os_release({"ID": "astra", "ID_LIKE": "debian", "VERSION_ID": "1.7_x86-64"})
ROCKY = profile_from_os_release({"ID": "rocky", "ID_LIKE": "rhel centos fedora", "VERSION_ID": "9.4"})


def test_a_derivative_takes_its_familys_lists_and_the_fact_form_works_too():
    assert packages(ASTRA, "docker", "distribution") == ["docker.io"]
    assert packages(ASTRA.as_dict(), "docker", "distribution") == ["docker.io"]
    assert packages(ROCKY, "docker", "distribution") == ["moby-engine"]
    with pytest.raises(PackageListError, match="monitoring_server has no prometheus packages for rocky-9"):
        packages(ROCKY, "monitoring_server", "prometheus")
    with pytest.raises(PackageListError, match="no package list docker/nope"):
        packages(DEBIAN, "docker", "nope")


def test_host_packages_follow_the_inventory():
    default = host_packages(DEBIAN, ["common", "docker"], {})
    assert "systemd-timesyncd" in default and "docker-ce" in default and "docker.io" not in default
    offline = host_packages(
        DEBIAN,
        ["common", "docker", "gateway"],
        {
            "docker_package_source": "distribution",
            "common_packages": ["htop"],
            "common_timesync_implementation": "chrony",
            "gateway_packages": ["nginx-light"],
        },
    )
    assert {"docker.io", "htop", "chrony", "nginx-light"} <= set(offline)
    assert "systemd-timesyncd" not in offline and "nginx" not in offline
    assert len(offline) == len(set(offline))
    assert "chrony" in host_packages(ROCKY, ["common"], {})
    with pytest.raises(PackageListError, match="no package lists for role platform"):
        host_packages(DEBIAN, ["platform"], {})


def test_the_archive_resolves_alternatives_apart():
    main, *alternatives = archive_groups(DEBIAN)
    assert "systemd-timesyncd" in main and "chrony" not in main
    assert alternatives == [["chrony"]]
    assert {"docker.io", "nginx", "prometheus", "prometheus-alertmanager", "python3-requests"} <= set(main)
    assert "docker-ce" not in main


APT_MISSING = """Reading package lists...
Building dependency tree...
E: Unable to locate package khronika-no-such-package
"""
APT_UNMET = """Reading package lists...
Building dependency tree...
Some packages could not be installed. This may mean that you have
requested an impossible situation or if you are using the unstable
distribution that some required packages have not yet been created
or been moved out of Incoming.
The following information may help to resolve the situation:

The following packages have unmet dependencies:
 nginx : Depends: nginx-common (= 1.22.1-9) but it is not installable
 docker.io : Depends: containerd (>= 1.6.20~ds1) but it is not going to be installed
             PreDepends: init-system-helpers (>= 1.54~) but it is not installable
E: Unable to correct problems, you have held broken packages.
"""
APT_NO_CANDIDATE = """Package nginx is not available, but is referred to by another package.
E: Package 'nginx' has no installation candidate
"""


def test_apt_answers_name_what_cannot_be_installed():
    assert apt_unresolvable(APT_MISSING) == ["khronika-no-such-package"]
    assert apt_unresolvable(APT_UNMET) == ["containerd", "init-system-helpers", "nginx-common"]
    assert apt_unresolvable(APT_NO_CANDIDATE) == ["nginx"]
    assert apt_unresolvable("Inst docker.io (20.10.24 Debian:12)\n") == []
    assert apt_unresolvable("E: Unable to locate package x\n" * 200_000)[:1] == ["x"]
