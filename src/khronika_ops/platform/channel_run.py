"""`khronika update auto`: one run of the release channel (docs/updates.md, "The release channel").

A run decides with `channel.decide`; when a release applies it walks the rollout's stages, each one the
normal update path (`update.yml`, or `install-offline.yml` for an archive, limited to the stage's hosts:
pre-flight, backups, switch, health gate, rollback), then a soak that watches the site's Prometheus
(`Prometheus`, `bad_signs`): each module's 5xx share and latency since the switch against the same
figures before it, and alerts that were not firing before. A bad sign rolls the stage back late
(`update.yml` back to the previous release with `khronika_update_late_rollback`: every module's newer
data copied aside, restored from the stage's own copies where the catalog and the policy say so), marks
the release failed (never retried automatically) and halts the channel: a state the next runs respect,
and an Alertmanager alert (`HALT_ALERT`) re-sent by every run until `khronika update resume`.

Every step is saved in the channel's state before the next begins, so a run that is killed (a
controller reboot) or stopped by the window's end goes on where it stopped in the next run: a stage
half done is finished by the same update run again, which switches only the hosts not on the release.
"""

from __future__ import annotations

import json
import math
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from khronika_ops.platform.channel import (
    ChannelRelease,
    ChannelState,
    Halt,
    Offer,
    Rollout,
    RunLine,
    Stage,
    StateStore,
    Watch,
    decide,
    now_iso,
    open_channel,
    plan_stages,
    problem,
)
from khronika_ops.platform.channel_site import Site
from khronika_ops.platform.update import iso

HALT_ALERT = "KhronikaUpdateChannelHalted"
ALERT_HOLD = timedelta(hours=24)  # a halt alert lives this long past the last run that re-sent it
MAX_PROMETHEUS_ANSWER = 4 << 20
# What a stage needs besides its soak: the update path on its hosts (pre-flight to health gate). A stage
# is not started when the window closes before its switch and soak could end.
STAGE_ALLOWANCE = timedelta(minutes=10)


class WatchBlind(RuntimeError):
    """Prometheus could not be asked: the soak cannot tell good from bad."""


@dataclass(frozen=True)
class Figures:
    requests: float
    errors: float
    latency: float | None

    @property
    def error_share(self) -> float:
        return self.errors / self.requests if self.requests > 0 else 0.0


class Prometheus:
    """The few questions the soak asks the site's Prometheus (HTTP API v1), answers bounded."""

    def __init__(self, watch: Watch, timeout: float = 10.0) -> None:
        assert watch.prometheus is not None
        self.url = watch.prometheus.rstrip("/")
        self.watch = watch
        self.timeout = timeout
        self.context = ssl.create_default_context(cafile=watch.ca_file) if watch.ca_file else None

    def _get(self, path: str, params: Mapping[str, str]) -> Any:
        request = urllib.request.Request(f"{self.url}{path}?{urllib.parse.urlencode(params)}")
        if self.watch.user:
            import base64

            token = base64.b64encode(f"{self.watch.user}:{self.watch.password}".encode()).decode()
            request.add_header("Authorization", f"Basic {token}")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout, context=self.context) as answer:
                body = answer.read(MAX_PROMETHEUS_ANSWER + 1)
        except (urllib.error.URLError, OSError) as exc:
            raise WatchBlind(
                f"Prometheus {self.url} does not answer: {getattr(exc, 'reason', exc)}"
            ) from None
        if len(body) > MAX_PROMETHEUS_ANSWER:
            raise WatchBlind(f"Prometheus {self.url}: an answer larger than {MAX_PROMETHEUS_ANSWER} bytes")
        try:
            document = json.loads(body)
        except ValueError:
            raise WatchBlind(f"Prometheus {self.url} answered something that is not JSON") from None
        if not isinstance(document, dict) or document.get("status") != "success":
            raise WatchBlind(f"Prometheus {self.url}: {str(document)[:200]}")
        return document.get("data")

    def query(self, expr: str, at: float) -> dict[str, float]:
        """module -> value of an instant vector summed or averaged by module."""
        data = self._get("/api/v1/query", {"query": expr, "time": f"{at:.3f}"})
        values: dict[str, float] = {}
        for item in (data or {}).get("result", []) if isinstance(data, dict) else []:
            module = str((item.get("metric") or {}).get("module", ""))
            try:
                value = float(item["value"][1])
            except (KeyError, IndexError, TypeError, ValueError):
                continue
            if module and not math.isnan(value):  # NaN: no samples in the range
                values[module] = value
        return values

    def figures(self, seconds: float, at: float) -> dict[str, Figures]:
        """Each module's requests, 5xx answers and mean latency over the `seconds` before `at`."""
        span = f"{max(int(seconds), 30)}s"
        requests = self.query(f"sum by (module) (increase(khronika_module_requests_total[{span}]))", at)
        errors = self.query(f"sum by (module) (increase(khronika_module_errors_total[{span}]))", at)
        latency = self.query(
            f"avg by (module) (avg_over_time(khronika_module_request_duration_seconds[{span}]))", at
        )
        return {
            module: Figures(requests.get(module, 0.0), errors.get(module, 0.0), latency.get(module))
            for module in sorted(set(requests) | set(latency))
        }

    def firing(self) -> set[str]:
        """The alerts firing now, as `name{label=value,...}` (the channel's own halt left out)."""
        data = self._get("/api/v1/alerts", {})
        found = set()
        for alert in (data or {}).get("alerts", []) if isinstance(data, dict) else []:
            labels = alert.get("labels") or {}
            if alert.get("state") != "firing" or labels.get("alertname") == HALT_ALERT:
                continue
            rest = ",".join(f"{k}={v}" for k, v in sorted(labels.items()) if k != "alertname")
            found.add(f"{labels.get('alertname', '?')}{{{rest}}}")
        return found


def bad_signs(
    before: Mapping[str, Figures],
    during: Mapping[str, Figures],
    watch: Watch,
    alerts_before: set[str] = frozenset(),  # type: ignore[assignment]
    alerts_now: set[str] = frozenset(),  # type: ignore[assignment]
) -> list[str]:
    """What in `during` (since the switch) is worse than `before` by the watch's rules, in sentences."""
    signs = []
    for module, now in sorted(during.items()):
        then = before.get(module, Figures(0.0, 0.0, None))
        if now.requests >= watch.min_requests:
            limit = max(watch.error_share, 2 * then.error_share)
            if now.error_share > limit:
                signs.append(
                    f"{module}: {now.error_share:.1%} of {now.requests:.0f} requests answered 5xx since the switch"
                    f" (before: {then.error_share:.1%}; the watch allows {limit:.1%})"
                )
        if (
            now.latency is not None
            and then.latency
            and now.latency > watch.latency_floor
            and now.latency > watch.latency_ratio * then.latency
        ):
            signs.append(
                f"{module}: mean latency {now.latency * 1000:.0f} ms since the switch, {now.latency / then.latency:.1f}x"
                f" the {then.latency * 1000:.0f} ms before (the watch allows {watch.latency_ratio:g}x)"
            )
    if watch.alerts:
        signs += [f"alert firing since the switch: {alert}" for alert in sorted(alerts_now - alerts_before)]
    return signs


@dataclass
class StageResult:
    ok: bool
    message: str
    report: dict[str, Any] | None = None
    run_dir: str = ""


# (playbook, extra variables, report folder, label) -> the run's result
Executor = Callable[[str, dict[str, Any], Path, str], StageResult]


@dataclass
class Clock:
    now: Callable[[], datetime] = lambda: datetime.now(UTC)
    sleep: Callable[[float], None] = time.sleep


class Alerts:
    """The halt's Alertmanager alert; `None` URL: no Alertmanager, the state file and the log say it."""

    def __init__(
        self, url: str | None, user: str = "", password: str = "", ca_file: str | None = None
    ) -> None:
        from khronika_ops.platform.lease import Alertmanager

        self.manager = Alertmanager(url, user, password, ca_file or None) if url else None

    @classmethod
    def for_site(cls, access: Mapping[str, str]) -> Alerts:
        """From the site's {url, user, password, ca} (channel_site.Site.alertmanager)."""
        return cls(access.get("url"), access.get("user", ""), access.get("password", ""), access.get("ca"))

    def _send(self, site: str, halt: Halt, ends: datetime, say: Callable[[str], None]) -> None:
        if self.manager is None:
            return
        from khronika_ops.platform.lease import LeaseError

        alert = {
            "labels": {
                "alertname": HALT_ALERT,
                "severity": "critical",
                "site": site,
                "release": halt.release,
            },
            "annotations": {
                "summary": f"The release channel of {site} is halted on {halt.release}",
                "description": f"{halt.reason} (since {halt.at}). After a look: khronika update resume",
            },
            "startsAt": halt.at,
            "endsAt": iso(ends),
        }
        try:
            self.manager.post_alerts([alert])
        except LeaseError as exc:
            say(f"warning: the halt alert could not be sent to Alertmanager: {exc}")

    def fire(self, site: str, halt: Halt, now: datetime, say: Callable[[str], None]) -> None:
        self._send(site, halt, now + ALERT_HOLD, say)

    def resolve(self, site: str, halt: Halt, now: datetime, say: Callable[[str], None]) -> None:
        self._send(site, halt, now, say)


class ChannelRun:
    """One `khronika update auto`: decide, then walk the rollout, saving each step."""

    def __init__(
        self,
        site: Site,
        store: StateStore,
        execute: Executor,
        *,
        alerts: Alerts,
        say: Callable[[str], None] = print,
        clock: Clock | None = None,
        prometheus: Prometheus | None = None,
        offer: Offer | None = None,
    ) -> None:
        self.site = site
        self.policy = site.policy
        self.store = store
        self.execute = execute
        self.alerts = alerts
        self.say = say
        self.clock = clock or Clock()
        self.prometheus = prometheus
        self.offer = offer
        self.state = ChannelState()

    # -- the state ---------------------------------------------------------------------------------

    def _save(self) -> None:
        self.store.save(self.state)

    def _line(self, action: str, result: str, message: str, release: str | None = None) -> None:
        self.state = self.state.with_run(
            RunLine(
                at=now_iso(self.clock.now()), action=action, release=release, result=result, message=message
            )
        )
        self._save()
        self.say(f"{action}: {result}: {message}")

    def _rollout(self, **changes: Any) -> Rollout:
        assert self.state.rollout is not None
        rollout = self.state.rollout.model_copy(update=changes)
        self.state = self.state.model_copy(update={"rollout": rollout})
        self._save()
        return rollout

    def _stage(self, index: int, **changes: Any) -> Stage:
        assert self.state.rollout is not None
        stages = list(self.state.rollout.stages)
        stages[index] = stages[index].model_copy(update=changes)
        self._rollout(stages=stages)
        return stages[index]

    def _halt(self, release: str, reason: str, run: str = "", fail: bool = True) -> int:
        now = self.clock.now()
        halt = Halt(release=release, reason=reason, at=now_iso(now), run=run)
        failed = {**self.state.failed, release: reason} if fail else self.state.failed
        update: dict[str, Any] = {"halted": halt, "failed": failed}
        if fail and self.state.rollout is not None:  # this rollout is over; status still shows it
            update |= {"rollout": None, "last_rollout": self.state.rollout}
        self.state = self.state.model_copy(update=update)
        self._line("auto", "halted", f"{release}: {reason}", release)
        self.alerts.fire(self.site.name, halt, now, self.say)
        return 1

    # -- the run -----------------------------------------------------------------------------------

    def run(self) -> int:
        with self.store.lock():
            self.state = self.store.load()
            now = self.clock.now()
            if self.state.halted is not None:
                halt = self.state.halted
                self.alerts.fire(self.site.name, halt, now, self.say)  # kept firing while halted
                self.say(
                    f"halted since {halt.at} on {halt.release}: {halt.reason}; `khronika update resume` after a look"
                )
                return 0
            rolling = self.state.rollout is not None and self.state.rollout.next_stage() is not None
            channel = open_channel(self.policy)
            offer = self.offer
            if offer is None:
                offer = Offer([], []) if rolling else channel.offer(newer_than=self.site.release)
            for refused in offer.refused:
                self.say(f"refused by the channel: {refused.origin}: {refused.reason}")
            decision = decide(self.policy, self.state, self.site.release, offer, now)
            if decision.action in ("nothing", "paused", "wait"):
                self.say(f"{decision.action}: {decision.message}")
                return 0
            if decision.action == "apply":
                assert decision.release is not None
                target = next(item for item in offer.releases if item.version == decision.release)
                self._start(target)
            return self._walk()

    def _start(self, target: ChannelRelease) -> None:
        canary_hosts = self.site.groups.get(self.policy.canary.group or "", [])
        stages = plan_stages(self.site.hosts, self.policy.canary, canary_hosts, self.policy.batch)
        if target.archive is None:
            self._write_manifest(target)
        rollout = Rollout(
            release=target.version,
            from_release=self.site.release or "",
            started_at=now_iso(self.clock.now()),
            stages=stages,
            origin=target.origin,
            archive=target.archive,
        )
        self.state = self.state.model_copy(update={"rollout": rollout})
        self._line(
            "auto",
            "started",
            f"{rollout.from_release or 'nothing'} -> {target.version} from {target.origin}: "
            + "; ".join(f"{stage.name} {', '.join(stage.hosts)}" for stage in stages),
            target.version,
        )

    def _write_manifest(self, target: ChannelRelease) -> None:
        """The release manifest into the site's releases folder, where update.yml reads it (another
        manifest under the same number there is refused: a number names one release)."""
        if not self.site.releases_dir:
            raise problem(
                "khronika_releases_dir is not set: the channel writes the releases it fetches there"
            )
        folder = Path(self.site.releases_dir)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{target.version}.yml"
        if path.exists():
            if path.read_text(encoding="utf-8") != target.text:
                from khronika_ops.platform.release import load_release

                if load_release(path) != target.release:
                    raise problem(
                        f"{path} holds another release {target.version} than the channel's; refused"
                    )
            return
        temporary = path.with_name(f".{path.name}.tmp")
        temporary.write_text(target.text, encoding="utf-8")
        temporary.replace(path)

    def _window_end(self, now: datetime) -> datetime | None:
        opened = self.policy.window.opening(now)
        if opened is None or not opened[0] <= now < opened[1]:
            return None
        return opened[1]

    def _walk(self) -> int:
        rollout = self.state.rollout
        assert rollout is not None
        for index in range(len(rollout.stages)):
            assert self.state.rollout is not None
            stage = self.state.rollout.stages[index]
            if stage.state in ("soaked", "failed"):
                continue
            if stage.state == "rolled-back":
                return self._halt(rollout.release, f"{stage.name} was rolled back", stage.run)
            now = self.clock.now()
            end = self._window_end(now)
            needed = timedelta(seconds=self.policy.soak) + (
                STAGE_ALLOWANCE if stage.state == "pending" else timedelta()
            )
            if end is None or now + needed > end:
                self._line(
                    "auto",
                    "waiting",
                    f"{rollout.release}: the window ends at {iso(end) if end else 'now'}, before {stage.name} could"
                    f" switch and soak ({needed.total_seconds() / 60:.0f} min); it goes on in the next window",
                    rollout.release,
                )
                return 0
            if stage.state == "pending":
                code = self._switch(index)
                if code is not None:
                    return code
                if self.state.rollout.stages[index].state == "failed":
                    continue  # failed within the budget: rolled back by its update, nothing to soak
            code = self._soak(index)
            if code is not None:
                return code
        rollout = self.state.rollout
        assert rollout is not None
        failed = (
            f"; failed within the budget: {', '.join(rollout.failed_hosts)}" if rollout.failed_hosts else ""
        )
        took = (
            self.clock.now() - datetime.fromisoformat(rollout.started_at.replace("Z", "+00:00"))
        ).total_seconds()
        self.state = self.state.model_copy(update={"rollout": None, "last_rollout": rollout})
        self._line(
            "auto",
            "applied",
            f"{rollout.from_release or 'nothing'} -> {rollout.release} on {len(self.site.hosts)} host(s) in"
            f" {took / 60:.1f} min{failed}",
            rollout.release,
        )
        return 0

    def _update_vars(self, stage: Stage, release: str) -> dict[str, Any]:
        window = self.policy.window
        values: dict[str, Any] = {
            "khronika_release_version": release,
            "khronika_update_hosts": ":".join(stage.hosts),
            "khronika_update_window_start": iso(window.start),
            "khronika_update_window_duration": f"{int(window.duration)}s",
        }
        if window.every:
            values["khronika_update_window_every"] = f"{int(window.every)}s"
        return values

    def _report_dir(self, stage: Stage, what: str) -> Path:
        rollout = self.state.rollout
        assert rollout is not None
        stamp = rollout.started_at.replace(":", "").replace("-", "")
        name = f"{what}-{stage.name.replace(' ', '-')}"
        return self.store.folder / "reports" / f"{rollout.release}-{stamp}" / name

    def _switch(self, index: int) -> int | None:
        rollout = self.state.rollout
        assert rollout is not None
        stage = self._stage(index, started_at=now_iso(self.clock.now()))
        self.say(f"{rollout.release}: {stage.name}: updating {', '.join(stage.hosts)}")
        values = self._update_vars(stage, rollout.release)
        playbook = "update.yml"
        if rollout.archive is not None:
            playbook = "install-offline.yml"
            values |= {"khronika_archive": rollout.archive, "khronika_archive_key": self.policy.key}
        report_dir = self._report_dir(stage, "update")
        values["khronika_update_report_dir"] = str(report_dir)
        result = self.execute(playbook, values, report_dir, f"{rollout.release} {stage.name}")
        if result.ok:
            self._stage(index, state="switched", switched_at=now_iso(self.clock.now()), run=result.run_dir)
            return None
        failed_hosts = [*rollout.failed_hosts, *stage.hosts]
        self._rollout(failed_hosts=failed_hosts)
        self._stage(index, state="failed", run=result.run_dir, note=result.message[:300])
        if index == 0 or len(failed_hosts) > self.policy.failure_budget:
            where = (
                "the canary"
                if index == 0
                else f"{stage.name}, past the failure budget ({self.policy.failure_budget})"
            )
            return self._halt(
                rollout.release,
                f"{where} ({', '.join(stage.hosts)}) failed its update: {result.message}",
                result.run_dir,
            )
        self.say(f"{rollout.release}: {stage.name} failed within the failure budget; the next batch goes on")
        return None

    def _soak(self, index: int) -> int | None:
        rollout = self.state.rollout
        assert rollout is not None
        stage = rollout.stages[index]
        watch = self.policy.watch
        started = datetime.fromisoformat(
            (stage.started_at or stage.switched_at or now_iso()).replace("Z", "+00:00")
        )
        switched = datetime.fromisoformat((stage.switched_at or now_iso()).replace("Z", "+00:00"))
        end = switched + timedelta(seconds=self.policy.soak)
        self.say(
            f"{rollout.release}: {stage.name}: soak until {iso(end)}"
            + (f", watching {watch.prometheus}" if self.prometheus else "")
        )
        try:
            before: dict[str, Figures] = {}
            alerts_before: set[str] = set()
            if self.prometheus is not None:
                before = self.prometheus.figures(watch.baseline, started.timestamp())
                alerts_before = (
                    set(stage.alerts_before) if stage.alerts_before is not None else self.prometheus.firing()
                )
                if stage.alerts_before is None:
                    stage = self._stage(index, alerts_before=sorted(alerts_before))
            while True:
                now = self.clock.now()
                signs: list[str] = []
                if self.prometheus is not None and now > switched:
                    during = self.prometheus.figures((now - switched).total_seconds(), now.timestamp())
                    signs = bad_signs(before, during, watch, alerts_before, self.prometheus.firing())
                if signs:
                    return self._late_rollback(index, signs)
                if now >= end:
                    break
                self.clock.sleep(max(0.0, min(watch.interval, (end - now).total_seconds())))
        except WatchBlind as exc:
            return self._halt(
                rollout.release, f"{stage.name}: the soak could not watch: {exc}", stage.run, fail=False
            )
        self._stage(index, state="soaked", soaked_at=now_iso(self.clock.now()))
        self.say(f"{rollout.release}: {stage.name}: soaked, nothing bad seen")
        return None

    def _late_rollback(self, index: int, signs: list[str]) -> int:
        rollout = self.state.rollout
        assert rollout is not None
        stage = rollout.stages[index]
        reason = f"{stage.name} ({', '.join(stage.hosts)}) after its switch: " + "; ".join(signs)
        self.say(f"{rollout.release}: bad sign: {reason}")
        report = _read_report(Path(stage.run)) if stage.run else None
        restore, held = late_restore(
            report, self.site.modules, stage.hosts, self.policy.late_rollback_restore
        )
        if held:
            self._stage(index, note="left on the release: " + "; ".join(held))
            return self._halt(
                rollout.release,
                reason
                + ". Not rolled back: "
                + "; ".join(held)
                + " (late_rollback_restore is false: the operator decides; update.yml back to"
                f" {rollout.from_release} with the stage's copies restores it)",
                stage.run,
            )
        values = self._update_vars(stage, rollout.from_release)
        values |= {
            "khronika_update_allow_downgrade": True,
            "khronika_update_force_window": True,  # damage control does not wait for a window
            "khronika_update_late_rollback": {
                "run": Path(stage.run).name if stage.run else "",
                "restore": restore,
            },
        }
        if rollout.archive is not None:
            values["khronika_image_source"] = "archive"
        report_dir = self._report_dir(stage, "rollback")
        values["khronika_update_report_dir"] = str(report_dir)
        result = self.execute(
            "update.yml", values, report_dir, f"{rollout.from_release} late rollback of {stage.name}"
        )
        aside = set_aside(result.report)
        kept = f" Newer data kept aside: {'; '.join(aside)}." if aside else ""
        if result.ok:
            self._stage(
                index, state="rolled-back", note=("set aside: " + "; ".join(aside))[:500] if aside else ""
            )
            return self._halt(
                rollout.release, f"{reason}. Rolled back to {rollout.from_release}.{kept}", result.run_dir
            )
        self._stage(index, state="failed", note=result.message[:300])
        return self._halt(
            rollout.release, f"{reason}. The late rollback FAILED: {result.message}.{kept}", result.run_dir
        )


def _read_report(run_dir: Path) -> dict[str, Any] | None:
    path = run_dir / "update-report.json"
    try:
        if path.stat().st_size > 16 << 20:
            return None
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return document if isinstance(document, dict) else None


def late_restore(
    report: Mapping[str, Any] | None,
    modules: Sequence[Mapping[str, Any]],
    hosts: Sequence[str],
    policy_restores: bool,
) -> tuple[dict[str, list[dict[str, Any]]], list[str]]:
    """For a late rollback of `hosts`: the stage's own copies to restore (host -> [{module, volume, path,
    sha256}]), and what holds the rollback back (a module whose data the previous release may not read,
    `rollback_data: restore`, when the policy does not restore)."""
    keep = {str(module.get("name")) for module in modules if module.get("rollback_data") == "keep"}
    restore: dict[str, list[dict[str, Any]]] = {}
    held: list[str] = []
    for outcome in (report or {}).get("hosts", []):
        host = str(outcome.get("host"))
        if host not in hosts:
            continue
        for backup in outcome.get("backups") or []:
            if backup.get("set_aside") or str(backup.get("module")) in keep:
                continue
            if not policy_restores:
                held.append(
                    f"{backup.get('module')} on {host} (its data {backup.get('volume')} may not be read by the previous release)"
                )
                continue
            restore.setdefault(host, []).append(
                {key: backup[key] for key in ("module", "volume", "path", "sha256") if key in backup}
            )
    return restore, held


def set_aside(report: Mapping[str, Any] | None) -> list[str]:
    return [
        f"{backup.get('host')}:{backup.get('path')}"
        for outcome in (report or {}).get("hosts", [])
        for backup in outcome.get("backups") or []
        if backup.get("set_aside")
    ]


def playbook_executor(
    inventory: str,
    *,
    vault_password_file: Path | None,
    artifacts_root: Path,
    strategy: str | None = None,
    say: Callable[[str], None] = print,
) -> Executor:
    """Stages run as the operator would run them: a playbook of the collection through ansible-runner
    (`khronika run`'s way: every extra variable `!unsafe`), its report read from the stage's folder."""
    from khronika_ops.runner import RunError, run_playbook

    def execute(playbook: str, values: dict[str, Any], report_dir: Path, label: str) -> StageResult:
        report_dir.mkdir(parents=True, exist_ok=True)
        say(f"{label}: {playbook} on {values.get('khronika_update_hosts')}")
        try:
            summary = run_playbook(
                playbook,
                inventory,
                extravars=values,
                vault_password_file=vault_password_file,
                artifacts_root=artifacts_root,
                strategy=strategy,
                say=lambda line: say(f"  {line}"),
            )
        except RunError as exc:
            return StageResult(False, str(exc))
        runs = sorted(path for path in report_dir.glob("update-*") if path.is_dir())
        run_dir = str(runs[-1]) if runs else ""
        report = _read_report(Path(run_dir)) if run_dir else None
        ok = summary.rc == 0 and report is not None and report.get("result") == "succeeded"
        failures = [
            f"{outcome.get('host')}: {outcome.get('failure')}"
            for outcome in (report or {}).get("hosts", [])
            if outcome.get("failure")
        ]
        message = "; ".join(failures) or "; ".join([*summary.failures, *summary.errors][:3]) or summary.status
        if report is not None and report.get("result") != "succeeded":
            message = f"{report.get('result')}: {message}"
        return StageResult(ok, message[:2000], report, run_dir)

    return execute
