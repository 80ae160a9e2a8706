"""Evidence read from the history beside a size, not a size itself: what a host's GPUs were seen doing.
The module stage (a GPU module's current host) and the host stage both read it here."""

from __future__ import annotations

import numpy as np

from khronika_ops.planner.catalog import ExistingHost
from khronika_ops.planner.series_index import SeriesIndex
from khronika_ops.planner.size import round_figure

GIB = 1024.0**3


def host_gpus(host: ExistingHost, index: SeriesIndex) -> tuple[dict[str, float], str]:
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
