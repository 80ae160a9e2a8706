"""Exporter series -> the collector's vocabulary, for history read from files.

The Prometheus ingest asks for the collector's names directly (its PromQL does the same arithmetic
server-side, see ingest/prometheus.py). A CSV export of node_exporter, cAdvisor or dcgm-exporter
series arrives with the exporters' own names and labels; this step turns cleaned series (counters are
already per-second rates) into the names the plan reads:

| derived | from | how |
|---|---|---|
| khronika_host_cpu_used_cores | node_cpu_seconds_total | sum over CPUs and modes except idle |
| khronika_host_memory_used_bytes | node_memory_MemTotal_bytes - node_memory_MemAvailable_bytes | per host |
| khronika_filesystem_used_bytes | node_filesystem_size_bytes - node_filesystem_free_bytes | per mount |
| khronika_disk_iops | node_disk_reads_completed_total + node_disk_writes_completed_total | per device, dm-* left out |
| khronika_disk_throughput_bytes_per_second | node_disk_read_bytes_total + node_disk_written_bytes_total | per device |
| khronika_network_bytes_per_second | node_network_receive_bytes_total, node_network_transmit_bytes_total | per interface and `direction`, virtual ones left out |
| khronika_container_cpu_cores | container_cpu_usage_seconds_total | per container |
| khronika_container_memory_bytes | container_memory_working_set_bytes | per container |
| khronika_gpu_utilisation_ratio | DCGM_FI_DEV_GPU_UTIL / 100 | per GPU |
| khronika_gpu_memory_used_bytes | DCGM_FI_DEV_FB_USED (MiB, scaled on reading) | per GPU |

Labels are renamed the way the Prometheus ingest renames them: `instance` -> `host` (port dropped),
cAdvisor `name` -> `container`, `mountpoint` -> `mount`, dcgm `modelName` -> `model`, and the network
`device` -> `interface`. Series with other names pass through unchanged.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from khronika_ops.metrics import is_disk_filesystem, is_virtual_disk, is_virtual_interface
from khronika_ops.planner.aggregate import sum_on_grid
from khronika_ops.planner.models import CleanSeries, SeriesKey


@dataclass(frozen=True)
class Derivation:
    target: str
    plus: tuple[str, ...]
    keep: tuple[str, ...]
    minus: tuple[str, ...] = ()
    scale: float = 1.0
    unit: str = "bytes"
    accept: Callable[[dict[str, str]], bool] = lambda _labels: True
    labels: tuple[tuple[str, str], ...] = ()  # added to the derived series


def _not_idle(labels: dict[str, str]) -> bool:
    return labels.get("mode") != "idle"


def _real_disk(labels: dict[str, str]) -> bool:
    return not is_virtual_disk(labels.get("device", ""))


def _real_interface(labels: dict[str, str]) -> bool:
    return not is_virtual_interface(labels.get("interface", ""))


def _real_filesystem(labels: dict[str, str]) -> bool:
    return is_disk_filesystem(labels.get("fstype", ""))


def _named_container(labels: dict[str, str]) -> bool:
    return bool(labels.get("container"))


DERIVATIONS: tuple[Derivation, ...] = (
    Derivation(
        "khronika_host_cpu_used_cores", ("node_cpu_seconds_total",), ("host",), unit="cores", accept=_not_idle
    ),
    Derivation(
        "khronika_host_memory_used_bytes",
        ("node_memory_MemTotal_bytes",),
        ("host",),
        minus=("node_memory_MemAvailable_bytes",),
    ),
    Derivation("khronika_host_memory_total_bytes", ("node_memory_MemTotal_bytes",), ("host",)),
    Derivation(
        "khronika_filesystem_used_bytes",
        ("node_filesystem_size_bytes",),
        ("host", "mount"),
        minus=("node_filesystem_free_bytes",),
        accept=_real_filesystem,
    ),
    Derivation(
        "khronika_filesystem_size_bytes",
        ("node_filesystem_size_bytes",),
        ("host", "mount"),
        accept=_real_filesystem,
    ),
    Derivation(
        "khronika_disk_iops",
        ("node_disk_reads_completed_total", "node_disk_writes_completed_total"),
        ("host", "device"),
        unit="iops",
        accept=_real_disk,
    ),
    Derivation(
        "khronika_disk_throughput_bytes_per_second",
        ("node_disk_read_bytes_total", "node_disk_written_bytes_total"),
        ("host", "device"),
        accept=_real_disk,
    ),
    *(
        Derivation(
            "khronika_network_bytes_per_second",
            (f"node_network_{direction}_bytes_total",),
            ("host", "interface"),
            accept=_real_interface,
            labels=(("direction", direction),),
        )
        for direction in ("receive", "transmit")
    ),
    Derivation(
        "khronika_container_cpu_cores",
        ("container_cpu_usage_seconds_total",),
        ("host", "container"),
        unit="cores",
        accept=_named_container,
    ),
    Derivation(
        "khronika_container_memory_bytes",
        ("container_memory_working_set_bytes",),
        ("host", "container"),
        accept=_named_container,
    ),
    Derivation(
        "khronika_gpu_utilisation_ratio",
        ("DCGM_FI_DEV_GPU_UTIL",),
        ("host", "gpu", "model"),
        scale=0.01,
        unit="ratio",
    ),
    Derivation("khronika_gpu_memory_used_bytes", ("DCGM_FI_DEV_FB_USED",), ("host", "gpu", "model")),
)
SOURCE_METRICS = frozenset(name for d in DERIVATIONS for name in (*d.plus, *d.minus))


def normalise_labels(metric: str, labels: dict[str, str]) -> dict[str, str]:
    """Exporter label names -> the collector's (an exporter's own `host`/`container` label wins)."""
    renamed = dict(labels)
    moves = [("instance", "host"), ("mountpoint", "mount"), ("modelName", "model")]
    if metric.startswith("container_"):
        moves.append(("name", "container"))
    if metric.startswith("node_network_"):
        moves.append(("device", "interface"))
    for old, new in moves:
        if old in renamed:
            value = renamed.pop(old)
            renamed.setdefault(new, value)
    if "host" in renamed:
        renamed["host"] = strip_port(renamed["host"])
    return renamed


def strip_port(address: str) -> str:
    """'h1:9100' -> 'h1', '[::1]:9100' -> '::1'; a bare IPv6 address is kept whole."""
    if address.startswith("[") and "]" in address:
        return address[1 : address.index("]")]
    if address.count(":") == 1:
        return address.rsplit(":", 1)[0]
    return address


def to_collector_names(series: Sequence[CleanSeries]) -> list[CleanSeries]:
    """Replace exporter series by the derived collector series; other series are kept, in order."""
    by_metric: dict[str, list[tuple[dict[str, str], CleanSeries]]] = defaultdict(list)
    kept: list[CleanSeries] = []
    for item in series:
        if item.key.metric in SOURCE_METRICS:
            by_metric[item.key.metric].append(
                (normalise_labels(item.key.metric, dict(item.key.labels)), item)
            )
        elif item.key.labels:
            labels = tuple(sorted(normalise_labels(item.key.metric, dict(item.key.labels)).items()))
            renamed = item.key.model_copy(update={"labels": labels})
            kept.append(item if labels == item.key.labels else item.model_copy(update={"key": renamed}))
        else:
            kept.append(item)
    if not by_metric:
        return kept
    present = {item.key for item in kept}
    derived: list[CleanSeries] = []
    for derivation in DERIVATIONS:
        plus = _grouped(derivation, derivation.plus, by_metric)
        minus = _grouped(derivation, derivation.minus, by_metric) if derivation.minus else {}
        for group, members in sorted(plus.items()):
            key = SeriesKey(metric=derivation.target, labels=tuple(sorted((*group, *derivation.labels))))
            if key in present:
                continue  # the collector's own series wins
            if derivation.minus and group not in minus:
                continue  # a difference needs both sides
            total = sum_on_grid(members)
            if derivation.minus:
                total = _subtract(total, sum_on_grid(minus[group]))
            values = total.values * derivation.scale if derivation.scale != 1.0 else total.values
            derived.append(total.model_copy(update={"key": key, "unit": derivation.unit, "values": values}))
    return kept + derived


def _grouped(
    derivation: Derivation,
    names: tuple[str, ...],
    by_metric: dict[str, list[tuple[dict[str, str], CleanSeries]]],
) -> dict[tuple[tuple[str, str], ...], list[CleanSeries]]:
    groups: dict[tuple[tuple[str, str], ...], list[CleanSeries]] = defaultdict(list)
    for name in names:
        for labels, item in by_metric.get(name, []):
            if not derivation.accept(labels):
                continue
            group = tuple(sorted((k, labels[k]) for k in derivation.keep if labels.get(k)))
            groups[group].append(item)
    return groups


def _subtract(plus: CleanSeries, minus: CleanSeries) -> CleanSeries:
    """plus - minus on plus' grid, taking for each cell the nearest sample of `minus` within half of the
    coarser step (two exporters' grids may be offset or differ); a cell without one stays missing."""
    finite = np.isfinite(minus.values)
    times, values = minus.timestamps[finite], minus.values[finite]
    other = np.full(plus.values.size, np.nan)
    if times.size:
        cells = plus.timestamps
        right = np.clip(np.searchsorted(times, cells), 0, times.size - 1)
        left = np.clip(right - 1, 0, times.size - 1)
        nearest = np.where(np.abs(times[left] - cells) <= np.abs(times[right] - cells), left, right)
        close = np.abs(times[nearest] - cells) <= max(plus.step, minus.step) / 2 + 1e-6
        other[close] = values[nearest[close]]
    return plus.model_copy(update={"values": plus.values - other})
