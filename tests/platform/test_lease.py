"""The silence's lease against a real Alertmanager (Debian's prometheus-alertmanager): renewed while the
run's process lives, left to lapse once it is gone."""

import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, datetime, timedelta

import pytest

from conftest import require_service
from khronika_ops.platform.lease import Alertmanager, keep, process_alive, process_started, renewed


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def alertmanager(tmp_path_factory):
    binary = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
    require_service(binary is not None, "prometheus-alertmanager (apt-get install prometheus-alertmanager)")
    folder = tmp_path_factory.mktemp("alertmanager")
    (folder / "alertmanager.yml").write_text("route: {receiver: none}\nreceivers: [{name: none}]\n")
    port = _free_port()
    process = subprocess.Popen(
        [
            str(binary),
            f"--config.file={folder / 'alertmanager.yml'}",
            f"--storage.path={folder / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            urllib.request.urlopen(url + "/api/v2/status", timeout=1).close()
            break
        except OSError:
            time.sleep(0.1)
    else:
        process.kill()
        pytest.fail("Alertmanager did not start")
    yield Alertmanager(url)
    process.kill()
    process.wait(timeout=10)


def _silence(client: Alertmanager, seconds: float) -> str:
    now = datetime.now(UTC)
    return client.post(
        {
            "matchers": [{"name": "instance", "value": "app1", "isRegex": False, "isEqual": True}],
            "startsAt": now.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
            "endsAt": (now + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%S.000Z"),
            "createdBy": "test",
            "comment": "lease",
        }
    )


def _ends(client: Alertmanager, silence_id: str) -> datetime:
    return datetime.fromisoformat(client.silence(silence_id)["endsAt"].replace("Z", "+00:00"))


def test_the_lease_renews_while_the_run_lives_and_stops_when_it_is_gone(alertmanager):
    # The silence outlives the steps before the lease's first renewal, even on a loaded machine.
    silence_id = _silence(alertmanager, 10)
    first_end = _ends(alertmanager, silence_id)
    run = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(4)"])
    started = time.monotonic()
    reason = keep(
        alertmanager,
        silence_id,
        lease=12,
        until=datetime.now(UTC) + timedelta(hours=1),
        watch_pid=run.pid,
        stop_file=None,
        max_seconds=60,
        sleep=time.sleep,
    )
    run.wait()
    assert "ended without finishing" in reason
    assert 3.5 < time.monotonic() - started < 15
    # Renewed in place (same id): it now ends about a lease after the run died, later than it began to.
    silence = alertmanager.silence(silence_id)
    assert silence["status"]["state"] == "active"
    end = _ends(alertmanager, silence_id)
    assert end > first_end and end <= datetime.now(UTC) + timedelta(seconds=12)


def test_the_lease_ends_with_the_stop_file_the_window_or_a_removed_silence(alertmanager, tmp_path):
    silence_id = _silence(alertmanager, 60)
    stop = tmp_path / "lease.stop"
    stop.touch()
    common = {"lease": 30, "watch_pid": process_pid(), "max_seconds": 60, "sleep": lambda _s: None}
    assert keep(
        alertmanager, silence_id, until=datetime.now(UTC) + timedelta(hours=1), stop_file=stop, **common
    ) == ("the run finished")
    past = datetime.now(UTC) - timedelta(seconds=1)
    assert "window" in keep(alertmanager, silence_id, until=past, stop_file=None, **common)
    with urllib.request.urlopen(
        urllib.request.Request(f"{alertmanager.url}/api/v2/silence/{silence_id}", method="DELETE"), timeout=5
    ):
        pass
    assert "expired" in keep(
        alertmanager, silence_id, until=datetime.now(UTC) + timedelta(hours=1), stop_file=None, **common
    )


def process_pid() -> int:
    import os

    return os.getpid()


def test_a_renewal_never_passes_the_window_and_a_reused_pid_is_not_the_run():
    silence = {
        "id": "x",
        "matchers": [],
        "startsAt": "2026-12-06T10:00:00.000Z",
        "comment": "c",
        "createdBy": "o",
    }
    now = datetime(2026, 12, 6, 10, 5, tzinfo=UTC)
    assert renewed(silence, now, 600, now + timedelta(minutes=20))["endsAt"] == "2026-12-06T10:15:00.000Z"
    assert renewed(silence, now, 600, now + timedelta(minutes=2))["endsAt"] == "2026-12-06T10:07:00.000Z"
    me = process_pid()
    assert process_alive(me, process_started(me))
    assert not process_alive(me, (process_started(me) or 0) - 100)
    assert process_started(2**22 + 12345) is None
    assert json.dumps(renewed(silence, now, 1, now))  # what is posted is JSON
