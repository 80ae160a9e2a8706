"""Module sizing: cores, memory and GPUs per replica from the module's own series and the catalog."""

from __future__ import annotations

import numpy as np

from khronika_ops.metrics import Resource
from khronika_ops.planner.catalog import Catalog, ModuleSpec
from khronika_ops.planner.evidence import host_gpus
from khronika_ops.planner.hardware import choose_gpus
from khronika_ops.planner.models import CleanSeries, SizeResult
from khronika_ops.planner.plan import ModulePlan, PlanRequest
from khronika_ops.planner.series_index import SeriesIndex, size_total
from khronika_ops.planner.size import erlang_cores, round_figure
from khronika_ops.planner.verdict import bottleneck, judge, worst

GIB = 1024.0**3


def module_plan(spec: ModuleSpec, index: SeriesIndex, request: PlanRequest, catalog: Catalog) -> ModulePlan:
    figures: list[SizeResult] = []
    reasons: dict[str, str] = {}
    cpu = size_total(index.find(["khronika_container_cpu_cores"], container=spec.name), Resource.CPU, request)
    memory = size_total(
        index.find(["khronika_container_memory_bytes"], container=spec.name), Resource.MEMORY, request
    )
    requests = size_total(
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
        peak = requests.demand.get(request.policy.request_peak_percentile, requests.recommended)
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
        level = request.policy.request_peak_percentile
        peak = requests.demand.get(level, 0.0) if requests and requests.recommended is not None else 0.0
        choice = choose_gpus(peak, spec, catalog)
        gpu_model, gpus, reasons["gpu"] = choice.model, choice.count, choice.reason
        if requests is None or requests.recommended is None:
            reasons["gpu"] = (
                f"no request-rate history for {spec.name}, so only the spare is sized: " + reasons["gpu"]
            )
        current_host = next((h for h in catalog.hosts if h.name in spec.current_hosts()), None)
        if current_host is not None:
            observed, evidence = host_gpus(current_host, index)
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
    shapes = catalog.hosts or catalog.host_shapes
    typical = (
        (sum(h.cores for h in shapes) / len(shapes), sum(h.memory_gib for h in shapes) / len(shapes))
        if shapes
        else (1.0, 1.0)
    )
    verdict = worst(
        (
            judge(
                "cpu",
                cpu.recommended if cpu is not None else None,
                spec.current_cores * spec.replicas if spec.current_cores else None,
                "cores",
                short="raise its cpus limit (scale.yml applies the plan's)",
                over="lower its cpus limit to free the room",
            ),
            judge(
                "memory",
                memory.recommended / GIB if memory is not None and memory.recommended is not None else None,
                spec.current_memory_gib * spec.replicas if spec.current_memory_gib else None,
                "GiB",
                short="raise its memory limit (scale.yml applies the plan's)",
                over="lower its memory limit to free the room",
            ),
        )
    )
    return ModulePlan(
        name=spec.name,
        replicas=spec.replicas,
        cores_per_replica=per_replica_cores,
        memory_gib_per_replica=per_replica_memory,
        gpus_per_replica=gpus_per_replica,
        gpu_model=gpu_model,
        bottleneck=bottleneck(per_replica_cores, per_replica_memory, *typical),
        severity=verdict.severity,
        severity_reason=verdict.reason,
        reasons=reasons,
        figures=figures,
        current_hosts=spec.current_hosts(),
    )


def _latency_evidence(series: list[CleanSeries], target: float) -> str:
    """Observed request latency against the module's target: evidence that the current size is short."""
    values = np.concatenate([item.values[np.isfinite(item.values)] for item in series])
    if not values.size:
        return "no latency samples"
    p95, worst = float(np.quantile(values, 0.95)), float(values.max())
    verdict = "above the target: the current size is short" if p95 > target else "within the target"
    return f"observed p95 {p95:.3g} s (max {worst:.3g} s) against the {target:g} s target: {verdict}"
