"""`khronika update auto`'s run: the soak's watch against a real Prometheus scraping a real sample module
(healthy, then the flaky release), the halt alert in a real Alertmanager, and the rollout's bookkeeping
(canary first, failure budget, the window closing mid-way, a late rollback's restore or hold, a run
killed half-way going on).

The stages' playbooks are replaced here by a recorder that answers as update.yml's report would: the real
update.yml under the channel runs in the lab stage (tests/e2e). The Prometheus, Alertmanager, module and
state file are real."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from conftest import REPO, require_service
from khronika_ops.platform.channel import (
    ChannelRelease,
    Offer,
    StateStore,
    Watch,
    load_release_text,
    parse_policy,
    resume,
)
from khronika_ops.platform.channel_run import (
    HALT_ALERT,
    Alerts,
    ChannelRun,
    Clock,
    Figures,
    Prometheus,
    StageResult,
    bad_signs,
    late_restore,
)
from khronika_ops.platform.channel_site import Site

START = datetime(2026, 12, 6, 1, 0, tzinfo=UTC)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_http(url: str, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


# --- the watch's rule ---------------------------------------------------------------------------------


def test_bad_signs_compare_each_module_with_itself_before_the_switch() -> None:
    watch = Watch(prometheus="http://127.0.0.1:9090", error_share=0.05, latency_ratio=2, min_requests=20)
    before = {"appeals-api": Figures(1000, 10, 0.020), "classifier": Figures(500, 0, 0.010)}
    calm = {"appeals-api": Figures(100, 2, 0.030), "classifier": Figures(50, 0, 0.012)}
    assert bad_signs(before, calm, watch) == []
    worse = {"appeals-api": Figures(90, 30, 0.020), "classifier": Figures(50, 0, 0.080)}
    signs = bad_signs(
        before, worse, watch, {"DiskFull{host=app1}"}, {"DiskFull{host=app1}", "ModuleDown{module=x}"}
    )
    assert signs == [
        "appeals-api: 33.3% of 90 requests answered 5xx since the switch (before: 1.0%; the watch allows 5.0%)",
        "classifier: mean latency 80 ms since the switch, 8.0x the 10 ms before (the watch allows 2x)",
        "alert firing since the switch: ModuleDown{module=x}",
    ]
    # Too few requests to judge a share; a module that already failed this often before is not new.
    assert bad_signs(before, {"appeals-api": Figures(10, 9, 0.02)}, watch) == []
    noisy = {"appeals-api": Figures(1000, 200, 0.02)}
    assert bad_signs(noisy, {"appeals-api": Figures(100, 30, 0.02)}, watch) == []
    # Latency below the floor is never a bad sign, whatever the ratio.
    assert bad_signs({"m": Figures(100, 0, 0.001)}, {"m": Figures(100, 0, 0.010)}, watch) == []


# --- the watch against a real Prometheus and a real module --------------------------------------------


# The flaky sample serves well for this long after it starts, then fails every third request: long
# enough that the soak test's run begins before it, even on a loaded machine.
FLAKY_AFTER = 20


@dataclass
class Module:
    port: int
    process: subprocess.Popen[bytes]
    started: float
    stop: threading.Event = field(default_factory=threading.Event)


def start_module(tmp_path: Path, broken: str) -> Module:
    port = free_port()
    env = {
        **os.environ,
        "KHRONIKA_SAMPLE_PORT": str(port),
        "KHRONIKA_SAMPLE_BROKEN": broken,
        "KHRONIKA_SAMPLE_FLAKY_AFTER": str(FLAKY_AFTER),
        "APPEALS_DATA_DIR": str(tmp_path / f"appeals-{port}"),
    }
    (tmp_path / f"appeals-{port}").mkdir()
    started = time.monotonic()
    process = subprocess.Popen(
        ["python3", str(REPO / "samples/modules/appeals-api/app.py")],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_http(f"http://127.0.0.1:{port}/health")
    module = Module(port, process, started)

    def traffic() -> None:
        while not module.stop.is_set():
            request = urllib.request.Request(
                f"http://127.0.0.1:{port}/appeals",
                data=b'{"text": "appeal"}',
                method="POST",
                headers={"Content-Type": "application/json"},
            )
            with contextlib.suppress(OSError):
                urllib.request.urlopen(request, timeout=2).close()
            time.sleep(0.02)

    threading.Thread(target=traffic, daemon=True).start()
    return module


@pytest.fixture
def prometheus(tmp_path: Path) -> Iterator[tuple[str, list[Module]]]:
    require_service(shutil.which("prometheus") is not None, "prometheus (Debian package prometheus)")
    modules = [start_module(tmp_path, "0"), start_module(tmp_path, "flaky")]
    port = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        json.dumps(
            {
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "scrape_configs": [
                    {
                        "job_name": "khronika-modules",
                        "static_configs": [
                            {"targets": [f"127.0.0.1:{modules[0].port}"], "labels": {"module": "steady"}},
                            {"targets": [f"127.0.0.1:{modules[1].port}"], "labels": {"module": "flaky"}},
                        ],
                    }
                ],
            }
        )
    )
    server = subprocess.Popen(
        [
            "prometheus",
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/-/ready")
        yield f"http://127.0.0.1:{port}", modules
    finally:
        server.terminate()
        for module in modules:
            module.stop.set()
            module.process.terminate()
        server.wait(10)
        for module in modules:
            module.process.wait(10)


def test_the_soak_sees_the_5xx_of_a_flaky_module_in_a_real_prometheus(
    prometheus: tuple[str, list[Module]],
) -> None:
    url, _modules = prometheus
    watch = Watch(prometheus=url, min_requests=20)
    client = Prometheus(watch)
    deadline = time.monotonic() + FLAKY_AFTER + 60
    while True:
        time.sleep(2)
        now = time.time()
        during = client.figures(10, now)
        if (
            {"steady", "flaky"} <= set(during)
            and during["flaky"].requests >= 40
            and during["flaky"].error_share > 0.2  # its whole 10 s since it began to fail
            and during["steady"].requests >= 40
        ):
            break
        assert time.monotonic() < deadline, f"Prometheus never had the modules' figures: {during}"
    assert during["steady"].error_share == 0
    assert 0.2 < during["flaky"].error_share < 0.45  # every third request, as the sample fails
    assert during["flaky"].latency is not None
    signs = bad_signs({}, during, watch, set(), client.firing())
    assert len(signs) == 1 and signs[0].startswith("flaky: ") and "answered 5xx since the switch" in signs[0]
    with pytest.raises(Exception, match="does not answer"):
        Prometheus(Watch(prometheus=f"http://127.0.0.1:{free_port()}"), timeout=2).figures(60, time.time())


# --- the run's bookkeeping ----------------------------------------------------------------------------


def manifest(version: str) -> str:
    return f"version: '{version}'\nkind: change-release\ndate: 2026-12-01\nmodules:\n  - name: appeals-api\n    image: a/b@sha256:{'a' * 64}\n"


def offer(*versions: str) -> Offer:
    return Offer(
        [ChannelRelease(load_release_text(manifest(v), v), f"test:{v}", manifest(v)) for v in versions], []
    )


class FakeClock(Clock):
    def __init__(self, start: datetime) -> None:
        self.at = start
        super().__init__(now=lambda: self.at, sleep=self._sleep)

    def _sleep(self, seconds: float) -> None:
        self.at += timedelta(seconds=seconds)


@dataclass
class Recorder:
    """Answers each stage as update.yml's report would; `fail` names the hosts whose update fails."""

    tmp_path: Path
    fail: set[str] = field(default_factory=set)
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    kill_after: int | None = None

    def __call__(self, playbook: str, values: dict[str, Any], report_dir: Path, label: str) -> StageResult:
        self.calls.append((playbook, values))
        if self.kill_after is not None and len(self.calls) > self.kill_after:
            raise KeyboardInterrupt  # the controller dies mid-run
        hosts = values["khronika_update_hosts"].split(":")
        failed = [host for host in hosts if host in self.fail]
        run_dir = report_dir / f"update-{values['khronika_release_version']}"
        run_dir.mkdir(parents=True)
        late = "khronika_update_late_rollback" in values
        report = {
            "result": "rolled-back" if failed else "succeeded",
            "hosts": [
                {
                    "host": host,
                    "failure": "health gate: appeals-api unhealthy" if host in failed else None,
                    "backups": [
                        {
                            "host": host,
                            "module": "appeals-api",
                            "volume": "khronika_appeals-api_data",
                            "path": f"/var/backups/khronika/khronika_appeals-api_data/{'set-aside/' if late else ''}x.tar.gz",
                            "sha256": "0" * 64,
                            "bytes": 10,
                            "set_aside": late,
                        }
                    ],
                }
                for host in hosts
            ],
        }
        (run_dir / "update-report.json").write_text(json.dumps(report))
        message = "; ".join(f"{host}: health gate: appeals-api unhealthy" for host in failed)
        return StageResult(not failed, message, report, str(run_dir))


@pytest.fixture
def alertmanager(tmp_path: Path) -> Iterator[str]:
    require_service(shutil.which("prometheus-alertmanager") is not None, "prometheus-alertmanager")
    port, cluster = free_port(), free_port()
    config = tmp_path / "alertmanager.yml"
    config.write_text("route: {receiver: none}\nreceivers: [{name: none}]\n")
    server = subprocess.Popen(
        [
            "prometheus-alertmanager",
            f"--config.file={config}",
            f"--storage.path={tmp_path / 'am'}",
            f"--web.listen-address=127.0.0.1:{port}",
            f"--cluster.listen-address=127.0.0.1:{cluster}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/-/ready")
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(10)


def site(tmp_path: Path, **policy: Any) -> Site:
    values = {
        "source": "registry",
        "registry": "registry.test:5000",
        "window": {"start": "2026-12-06T01:00:00Z", "duration": "4h", "every": "7d"},
        "soak": "10m",
        "batch": {"hosts": 2},
        **policy,
    }
    return Site(
        inventory=str(tmp_path),
        policy=parse_policy(values),
        release="1.0.0",
        hosts=["app1", "app2", "app3", "app4", "app5"],
        groups={"canary": ["app3"]},
        releases_dir=str(tmp_path / "releases"),
        modules=[{"name": "appeals-api"}, {"name": "classifier", "rollback_data": "keep"}],
        name="test-site",
    )


def channel_run(
    tmp_path: Path, recorder: Recorder, clock: FakeClock, *, alerts: Alerts | None = None, **policy: Any
) -> tuple[ChannelRun, StateStore, list[str]]:
    said: list[str] = []
    store = StateStore(tmp_path / "state")
    run = ChannelRun(
        site(tmp_path, **policy),
        store,
        recorder,
        alerts=alerts or Alerts(None),
        say=said.append,
        clock=clock,
        offer=offer("1.1.0"),
    )
    return run, store, said


def test_a_release_goes_canary_first_then_in_batches_each_soaked(tmp_path: Path) -> None:
    recorder, clock = Recorder(tmp_path), FakeClock(START + timedelta(minutes=5))
    run, store, said = channel_run(tmp_path, recorder, clock, canary={"group": "canary"})
    assert run.run() == 0
    assert [values["khronika_update_hosts"] for _, values in recorder.calls] == [
        "app3",
        "app1:app2",
        "app4:app5",
    ]
    first = recorder.calls[0][1]
    assert (
        first["khronika_release_version"] == "1.1.0" and first["khronika_update_window_duration"] == "14400s"
    )
    assert (tmp_path / "releases" / "1.1.0.yml").read_text() == manifest("1.1.0")
    state = store.load()
    assert state.rollout is None and state.last_rollout is not None
    assert [stage.state for stage in state.last_rollout.stages] == ["soaked", "soaked", "soaked"]
    assert (
        state.runs[-1].result == "applied"
        and "1.0.0 -> 1.1.0 on 5 host(s) in 30.0 min" in state.runs[-1].message
    )
    assert clock.at == START + timedelta(minutes=35)  # three soaks of ten minutes
    assert any("canary: soaked" in line for line in said)


def test_a_failed_canary_halts_the_channel_and_fires_an_alert_until_resumed(
    tmp_path: Path, alertmanager: str
) -> None:
    from khronika_ops.platform.lease import Alertmanager

    recorder = Recorder(tmp_path, fail={"app1"})
    clock = FakeClock(datetime.now(UTC))
    window = {
        "start": (clock.at - timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "duration": "4h",
        "every": "1d",
    }
    alerts = Alerts(alertmanager)
    run, store, _said = channel_run(tmp_path, recorder, clock, alerts=alerts, window=window)
    assert run.run() == 1
    assert [values["khronika_update_hosts"] for _, values in recorder.calls] == ["app1"]  # others untouched
    state = store.load()
    assert state.halted is not None and "the canary (app1) failed its update" in state.halted.reason
    assert "1.1.0" in state.failed and state.rollout is None
    firing = [a for a in Alertmanager(alertmanager).alerts() if a["labels"]["alertname"] == HALT_ALERT]
    assert len(firing) == 1 and firing[0]["labels"]["release"] == "1.1.0"
    assert "khronika update resume" in firing[0]["annotations"]["description"]
    # The next runs do nothing but keep the alert; after resume the failed release is not retried.
    again, _, said = channel_run(tmp_path, recorder, clock, alerts=alerts, window=window)
    assert again.run() == 0 and len(recorder.calls) == 1 and "halted since" in said[-1]
    store.save(resume(store.load()))
    alerts.resolve("test-site", state.halted, datetime.now(UTC), print)
    assert not [a for a in Alertmanager(alertmanager).alerts() if a["labels"]["alertname"] == HALT_ALERT]
    after, _, said = channel_run(tmp_path, recorder, clock, alerts=alerts, window=window)
    assert after.run() == 0 and len(recorder.calls) == 1
    assert said[-1] == "nothing: nothing newer than 1.0.0 to apply"


def test_the_failure_budget_spans_batches(tmp_path: Path) -> None:
    within = Recorder(tmp_path / "within", fail={"app2", "app4"})
    run, store, _ = channel_run(
        tmp_path / "within", within, FakeClock(START), failure_budget=2, batch={"hosts": 1}
    )
    assert run.run() == 0
    assert store.load().runs[-1].message.endswith("failed within the budget: app2, app4")
    past = Recorder(tmp_path / "past", fail={"app2", "app4", "app5"})
    run, store, _ = channel_run(
        tmp_path / "past", past, FakeClock(START), failure_budget=2, batch={"hosts": 1}
    )
    assert run.run() == 1
    assert [values["khronika_update_hosts"] for _, values in past.calls] == [
        "app1",
        "app2",
        "app3",
        "app4",
        "app5",
    ]
    halted = store.load().halted
    assert (
        halted is not None
        and "batch 4, past the failure budget (2) (app5) failed its update" in halted.reason
    )


def test_outside_the_window_nothing_happens_and_a_closing_window_stops_between_stages(tmp_path: Path) -> None:
    recorder = Recorder(tmp_path)
    run, store, said = channel_run(tmp_path, recorder, FakeClock(START - timedelta(hours=1)))
    assert run.run() == 0 and recorder.calls == []
    assert said == ["wait: 1.1.0 applies in the window; the window is closed; opens at 2026-12-06T01:00:00Z"]
    assert not store.file.exists()  # nothing to record
    # 3 h 35 min into the window: the canary fits (10 min allowance + 10 min soak), batch 1 does not.
    clock = FakeClock(START + timedelta(hours=3, minutes=35))
    run, store, said = channel_run(tmp_path, recorder, clock)
    assert run.run() == 0
    assert [values["khronika_update_hosts"] for _, values in recorder.calls] == ["app1"]
    state = store.load()
    assert state.rollout is not None and [s.state for s in state.rollout.stages] == [
        "soaked",
        "pending",
        "pending",
    ]
    assert "it goes on in the next window" in state.runs[-1].message
    clock.at = START + timedelta(days=7, minutes=1)  # the next window
    run, store, _ = channel_run(tmp_path, recorder, clock)
    assert run.run() == 0
    assert [values["khronika_update_hosts"] for _, values in recorder.calls] == [
        "app1",
        "app2:app3",
        "app4:app5",
    ]
    assert store.load().runs[-1].result == "applied"


def test_a_run_killed_mid_rollout_goes_on_where_it_stopped(tmp_path: Path) -> None:
    recorder = Recorder(tmp_path, kill_after=1)
    clock = FakeClock(START)
    run, store, _ = channel_run(tmp_path, recorder, clock)
    with pytest.raises(KeyboardInterrupt):
        run.run()
    state = store.load()
    assert state.rollout is not None
    assert [s.state for s in state.rollout.stages] == ["soaked", "pending", "pending"]
    assert state.rollout.stages[1].started_at is not None  # begun: the same update runs again for it
    recorder.kill_after = None
    run, store, _ = channel_run(tmp_path, recorder, clock)
    assert run.run() == 0
    assert [values["khronika_update_hosts"] for _, values in recorder.calls] == [
        "app1",
        "app2:app3",
        "app2:app3",
        "app4:app5",
    ]


def test_late_rollback_restores_only_what_the_catalog_and_the_policy_allow() -> None:
    report = {
        "hosts": [
            {
                "host": "app1",
                "backups": [
                    {"module": "appeals-api", "volume": "v1", "path": "/b/v1.tar.gz", "sha256": "1" * 64},
                    {"module": "classifier", "volume": "v2", "path": "/b/v2.tar.gz", "sha256": "2" * 64},
                    {
                        "module": "appeals-api",
                        "volume": "v1",
                        "path": "/b/set-aside/v1.tar.gz",
                        "sha256": "3",
                        "set_aside": True,
                    },
                ],
            },
            {
                "host": "app9",
                "backups": [{"module": "appeals-api", "volume": "v1", "path": "/x", "sha256": "4"}],
            },
        ]
    }
    modules = [{"name": "appeals-api"}, {"name": "classifier", "rollback_data": "keep"}]
    restore, held = late_restore(report, modules, ["app1"], policy_restores=True)
    assert restore == {
        "app1": [{"module": "appeals-api", "volume": "v1", "path": "/b/v1.tar.gz", "sha256": "1" * 64}]
    }
    assert held == []
    restore, held = late_restore(report, modules, ["app1"], policy_restores=False)
    assert restore == {} and held == [
        "appeals-api on app1 (its data v1 may not be read by the previous release)"
    ]


def test_a_bad_sign_in_the_soak_rolls_the_stage_back_late_and_halts(
    tmp_path: Path, prometheus: tuple[str, list[Module]]
) -> None:
    """The flaky module serves well for FLAKY_AFTER s, then fails every third request: the canary's soak,
    watching the real Prometheus, sees it and rolls the canary back with its pre-update copy restored."""
    url, modules = prometheus
    time.sleep(3)  # a few scrapes: "before" is the module serving well
    served = time.monotonic() - modules[1].started
    assert served < FLAKY_AFTER - 5, (
        f"the flaky module began to fail before the run ({served:.0f} s after it started)"
    )
    recorder = Recorder(tmp_path)
    now = datetime.now(UTC)
    window = {
        "start": (now - timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "duration": "4h",
        "every": "1d",
    }
    policy = {
        "window": window,
        "soak": "60s",
        "late_rollback_restore": True,
        "watch": {"prometheus": url, "interval": "2s", "baseline": "60s", "min_requests": 20},
    }
    said: list[str] = []
    store = StateStore(tmp_path / "state")
    started = time.monotonic()
    run = ChannelRun(
        site(tmp_path, **policy),
        store,
        recorder,
        alerts=Alerts(None),
        say=said.append,
        prometheus=Prometheus(
            parse_policy({"source": "registry", "registry": "r:1", "window": window, **policy}).watch
        ),
        offer=offer("1.1.0"),
    )
    assert run.run() == 1
    assert time.monotonic() - started < 50, "the watch took the whole soak to see it"
    playbooks = [(playbook, values["khronika_release_version"]) for playbook, values in recorder.calls]
    assert playbooks == [("update.yml", "1.1.0"), ("update.yml", "1.0.0")]
    rollback = recorder.calls[1][1]
    assert rollback["khronika_update_allow_downgrade"] is True and rollback["khronika_update_hosts"] == "app1"
    assert rollback["khronika_update_late_rollback"]["restore"] == {
        "app1": [
            {
                "module": "appeals-api",
                "volume": "khronika_appeals-api_data",
                "path": "/var/backups/khronika/khronika_appeals-api_data/x.tar.gz",
                "sha256": "0" * 64,
            }
        ]
    }
    state = store.load()
    assert (
        state.halted is not None
        and "flaky: " in state.halted.reason
        and "answered 5xx" in state.halted.reason
    )
    assert "Rolled back to 1.0.0" in state.halted.reason and "set-aside/x.tar.gz" in state.halted.reason
    assert state.last_rollout is not None and state.last_rollout.stages[0].state == "rolled-back"
    assert "1.1.0" in state.failed
