"""What `playbooks/update.yml` decides while it runs, after the pre-flight (`update.py`) said yes:

- `switch_steps`: the switch of one batch as steps every host walks in lockstep: modules in dependency
  order; a `recreate` module is one step (its containers stop and start together), a `rolling` module
  one step per replica across the batch, so exactly one replica at a time is drained out of the
  gateway, recreated, and put back once healthy;
- `batch_verdict`: whether a batch failed too often for the next batch to start (the update's own
  `max_fail_percentage`, counted over host outcomes, unreachable hosts included);
- `silence`: the Alertmanager API v2 silence for the hosts of the update, for the window;
- `gateway_checks`: the HTTP check of every module through the gateway (its route + health path);
- the update report (`UpdateReport`, Markdown and JSON) and the audit log entry built from it.

The playbook loops over what these return; it decides nothing itself.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import Field

from khronika_ops.platform.catalog import DeployPlan
from khronika_ops.platform.common import HostMinimum
from khronika_ops.platform.health import last_health_output
from khronika_ops.platform.release import MODULE_CONFIG_KEY_RE, DowntimeClass, Release
from khronika_ops.platform.update import iso
from khronika_ops.quantities import parse_duration
from khronika_ops.validation import StrictModel

HostResult = Literal["updated", "unchanged", "rolled-back", "rollback-failed", "unreachable", "not-started"]
SUCCESSFUL: frozenset[str] = frozenset({"updated", "unchanged"})
PlannedDowntime = Literal["none", "restart", "maintenance"]


class SwitchStep(StrictModel):
    index: int
    module: str
    strategy: Literal["recreate", "rolling"]
    containers: dict[str, list[str]]  # host -> the container names switched in this step
    drain: list[str]  # gateway upstreams taken out during the step: "host/container"


def switch_steps(plan: DeployPlan, hosts: Sequence[str]) -> list[SwitchStep]:
    """The steps of a batch's switch (see the module doc); hosts outside `hosts` take no part."""
    batch = [host for host in sorted(hosts) if host in plan.hosts]
    routed = {route.module for route in plan.gateway_routes}
    steps: list[SwitchStep] = []
    for module in plan.order:
        placed = [
            (host, container)
            for host in batch
            for container in sorted(plan.hosts[host].containers, key=lambda item: item.replica)
            if container.module == module
        ]
        if not placed:
            continue
        strategy = placed[0][1].update
        if strategy == "rolling":
            for host, container in placed:
                steps.append(
                    SwitchStep(
                        index=len(steps),
                        module=module,
                        strategy="rolling",
                        containers={host: [container.name]},
                        drain=[f"{host}/{container.name}"] if module in routed else [],
                    )
                )
        else:
            grouped: dict[str, list[str]] = {}
            for host, container in placed:
                grouped.setdefault(host, []).append(container.name)
            steps.append(
                SwitchStep(index=len(steps), module=module, strategy="recreate", containers=grouped, drain=[])
            )
    return steps


class BatchVerdict(StrictModel):
    batch: list[str]
    failed: list[str]
    failed_percentage: float
    max_fail_percentage: float
    stop: bool
    reason: str


def batch_verdict(
    batch: Sequence[str], outcomes: Mapping[str, str], max_fail_percentage: float
) -> BatchVerdict:
    """Stop the update when the batch's failed hosts exceed `max_fail_percentage` (Ansible's meaning:
    more than that share); a host without an outcome did not finish (unreachable)."""
    hosts = sorted(batch)
    failed = [host for host in hosts if outcomes.get(host, "unreachable") not in SUCCESSFUL]
    share = 100.0 * len(failed) / len(hosts) if hosts else 0.0
    stop = share > max_fail_percentage
    reason = (
        f"{len(failed)} of {len(hosts)} host(s) of the batch failed ({share:.0f} % > {max_fail_percentage:g} %): "
        "the hosts after this batch stay on their release"
        if stop
        else f"{len(failed)} of {len(hosts)} host(s) of the batch failed (limit {max_fail_percentage:g} %)"
    )
    return BatchVerdict(
        batch=hosts,
        failed=failed,
        failed_percentage=round(share, 1),
        max_fail_percentage=max_fail_percentage,
        stop=stop,
        reason=reason,
    )


def data_check_writes(
    containers: Sequence[Mapping[str, Any]], modules: Sequence[str]
) -> list[dict[str, Any]]:
    """The records written before a host's switch: one per module of `modules` whose catalog declares a
    data_check (its first replica, on the host's published port)."""
    writes = []
    for container in containers:
        check = container.get("data_check")
        if check and container.get("module") in modules and int(container.get("replica") or 1) == 1:
            writes.append(
                {
                    "module": str(container["module"]),
                    "url": f"http://127.0.0.1:{int(check['port'])}{check['create']}",
                    "body": dict(check["body"]),
                    "location_field": str(check["location_field"]),
                    "port": int(check["port"]),
                }
            )
    return writes


def data_check_reads(written: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """What to read back after the switch: for each record written (a `uri` loop's results), the path
    its answer gave. A write whose answer names no path is an error naming the module."""
    reads = []
    for result in written:
        write = result.get("item") or {}
        answer = result.get("json") if isinstance(result.get("json"), Mapping) else {}
        location = str((answer or {}).get(write.get("location_field", "location")) or "")
        if not location.startswith("/") or "//" in location or ".." in location:
            raise ValueError(
                f"data check of {write.get('module')}: the answer to POST {write.get('url')} gives no path in "
                f"{write.get('location_field')!r} (got {location!r})"
            )
        reads.append(
            {
                "module": write["module"],
                "url": f"http://127.0.0.1:{int(write['port'])}{location}",
                "body": dict(write["body"]),
            }
        )
    return reads


MAX_DATA_CHECK_ANSWER = 1024 * 1024


def _holds(answer: Any, key: str, value: str, depth: int = 0) -> bool:
    """Whether `key: value` is in the answer, at its top or nested (a module may wrap what it stored)."""
    if depth > 20:
        return False
    if isinstance(answer, Mapping):
        if key in answer and str(answer[key]) == value:
            return True
        return any(_holds(item, key, value, depth + 1) for item in answer.values())
    if isinstance(answer, list):
        return any(_holds(item, key, value, depth + 1) for item in answer)
    return False


def data_check_problems(read: Sequence[Mapping[str, Any]]) -> list[str]:
    """Why the records written before the switch are not there after it (empty: the data held)."""
    problems = []
    for result in read:
        check = result.get("item") or {}
        status = max(0, int(result.get("status") or 0))
        if status < 200 or status >= 300:
            problems.append(
                f"data check of {check.get('module')}: GET {check.get('url')} answered {status or 'nothing'} after "
                "the switch; the record written before it is gone"
            )
            continue
        content = str(result.get("content") or "")
        try:
            answer = json.loads(content) if len(content) <= MAX_DATA_CHECK_ANSWER else None
        except ValueError:
            answer = None
        body = check.get("body") or {}
        if isinstance(answer, Mapping | list):
            missing = [key for key, value in body.items() if not _holds(answer, str(key), str(value))]
        else:  # not a JSON object: each value must at least appear in what it answered
            missing = [key for key, value in body.items() if str(value) not in content]
        if missing:
            problems.append(
                f"data check of {check.get('module')}: the record at {check.get('url')} lost {', '.join(missing)} "
                "across the switch"
            )
    return problems


MAX_FAILURE_TEXT = 4000


def failure_text(task: str | None, result: Mapping[str, Any] | None) -> str:
    """What failed, in one line: the task's name, its message (or stderr), and the message of each looped
    item that failed. Every rescue of the update and scale paths says a failure this way."""
    result = result or {}
    messages = [str(result.get("msg") or result.get("stderr") or "").strip()]
    for item in result.get("results") or []:
        if isinstance(item, Mapping) and item.get("failed"):
            said = str(item.get("msg") or item.get("stderr") or "").strip()
            looped = item.get("item")
            name = looped.get("name") if isinstance(looped, Mapping) else None
            messages.append(f"{name}: {said}" if name and said else said)
    said = "; ".join(dict.fromkeys(m for m in messages if m))
    text = f"{task or 'a task'}: {said}" if said else str(task or "a task")
    return text if len(text) <= MAX_FAILURE_TEXT else text[: MAX_FAILURE_TEXT - 3] + "..."


RollbackScope = Literal["host", "batch", "site"]
ROLLBACK_SCOPES = ("auto", "host", "batch", "site")
FAILED_RESULTS = frozenset({"rolled-back", "rollback-failed"})


def rollback_scope(asked: str, preflight: Mapping[str, Any]) -> RollbackScope:
    """The rollback scope of a run: `auto` (the default) is `site` when the update crosses a new version
    (its modules may not talk across versions), else `batch`."""
    if asked not in ROLLBACK_SCOPES:
        raise ValueError(
            f"khronika_update_rollback_scope is one of {', '.join(ROLLBACK_SCOPES)}, not {asked!r}"
        )
    if asked != "auto":
        return asked  # type: ignore[return-value]
    crosses = any(bool(d.get("crosses_new_version")) for d in (preflight.get("diffs") or {}).values())
    return "site" if crosses else "batch"


def rollback_peers(
    scope: RollbackScope, verdicts: Sequence[Mapping[str, Any]], outcomes: Mapping[str, Mapping[str, Any]]
) -> dict[str, str]:
    """host -> why it rolls back although its own switch passed: with scope `batch`, a host of its
    batch failed (rolled back, or did not finish); with `site`, any host of the run did. `verdicts`:
    the batches as judged (`batch_verdict`), `outcomes`: host -> its outcome."""
    if scope == "host":
        return {}

    def failed(hosts: Sequence[str]) -> list[str]:
        return sorted(
            host
            for host in hosts
            if host not in outcomes or str(outcomes[host].get("result")) in FAILED_RESULTS
        )

    everyone = [host for verdict in verdicts for host in verdict.get("batch") or []]
    peers: dict[str, str] = {}
    for verdict in verdicts:
        batch = list(verdict.get("batch") or [])
        culprits = failed(batch if scope == "batch" else everyone)
        if not culprits:
            continue
        for host in batch:
            if str((outcomes.get(host) or {}).get("result")) == "updated":
                peers[host] = (
                    f"rolled back with its {scope} (khronika_update_rollback_scope {scope}): "
                    f"{', '.join(culprits)} failed, and {'a batch' if scope == 'batch' else 'the site'} runs one release"
                )
    return peers


def silence(
    hosts: Sequence[str], starts_at: str, ends_at: str, *, comment: str, created_by: str
) -> dict[str, Any]:
    """The body of POST /api/v2/silences: every alert whose `instance` is one of `hosts` (with or
    without a port, as the scrape targets name them) is silenced from `starts_at` to `ends_at`."""
    if not hosts:
        raise ValueError("a silence needs at least one host")
    names = "|".join(re.escape(host) for host in sorted(set(hosts)))
    return {
        "matchers": [{"name": "instance", "value": f"({names})(:[0-9]+)?", "isRegex": True, "isEqual": True}],
        "startsAt": starts_at,
        "endsAt": ends_at,
        "createdBy": created_by,
        "comment": comment,
    }


def silence_until(preflight: Mapping[str, Any], now: datetime, fallback: str = "4h") -> datetime:
    """The latest a run's silence may last: the open window's end, or `fallback` from now without one."""
    ends = preflight.get("window_ends_at")
    end = (
        datetime.fromisoformat(str(ends).replace("Z", "+00:00"))
        if ends
        else now + timedelta(seconds=parse_duration(fallback))
    )
    if end <= now:
        end = now + timedelta(seconds=parse_duration(fallback))
    return end


def silence_for(
    hosts: Sequence[str],
    preflight: Mapping[str, Any],
    *,
    comment: str,
    created_by: str,
    now: datetime,
    fallback: str = "4h",
    lease: str | None = None,
) -> dict[str, Any]:
    """The update's silence: from now until the open window ends (`fallback` from now without one), or,
    held by a lease (`khronika update lease` renews it while the run lives), one lease from now."""
    end = silence_until(preflight, now, fallback)
    if lease:
        end = min(end, now + timedelta(seconds=parse_duration(lease)))
    return silence(hosts, iso(now), iso(end), comment=comment, created_by=created_by)


class MaintenanceScope(StrictModel):
    site: bool  # the whole gateway answers with the maintenance page
    modules: list[str]  # else only these modules' routes do
    reasons: list[str]


def maintenance_scope(preflight: Mapping[str, Any], policy: str = "auto") -> MaintenanceScope:
    """Where the gateway shows the maintenance page during the switch. `auto`: the whole site when a
    move crosses a new version or carries a configuration change that names no module (anything may
    stop); otherwise only the routes of the modules that restart (recreate with a new image or a
    configuration change of their own) - rolling modules keep serving. `always`: the site; `never`: none."""
    switching = [host for host in preflight["hosts"] if host["move"] != "same"]
    if policy == "never" or not switching:
        return MaintenanceScope(site=False, modules=[], reasons=["maintenance page not used"])
    if policy == "always":
        return MaintenanceScope(site=True, modules=[], reasons=["khronika_update_maintenance=always"])
    if policy != "auto":
        raise ValueError(f"maintenance policy {policy!r}: use auto, always or never")
    site: list[str] = []
    modules: dict[str, str] = {}
    rolling = {module for host in switching for module in host["rolling"]}
    for change in preflight.get("diffs", {}).values():
        if change.get("crosses_new_version"):
            site.append(f"{change['to_version']} crosses a new-version release")
        for config in change.get("config_changes", []):
            match = MODULE_CONFIG_KEY_RE.match(str(config.get("key", "")))
            if match is None:
                site.append(f"configuration change {config.get('key')} may touch every module")
            elif match["module"] not in rolling:
                modules.setdefault(match["module"], f"configuration change {config.get('key')} restarts it")
        for image in change.get("image_changes", []):
            if image.get("update") != "rolling":
                modules.setdefault(image["module"], "a new image, recreated")
    if any(host["move"] == "first-deployment" for host in switching):
        site.append("a host gets its first deployment")
    if site:
        return MaintenanceScope(site=True, modules=[], reasons=sorted(set(site)))
    return MaintenanceScope(
        site=False,
        modules=sorted(modules),
        reasons=[f"{name}: {why}" for name, why in sorted(modules.items())] or ["no module restarts"],
    )


_MODULE_KEY = re.compile(r"^khronika_modules\.(?P<module>[a-z0-9][a-z0-9-]*)\.")


class GatewayCheck(StrictModel):
    module: str
    path: str  # on the gateway: the route's prefix + the module's health path


def gateway_checks(plan: DeployPlan) -> list[GatewayCheck]:
    """Every routed module, asked through the gateway at its health path (or the route's root)."""
    checks = []
    for route in plan.gateway_routes:
        health = next(
            (
                container.healthcheck.http_path
                for host in plan.hosts.values()
                for container in host.containers
                if container.module == route.module
                and container.healthcheck is not None
                and container.healthcheck.http_path
            ),
            "/",
        )
        checks.append(GatewayCheck(module=route.module, path=route.path_prefix.rstrip("/") + health))
    return checks


# --- the report -----------------------------------------------------------------------------------


class BackupRecord(StrictModel):
    host: str
    module: str
    volume: str
    path: str
    sha256: str
    bytes: int
    set_aside: bool = False  # a late rollback's copy of the newer release's data, never pruned


class ModuleSwitch(StrictModel):
    module: str
    strategy: Literal["recreate", "rolling"]
    seconds: float  # from the step's start (old containers stopping) to healthy


LOG_TAIL_LINES = 200


class ContainerEvidence(StrictModel):
    """What a failed container said before the rollback replaced it: kept in the report (and so in a
    support bundle), since after the rollback `docker logs` shows the restored container's log."""

    container: str
    status: str  # running, exited, missing ...
    exit_codes: list[int] = Field(default_factory=list)  # every exit since the update started, oldest first
    oom_killed: bool = False
    restarts: int = 0
    health: str | None = None  # the last health check's output
    log_tail: list[str] = Field(default_factory=list)  # its last LOG_TAIL_LINES lines


def container_evidence(name: str, info: Mapping[str, Any] | None, logs: str, exits: str) -> ContainerEvidence:
    """From `docker_container_info`'s container (None: gone), `docker logs --tail` and the exit codes
    `docker events --filter event=die` printed, one a line."""
    state = (info or {}).get("State") or {}
    return ContainerEvidence(
        container=name,
        status=str(state.get("Status") or "missing"),
        exit_codes=[int(line) for line in exits.split() if line.strip().lstrip("-").isdigit()],
        oom_killed=bool(state.get("OOMKilled")),
        restarts=int((info or {}).get("RestartCount") or 0),
        health=last_health_output(state) if (state.get("Health") or {}).get("Log") else None,
        log_tail=logs.splitlines()[-LOG_TAIL_LINES:],
    )


def evidence_from_results(
    infos: Sequence[Mapping[str, Any]], logs: Sequence[Mapping[str, Any]], exits: Sequence[Mapping[str, Any]]
) -> list[ContainerEvidence]:
    """From three looped task results over the same container names (each result's `item`):
    docker_container_info, `docker logs --tail` and `docker events --filter event=die` (exit codes)."""

    def by_name(results: Sequence[Mapping[str, Any]]) -> dict[str, Mapping[str, Any]]:
        return {str(result.get("item")): result for result in results}

    logs_by, exits_by = by_name(logs), by_name(exits)
    evidence = []
    for name, info in by_name(infos).items():
        log = logs_by.get(name) or {}
        evidence.append(
            container_evidence(
                name,
                info.get("container") if info.get("exists") else None,
                "\n".join(filter(None, [log.get("stdout", ""), log.get("stderr", "")])),
                str((exits_by.get(name) or {}).get("stdout", "")),
            )
        )
    return evidence


class HostOutcome(StrictModel):
    host: str
    from_version: str | None
    result: HostResult
    on_version: str | None  # the release the host runs at the end (None: unknown, unreachable)
    failure: str | None = None  # what failed: the task's message, with the health check output
    restored: list[str] = Field(default_factory=list)  # volumes restored from the backup
    switches: list[ModuleSwitch] = Field(default_factory=list)
    backups: list[BackupRecord] = Field(default_factory=list)
    evidence: list[ContainerEvidence] = Field(default_factory=list)  # the failed release's containers


class ProbedModule(StrictModel):
    module: str
    planned: PlannedDowntime
    requests: int
    failed: int
    down_seconds: float
    outages: list[dict[str, float]]


class UpdateReport(StrictModel):
    to_version: str
    result: Literal["succeeded", "rolled-back", "failed", "stopped"]
    started_at: str
    finished_at: str
    operator: str
    controller: str
    window: str
    downtime: DowntimeClass
    maintenance: MaintenanceScope  # where the gateway answered with the maintenance page
    silence: str | None  # the Alertmanager silence id, removed at the end
    hosts: list[HostOutcome]
    probe: list[ProbedModule]
    stopped: str | None = None  # why the batches stopped early
    warnings: list[str] = Field(default_factory=list)

    @property
    def failed_requests(self) -> int:
        return sum(module.failed for module in self.probe)


def planned_downtime(strategy: str, changed: bool, maintenance: bool) -> PlannedDowntime:
    """What the plan promised a module: the maintenance page when the gateway shows it for the module
    (or the whole site), nothing when its image stays or it rolls, else a restart."""
    if maintenance:
        return "maintenance"
    if not changed or strategy == "rolling":
        return "none"
    return "restart"


def build_report(
    *,
    preflight: Mapping[str, Any],
    outcomes: Mapping[str, Mapping[str, Any]],
    probe: Mapping[str, Any] | None,
    started_at: str,
    finished_at: str,
    operator: str,
    controller: str,
    maintenance: MaintenanceScope | Mapping[str, Any],
    silence_id: str | None,
    stopped: str | None = None,
    warnings: Sequence[str] = (),
) -> UpdateReport:
    """The report from the pre-flight (`UpdatePreflight` as JSON), each host's outcome as the play
    recorded it (a host without one never finished: unreachable) and the probe's JSON."""
    to_version = str(preflight["to_version"])
    scope = (
        maintenance
        if isinstance(maintenance, MaintenanceScope)
        else MaintenanceScope.model_validate(maintenance)
    )
    hosts: list[HostOutcome] = []
    for planned in preflight["hosts"]:
        name = str(planned["host"])
        recorded = outcomes.get(name)
        if planned["move"] == "same":
            hosts.append(
                HostOutcome(
                    host=name, from_version=planned["from_version"], result="unchanged", on_version=to_version
                )
            )
        elif recorded is None:
            hosts.append(
                HostOutcome(
                    host=name,
                    from_version=planned["from_version"],
                    result="unreachable",
                    on_version=None,
                    failure="the host stopped answering during the update; its release is unknown until "
                    "it answers again (khronika status)",
                )
            )
        else:
            hosts.append(HostOutcome.model_validate({"host": name, **recorded}))

    strategies: dict[str, str] = {}
    changed: set[str] = set()
    for planned in preflight["hosts"]:
        for module in planned["modules"]:
            strategies.setdefault(module, "rolling" if module in planned["rolling"] else "recreate")
    for change in preflight.get("diffs", {}).values():
        changed |= {item["module"] for item in change.get("image_changes", [])}
        changed |= {item["module"] for item in change.get("added", [])}
    if any(planned["move"] == "first-deployment" for planned in preflight["hosts"]):
        changed |= set(strategies)
    probed = [
        ProbedModule(
            module=module,
            planned=planned_downtime(
                strategies.get(module, "recreate"), module in changed, scope.site or module in scope.modules
            ),
            requests=int(data.get("requests", 0)),
            failed=int(data.get("failed", 0)),
            down_seconds=float(data.get("down_seconds", 0.0)),
            outages=[
                {"start": float(o["start"]), "end": float(o["end"]), "seconds": float(o["seconds"])}
                for o in data.get("outages", [])
            ],
        )
        for module, data in sorted((probe or {}).get("modules", {}).items())
    ]
    results = {host.result for host in hosts}
    result: Literal["succeeded", "rolled-back", "failed", "stopped"]
    if results <= SUCCESSFUL:
        result = "succeeded"
    elif results & {"rollback-failed", "unreachable"}:
        result = "failed"
    elif stopped is not None and "not-started" in results:
        result = "stopped"
    else:
        result = "rolled-back"
    return UpdateReport(
        to_version=to_version,
        result=result,
        started_at=started_at,
        finished_at=finished_at,
        operator=operator,
        controller=controller,
        window=str(preflight["window"]),
        downtime=preflight["downtime"],
        maintenance=scope,
        silence=silence_id,
        hosts=hosts,
        probe=probed,
        stopped=stopped,
        warnings=[*preflight.get("warnings", []), *warnings],
    )


def audit_entry(report: UpdateReport, host: str | None = None) -> dict[str, Any]:
    """One line of the audit log (JSON): who, when, from -> to, per-module downtime, result; for one
    host, or (host None) the controller's line for the whole update."""
    chosen = [item for item in report.hosts if host is None or item.host == host]
    return {
        "at": report.finished_at,
        "started_at": report.started_at,
        "operator": report.operator,
        "controller": report.controller,
        "kind": "update",  # the same key as a scale's line (scale.audit_entry): one log, one vocabulary
        "action": "update",  # the key before; kept for readers of older lines
        "to_version": report.to_version,
        "result": report.result if host is None else (chosen[0].result if chosen else "not-targeted"),
        "hosts": {
            item.host: {
                "from": item.from_version,
                "on": item.on_version,
                "result": item.result,
                # wall time of each module's switch step here (a rolling module's has no downtime)
                "switch_seconds": {switch.module: switch.seconds for switch in item.switches},
            }
            for item in chosen
        },
        "measured_downtime_seconds": {module.module: module.down_seconds for module in report.probe},
        "failed_requests": report.failed_requests,
    }


def _scope_text(scope: MaintenanceScope) -> str:
    if scope.site:
        where = "the whole site"
    elif scope.modules:
        where = "the routes of " + ", ".join(scope.modules)
    else:
        return "not used"
    return f"{where}, during the switch ({'; '.join(scope.reasons)})"


def _seconds(value: float) -> str:
    return f"{value:.2f} s"


def render_markdown(report: UpdateReport) -> str:
    lines = [
        f"# Update to {report.to_version}: {report.result}",
        "",
        f"- Started {report.started_at}, finished {report.finished_at}, by {report.operator} on {report.controller}",
        f"- Window: {report.window}",
        f"- Planned downtime class: {report.downtime}; gateway maintenance page: {_scope_text(report.maintenance)}",
        f"- Alertmanager silence: {report.silence + ' (removed at the end)' if report.silence else 'none'}",
    ]
    if report.stopped:
        lines.append(f"- Stopped early: {report.stopped}")
    lines += [
        "",
        "## Hosts",
        "",
        "| host | from | result | runs now |",
        "|---|---|---|---|",
    ]
    for host in report.hosts:
        lines.append(
            f"| {host.host} | {host.from_version or 'nothing'} | {host.result} | {host.on_version or 'unknown'} |"
        )
    failures = [host for host in report.hosts if host.failure]
    if failures:
        lines += ["", "## What failed", ""]
        for host in failures:
            lines.append(f"### {host.host}")
            lines += ["", "```", host.failure or "", "```", ""]
            if host.result in ("rolled-back", "rollback-failed"):
                lines.append(f"- Rolled back to {host.from_version}: {host.result}")
                lines.append(
                    f"- Volumes restored from the backup: {', '.join(host.restored) or 'none needed'}"
                )
                lines.append("")
            for evidence in host.evidence:
                exits = ", ".join(str(code) for code in evidence.exit_codes) or "none"
                lines.append(
                    f"#### {evidence.container} before the rollback: {evidence.status}, exit codes {exits}, "
                    f"restarts {evidence.restarts}{', OOM-killed' if evidence.oom_killed else ''}"
                )
                if evidence.health:
                    lines += ["", f"Last health check: {evidence.health}"]
                tail = evidence.log_tail[-30:]
                lines += ["", f"Its log, last {len(tail)} of {len(evidence.log_tail)} lines kept:", ""]
                lines += ["```", *tail, "```", ""]
    switches = [(host.host, switch) for host in report.hosts for switch in host.switches]
    if switches:
        lines += [
            "",
            "## Switch steps (wall time of each, from its start to the module healthy and recorded)",
            "",
        ]
        lines += ["| host | module | strategy | seconds |", "|---|---|---|---|"]
        lines += [f"| {h} | {s.module} | {s.strategy} | {s.seconds:.2f} |" for h, s in switches]
    if report.probe:
        lines += ["", "## Downtime through the gateway: planned and measured", ""]
        lines += [
            "| module | planned | measured down | outages | requests | failed |",
            "|---|---|---|---|---|---|",
        ]
        for module in report.probe:
            lines.append(
                f"| {module.module} | {module.planned} | {_seconds(module.down_seconds)} | {len(module.outages)} | "
                f"{module.requests} | {module.failed} |"
            )
        lines.append("")
        lines.append(f"Failed requests in all: {report.failed_requests}.")
    backups = [backup for host in report.hosts for backup in host.backups]
    if backups:
        lines += ["", "## Backups", "", "| host | volume | file | bytes | sha256 |", "|---|---|---|---|---|"]
        lines += [f"| {b.host} | {b.volume} | {b.path} | {b.bytes} | {b.sha256} |" for b in backups]
    if report.warnings:
        lines += ["", "## Warnings", ""] + [f"- {warning}" for warning in report.warnings]
    return "\n".join(lines) + "\n"


# --- capacity for the update (khronika.platform.capacity_check) --------------------------------------

# Unpacked image layers take more room than their download; the pre-flight counts them this many times.
IMAGE_UNPACK_FACTOR = 2.5


def capacity_request(
    preflight: Mapping[str, Any],
    target: Release,
    sizes: Mapping[str, Mapping[str, int]],
    docker_root: str,
    backup_dir: str,
) -> dict[str, Any]:
    """The `modules` and `placement` arguments of capacity_check for an update: every module's release
    minimum on the hosts that run it, plus, per switching host, the disk its new images need under the
    Docker root (download size x IMAGE_UNPACK_FACTOR) and its backups need in `backup_dir` (the volumes'
    size, before compression). `target`: the release updated to (its `min_resources`);
    `sizes`: host -> {images_bytes, backup_bytes}."""
    mib = 1024 * 1024
    modules: list[dict[str, Any]] = []
    placement: dict[str, list[str]] = {}
    for host in preflight["hosts"]:
        for module in host["modules"]:
            placement.setdefault(module, []).append(host["host"])
    for module in sorted(placement):
        pinned = target.module(module)
        minimum = pinned.min_resources if pinned is not None else HostMinimum()
        modules.append(
            {
                "name": module,
                "cores": float(minimum.cores),
                "memory_mb": minimum.memory / mib,
                "disk_mb": minimum.disk / mib,
                "disk_path": docker_root,
            }
        )
    for host in preflight["hosts"]:
        if host["move"] == "same":
            continue
        name = host["host"]
        size = sizes.get(name, {})
        images = int(size.get("images_bytes", 0)) * IMAGE_UNPACK_FACTOR
        backups = int(size.get("backup_bytes", 0))
        if images:
            modules.append(
                {"name": f"new images on {name}", "disk_mb": images / mib, "disk_path": docker_root}
            )
            placement[f"new images on {name}"] = [name]
        if backups:
            modules.append({"name": f"backups on {name}", "disk_mb": backups / mib, "disk_path": backup_dir})
            placement[f"backups on {name}"] = [name]
    return {"modules": modules, "placement": placement}


def manifest_bytes(text: str) -> int:
    """The download size of an image from `docker manifest inspect --verbose` output: its config and
    layer sizes (for a list, the first platform's; 0 when the output has none)."""
    import json

    try:
        document = json.loads(text)
    except ValueError:
        return 0
    entry = document[0] if isinstance(document, list) and document else document
    if not isinstance(entry, dict):
        return 0
    manifest = entry.get("SchemaV2Manifest") or entry.get("OCIManifest") or {}
    parts = [manifest.get("config") or {}, *(manifest.get("layers") or [])]
    return sum(int(part.get("size", 0) or 0) for part in parts if isinstance(part, dict))


def df_free_mb(text: str) -> dict[str, float]:
    """Free MB per mount point from `df -P -B1M PATH...` (Ansible's mount facts leave some out, such as
    a container's overlay root)."""
    free: dict[str, float] = {}
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) >= 6 and fields[3].isdigit():
            free[" ".join(fields[5:])] = float(fields[3])
    return free
