"""The full plan: ingest -> clean -> forecast -> size -> place -> report (`khronika plan`)."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from khronika_ops.metrics import is_virtual_interface
from khronika_ops.planner.catalog import Catalog, ExistingHost, ModuleSpec, load_catalog
from khronika_ops.planner.clean import clean
from khronika_ops.planner.errors import InputError
from khronika_ops.planner.forecast import forecast_block
from khronika_ops.planner.hardware import choose_disk_class, choose_gpus
from khronika_ops.planner.models import CleanSeries, Forecast, ForecastSettings, RawSeries, SizeResult
from khronika_ops.planner.place import Placement, Replica, check_n_minus_1, place
from khronika_ops.planner.single import sum_on_grid
from khronika_ops.planner.size import SizingPolicy, erlang_cores, round_figure, size_series
from khronika_ops.planner.units import Resource
from khronika_ops.planner.vocabulary import to_collector_names

GIB = 1024.0**3
Progress = Callable[[str], None]


class PlanRequest(BaseModel):
    model_config = ConfigDict(frozen=True)

    prometheus_url: str | None = None
    prometheus_ca: str | None = None
    prometheus_user: str | None = None
    # Never dumped or printed; from KHRONIKA_PROMETHEUS_PASSWORD / _TOKEN, not from the command line.
    prometheus_password: SecretStr | None = None
    prometheus_token: SecretStr | None = None
    csv_files: list[str] = Field(default_factory=list)
    catalog_files: list[str] = Field(default_factory=list)
    history_days: float = 14.0
    step_seconds: float = 300.0
    settings: ForecastSettings = ForecastSettings()
    policy: SizingPolicy = SizingPolicy()
    # Fixed "now" for Prometheus queries (epoch s); tests and reproducible runs set it.
    end_time: float | None = None


class ModulePlan(BaseModel):
    name: str
    replicas: int
    cores_per_replica: float
    memory_gib_per_replica: float
    gpus_per_replica: int = 0
    gpu_model: str | None = None
    bottleneck: str
    severity: str
    reasons: dict[str, str] = Field(default_factory=dict)
    figures: list[SizeResult] = Field(default_factory=list)
    current_host: str | None = None


class HostPlan(BaseModel):
    name: str
    new: bool
    shape: str
    cores: float
    memory_gib: float
    disk_gib: float
    disk_class: str
    gpus: int = 0
    gpu_model: str | None = None
    modules: list[str] = Field(default_factory=list)
    cores_used: float = 0.0
    memory_gib_used: float = 0.0
    bottleneck: str = ""
    severity: str = "GOOD"
    disk: list[SizeResult] = Field(default_factory=list)
    disk_class_reason: str = ""
    nic_gbps: float = 10.0
    network: SizeResult | None = None
    network_reason: str = ""
    network_over_limit: bool = False
    gpu_observed: dict[str, float] = Field(default_factory=dict)
    gpu_reason: str = ""
    changes: list[str] = Field(default_factory=list)
    downtime: str = "none"
    n_minus_1_holds: bool = True


class Plan(BaseModel):
    horizon_days: float
    history_source: str
    series_read: int
    insufficient_series: list[str] = Field(default_factory=list)
    modules: list[ModulePlan] = Field(default_factory=list)
    hosts: list[HostPlan] = Field(default_factory=list)
    placement: Placement
    n_minus_1: dict[str, bool] = Field(default_factory=dict)
    total_new_cost: float = 0.0
    changes: list[str] = Field(default_factory=list)
    host_vars: dict[str, dict[str, object]] = Field(default_factory=dict)
    warnings: list[str] = Field(default_factory=list)


def ingest(request: PlanRequest, catalog: Catalog) -> list[RawSeries]:
    from khronika_ops.planner.ingest.csvfile import read_csv

    series: list[RawSeries] = []
    for path in request.csv_files:
        series += read_csv(path)
    if request.prometheus_url:
        from khronika_ops.planner.ingest.prometheus import PrometheusClient, fetch_plan_series

        end = request.end_time or time.time()
        start = end - request.history_days * 86400.0
        client = PrometheusClient(
            request.prometheus_url,
            ca_file=request.prometheus_ca,
            username=request.prometheus_user,
            password=request.prometheus_password.get_secret_value() if request.prometheus_password else None,
            bearer_token=request.prometheus_token.get_secret_value() if request.prometheus_token else None,
        )
        series += fetch_plan_series(
            client, start, end, request.step_seconds, hosts=[host.name for host in catalog.hosts]
        )
    if not series:
        hosts = ", ".join(host.name for host in catalog.hosts)
        scope = (
            f" for the catalog's hosts ({hosts}) over the last {request.history_days:g} d" if hosts else ""
        )
        hint = (
            "; Prometheus must label them instance=<inventory name>[:port] (docs/metrics.md)"
            if hosts and request.prometheus_url
            else ""
        )
        raise InputError(
            f"no series found{scope}{hint}", source=request.prometheus_url or ",".join(request.csv_files)
        )
    return series


def forecast_all(series: Sequence[CleanSeries], settings: ForecastSettings) -> list[Forecast]:
    """Forecast series grouped by grid, so each group is one vectorised fit; input order is kept."""
    groups: dict[tuple[float, float, int], list[int]] = defaultdict(list)
    for index, item in enumerate(series):
        groups[item.start, item.step, item.values.size].append(index)
    results: list[Forecast | None] = [None] * len(series)
    for indices in groups.values():
        for index, result in zip(
            indices, forecast_block([series[i] for i in indices], settings), strict=True
        ):
            results[index] = result
    return [result for result in results if result is not None]


def _severity(current: float | None, recommended: float | None) -> str:
    """krr-like: CRITICAL when short, WARNING when less than half is needed, GOOD otherwise."""
    if current is None or recommended is None:
        return "UNKNOWN"
    if recommended > current * 1.0001:
        return "CRITICAL"
    if recommended < 0.5 * current:
        return "WARNING"
    return "GOOD"


class _Index:
    """Cleaned series and forecasts by metric and labels."""

    def __init__(self, cleaned: list[CleanSeries], forecasts: list[Forecast]) -> None:
        self.items = list(zip(cleaned, forecasts, strict=True))

    def find(self, metrics: Sequence[str], **labels: str) -> list[CleanSeries]:
        found = []
        for series, _ in self.items:
            if series.key.metric not in metrics:
                continue
            if all(_label_matches(series.key.label(name), value) for name, value in labels.items()):
                found.append(series)
        return found

    def labels(self, metric: str, name: str) -> list[str]:
        return sorted({v for s, _ in self.items if s.key.metric == metric and (v := s.key.label(name))})


def _label_matches(actual: str | None, wanted: str) -> bool:
    if actual is None:
        return False
    return actual == wanted or actual.startswith((f"{wanted}-", f"{wanted}_", f"{wanted}."))


def _size_total(
    series: list[CleanSeries], resource: Resource, request: PlanRequest, **kwargs: float
) -> SizeResult | None:
    if not series:
        return None
    combined = series[0] if len(series) == 1 else sum_on_grid(series)
    result = forecast_block([combined], request.settings)[0]
    return size_series(
        result, resource, request.policy, source=combined.source, cleaning=combined.report, **kwargs
    )


def _module_plan(spec: ModuleSpec, index: _Index, request: PlanRequest, catalog: Catalog) -> ModulePlan:
    figures: list[SizeResult] = []
    reasons: dict[str, str] = {}
    cpu = _size_total(
        index.find(["khronika_container_cpu_cores"], container=spec.name), Resource.CPU, request
    )
    memory = _size_total(
        index.find(["khronika_container_memory_bytes"], container=spec.name), Resource.MEMORY, request
    )
    requests = _size_total(
        index.find(["khronika_module_requests_per_second"], module=spec.name), Resource.REQUESTS, request
    )
    latency = index.find(["khronika_module_request_duration_seconds"], module=spec.name)
    if latency:
        reasons["latency"] = _latency_evidence(latency, spec.latency_target_seconds)
    cores = spec.min_cores * spec.replicas
    reasons["cpu"] = f"minimum {spec.min_cores:g} cores per replica (catalog)"
    if cpu is not None:
        figures.append(cpu)
        if cpu.recommended is not None and cpu.recommended > cores:
            cores, reasons["cpu"] = cpu.recommended, cpu.reason
    if requests is not None and requests.recommended is not None and spec.cpu_seconds_per_request:
        figures.append(requests)
        peak = requests.demand.get("p99.9", requests.recommended)
        queueing = erlang_cores(
            peak, spec.cpu_seconds_per_request, spec.latency_target_seconds, request.policy
        )
        if queueing.servers > cores:
            cores = float(queueing.servers)
            reasons["cpu"] = (
                f"Erlang C: {peak:.3g} req/s x {spec.cpu_seconds_per_request:g} s/req needs {queueing.servers} cores "
                f"for {request.policy.erlang_service_level:.0%} within {spec.latency_target_seconds:g} s "
                f"(P(wait) {queueing.p_wait:.3f}); larger than the percentile size"
            )
    memory_gib = spec.min_memory_gib * spec.replicas
    reasons["memory"] = f"minimum {spec.min_memory_gib:g} GiB per replica (catalog)"
    if memory is not None:
        figures.append(memory)
        if memory.recommended is not None and memory.recommended / GIB > memory_gib:
            memory_gib, reasons["memory"] = memory.recommended / GIB, memory.reason
    gpu_model, gpus = None, 0
    if spec.gpu_requests_per_second is not None:
        peak = requests.demand.get("p99.9", 0.0) if requests and requests.recommended is not None else 0.0
        choice = choose_gpus(peak, spec, catalog)
        gpu_model, gpus, reasons["gpu"] = choice.model, choice.count, choice.reason
        if requests is None or requests.recommended is None:
            reasons["gpu"] = (
                f"no request-rate history for {spec.name}, so only the spare is sized: " + reasons["gpu"]
            )
        current_host = next((h for h in catalog.hosts if h.name == spec.host), None)
        if current_host is not None:
            observed, evidence = _host_gpus(current_host, index)
            if evidence:
                reasons["gpu"] += f"; on {current_host.name} {evidence}"
            used = observed.get("memory_used_gib_max")
            if used is not None and gpu_model is not None:
                fits = catalog.gpu_model(gpu_model).vram_gib / catalog.vram_headroom
                if used > fits:
                    reasons["gpu"] += (
                        f"; WARNING: observed VRAM use {used:.1f} GiB exceeds what {gpu_model} holds with "
                        f"headroom ({fits:.3g} GiB): raise gpu_vram_gib in the catalog"
                    )
    per_replica_cores = round_figure(cores / spec.replicas)
    per_replica_memory = round_figure(memory_gib / spec.replicas)
    gpus_per_replica = -(-gpus // spec.replicas) if gpus else 0
    bottleneck = _module_bottleneck(per_replica_cores, per_replica_memory, catalog)
    current = next((h for h in catalog.hosts if h.name == spec.host), None)
    severity = "UNKNOWN"
    if current is not None:
        severity = max(
            (_severity(current.cores, cores), _severity(current.memory_gib, memory_gib)),
            key=("UNKNOWN", "GOOD", "WARNING", "CRITICAL").index,
        )
    return ModulePlan(
        name=spec.name,
        replicas=spec.replicas,
        cores_per_replica=per_replica_cores,
        memory_gib_per_replica=per_replica_memory,
        gpus_per_replica=gpus_per_replica,
        gpu_model=gpu_model,
        bottleneck=bottleneck,
        severity=severity,
        reasons=reasons,
        figures=figures,
        current_host=spec.host,
    )


def _latency_evidence(series: list[CleanSeries], target: float) -> str:
    """Observed request latency against the module's target: evidence that the current size is short."""
    values = np.concatenate([item.values[np.isfinite(item.values)] for item in series])
    if not values.size:
        return "no latency samples"
    p95, worst = float(np.quantile(values, 0.95)), float(values.max())
    verdict = "above the target: the current size is short" if p95 > target else "within the target"
    return f"observed p95 {p95:.3g} s (max {worst:.3g} s) against the {target:g} s target: {verdict}"


def _module_bottleneck(cores: float, memory_gib: float, catalog: Catalog) -> str:
    """The resource that takes the larger share of the typical host (how bins fill up)."""
    shapes = catalog.hosts or catalog.host_shapes
    if not shapes:
        return "cpu"
    typical_cores = sum(s.cores for s in shapes) / len(shapes)
    typical_memory = sum(s.memory_gib for s in shapes) / len(shapes)
    return "cpu" if cores / typical_cores >= memory_gib / typical_memory else "memory"


def _host_disk(
    host: ExistingHost, index: _Index, request: PlanRequest, catalog: Catalog
) -> tuple[list[SizeResult], str, str]:
    results: list[SizeResult] = []
    reserve = (catalog.next_release_images_gib + catalog.backup_gib) * GIB
    for mount in index.labels("khronika_filesystem_used_bytes", "mount"):
        used = index.find(["khronika_filesystem_used_bytes"], host=host.name, mount=mount)
        size = index.find(["khronika_filesystem_size_bytes"], host=host.name, mount=mount)
        capacity = float(size[0].values[-1]) if size else host.mounts.get(mount, 0.0) * GIB or None
        result = _size_total(
            used, Resource.DISK, request, extra_bytes=reserve, **({"capacity": capacity} if capacity else {})
        )
        if result is not None:
            result.extra["mount"] = mount
            results.append(result)
    iops = _size_total(index.find(["khronika_disk_iops"], host=host.name), Resource.REQUESTS, request)
    throughput = _size_total(
        index.find(["khronika_disk_throughput_bytes_per_second"], host=host.name), Resource.REQUESTS, request
    )
    if iops is None and throughput is None:
        return results, host.disk_class, "no disk IOPS/throughput history: current class kept"
    p99_iops = iops.demand.get("p99", 0.0) if iops else 0.0
    p99_mbps = throughput.demand.get("p99", 0.0) / 1e6 if throughput else 0.0
    choice = choose_disk_class(p99_iops, p99_mbps, catalog)
    return results, choice.disk_class, choice.reason


def _host_network(
    host: ExistingHost, index: _Index, request: PlanRequest, catalog: Catalog
) -> tuple[SizeResult | None, bool, str]:
    """p99 of the host's NIC traffic at the horizon against its NIC speed, per direction (links are
    full duplex; series without a direction, from older files, count as both at once)."""
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
        if (result := _size_total(members, Resource.REQUESTS, request)) is not None
        and result.recommended is not None
    }
    if not sized:
        return None, False, "no network history"
    direction, result = max(sized.items(), key=lambda item: item[1].demand.get("p99", 0.0))
    p99_gbps = result.demand.get("p99", 0.0) * 8 / 1e9
    limit = host.nic_gbps * catalog.nic_max_utilisation
    verdict = "fits" if p99_gbps <= limit else "exceeds"
    busiest = f" ({direction}, the busier direction)" if len(sized) > 1 else f" ({direction})"
    return (
        result,
        p99_gbps > limit,
        (
            f"p99 {p99_gbps:.3g} Gbit/s{busiest} at the horizon {verdict} {catalog.nic_max_utilisation:.0%} of the "
            f"{host.nic_gbps:g} Gbit/s NIC ({limit:.3g} Gbit/s)"
        ),
    )


def _host_gpus(host: ExistingHost, index: _Index) -> tuple[dict[str, float], str]:
    """Observed GPU utilisation and VRAM on a host: evidence next to the GPU figures, not a size."""
    utilisation = index.find(["khronika_gpu_utilisation_ratio"], host=host.name)
    used = index.find(["khronika_gpu_memory_used_bytes"], host=host.name)
    total = index.find(["khronika_gpu_memory_total_bytes"], host=host.name)
    observed: dict[str, float] = {}
    if utilisation:
        values = np.concatenate([s.values[np.isfinite(s.values)] for s in utilisation])
        if values.size:
            observed["utilisation_p95"] = round_figure(float(np.quantile(values, 0.95)))
            observed["utilisation_max"] = round_figure(float(values.max()))
    if used:
        observed["memory_used_gib_max"] = round_figure(max(float(np.nanmax(s.values)) for s in used) / GIB)
    if total:
        observed["memory_total_gib"] = round_figure(max(float(np.nanmax(s.values)) for s in total) / GIB)
    if not observed:
        return observed, "no GPU history" if host.gpus else ""
    parts = [f"{len(utilisation) or len(used)} GPU series"]
    if "utilisation_p95" in observed:
        parts.append(
            f"utilisation p95 {observed['utilisation_p95']:.0%}, max {observed['utilisation_max']:.0%}"
        )
    if "memory_used_gib_max" in observed:
        of = f" of {observed['memory_total_gib']:.1f}" if "memory_total_gib" in observed else ""
        parts.append(f"VRAM used at most {observed['memory_used_gib_max']:.1f}{of} GiB per GPU")
    return observed, "observed: " + "; ".join(parts)


def build_plan(request: PlanRequest, progress: Progress | None = None) -> Plan:
    note = progress or (lambda _message: None)
    catalog = load_catalog(request.catalog_files)
    note("reading history")
    raw = ingest(request, catalog)
    note(f"cleaning {len(raw)} series")
    cleaned_raw, skipped = [], []
    for series in raw:
        try:
            cleaned_raw.append(clean(series))
        except InputError as error:  # one unusable series (all NaN, say) must not stop the whole plan
            skipped.append(f"{series.key}: not used: {error}")
    if not cleaned_raw:
        raise InputError("no usable series: " + "; ".join(skipped[:5]), source=raw[0].source)
    cleaned = to_collector_names(cleaned_raw)
    note("forecasting")
    forecasts = forecast_all(cleaned, request.settings)
    index = _Index(cleaned, forecasts)
    insufficient = sorted(str(f.key) for f in forecasts if f.insufficient_data)
    specs = catalog.modules or [
        ModuleSpec(name=name) for name in index.labels("khronika_container_cpu_cores", "container")
    ]
    note(f"sizing {len(specs)} modules")
    modules = [_module_plan(spec, index, request, catalog) for spec in specs]
    replicas = [
        Replica(
            module=m.name,
            index=i,
            cores=m.cores_per_replica,
            memory_gib=m.memory_gib_per_replica,
            gpus=m.gpus_per_replica,
            gpu_model=m.gpu_model,
            anti_affinity=next(s.anti_affinity for s in specs if s.name == m.name),
        )
        for m in modules
        for i in range(m.replicas)
    ]
    note(f"placing {len(replicas)} replicas")
    placement = place(replicas, catalog)
    drains = check_n_minus_1(replicas, placement, catalog)
    warnings = list(catalog.notes) + skipped
    warnings += [f"{name}: could not be placed on any host or shape" for name in placement.unplaced]
    warnings += [f"N-1: draining {d.host} strands {', '.join(d.unplaced)}" for d in drains if not d.holds]
    hosts = _host_plans(
        replicas,
        placement=placement,
        catalog=catalog,
        index=index,
        request=request,
        drains={d.host: d.holds for d in drains},
    )
    changes = [f"{h.name}: {change}" for h in hosts for change in h.changes]
    for module in modules:
        placed_on = sorted(
            {placement.assignment.get(f"{module.name}#{i}", "?") for i in range(module.replicas)}
        )
        if module.current_host and module.current_host not in placed_on:
            changes.append(
                f"{module.name}: move from {module.current_host} to {', '.join(placed_on)} (module restart)"
            )
    return Plan(
        horizon_days=request.settings.horizon_days,
        history_source=request.prometheus_url or ", ".join(request.csv_files),
        series_read=len(raw),
        insufficient_series=insufficient,
        modules=modules,
        hosts=hosts,
        placement=placement,
        n_minus_1={d.host: d.holds for d in drains},
        total_new_cost=placement.cost,
        changes=changes,
        host_vars={h.name: _host_vars(h) for h in hosts},
        warnings=warnings,
    )


def _host_plans(
    replicas: list[Replica],
    *,
    placement: Placement,
    catalog: Catalog,
    index: _Index,
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
        disk, disk_class, disk_reason = (
            _host_disk(host, index, request, catalog)
            if name in existing
            else ([], host.disk_class, "new host")
        )
        network, network_over, network_reason = (
            _host_network(host, index, request, catalog) if name in existing else (None, False, "new host")
        )
        gpu_observed, gpu_reason = _host_gpus(host, index) if name in existing else ({}, "")
        plan = HostPlan(
            name=name,
            new=name not in existing,
            shape=shape_name,
            cores=host.cores,
            memory_gib=host.memory_gib,
            disk_gib=host.disk_gib,
            disk_class=disk_class,
            gpus=host.gpus,
            gpu_model=host.gpu_model,
            modules=sorted({r.module for r in on_host}),
            cores_used=round_figure(cores_used),
            memory_gib_used=round_figure(memory_used),
            disk=disk,
            disk_class_reason=disk_reason,
            nic_gbps=host.nic_gbps,
            network=network,
            network_reason=network_reason,
            network_over_limit=network_over,
            gpu_observed=gpu_observed,
            gpu_reason=gpu_reason,
            n_minus_1_holds=drains.get(name, True),
        )
        plan.bottleneck = "cpu" if cores_used / host.cores >= memory_used / host.memory_gib else "memory"
        _diff_host(plan, host, disk)
        plans.append(plan)
    return plans


def _diff_host(plan: HostPlan, host: ExistingHost, disk: list[SizeResult]) -> None:
    """What to add or change on this host, and the downtime class that change needs."""
    downtime = "none"
    if plan.new:
        plan.changes.append(
            f"buy and add a {plan.shape} host ({plan.cores:g} cores, {plan.memory_gib:g} GiB)"
        )
        plan.severity = "CRITICAL"
        plan.downtime = "none (new host joins; modules move with a restart)"
        return
    if not plan.modules:
        plan.changes.append("no module placed: can be retired or kept as N-1 spare")
    for result in disk:
        mount = result.extra.get("mount")
        needed_gib = (result.recommended or 0.0) / GIB
        current_gib = host.mounts.get(str(mount), 0.0)
        if current_gib and needed_gib > current_gib:
            plan.changes.append(f"grow {mount} from {current_gib:g} to {needed_gib:.0f} GiB")
            plan.severity = "CRITICAL"
            downtime = "online (grow volume and filesystem)" if downtime == "none" else downtime
    if plan.network_over_limit:
        plan.changes.append(f"network: {plan.network_reason}: add or bond a faster NIC")
        plan.severity = "CRITICAL"
        downtime = "host stop (NIC change)"
    if plan.disk_class != host.disk_class:
        plan.changes.append(f"change disk class {host.disk_class} -> {plan.disk_class}")
        downtime = "host stop + data migration"
        plan.severity = "CRITICAL"
    if plan.severity != "CRITICAL" and plan.cores_used < 0.5 * plan.cores and plan.modules:
        plan.severity = "WARNING"  # less than half used: over-provisioned
    plan.downtime = downtime


def _host_vars(plan: HostPlan) -> dict[str, object]:
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


def run_plan(request: PlanRequest, output_formats: Sequence[str]) -> dict[str, str]:
    """One plan, rendered in every format asked for (format -> text)."""
    from rich.console import Console
    from rich.progress import Progress as RichProgress
    from rich.progress import SpinnerColumn, TextColumn

    from khronika_ops.planner.report import render

    # The bar goes to stderr so that `--format json` on stdout stays parseable.
    columns = (SpinnerColumn(), TextColumn("{task.description}"))
    with RichProgress(*columns, transient=True, console=Console(stderr=True)) as bar:
        task = bar.add_task("planning", total=None)
        plan = build_plan(request, progress=lambda message: bar.update(task, description=message))
    return {output_format: render(plan, output_format) for output_format in output_formats}
