"""Role update_channel on a real systemd host: the timer installed and started, its service running the
khronika command with the site's inventory (a recording command stands in for khronika, which this host
does not have: `khronika update auto` itself is tested in tests/platform/test_channel_run.py), and bad
settings refused before any unit is written."""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import BASE_IMAGE, REPO, docker_available, image_present, require_service, run_playbook

PLAYBOOK = REPO / "tests" / "playbooks" / "role.yml"
pytestmark = pytest.mark.docker


@pytest.fixture(scope="module")
def systemd_host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    require_service(docker_available() and image_present(BASE_IMAGE), f"Docker and {BASE_IMAGE}")
    name = f"kh-pytest-channel-{uuid.uuid4().hex[:8]}"
    subprocess.run(
        [
            "docker",
            "run",
            "-d",
            "--name",
            name,
            "--label",
            "khronika.test=1",
            "--cgroupns=host",
            "--cap-add=SYS_ADMIN",
            "--security-opt",
            "seccomp=unconfined",
            "--security-opt",
            "apparmor=unconfined",
            "--tmpfs",
            "/run",
            "--tmpfs",
            "/run/lock",
            "--tmpfs",
            "/tmp",
            "-v",
            "/sys/fs/cgroup:/sys/fs/cgroup:rw",
            "-e",
            "container=docker",
            "--stop-signal",
            "SIGRTMIN+3",
            BASE_IMAGE,
            "/lib/systemd/systemd",
        ],
        check=True,
        capture_output=True,
    )
    inventory = tmp_path_factory.mktemp("channel") / "hosts.ini"
    inventory.write_text(
        f"[khronika]\n{name} ansible_connection=community.docker.docker ansible_host={name}\n"
    )
    try:
        deadline = time.monotonic() + 60
        while subprocess.run(
            ["docker", "exec", name, "systemctl", "is-system-running"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip() not in ("running", "degraded"):
            assert time.monotonic() < deadline, "systemd did not start in the container"
            time.sleep(1)
        script = "#!/bin/sh\nprintf '%s\\n' \"$(id -un) $*\" >> /var/log/khronika-auto.calls\n"
        subprocess.run(
            ["docker", "exec", name, "mkdir", "-p", "/opt/khronika/bin", "/srv/sites/main"], check=True
        )
        subprocess.run(
            [
                "docker",
                "exec",
                "-i",
                name,
                "sh",
                "-c",
                "cat > /opt/khronika/bin/khronika && chmod 755 /opt/khronika/bin/khronika",
            ],
            input=script.encode(),
            check=True,
        )
        yield name, inventory
    finally:
        subprocess.run(["docker", "rm", "-f", "-v", name], capture_output=True, check=False)


def run_role(inventory: Path, tmp_path: Path, **values: object):
    variables = tmp_path / "vars.json"
    variables.write_text(json.dumps({"test_role": "update_channel", **values}))
    return run_playbook(PLAYBOOK, inventory, "-e", f"@{variables}")


def sh(name: str, *command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", "exec", name, *command], capture_output=True, text=True, check=False)


SETTINGS = {
    "update_channel_inventory": "/srv/sites/main",
    "update_channel_khronika": "/opt/khronika/bin/khronika",
}


def test_bad_settings_are_refused_before_a_unit_is_written(
    systemd_host: tuple[str, Path], tmp_path: Path
) -> None:
    name, inventory = systemd_host
    for change, said in (
        ({"update_channel_on_calendar": "every tuesday"}, "is not a calendar systemd reads"),
        ({"update_channel_inventory": "/srv/sites/main\nExecStartPre=/bin/rm"}, "must be absolute paths"),
        (
            {"update_channel_strategy": "mitogen_linear\nExecStartPre=/bin/rm"},
            "update_channel_strategy: unknown strategy",
        ),
    ):
        run = run_role(inventory, tmp_path, **{**SETTINGS, **change})
        assert run.rc != 0 and said in " ".join(run.output.split()), run.output
        assert sh(name, "test", "-e", "/etc/systemd/system/khronika-update-auto.service").returncode == 1


def test_the_timer_runs_khronika_update_auto_for_the_site(
    systemd_host: tuple[str, Path], tmp_path: Path
) -> None:
    name, inventory = systemd_host
    chosen = {"update_channel_on_calendar": "*:0/5", "update_channel_strategy": "mitogen_linear"}
    run = run_role(inventory, tmp_path, **SETTINGS, **chosen)
    assert run.rc == 0, run.output
    assert sh(name, "systemctl", "is-active", "khronika-update-auto.timer").stdout.strip() == "active"
    assert sh(name, "systemctl", "is-enabled", "khronika-update-auto.timer").stdout.strip() == "enabled"
    timer = sh(name, "systemctl", "show", "khronika-update-auto.timer", "-p", "TimersCalendar").stdout
    assert "*-*-* *:00/5:00" in timer, timer
    assert sh(name, "systemctl", "start", "khronika-update-auto.service").returncode == 0
    # Each run of the unit, by hand or by the live timer (every 5 minutes), calls the same command.
    calls = sh(name, "cat", "/var/log/khronika-auto.calls").stdout.splitlines()
    assert calls and set(calls) == {"root update auto --inventory /srv/sites/main --strategy mitogen_linear"}
    again = run_role(inventory, tmp_path, **SETTINGS, **chosen)
    assert again.rc == 0 and again.recap_changed() == 0, again.output
    gone = run_role(inventory, tmp_path, **SETTINGS, update_channel_state="absent")
    assert gone.rc == 0, gone.output
    assert sh(name, "test", "-e", "/etc/systemd/system/khronika-update-auto.timer").returncode == 1
    assert "khronika-update-auto" not in sh(name, "systemctl", "list-timers", "--all").stdout
