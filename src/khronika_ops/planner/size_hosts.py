"""Host sizing: disks (size and class), network and GPU evidence per host, and what to change on it."""

from __future__ import annotations

from collections import defaultdict
from typing import NamedTuple

from khronika_ops.metrics import Resource, is_virtual_interface
from khronika_ops.planner.catalog import Catalog, ExistingHost
from khronika_ops.planner.evidence import host_gpus
from khronika_ops.planner.hardware import choose_disk_class
from khronika_ops.planner.models import CleanSeries, SizeResult
from khronika_ops.planner.place import Placement, Replica
from khronika_ops.planner.plan import HostPlan, PlanRequest
from khronika_ops.planner.series_index import SeriesIndex, size_total
from khronika_ops.planner.size import round_figure
from khronika_ops.planner.verdict import Bottleneck, Severity, Verdict, bottleneck, judge, worst

GIB = 1024.0**3


class _DiskSizing(NamedTuple):
    filesystems: list[SizeResult]
    io: list[SizeResult]  # IOPS and throughput: the evidence for the disk class
    disk_class: str
    reason: str


def _host_disk(host: ExistingHost, index: SeriesIndex, request: PlanRequest, catalog: Catalog) -> _DiskSizing:
    results: list[SizeResult] = []
    reserve = (catalog.next_release_images_gib + catalog.backup_gib) * GIB
    for mount in index.labels("khronika_filesystem_used_bytes", "mount"):
        used = index.find(["khronika_filesystem_used_bytes"], host=host.name, mount=mount)
        size = index.find(["khronika_filesystem_size_bytes"], host=host.name, mount=mount)
        capacity = float(size[0].values[-1]) if size else host.mounts.get(mount, 0.0) * GIB or None
        result = size_total(
            used, Resource.DISK, request, extra_bytes=reserve, **({"capacity": capacity} if capacity else {})
        )
        if result is not None:
            result.extra["mount"] = mount
            if capacity:
                result.extra["current_gib"] = round_figure(capacity / GIB)
            results.append(result)
    iops = size_total(index.find(["khronika_disk_iops"], host=host.name), Resource.DISK_IOPS, request)
    throughput = size_total(
        index.find(["khronika_disk_throughput_bytes_per_second"], host=host.name),
        Resource.DISK_THROUGHPUT,
        request,
    )
    io = [result for result in (iops, throughput) if result is not None]
    if not io:
        return _DiskSizing(
            results, io, host.disk_class, "no disk IOPS/throughput history: current class kept"
        )
    level = request.policy.io_percentile
    peak_iops = iops.demand.get(level, 0.0) if iops else 0.0
    peak_mbps = throughput.demand.get(level, 0.0) / 1e6 if throughput else 0.0
    choice = choose_disk_class(peak_iops, peak_mbps, catalog)
    return _DiskSizing(results, io, choice.disk_class, choice.reason)


def _host_network(
    host: ExistingHost, index: SeriesIndex, request: PlanRequest, catalog: Catalog
) -> tuple[SizeResult | None, bool, str]:
    """The policy's traffic percentile (p99) of the host's NIC traffic at the horizon against its NIC
    speed, per direction (links are full duplex; series without a direction, from older files, count
    as both at once)."""
    series = [
        item
        for item in index.find(["khronika_network_bytes_per_second"], host=host.name)
        if not is_virtual_interface(item.key.label("interface") or "")
    ]
    by_direction: dict[str, list[CleanSeries]] = defaultdict(list)
    for item in series:
        by_direction[item.key.label("direction") or "both directions"].append(item)
    sized = {
        direction: result
        for direction, members in sorted(by_direction.items())
        if (result := size_total(members, Resource.NETWORK, request)) is not None
        and result.recommended is not None
    }
    if not sized:
        return None, False, "no network history"
    level = request.policy.io_percentile
    direction, result = max(sized.items(), key=lambda item: item[1].demand.get(level, 0.0))
    peak_gbps = result.demand.get(level, 0.0) * 8 / 1e9
    limit = host.nic_gbps * catalog.nic_max_utilisation
    verdict = "fits" if peak_gbps <= limit else "exceeds"
    busiest = f" ({direction}, the busier direction)" if len(sized) > 1 else f" ({direction})"
    return (
        result,
        peak_gbps > limit,
        (
            f"{level} {peak_gbps:.3g} Gbit/s{busiest} at the horizon {verdict} {catalog.nic_max_utilisation:.0%} of the "
            f"{host.nic_gbps:g} Gbit/s NIC ({limit:.3g} Gbit/s)"
        ),
    )


def host_plans(
    replicas: list[Replica],
    *,
    placement: Placement,
    catalog: Catalog,
    index: SeriesIndex,
    request: PlanRequest,
    drains: dict[str, bool],
) -> list[HostPlan]:
    shapes = {shape.name: shape for shape in catalog.host_shapes}
    plans: list[HostPlan] = []
    existing = {host.name: host for host in catalog.hosts}
    names = sorted(set(existing) | set(placement.assignment.values()))
    for name in names:
        on_host = [r for r in replicas if placement.assignment.get(r.name) == name]
        if name in existing:
            host = existing[name]
            shape_name = "existing"
        else:
            shape = shapes[placement.new_hosts[name]]
            host = ExistingHost(**shape.model_dump())
            shape_name = shape.name
        cores_used = sum(r.cores for r in on_host)
        memory_used = sum(r.memory_gib for r in on_host)
        disk = (
            _host_disk(host, index, request, catalog)
            if name in existing
            else _DiskSizing([], [], host.disk_class, "new host")
        )
        network, network_over, network_reason = (
            _host_network(host, index, request, catalog) if name in existing else (None, False, "new host")
        )
        gpu_observed, gpu_reason = host_gpus(host, index) if name in existing else ({}, "")
        plan = HostPlan(
            name=name,
            new=name not in existing,
            shape=shape_name,
            cores=host.cores,
            memory_gib=host.memory_gib,
            disk_gib=host.disk_gib,
            disk_class=disk.disk_class,
            disk_class_now="" if name not in existing else host.disk_class,
            gpus=host.gpus,
            gpu_model=host.gpu_model,
            modules=sorted({r.module for r in on_host}),
            cores_used=round_figure(cores_used),
            memory_gib_used=round_figure(memory_used),
            disk=disk.filesystems,
            disk_io=disk.io,
            disk_class_reason=disk.reason,
            nic_gbps=host.nic_gbps,
            network=network,
            network_reason=network_reason,
            network_over_limit=network_over,
            gpu_observed=gpu_observed,
            gpu_reason=gpu_reason,
            n_minus_1_holds=drains.get(name, True),
        )
        plan.bottleneck = bottleneck(cores_used, memory_used, host.cores, host.memory_gib)
        _diff_host(plan, host, disk.filesystems)
        plans.append(plan)
    return plans


def _diff_host(plan: HostPlan, host: ExistingHost, disk: list[SizeResult]) -> None:
    """What to add or change on this host, the downtime class that change needs, and its severity (the
    verdict rule modules use too: short is CRITICAL, less than half used is WARNING)."""
    downtime = "none"
    if plan.new:
        plan.changes.append(
            f"buy and add a {plan.shape} host ({plan.cores:g} cores, {plan.memory_gib:g} GiB)"
        )
        plan.severity = Severity.CRITICAL
        plan.severity_reason = (
            f"a host to buy: {', '.join(plan.modules) or 'its modules'} fit on no existing host"
        )
        plan.downtime = "none (new host joins; modules move with a restart)"
        return
    verdicts: list[Verdict] = []
    if not plan.modules:
        plan.changes.append("no module placed: can be retired or kept as N-1 spare")
        verdicts.append(Verdict(Severity.GOOD, "no module placed: an N-1 spare, or a host to retire"))
    else:
        cores = judge(
            "cores",
            plan.cores_used,
            plan.cores,
            "cores",
            short="move a module away or add cores",
            over="room for more modules, or fewer cores",
        )
        memory = judge(
            "memory",
            plan.memory_gib_used,
            plan.memory_gib,
            "GiB",
            short="move a module away or add memory",
            over="room for more modules, or less memory",
        )
        # Over-provisioned is judged on the resource that fills first; short, on either.
        fills = cores if plan.bottleneck is Bottleneck.CPU else memory
        verdicts += [fills] + [
            v for v in (cores, memory) if v is not fills and v.severity is Severity.CRITICAL
        ]
    for result in disk:
        mount = result.extra.get("mount")
        needed_gib = (result.recommended or 0.0) / GIB
        current_gib = host.mounts.get(str(mount), 0.0)
        if current_gib and needed_gib > current_gib:
            plan.changes.append(f"grow {mount} from {current_gib:g} to {needed_gib:.0f} GiB")
            verdicts.append(judge(str(mount), needed_gib, current_gib, "GiB", short="grow it", over=""))
            downtime = "online (grow volume and filesystem)" if downtime == "none" else downtime
    if plan.network_over_limit:
        plan.changes.append(f"network: {plan.network_reason}: add or bond a faster NIC")
        verdicts.append(Verdict(Severity.CRITICAL, f"network: {plan.network_reason}: a faster NIC"))
        downtime = "host stop (NIC change)"
    if plan.disk_class != host.disk_class:
        plan.changes.append(f"change disk class {host.disk_class} -> {plan.disk_class}")
        verdicts.append(
            Verdict(
                Severity.CRITICAL,
                f"disks: {plan.disk_class_reason}: {host.disk_class} -> {plan.disk_class}",
            )
        )
        downtime = "host stop + data migration"
    verdict = worst(verdicts)
    plan.severity, plan.severity_reason = verdict.severity, verdict.reason
    plan.downtime = downtime


def host_vars(plan: HostPlan) -> dict[str, object]:
    """The `host_vars/<host>.yml` fragment the scale playbook applies."""
    return {
        "khronika_capacity": {
            "cores": plan.cores,
            "memory_gib": plan.memory_gib,
            "disk_gib": plan.disk_gib,
            "disk_class": plan.disk_class,
            "gpus": plan.gpus,
            "gpu_model": plan.gpu_model,
            "modules": plan.modules,
        }
    }
