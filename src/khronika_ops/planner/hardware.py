"""Hardware choices: disk class from p99 IOPS and MB/s, GPU model and count from request rate and VRAM."""

from __future__ import annotations

import math

from pydantic import BaseModel

from khronika_ops.planner.catalog import Catalog, DiskClass, ModuleSpec

# Plan a device at most 70 % busy: an M/M/1 queue's wait is already 2.3x the service time there.
DEVICE_TARGET_UTILISATION = 0.7


class DiskClassChoice(BaseModel):
    disk_class: str
    reason: str
    rejected: dict[str, str]


class GpuChoice(BaseModel):
    model: str | None
    count: int
    reason: str
    candidates: dict[str, str]


def choose_disk_class(p99_iops: float, p99_mb_per_s: float, catalog: Catalog) -> DiskClassChoice:
    """Cheapest class (per TB) whose IOPS and MB/s cover the p99 demand at 70 % device utilisation."""
    rejected: dict[str, str] = {}
    fitting: list[DiskClass] = []
    for item in sorted(catalog.disk_classes, key=lambda c: (c.cost_per_tb, c.name)):
        iops_needed = p99_iops / DEVICE_TARGET_UTILISATION
        mbps_needed = p99_mb_per_s / DEVICE_TARGET_UTILISATION
        if item.max_iops < iops_needed:
            rejected[item.name] = f"{item.max_iops:g} IOPS < {iops_needed:.0f} needed"
        elif item.max_mb_per_s < mbps_needed:
            rejected[item.name] = f"{item.max_mb_per_s:g} MB/s < {mbps_needed:.1f} needed"
        else:
            fitting.append(item)
    if not fitting:
        best = max(catalog.disk_classes, key=lambda c: (c.max_iops, c.name))
        return DiskClassChoice(
            disk_class=best.name,
            reason="no class covers the demand; the fastest is proposed",
            rejected=rejected,
        )
    chosen = fitting[0]
    reason = (
        f"p99 {p99_iops:.0f} IOPS and {p99_mb_per_s:.1f} MB/s fit {chosen.name} at "
        f"<= {DEVICE_TARGET_UTILISATION:.0%} utilisation; cheapest per TB that does"
    )
    return DiskClassChoice(disk_class=chosen.name, reason=reason, rejected=rejected)


def choose_gpus(peak_requests_per_second: float, module: ModuleSpec, catalog: Catalog) -> GpuChoice:
    """count = ceil(peak / (per-GPU rate x target utilisation)) + spare; cheapest model whose VRAM fits."""
    if module.gpu_requests_per_second is None:
        return GpuChoice(model=None, count=0, reason="module needs no GPU", candidates={})
    vram_needed = module.gpu_vram_gib * catalog.vram_headroom
    candidates: dict[str, str] = {}
    best: tuple[float, str, int] | None = None
    for model in sorted(catalog.gpu_models, key=lambda m: m.name):
        if model.vram_gib < vram_needed:
            candidates[model.name] = f"rejected: {model.vram_gib:g} GiB VRAM < {vram_needed:.1f} GiB needed"
            continue
        per_gpu = module.gpu_requests_per_second * model.throughput * module.gpu_target_utilisation
        count = max(1, math.ceil(peak_requests_per_second / per_gpu)) + module.gpu_spare
        cost = count * model.cost
        candidates[model.name] = f"{count} GPUs, cost {cost:g}"
        if best is None or (cost, model.name) < (best[0], best[1]):
            best = (cost, model.name, count)
    if best is None:
        return GpuChoice(
            model=None, count=0, reason=f"no GPU model has {vram_needed:.1f} GiB VRAM", candidates=candidates
        )
    cost, name, count = best
    reason = (
        f"peak {peak_requests_per_second:.3g} req/s at {module.gpu_target_utilisation:.0%} target utilisation "
        f"+ {module.gpu_spare} spare -> {count} x {name} (cheapest fitting, cost {cost:g})"
    )
    return GpuChoice(model=name, count=count, reason=reason, candidates=candidates)
