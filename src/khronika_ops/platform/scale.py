"""Scaling from a capacity plan (`khronika plan`, `playbooks/plan.yml`): the catalog the plan asks for,
what changes on which host, the downtime each change needs, and the report of a scale run.

`playbooks/scale.yml` reads the plan's JSON (the typed `Plan` of `khronika plan --format json`, or
`reports/capacity-plan.json`) and hands it here with the catalog (`khronika_modules`), the inventory and what each
host reports (its release record, its Docker data root and how much that root holds). Nothing here
touches a host; every refusal is found before the first change.

What a plan can change, and what each costs:

| change | how | downtime |
|---|---|---|
| a module's CPU / memory limits | `docker update` on the running containers | none |
| more replicas, or a module placed on more hosts | new containers started, then added to the gateway | none |
| fewer replicas, or a module leaving a host | taken out of the gateway, then removed | none |
| a stateless module moved to other hosts | started there first, the gateway switched, then the old removed | none |
| a module with data moved to another host | stopped, its volumes copied, started there | that module |
| a module's GPU count | its containers recreated | that module |
| Docker's `data-root` on a bigger disk | Docker stopped, its data copied, started on the new root | the whole host |

Hardware (cores, memory, disks, GPUs) is changed by people or by the cloud before the run; the pre-flight
checks that every host now has what the plan sized it with, and refuses the run when one does not.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import Field

from khronika_ops.facts import host_resources
from khronika_ops.planner.document import PlanDocument, PlanDocumentError, read_plan
from khronika_ops.planner.replicas import replica_module
from khronika_ops.platform.catalog import DeployPlan, resolve_deployment
from khronika_ops.platform.catalog.deployment import PlannedContainer
from khronika_ops.platform.inventory_file import inventory_from_ansible
from khronika_ops.platform.release import Release
from khronika_ops.platform.update import PLAYBOOK_OVERRIDES, MaintenanceWindow, check_window, iso
from khronika_ops.validation import Problem, ProblemsError, StrictModel

ModuleDowntime = Literal["none", "module", "host"]
HostDowntime = Literal["none", "partial", "full"]
MIB = 1024 * 1024
# /proc/meminfo's MemTotal leaves out what the kernel keeps: a 16 GiB host shows about 15.6 GiB.
MEMORY_TOLERANCE = 0.06


class ScaleRefused(ProblemsError):
    """The scale would not be safe: every reason at once, before any host changes."""

    what = "scale pre-flight"


class Resize(StrictModel):
    """A running container's new limits, applied in place (`docker update`)."""

    host: str
    container: str
    cpus: float | None
    memory: str | None  # "402653184b", as the catalog resolves it


class VolumeMove(StrictModel):
    module: str
    volume: str  # the Docker volume, khronika-<module>-<name>
    from_host: str
    to_host: str


class DataRootMove(StrictModel):
    host: str
    from_root: str
    to_root: str
    used_mb: float


class ModuleChange(StrictModel):
    module: str
    hosts_from: list[str]
    hosts_to: list[str]
    replicas_from: int  # containers in all
    replicas_to: int
    cpus_from: float | None
    cpus_to: float | None
    memory_from: str | None
    memory_to: str | None
    gpus_from: int
    gpus_to: int
    downtime: ModuleDowntime
    what: list[str]  # one line per change, as the report says it


class HostScale(StrictModel):
    host: str
    downtime: HostDowntime
    start: list[str]  # containers started here
    remove: list[str]  # containers removed here (after the gateway no longer sends them anything)
    resize: list[Resize]
    recreate: list[str]  # containers recreated (GPU count, or a module moved here with its data)
    data_root: DataRootMove | None = None


class ScalePlan(StrictModel):
    release: str
    checked_at: str
    window: str
    window_ends_at: str | None = None
    catalog: list[dict[str, Any]]  # the scaled khronika_modules
    previous_catalog: list[dict[str, Any]]
    modules: list[ModuleChange]
    hosts: list[HostScale]
    volume_moves: list[VolumeMove]
    downtime: HostDowntime
    maintenance_modules: list[str]  # their routes show the maintenance page while they are down
    notes: list[str] = Field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.modules or any(host.data_root for host in self.hosts))


def _count_placement(plan: PlanDocument, host_map: Mapping[str, str]) -> dict[str, dict[str, int]]:
    """module -> {host: replicas} from the plan's placement (`module#n` -> host)."""
    counts: dict[str, dict[str, int]] = {}
    for replica, host in sorted(plan.placement.assignment.items()):
        module = replica_module(str(replica))
        real = host_map.get(str(host), str(host))
        counts.setdefault(module, {}).setdefault(real, 0)
        counts[module][real] += 1
    return counts


def _memory_text(gib: float) -> str:
    """Whole MiB, rounded up: what the catalog's `resources.memory` says."""
    return f"{max(6, math.ceil(gib * 1024))}m"


def scaled_catalog(
    catalog: Sequence[Mapping[str, Any]],
    plan: PlanDocument,
    inventory_hosts: Sequence[str],
    host_map: Mapping[str, str] | None = None,
) -> tuple[list[dict[str, Any]], list[str]]:
    """The catalog with the plan's placement, replicas and limits; and notes on what was rounded.

    A module keeps its placement when the plan puts it on the hosts that placement already selects;
    otherwise it is placed on the plan's hosts by name. A planned host that the inventory lacks (a
    host to buy, `new-<shape>-<n>`) is an error naming the fix: add it to the inventory and map it."""
    host_map = dict(host_map or {})
    problems: list[Problem] = []
    notes: list[str] = []
    by_name = {str(module.get("name")): module for module in catalog}
    planned = {module.name: module for module in plan.modules}
    counts = _count_placement(plan, host_map)
    known = set(inventory_hosts)
    for module_name, hosts in sorted(counts.items()):
        for host in sorted(hosts):
            if host not in known:
                problems.append(
                    Problem(
                        module_name,
                        "placement",
                        f"the plan places it on {host}, which the inventory does not have: add the host "
                        f"to the inventory (a group its placement needs), provision it, and give its name "
                        f'with -e \'{{"khronika_scale_host_map": {{"{host}": "<inventory name>"}}}}\'',
                    )
                )
    for name in sorted(set(planned) - set(by_name)):
        problems.append(Problem(name, "catalog", "the plan sizes it, but the catalog has no such module"))
    out: list[dict[str, Any]] = []
    for module in catalog:
        name = str(module.get("name"))
        entry = dict(module)
        sized = planned.get(name)
        if sized is None or not module.get("enabled", True):
            out.append(entry)
            continue
        per_host = counts.get(name, {})
        if per_host:
            replicas = max(per_host.values())
            if len(set(per_host.values())) > 1:
                notes.append(
                    f"{name}: the plan puts {', '.join(f'{n} on {h}' for h, n in sorted(per_host.items()))}; "
                    f"the catalog runs the same count on each of its hosts, so {replicas} on each"
                )
            entry["replicas"] = replicas
            entry["placement"] = {"hosts": sorted(per_host)}
        resources = dict(module.get("resources") or {})
        resources["cpus"] = round(sized.cores_per_replica, 2)
        resources["memory"] = _memory_text(sized.memory_gib_per_replica)
        entry["resources"] = resources
        gpus = sized.gpus_per_replica
        current_gpus = module.get("gpus")
        if isinstance(current_gpus, Mapping) and "device_ids" in current_gpus:
            if gpus != len(current_gpus["device_ids"]):
                notes.append(
                    f"{name}: GPUs are pinned by device_ids; the plan's count ({gpus}) is not applied"
                )
        elif gpus or current_gpus:
            entry["gpus"] = gpus if gpus else None
            if not gpus:
                entry.pop("gpus")
        out.append(entry)
    if problems:
        raise ScaleRefused(problems)
    return out, notes


def _same_placement(old: DeployPlan, new: DeployPlan, module: str) -> bool:
    return _hosts_of(old, module) == _hosts_of(new, module)


def _hosts_of(plan: DeployPlan, module: str) -> list[str]:
    return sorted(h for h, d in plan.hosts.items() if any(c.module == module for c in d.containers))


def _containers(plan: DeployPlan, module: str) -> list[PlannedContainer]:
    return [c for d in plan.hosts.values() for c in d.containers if c.module == module]


def _gpu_count(container: PlannedContainer | None) -> int:
    if container is None:
        return 0
    return sum(
        int(request.get("count") or len(request.get("device_ids") or []))
        for request in container.device_requests
    )


_LIMIT_FIELDS = {"cpus", "memory"}


def _same_but_limits(old: PlannedContainer, new: PlannedContainer) -> bool:
    return old.model_dump(exclude=_LIMIT_FIELDS) == new.model_dump(exclude=_LIMIT_FIELDS)


def _gib(memory: str | None) -> str:
    if not memory:
        return "no limit"
    return f"{int(memory.rstrip('b')) / MIB:g} MiB"


def _module_change(
    name: str, old: DeployPlan, new: DeployPlan, stateful: bool
) -> tuple[ModuleChange | None, list[VolumeMove]]:
    before, after = _containers(old, name), _containers(new, name)
    hosts_from, hosts_to = _hosts_of(old, name), _hosts_of(new, name)
    first_old = before[0] if before else None
    first_new = after[0] if after else None
    what: list[str] = []
    downtime: ModuleDowntime = "none"
    moves: list[VolumeMove] = []
    if hosts_from != hosts_to:
        gone, added = sorted(set(hosts_from) - set(hosts_to)), sorted(set(hosts_to) - set(hosts_from))
        if stateful and gone and added:
            volumes = sorted(
                {v.docker_name for d in old.hosts.values() for v in d.volumes if v.module == name}
            )
            if len(gone) > 1 or len(added) > 1:
                raise ScaleRefused(
                    [
                        Problem(
                            name,
                            "placement",
                            f"its data ({', '.join(volumes)}) would move from {', '.join(gone)} to "
                            f"{', '.join(added)}: move a module with data from one host to one other host at a time",
                        )
                    ]
                )
            moves = [VolumeMove(module=name, volume=v, from_host=gone[0], to_host=added[0]) for v in volumes]
            downtime = "module"
            what.append(f"moves with its data ({', '.join(volumes)}) from {gone[0]} to {added[0]}")
        else:
            if added:
                what.append(f"starts on {', '.join(added)}")
            if gone:
                what.append(f"leaves {', '.join(gone)}")
    if len(before) != len(after):
        what.append(f"replicas {len(before)} -> {len(after)}")
    if first_old and first_new:
        if first_old.cpus != first_new.cpus:
            what.append(f"CPU limit {first_old.cpus or 'none'} -> {first_new.cpus or 'none'}")
        if first_old.memory != first_new.memory:
            what.append(f"memory limit {_gib(first_old.memory)} -> {_gib(first_new.memory)}")
        if _gpu_count(first_old) != _gpu_count(first_new):
            what.append(f"GPUs {_gpu_count(first_old)} -> {_gpu_count(first_new)} per replica")
            downtime = "module"
    if not what:
        return None, []
    return (
        ModuleChange(
            module=name,
            hosts_from=hosts_from,
            hosts_to=hosts_to,
            replicas_from=len(before),
            replicas_to=len(after),
            cpus_from=first_old.cpus if first_old else None,
            cpus_to=first_new.cpus if first_new else None,
            memory_from=first_old.memory if first_old else None,
            memory_to=first_new.memory if first_new else None,
            gpus_from=_gpu_count(first_old),
            gpus_to=_gpu_count(first_new),
            downtime=downtime,
            what=what,
        ),
        moves,
    )


def _hardware_problems(
    plan: PlanDocument, hostvars: Mapping[str, Any], host_map: Mapping[str, str]
) -> list[Problem]:
    """Every planned host must have (within the kernel's share of memory) what the plan sized it with."""
    problems = []
    for planned in plan.hosts:
        name = host_map.get(planned.name, planned.name)
        have = host_resources(name, hostvars.get(name) or {})
        if not have.facts_gathered:
            continue  # not in the inventory (scaled_catalog names it) or not reached (its record says so)
        short = []
        if have.cores + 1e-9 < planned.cores:
            short.append(f"{have.cores:g} cores, the plan sized it with {planned.cores:g}")
        need_mb = planned.memory_gib * 1024 * (1 - MEMORY_TOLERANCE)
        if have.memory_mb < need_mb:
            short.append(
                f"{have.memory_mb / 1024:.1f} GiB of memory, the plan sized it with {planned.memory_gib:g} GiB"
            )
        if planned.gpus > have.gpus:
            short.append(f"{have.gpus} GPU(s), the plan sized it with {planned.gpus}")
        if short:
            problems.append(
                Problem(None, name, f"has {'; '.join(short)}: change the hardware first, then run the scale")
            )
    return problems


def preflight(
    *,
    catalog: Sequence[Mapping[str, Any]],
    plan: Mapping[str, Any],
    groups: Mapping[str, Sequence[str]],
    hostvars: Mapping[str, Any],
    records: Mapping[str, Mapping[str, Any]],
    docker_roots: Mapping[str, Mapping[str, Any]],
    release: Release,
    now: datetime,
    window: MaintenanceWindow | None = None,
    force_window: bool = False,
    host_map: Mapping[str, str] | None = None,
    registry: str | None = None,
    image_source: str = "registry",
) -> ScalePlan:
    """Decide the scale or raise ScaleRefused with every reason.

    `records`: host -> release record (or {"missing": true} / {"error": ...}); every platform host must
    run `release` (scaling is not an update: finish the update first). `docker_roots`: host ->
    {root: the running daemon's DockerRootDir, wanted: docker_data_root from the inventory ('' = keep),
    used_mb: what the root holds, free_mb: free space where the wanted root goes, wanted_entries: what the
    wanted root already holds}."""
    problems: list[Problem] = []
    host_map = dict(host_map or {})
    try:
        document = read_plan(plan)
    except PlanDocumentError as exc:
        raise ScaleRefused(
            [Problem(p.module, f"the plan: {p.field}", p.message) for p in exc.problems]
        ) from None
    checked = check_window(window, now, force_window)
    window_text, window_ends = checked.text, checked.ends_at
    if checked.refusal:
        problems.append(
            Problem(None, "window", f"{checked.refusal}; {PLAYBOOK_OVERRIDES['window']} overrides")
        )
    for host, record in sorted(records.items()):
        if record.get("error"):
            problems.append(Problem(None, host, f"cannot read its release record: {record['error']}"))
        elif record.get("version") not in (None, release.version):
            problems.append(
                Problem(
                    None,
                    host,
                    f"runs release {record.get('version')}, not {release.version} (the site's release: the site "
                    "state's, else khronika_release_version): finish the update (playbooks/update.yml) before scaling",
                )
            )
    inventory = inventory_from_ansible(groups, hostvars)
    try:
        new_catalog, notes = scaled_catalog(catalog, document, sorted(inventory.hosts), host_map)
    except ScaleRefused as exc:
        problems.extend(exc.problems)
        new_catalog, notes = [dict(m) for m in catalog], []
    problems.extend(_hardware_problems(document, hostvars, host_map))
    old: DeployPlan | None = None
    new: DeployPlan | None = None
    try:
        old = resolve_deployment(
            list(catalog), inventory, release=release, default_registry=registry, image_source=image_source
        )
    except ProblemsError as exc:
        problems.extend(Problem(p.module, p.field, f"today's catalog: {p.message}") for p in exc.problems)
    try:
        new = resolve_deployment(
            new_catalog, inventory, release=release, default_registry=registry, image_source=image_source
        )
    except ProblemsError as exc:
        problems.extend(Problem(p.module, p.field, f"the scaled catalog: {p.message}") for p in exc.problems)
    data_roots: dict[str, DataRootMove] = {}
    for host, root in sorted(docker_roots.items()):
        wanted, current = str(root.get("wanted") or ""), str(root.get("root") or "")
        if not wanted or not current or wanted.rstrip("/") == current.rstrip("/"):
            continue
        used, free = float(root.get("used_mb") or 0), float(root.get("free_mb") or 0)
        if wanted.rstrip("/").startswith(current.rstrip("/") + "/"):
            problems.append(
                Problem(None, host, f"docker_data_root {wanted} lies inside today's root {current}")
            )
        elif int(root.get("wanted_entries") or 0) > 0:
            problems.append(
                Problem(
                    None,
                    host,
                    f"docker_data_root {wanted} is not empty: Docker's data goes to an empty place",
                )
            )
        elif used * 1.05 + 512 > free:
            problems.append(
                Problem(
                    None,
                    host,
                    f"Docker's data ({used:.0f} MB in {current}) does not fit where docker_data_root "
                    f"{wanted} goes ({free:.0f} MB free, {used * 1.05 + 512:.0f} MB needed)",
                )
            )
        else:
            data_roots[host] = DataRootMove(
                host=host, from_root=current, to_root=wanted, used_mb=round(used, 1)
            )
    if problems or old is None or new is None:
        raise ScaleRefused(problems)

    stateful = {
        str(m["name"])
        for m in catalog
        if any((v.get("backup") or "none") != "none" for v in m.get("volumes") or [])
    }
    changes: list[ModuleChange] = []
    moves: list[VolumeMove] = []
    for name in new.order:
        try:
            change, module_moves = _module_change(name, old, new, name in stateful)
        except ScaleRefused as exc:
            problems.extend(exc.problems)
            continue
        if change:
            changes.append(change)
            moves += module_moves
    if problems:
        raise ScaleRefused(problems)
    hosts: list[HostScale] = []
    for host in sorted(set(old.hosts) | set(new.hosts) | set(data_roots)):
        before = {c.name: c for c in old.hosts[host].containers} if host in old.hosts else {}
        after = {c.name: c for c in new.hosts[host].containers} if host in new.hosts else {}
        resize, recreate = [], []
        for name in sorted(set(before) & set(after)):
            was, will = before[name], after[name]
            if was == will:
                continue
            if _same_but_limits(was, will):
                resize.append(Resize(host=host, container=name, cpus=will.cpus, memory=will.memory))
            else:
                recreate.append(name)
        moved_here = {move.module for move in moves if move.to_host == host}
        start = sorted(set(after) - set(before))
        downtime: HostDowntime = "none"
        if host in data_roots:
            downtime = "full"
        elif recreate or any(move.from_host == host for move in moves):
            downtime = "partial"
        recreate += [n for n in start if after[n].module in moved_here]
        if resize or recreate or start or (set(before) - set(after)) or host in data_roots:
            hosts.append(
                HostScale(
                    host=host,
                    downtime=downtime,
                    start=start,
                    remove=sorted(set(before) - set(after)),
                    resize=resize,
                    recreate=sorted(set(recreate)),
                    data_root=data_roots.get(host),
                )
            )
    # Data roots move one host at a time: a module is down there only when that host is its only one.
    down_modules = {c.module for c in changes if c.downtime != "none"}
    for scaled in hosts:
        if scaled.data_root and scaled.host in old.hosts:
            down_modules |= {
                c.module
                for c in old.hosts[scaled.host].containers
                if _hosts_of(old, c.module) == [scaled.host]
            }
    worst: HostDowntime = "none"
    if down_modules and down_modules >= set(old.order):
        worst = "full"
    elif down_modules or any(h.downtime != "none" for h in hosts):
        worst = "partial"
    routed = {route.module for route in new.gateway_routes}
    return ScalePlan(
        release=release.version,
        checked_at=iso(now),
        window=window_text,
        window_ends_at=window_ends,
        catalog=new_catalog,
        previous_catalog=[dict(m) for m in catalog],
        modules=changes,
        hosts=hosts,
        volume_moves=moves,
        downtime=worst,
        maintenance_modules=sorted(down_modules & routed),
        notes=notes,
    )


def render_text(plan: ScalePlan) -> str:
    """The plan of the scale as an operator reads it before the window (and what --check prints)."""
    lines = [
        f"Scale of release {plan.release}: downtime {plan.downtime}; window {plan.window}",
    ]
    if not plan.changed:
        lines.append("Nothing to change: the site already runs what the plan asks.")
    for change in plan.modules:
        down = {"none": "no downtime", "module": "the module stops", "host": "its host stops"}[
            change.downtime
        ]
        lines.append(f"  {change.module}: {'; '.join(change.what)} ({down})")
    for host in plan.hosts:
        if host.data_root:
            lines.append(
                f"  {host.host}: Docker's data root {host.data_root.from_root} -> {host.data_root.to_root} "
                f"({host.data_root.used_mb:.0f} MB copied with Docker stopped: the host's modules stop)"
            )
    if plan.maintenance_modules:
        lines.append(f"  maintenance page while they are down: {', '.join(plan.maintenance_modules)}")
    lines += [f"  note: {note}" for note in plan.notes]
    return "\n".join(lines)


# --- the report of a run --------------------------------------------------------------------------


class ScaleReport(StrictModel):
    kind: Literal["scale"] = "scale"
    release: str
    started_at: str
    finished_at: str
    operator: str
    controller: str
    result: Literal["succeeded", "rolled-back", "rollback-failed", "unchanged"]
    failure: str | None = None
    downtime: HostDowntime
    modules: list[ModuleChange]
    hosts: list[HostScale]
    volume_moves: list[dict[str, Any]]  # with sha256 and bytes as copied
    seconds: dict[str, float]  # step -> wall seconds
    probe: dict[str, Any] | None = None
    notes: list[str] = Field(default_factory=list)


def build_report(
    plan: Mapping[str, Any],
    *,
    started_at: str,
    result: str,
    failure: str | None,
    copies: Sequence[Mapping[str, Any]],
    seconds: Mapping[str, float],
    probe: Mapping[str, Any] | None,
    operator: str,
    controller: str,
    now: datetime | None = None,
) -> ScaleReport:
    scale = ScalePlan.model_validate({k: v for k, v in plan.items() if k not in {"text", "changed"}})
    by_volume = {str(copy["volume"]): copy for copy in copies}
    return ScaleReport(
        release=scale.release,
        started_at=started_at,
        finished_at=iso(now or datetime.now(UTC)),
        operator=operator,
        controller=controller,
        result=result if scale.changed or result != "succeeded" else "unchanged",
        failure=failure or None,
        downtime=scale.downtime,
        modules=scale.modules,
        hosts=scale.hosts,
        volume_moves=[
            move.model_dump() | dict(by_volume.get(move.volume, {})) for move in scale.volume_moves
        ],
        seconds={str(k): round(float(v), 2) for k, v in seconds.items()},
        probe=dict(probe) if probe else None,
        notes=scale.notes,
    )


def render_markdown(report: ScaleReport) -> str:
    lines = [
        f"# Scale of release {report.release}: {report.result}",
        "",
        f"- started {report.started_at}, finished {report.finished_at}, by {report.operator} on {report.controller}",
        f"- downtime class: {report.downtime}",
    ]
    if report.failure:
        lines.append(f"- failure: {report.failure}")
    if report.result == "rolled-back":
        lines.append("- every change was rolled back: the site runs the catalog it ran before")
    lines += ["", "## Modules", "", "| module | change | downtime |", "|---|---|---|"]
    lines += [f"| {m.module} | {'; '.join(m.what)} | {m.downtime} |" for m in report.modules] or [
        "| - | none | - |"
    ]
    lines += [
        "",
        "## Hosts",
        "",
        "| host | started | removed | resized in place | recreated | data root | downtime |",
    ]
    lines.append("|---|---|---|---|---|---|---|")
    for host in report.hosts:
        root = f"{host.data_root.from_root} -> {host.data_root.to_root}" if host.data_root else "-"
        lines.append(
            f"| {host.host} | {', '.join(host.start) or '-'} | {', '.join(host.remove) or '-'} | "
            f"{', '.join(r.container for r in host.resize) or '-'} | {', '.join(host.recreate) or '-'} | {root} | "
            f"{host.downtime} |"
        )
    if report.volume_moves:
        lines += ["", "## Data moved", "", "| volume | from | to | bytes | sha256 |", "|---|---|---|---|---|"]
        lines += [
            f"| {m['volume']} | {m['from_host']} | {m['to_host']} | {m.get('bytes', '-')} | {m.get('sha256', '-')} |"
            for m in report.volume_moves
        ]
    if report.seconds:
        lines += ["", "## Steps", "", "| step | seconds |", "|---|---|"]
        lines += [f"| {step} | {seconds:.1f} |" for step, seconds in report.seconds.items()]
    if report.probe:
        lines += [
            "",
            "## Measured through the gateway",
            "",
            "| module | requests | failed | down s | outages |",
        ]
        lines.append("|---|---|---|---|---|")
        for module, data in sorted((report.probe.get("modules") or {}).items()):
            lines.append(
                f"| {module} | {data.get('requests', 0)} | {data.get('failed', 0)} | "
                f"{float(data.get('down_seconds') or 0):.2f} | {len(data.get('outages') or [])} |"
            )
    lines += [f"- note: {note}" for note in report.notes]
    return "\n".join(lines) + "\n"


def audit_entry(report: ScaleReport) -> dict[str, Any]:
    return {
        "kind": "scale",
        "at": report.finished_at,
        "operator": report.operator,
        "controller": report.controller,
        "release": report.release,
        "result": report.result,
        "changes": {m.module: m.what for m in report.modules},
        "data_roots": {h.host: h.data_root.to_root for h in report.hosts if h.data_root},
        "failure": report.failure,
    }
