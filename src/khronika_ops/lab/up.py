"""`khronika lab up`: the stages of the lab, one progress line each, and the closing summary.

    hosts      the lab host image, the network, N hosts over SSH (keys made here, host keys pinned)
    registry   the TLS + htpasswd registry, the sample modules pushed, the release manifests, the
               inventory (inventories/lab/) and its vault
    site       playbooks/site.yml through ansible-runner (`khronika run`)
    traffic    appeals through the gateway along a compressed day, so Prometheus holds real load
    update     playbooks/update.yml to the next release, with its downtime report
    history    two weeks of real load traces replayed into the lab's Prometheus (lab/history.py)
    plan       playbooks/plan.yml against the lab's Prometheus (14 days at 5 minutes, as a site's):
               reports in md, html and json

A second `up` reuses what exists: the hosts are kept, the inventory is rewritten with the same
content, site.yml converges with nothing to change, and an update already done is not done again.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from khronika_ops import safe_yaml
from khronika_ops.lab import (
    INVENTORY_DIR,
    REGISTRY_NAME,
    REGISTRY_PORT,
    REPO_ROOT,
    REPORTS_DIR,
    RUNS_DIR,
    STATE_DIR,
    STRATEGY,
    inventory,
)
from khronika_ops.lab import (
    hosts as lab_hosts,
)
from khronika_ops.lab.hosts import LabError, LabHost
from khronika_ops.lab.traffic import Traffic, TrafficError
from khronika_ops.runner import RunError, RunSummary, format_seconds, run_playbook

UPDATE_TO = "1.1.0"
REGISTRY_DIR = STATE_DIR / "registry"
REGISTRY_USER = "khronika-lab"


@dataclass
class Options:
    hosts: int = 3
    traffic_seconds: float = 180.0
    peak_rate: float = 8.0
    update: bool = True
    plan: bool = True
    forks: int | None = None
    # Mitogen's linear strategy: the same plays, one persistent Python per host instead of a module
    # upload and an interpreter start per task (site.yml: about 2x faster first, 2.5x idempotent).
    strategy: str | None = STRATEGY


@dataclass
class StageResult:
    name: str
    seconds: float
    ok: bool
    detail: str


@dataclass
class LabRun:
    folder: Path
    stages: list[StageResult] = field(default_factory=list)
    playbooks: dict[str, RunSummary] = field(default_factory=dict)
    hosts: list[LabHost] = field(default_factory=list)
    gateway: str = ""  # this machine's address on the lab network (the hosts' registry.lab and NTP)
    reports: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(stage.ok for stage in self.stages)


class StageFailed(RuntimeError):
    pass


def release_state() -> str:
    """What the lab runs: the site state's release (update.yml and the release channel write it), else
    the release the lab's update stage reached, else the first one."""
    from khronika_ops.platform import site_state

    recorded = INVENTORY_DIR / site_state.STATE_FILE
    if recorded.is_file():
        try:
            state = site_state.parse((safe_yaml.load_file(recorded) or {}).get(site_state.STATE_VARIABLE))
        except (OSError, safe_yaml.YamlError, site_state.SiteStateError):
            state = None
        if state is not None:
            return state.release
    path = STATE_DIR / "release"
    return path.read_text().strip() if path.is_file() else inventory.FIRST_RELEASE


def up(options: Options, say: Callable[[str], None] = print) -> LabRun:
    stamp = time.strftime("%Y%m%dT%H%M%S")
    run = LabRun(folder=RUNS_DIR / stamp)
    run.folder.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()

    def stage(name: str, action: Callable[[], str]) -> None:
        say(f"==> {name}")
        begun = time.monotonic()
        try:
            detail = action()
            ok = True
        except (LabError, StageFailed, RunError, TrafficError, subprocess.CalledProcessError, OSError) as exc:
            detail, ok = str(exc), False
        took = time.monotonic() - begun
        run.stages.append(StageResult(name, took, ok, detail))
        say(
            f"<== {name}: {'ok' if ok else 'FAILED'} in {format_seconds(took)} "
            f"(total {format_seconds(time.monotonic() - started)}): {detail}"
        )
        if not ok:
            raise StageFailed(f"stage {name} failed: {detail}")

    def playbook(name: str, extravars: dict[str, Any] | None = None) -> RunSummary:
        summary = run_playbook(
            name,
            INVENTORY_DIR / "hosts.yml",
            extravars=extravars,
            vault_password_file=inventory.vault_password_file(),
            forks=options.forks,
            strategy=options.strategy,
            artifacts_root=run.folder / "ansible",
            ident=Path(name).stem,
            say=say,
        )
        run.playbooks[Path(name).stem] = summary
        for line in summary.lines():
            say("    " + line)
        if not summary.succeeded:
            raise StageFailed(f"{name} failed (full log: {summary.artifacts / 'stdout'})")
        return summary

    ssh_dir = STATE_DIR / "ssh"

    def hosts_stage() -> str:
        image = lab_hosts.ensure_image(say)
        network = lab_hosts.ensure_network()
        run.hosts = lab_hosts.plan_hosts(options.hosts, network)
        run.gateway = lab_hosts.gateway_address(network)
        existing = [c["host"] for c in lab_hosts.lab_containers()]
        extra = sorted(set(existing) - {h.name for h in run.hosts})
        if extra:
            raise LabError(
                f"the lab already has hosts {', '.join(extra)} beyond --hosts {options.hosts}: "
                "run `khronika lab down` first to change the number of hosts"
            )
        lab_hosts.ensure_keys(run.hosts)
        lab_hosts.write_known_hosts(run.hosts, ssh_dir)
        done = [f"{host.name} {lab_hosts.ensure_host(host, ssh_dir)}" for host in run.hosts]
        lab_hosts.wait_ready(run.hosts, ssh_dir)
        return f"{image}; network {network}; " + ", ".join(done) + "; SSH and systemd ready"

    def registry_stage() -> str:
        env = {
            **os.environ,
            "KHRONIKA_TEST_REGISTRY_DIR": str(REGISTRY_DIR),
            "KHRONIKA_TEST_REGISTRY_PORT": str(REGISTRY_PORT),
            "KHRONIKA_TEST_REGISTRY_NAME": REGISTRY_NAME,
            "KHRONIKA_TEST_REGISTRY_USER_NAME": REGISTRY_USER,
        }
        _script(["scripts/test-registry.sh", "start"], env, run.folder / "registry.log")
        releases = INVENTORY_DIR / "files" / "releases"
        releases.mkdir(parents=True, exist_ok=True)
        _script(
            [
                "scripts/build-sample-images.sh",
                "--push",
                f"127.0.0.1:{REGISTRY_PORT}",
                "--releases-dir",
                str(releases),
            ],
            {**env, "DOCKER_CONFIG": str(REGISTRY_DIR / "docker-config")},
            run.folder / "samples.log",
        )
        ca = (REGISTRY_DIR / "tls" / "ca.crt").read_text()
        ca_copy = INVENTORY_DIR / "files" / "registry-ca.crt"
        if not ca_copy.is_file() or ca_copy.read_text() != ca:
            ca_copy.write_text(ca)
        path = inventory.write(run.hosts, gateway=run.gateway, ssh_dir=ssh_dir, release=release_state())
        return (
            f"https://127.0.0.1:{REGISTRY_PORT} ({REGISTRY_NAME} for the hosts), samples pushed, "
            f"releases {', '.join(sorted(p.stem for p in releases.glob('*.yml')))}; inventory {path.parent}"
        )

    def site_stage() -> str:
        summary = playbook("site.yml")
        return f"{summary.tasks} tasks, changed {summary.changed}, failed {summary.failed}"

    def traffic_stage() -> str:
        gateway = next(h for h in run.hosts if "khronika_gateway" in h.groups)
        cert = run.folder / "gateway.crt"
        cert.write_bytes(
            subprocess.run(
                lab_hosts.ssh_command(gateway, ssh_dir, "sudo", "cat", "/etc/khronika/gateway/tls.crt"),
                check=True,
                capture_output=True,
                timeout=30,
            ).stdout
        )
        traffic = Traffic(
            gateway.address,
            port=int(inventory.role_default("gateway", "gateway_https_port")),
            ca_file=str(cert),
            peak_rate=options.peak_rate,
            seconds=options.traffic_seconds,
        )
        report = traffic.run(
            on_tick=lambda elapsed, rate: say(
                f"    [{format_seconds(elapsed):>6}] traffic: {rate:.1f} visits/s, {traffic.report.sent} so far"
            )
        )
        (run.folder / "traffic.json").write_text(json.dumps(report.as_dict(), indent=2) + "\n")
        # Every answer must be a success (2xx); a few lost to a busy machine are tolerated.
        failed = {
            m: sum(n for s, n in c.items() if not s.startswith("2")) for m, c in report.by_module.items()
        }
        if sum(report.by_module.get("appeals-api", {}).values()) == 0 or any(
            n > 0.02 * sum(report.by_module[m].values()) for m, n in failed.items()
        ):
            raise StageFailed(f"the gateway did not serve the traffic: {report.line()}")
        return report.line()

    def update_stage() -> str:
        from khronika_ops.platform.release import semver_key

        current = release_state()
        if current == UPDATE_TO:
            return f"already on {UPDATE_TO}: nothing to update"
        if semver_key(current) > semver_key(UPDATE_TO):
            return f"already on {current}, newer than {UPDATE_TO} (the release channel applied it): nothing to update"
        now = dt.datetime.now(dt.UTC).replace(microsecond=0)
        playbook(
            "update.yml",
            {
                "khronika_release_version": UPDATE_TO,
                "khronika_update_window_start": now.isoformat(),
                "khronika_update_window_duration": "1h",
                "khronika_update_report_dir": str(REPORTS_DIR),
            },
        )
        (STATE_DIR / "release").write_text(UPDATE_TO + "\n")
        inventory.write(run.hosts, gateway=run.gateway, ssh_dir=ssh_dir, release=UPDATE_TO)
        report = _newest(REPORTS_DIR.glob(f"update-{UPDATE_TO}-*/update-report.md"))
        if report is None:
            raise StageFailed(f"update.yml succeeded but wrote no report under {REPORTS_DIR}")
        run.reports.append(str(report))
        probe = json.loads(report.with_suffix(".json").read_text()).get("probe") or []
        downtime = ", ".join(
            f"{m['module']} down {m['down_seconds']:.1f}s ({m['failed']}/{m['requests']} failed, planned {m['planned']})"
            for m in probe
        )
        return f"{current} -> {UPDATE_TO}: {downtime or 'no probe'}; report {report}"

    def history_stage() -> str:
        from khronika_ops.lab.history import HistoryError, promtool_script, replay_history
        from khronika_ops.planner.errors import InputError
        from khronika_ops.planner.ingest.prometheus import PrometheusClient

        monitoring = next(h for h in run.hosts if "khronika_monitoring" in h.groups)
        port = inventory.role_default("monitoring_server", "monitoring_server_prometheus_port")
        storage = str(inventory.role_default("monitoring_server", "monitoring_server_storage_path"))

        def install(path: Path) -> None:
            command = lab_hosts.ssh_command(monitoring, ssh_dir, "sudo", "sh", "-c", promtool_script(storage))
            try:
                with path.open("rb") as source:
                    done = subprocess.run(
                        command, stdin=source, capture_output=True, timeout=600, check=False
                    )
            except subprocess.TimeoutExpired as exc:
                raise StageFailed(f"promtool on {monitoring.name} did not finish within 600 s") from exc
            if done.returncode != 0:
                raise StageFailed(
                    f"promtool on {monitoring.name} failed: {done.stderr.decode(errors='replace')[-800:]}"
                )

        try:
            client = PrometheusClient(
                f"https://{monitoring.address}:{port}",
                ca_file=str(INVENTORY_DIR / "files" / "monitoring-tls" / "ca.crt"),
                username="admin",
                password=inventory.credentials()["vault_monitoring_admin_password"],
                timeout=60,
            )
            outcome = replay_history(client, install, run.folder, say)
        except (HistoryError, InputError) as exc:
            raise StageFailed(str(exc)) from exc
        return outcome.line()

    def plan_stage() -> str:
        # The plan reads what a site's would (plan.yml's defaults: 14 days at 5-minute steps, 90 days ahead).
        summary = playbook("plan.yml", {"khronika_plan_report_dir": str(REPORTS_DIR)})
        written = sorted(str(p) for p in REPORTS_DIR.glob("capacity-plan.*"))
        run.reports += written
        return f"{summary.tasks} tasks; " + ", ".join(written)

    # A failed stage ends the run (what follows needs it); the summary is written either way.
    try:
        stage("hosts", hosts_stage)
        stage("registry", registry_stage)
        stage("site", site_stage)
        if options.traffic_seconds > 0:
            stage("traffic", traffic_stage)
        if options.update:
            stage("update", update_stage)
        if options.plan:
            stage("history", history_stage)
            stage("plan", plan_stage)
    except StageFailed:
        pass
    finally:
        _write_summary(run, started)
    return run


def _script(argv: list[str], env: dict[str, str], log: Path) -> None:
    with log.open("w") as handle:
        done = subprocess.run(
            argv, cwd=REPO_ROOT, env=env, stdout=handle, stderr=subprocess.STDOUT, check=False
        )
    if done.returncode != 0:
        tail = log.read_text(errors="replace").strip().splitlines()[-5:]
        raise StageFailed(f"{argv[0]} failed (rc {done.returncode}): {' / '.join(tail)} (log {log})")


def _newest(paths: Any) -> Path | None:
    found = sorted(paths, key=lambda p: p.stat().st_mtime)
    return found[-1] if found else None


def endpoints(hosts: list[LabHost]) -> dict[str, str]:
    monitoring = next((h for h in hosts if "khronika_monitoring" in h.groups), None)
    gateway = next((h for h in hosts if "khronika_gateway" in h.groups), None)
    found = {"registry": f"https://127.0.0.1:{REGISTRY_PORT} (user {REGISTRY_USER})"}
    if monitoring:
        found["prometheus"] = (
            f"https://{monitoring.address}:{inventory.role_default('monitoring_server', 'monitoring_server_prometheus_port')}"
            " (user admin)"
        )
        found["alertmanager"] = (
            f"https://{monitoring.address}:{inventory.role_default('monitoring_server', 'monitoring_server_alertmanager_port')}"
            " (user admin)"
        )
    if gateway:
        found["gateway"] = (
            f"https://{gateway.address}:{inventory.role_default('gateway', 'gateway_https_port')}/"
        )
    return found


def _write_summary(run: LabRun, started: float) -> None:
    data = {
        "ok": run.ok,
        "seconds": round(time.monotonic() - started, 1),
        "stages": [
            {"name": s.name, "seconds": round(s.seconds, 1), "ok": s.ok, "detail": s.detail}
            for s in run.stages
        ],
        "playbooks": {name: summary.as_dict() for name, summary in run.playbooks.items()},
        "hosts": [{"name": h.name, "address": h.address, "groups": list(h.groups)} for h in run.hosts],
        "endpoints": endpoints(run.hosts),
        "credentials": str(STATE_DIR / "credentials.yml"),
        "registry_password": str(REGISTRY_DIR / "password"),
        "reports": run.reports,
    }
    (run.folder / "summary.json").write_text(json.dumps(data, indent=2) + "\n")


def summary_lines(run: LabRun) -> list[str]:
    total = sum(stage.seconds for stage in run.stages)
    lines = [
        "",
        f"lab {'ready' if run.ok else 'FAILED'}: {len(run.hosts)} hosts, {format_seconds(total)} in the stages",
    ]
    lines += [
        f"  {s.name:<9} {'ok' if s.ok else 'FAILED':<6} {format_seconds(s.seconds):>7}" for s in run.stages
    ]
    lines.append(f"  run folder (logs, ansible-runner artifacts, summary.json): {run.folder}")
    for report in run.reports:
        lines.append(f"  report: {report}")
    for name, url in endpoints(run.hosts).items():
        lines.append(f"  {name:<12} {url}")
    lines.append(
        f"  credentials: {STATE_DIR / 'credentials.yml'} (vault_monitoring_admin_password is admin's), "
        f"registry password {REGISTRY_DIR / 'password'}"
    )
    lines.append(
        f"  inventory: {INVENTORY_DIR / 'hosts.yml'} (vault password file {STATE_DIR / 'vault-pass'})"
    )
    return lines
