"""The pre-flight of a planned update: every check that needs no host change, with all problems at once.

`playbooks/update.yml` (and `khronika update check`) ask this module before any downtime:

- the maintenance window: a start and a duration, optionally repeating (`every: 7d`); outside it the
  update is refused unless forced, and the refusal says when the window opens next;
- the versions: each targeted host's release record against the target release; a downgrade needs
  `allow_downgrade`, a host already on the target has nothing to switch, a host without a record is a
  first deployment;
- what the move does: the release diff from each recorded version (images, configuration, downtime
  class `none | partial | full`), the modules in dependency order with their strategy
  (recreate / rolling), the volumes to back up (`backup: before-update`) per host, and the images to
  pre-pull.

Reachability, the registry and the digests, and the disk the images and backups need are checked on
the hosts by the playbook (they need the hosts); what this module decides is data the play loops over.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from khronika_ops.platform.catalog import DeployPlan
from khronika_ops.platform.common import Seconds
from khronika_ops.platform.registry import ImageCheck
from khronika_ops.platform.release import DOWNTIME_RANK, DowntimeClass, Release, ReleaseDiff, diff, semver_key
from khronika_ops.validation import Problem, ProblemsError, StrictModel

# How the caller overrides a refusal, named in the refusal (the playbook's extra vars by default).
PLAYBOOK_OVERRIDES = {
    "window": "-e khronika_update_force_window=true",
    "downgrade": "-e khronika_update_allow_downgrade=true",
}
HostMove = Literal["upgrade", "downgrade", "same", "first-deployment"]


class UpdateRefused(ProblemsError):
    what = "update pre-flight"


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def iso(moment: datetime) -> str:
    return _utc(moment).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def human(seconds: float) -> str:
    """90 -> '2m', 14400 -> '4h', 604800 -> '7d' (minutes at best: a window's grain)."""
    minutes = round(seconds / 60)
    days, rest = divmod(minutes, 1440)
    hours, minutes = divmod(rest, 60)
    parts = [f"{days}d"] if days else []
    parts += [f"{hours}h"] if hours else []
    parts += [f"{minutes}m"] if minutes or not parts else []
    return " ".join(parts)


class MaintenanceWindow(StrictModel):
    """`start` (ISO 8601; UTC when no zone is given) for `duration`, repeating `every` when set."""

    start: datetime
    # A window is at most a month long and repeats at most yearly: anything longer is a typo (and beyond
    # what a date can hold, past some size).
    duration: Seconds = Field(gt=0, le=31 * 86400)
    every: Seconds | None = Field(None, gt=0, le=366 * 86400)

    @field_validator("start")
    @classmethod
    def _zone(cls, value: datetime) -> datetime:
        return _utc(value)

    @model_validator(mode="after")
    def _fits(self) -> MaintenanceWindow:
        if self.every is not None and self.every < self.duration:
            raise ValueError("a repeating window must not be longer than its period (every >= duration)")
        return self

    def opening(self, moment: datetime) -> tuple[datetime, datetime] | None:
        """The window that is open at `moment` or opens next after it; None when none is left."""
        moment = _utc(moment)
        length = timedelta(seconds=self.duration)
        start = self.start
        if self.every is not None and moment > start:
            period = timedelta(seconds=self.every)
            start += period * ((moment - start) // period)
            if moment >= start + length:
                start += period
        if moment >= start + length:
            return None
        return start, start + length

    def contains(self, moment: datetime) -> bool:
        window = self.opening(moment)
        return window is not None and window[0] <= _utc(moment) < window[1]

    def refusal(self, moment: datetime) -> str | None:
        """None inside the window, else why not and when it opens."""
        moment = _utc(moment)
        window = self.opening(moment)
        if window is None:
            end = self.start + timedelta(seconds=self.duration)
            return f"the maintenance window closed at {iso(end)} and does not repeat; set a new one"
        start, end = window
        if start <= moment < end:
            return None
        return (
            f"outside the maintenance window: it opens at {iso(start)} (in {human((start - moment).total_seconds())})"
            f" and lasts {human(self.duration)}"
        )


class WindowCheck(StrictModel):
    """The window as an update or a scale sees it now: its text for the plan, the open window's end,
    and why not (`refusal`, or `forced` when the operator overrode it)."""

    text: str
    ends_at: str | None = None
    refusal: str | None = None
    forced: str | None = None


def check_window(window: MaintenanceWindow | None, now: datetime, force: bool = False) -> WindowCheck:
    if window is None:
        return WindowCheck(text="none set (give khronika_update_window_start and _duration to enforce one)")
    refusal = window.refusal(now)
    if refusal is None:
        opened = window.opening(now)
        assert opened is not None
        return WindowCheck(text=f"open until {iso(opened[1])}", ends_at=iso(opened[1]))
    if force:
        return WindowCheck(text=f"forced: {refusal}", forced=refusal)
    return WindowCheck(text="", refusal=refusal)


class HostState(StrictModel):
    """What a host records (`khronika status`): its release version, or why it could not be read."""

    host: str
    version: str | None = None
    error: str | None = None
    missing: bool = False  # reachable, but no record: nothing deployed there yet


class HostUpdate(StrictModel):
    host: str
    from_version: str | None
    move: HostMove
    downtime: DowntimeClass
    modules: list[str]  # this host's modules, in dependency order
    rolling: list[str]  # those of them updated replica by replica
    backups: list[str]  # Docker volumes copied before the switch (backup: before-update)
    images: list[str]  # what to pre-pull while the old release still serves


class UpdatePreflight(StrictModel):
    to_version: str
    checked_at: str
    window: str  # "open until ..." or "forced: ..." or "none set"
    window_ends_at: str | None = None  # the open window's end (the silence lasts until then)
    downtime: DowntimeClass  # the worst over the hosts that switch
    downtime_reasons: list[str]
    hosts: list[HostUpdate]
    diffs: dict[str, ReleaseDiff]  # from-version -> the diff to the target
    warnings: list[str] = Field(default_factory=list)

    @property
    def switching(self) -> list[HostUpdate]:
        return [host for host in self.hosts if host.move != "same"]


def _unavailable(image: str) -> str:
    # A reference by digest is pulled; any other is an installation archive's tag, loaded beforehand.
    if "@" in image:
        return "cannot be pulled"
    return "is not loaded on the host (playbooks/install-offline.yml loads the release's archive)"


def preflight(
    *,
    target: Release,
    releases: Sequence[Release],
    deployment: DeployPlan,
    states: Sequence[HostState],
    strategies: Mapping[str, Literal["recreate", "rolling"]],
    now: datetime,
    window: MaintenanceWindow | None = None,
    force_window: bool = False,
    allow_downgrade: bool = False,
    overrides: Mapping[str, str] = PLAYBOOK_OVERRIDES,
    image_checks: Sequence[ImageCheck] = (),
) -> UpdatePreflight:
    """Decide the update or raise UpdateRefused with every reason; nothing here touches a host.
    `image_checks` (khronika_ops.platform.registry) are the registry's answers for the images."""
    problems: list[Problem] = []
    warnings: list[str] = []
    by_version = {release.version: release for release in releases}
    checked = check_window(window, now, force_window)
    window_text, window_ends_at = checked.text, checked.ends_at
    if checked.forced:
        warnings.append(f"the update runs outside its window ({checked.forced})")
    if checked.refusal:
        problems.append(Problem(None, "window", f"{checked.refusal}; {overrides['window']} overrides"))

    hosts: list[HostUpdate] = []
    diffs: dict[str, ReleaseDiff] = {}
    host_changes: dict[str, ReleaseDiff] = {}  # each switching host's own view of its move
    target_key = semver_key(target.version)
    for state in sorted(states, key=lambda item: item.host):
        if state.version is None and state.error is not None and not state.missing:
            problems.append(Problem(None, state.host, f"cannot read its release record: {state.error}"))
            continue
        move: HostMove
        change: ReleaseDiff | None = None
        if state.version is None:
            move = "first-deployment"
        else:
            source = by_version.get(state.version)
            if source is None:
                problems.append(
                    Problem(
                        None,
                        state.host,
                        f"runs {state.version}, which has no manifest in the releases folder",
                    )
                )
                continue
            key = semver_key(state.version)
            move = "same" if key == target_key else "upgrade" if key < target_key else "downgrade"
            if move == "downgrade" and not allow_downgrade:
                problems.append(
                    Problem(
                        None,
                        state.host,
                        f"runs {state.version}, newer than {target.version}: a downgrade needs "
                        f"{overrides['downgrade']}",
                    )
                )
                continue
            if move != "same":
                low, high = sorted((key, target_key))
                between = [r for r in releases if low < r.sort_key < high]
                if state.version not in diffs:
                    diffs[state.version] = diff(source, target, strategies=strategies, between=between)
                # The host's own class: what touches the modules it runs, and what touches every module.
                plan = deployment.hosts.get(state.host)
                change = diff(
                    source,
                    target,
                    strategies=strategies,
                    between=between,
                    modules={c.module for c in plan.containers} if plan is not None else set(),
                )
        if change is not None:
            host_changes[state.host] = change
        hosts.append(_host_update(state, move, change, deployment, strategies))
    needed = {image for host in hosts for image in host.images}
    problems += [
        Problem(None, check.image, f"{_unavailable(check.image)}: {check.reason}")
        for check in image_checks
        if not check.ok and check.image in needed
    ]
    if problems:
        raise UpdateRefused(problems)
    switching = [host for host in hosts if host.move != "same"]
    if not switching:
        warnings.append(f"every targeted host already runs {target.version}: nothing to switch")
    downtime: DowntimeClass = max(
        (host.downtime for host in switching), key=DOWNTIME_RANK.__getitem__, default="none"
    )
    reasons = sorted(
        {
            reason
            for change in host_changes.values()
            if change.downtime == downtime
            for reason in change.downtime_reasons
        }
    )
    if any(host.move == "first-deployment" for host in switching) and downtime == "full":
        reasons.append("a host without a release record gets its first deployment")
    return UpdatePreflight(
        to_version=target.version,
        checked_at=iso(now),
        window=window_text,
        window_ends_at=window_ends_at,
        downtime=downtime,
        downtime_reasons=reasons or ["no running module restarts"],
        hosts=hosts,
        diffs=diffs,
        warnings=warnings,
    )


def _host_update(
    state: HostState,
    move: HostMove,
    change: ReleaseDiff | None,
    deployment: DeployPlan,
    strategies: Mapping[str, str],
) -> HostUpdate:
    plan = deployment.hosts.get(state.host)
    containers = plan.containers if plan is not None else []
    modules = list(dict.fromkeys(container.module for container in containers))
    downtime: DowntimeClass
    if move == "same":
        downtime = "none"
    elif move == "first-deployment":
        downtime = "full" if modules else "none"
    else:
        assert change is not None
        downtime = change.downtime
    return HostUpdate(
        host=state.host,
        from_version=state.version,
        move=move,
        downtime=downtime,
        modules=modules,
        rolling=[name for name in modules if strategies.get(name) == "rolling"],
        # A first deployment has no data yet: nothing to copy before it.
        backups=[]
        if move in {"same", "first-deployment"}
        else [v.docker_name for v in (plan.volumes if plan else []) if v.backup == "before-update"],
        images=[] if move == "same" else sorted({container.image for container in containers}),
    )


def states_from_records(records: Mapping[str, Mapping[str, Any]]) -> list[HostState]:
    """`khronika status` records (host -> record or {"error": ...}) as host states."""
    return [
        HostState(
            host=host,
            version=record.get("version"),
            error=record.get("error"),
            missing=bool(record.get("missing", False)),
        )
        for host, record in sorted(records.items())
    ]


def render_text(result: UpdatePreflight) -> str:
    """The plan of the update as an operator reads it before the window (also what --check prints)."""
    switching = result.switching
    lines = [
        f"update to {result.to_version}: downtime {result.downtime}; window {result.window}",
        *(f"  - {reason}" for reason in result.downtime_reasons),
    ]
    for host in result.hosts:
        head = f"{host.host}: {host.from_version or 'nothing recorded'} -> {result.to_version} ({host.move}"
        lines.append(head + (f", downtime {host.downtime})" if host.move != "same" else ")"))
        if host.move == "same":
            continue
        order = ", ".join(f"{name} (rolling)" if name in host.rolling else name for name in host.modules)
        lines.append(f"  switch in order: {order or 'no module'}")
        lines.append(f"  pre-pull: {', '.join(host.images) or 'nothing'}")
        lines.append(f"  back up: {', '.join(host.backups) or 'nothing'}")
    for change in result.diffs.values():
        for config in change.config_changes:
            lines.append(
                f"config from {change.from_version}: {config.key}: {config.from_value!r} -> {config.to_value!r}  {config.note}"
            )
    lines += [f"warning: {warning}" for warning in result.warnings]
    lines.append(f"{len(switching)} of {len(result.hosts)} host(s) switch")
    return "\n".join(lines) + "\n"
