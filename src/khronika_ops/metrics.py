"""The metric vocabulary of khronika-ops: names, units, labels and what is left out of capacity.

One table below both halves: the collector (`khronika collect`) writes these names, the planner reads
them (and node_exporter's, cAdvisor's, dcgm-exporter's), and the Prometheus rules of the
monitoring_server role get their exclusion matchers from here through the filter
`khronika.platform.metric_vocabulary`. Standard library only: the collector runs where numpy and
pydantic are not installed. docs/metrics.md is the human-readable copy; tests keep them in step.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class Resource(StrEnum):
    CPU = "cpu"
    MEMORY = "memory"
    DISK = "disk"
    REQUESTS = "requests"
    DISK_IOPS = "disk_iops"
    DISK_THROUGHPUT = "disk_throughput"
    NETWORK = "network"
    LATENCY = "latency"
    GPU_UTILISATION = "gpu_utilisation"
    GPU_MEMORY = "gpu_memory"


# Block devices whose I/O is already counted on another one (device-mapper volumes and zram sit on
# disks or memory; loop devices on files) or that are not disks at all (ram, optical drives).
VIRTUAL_DISKS = re.compile(r"^(dm-[0-9]+|loop[0-9]+|ram[0-9]+|zram[0-9]+|sr[0-9]+)$")
# Interfaces whose traffic the physical NIC already carries (container veths, bridges, overlays) or
# that never leaves the host (loopback).
VIRTUAL_INTERFACES = re.compile(r"^(lo|veth.*|docker[0-9]*|br-.*|virbr.*|cni.*|flannel.*|cali.*|tun[0-9]*)$")
# Filesystems that are no storage at all: kernel views, container layers, read-only images.
PSEUDO_FILESYSTEMS = frozenset(
    {"autofs", "cgroup", "cgroup2", "devtmpfs", "nsfs", "overlay", "proc", "ramfs", "squashfs", "sysfs"}
)
# Memory-backed filesystems: they can fill up (alerts watch them) but are no disk to plan.
MEMORY_FILESYSTEMS = frozenset({"tmpfs"})
# What disk capacity (the planner, the collector, the site's facts, the fill-up predictions) leaves out.
NON_DISK_FILESYSTEMS = PSEUDO_FILESYSTEMS | MEMORY_FILESYSTEMS
# Single files a container runtime bind-mounts into a host that is itself a container (Docker, LXC,
# systemd-nspawn): they show the filesystem of the machine outside, not a disk of this host.
CONTAINER_FILE_MOUNTS = frozenset({"/etc/hostname", "/etc/hosts", "/etc/resolv.conf"})

# The labels each scope of metric carries (collector and planner names; Prometheus adds `instance`).
SCOPE_LABELS: dict[str, tuple[str, ...]] = {
    "host": ("host",),
    "filesystem": ("host", "mount"),
    "disk": ("host", "device"),
    "interface": ("host", "interface", "direction"),
    "container": ("host", "container"),
    "gpu": ("host", "gpu", "model"),
    "module": ("module",),
}
NETWORK_DIRECTIONS = ("receive", "transmit")  # the `direction` label, in that order


def is_virtual_disk(name: str) -> bool:
    return bool(VIRTUAL_DISKS.match(name))


def is_virtual_interface(name: str) -> bool:
    return bool(VIRTUAL_INTERFACES.match(name))


def is_disk_filesystem(fstype: str) -> bool:
    return fstype not in NON_DISK_FILESYSTEMS


def is_disk_mount(mount: str, fstype: str) -> bool:
    """A mount whose capacity is planned: a disk filesystem, and no file bind-mounted by a runtime."""
    return is_disk_filesystem(fstype) and mount not in CONTAINER_FILE_MOUNTS


def promql_alternatives(names: frozenset[str]) -> str:
    """`a|b|c` for a PromQL `!~` matcher, sorted so the rendered rules are stable."""
    return "|".join(sorted(names))


def promql_pattern(pattern: re.Pattern[str]) -> str:
    """A Python regex anchored with ^...$ as a PromQL matcher (PromQL anchors by itself)."""
    return pattern.pattern.removeprefix("^").removesuffix("$")


@dataclass(frozen=True)
class MetricInfo:
    name: str
    resource: Resource
    unit: str
    counter: bool
    scope: str  # host | container | filesystem | disk | gpu | module | interface
    help: str
    # Multiply values by this to reach the resource's base unit (cores, bytes, ...).
    scale: float = 1.0


_METRICS: tuple[MetricInfo, ...] = (
    # The collector's own names (khronika collect); ratios are 0..1 of the whole host/GPU.
    MetricInfo("khronika_host_cpu_utilisation_ratio", Resource.CPU, "ratio", False, "host", "Busy CPU share"),
    MetricInfo("khronika_host_cpu_cores", Resource.CPU, "cores", False, "host", "Logical cores present"),
    MetricInfo("khronika_host_cpu_used_cores", Resource.CPU, "cores", False, "host", "Busy cores"),
    MetricInfo("khronika_host_memory_used_bytes", Resource.MEMORY, "bytes", False, "host", "Memory in use"),
    MetricInfo("khronika_host_memory_total_bytes", Resource.MEMORY, "bytes", False, "host", "Memory present"),
    MetricInfo(
        "khronika_filesystem_used_bytes", Resource.DISK, "bytes", False, "filesystem", "Used bytes per mount"
    ),
    MetricInfo(
        "khronika_filesystem_size_bytes", Resource.DISK, "bytes", False, "filesystem", "Size per mount"
    ),
    MetricInfo("khronika_disk_iops", Resource.DISK_IOPS, "iops", False, "disk", "Reads+writes per second"),
    MetricInfo(
        "khronika_disk_throughput_bytes_per_second",
        Resource.DISK_THROUGHPUT,
        "bytes",
        False,
        "disk",
        "Read+write bytes per second",
    ),
    MetricInfo(
        "khronika_network_bytes_per_second",
        Resource.NETWORK,
        "bytes",
        False,
        "interface",
        "Received+sent bytes per second",
    ),
    MetricInfo("khronika_container_cpu_cores", Resource.CPU, "cores", False, "container", "Cores used"),
    MetricInfo(
        "khronika_container_memory_bytes", Resource.MEMORY, "bytes", False, "container", "Memory used"
    ),
    MetricInfo(
        "khronika_gpu_utilisation_ratio", Resource.GPU_UTILISATION, "ratio", False, "gpu", "GPU busy share"
    ),
    MetricInfo("khronika_gpu_memory_used_bytes", Resource.GPU_MEMORY, "bytes", False, "gpu", "VRAM used"),
    MetricInfo("khronika_gpu_memory_total_bytes", Resource.GPU_MEMORY, "bytes", False, "gpu", "VRAM present"),
    MetricInfo(
        "khronika_module_requests_total", Resource.REQUESTS, "requests", True, "module", "Requests served"
    ),
    MetricInfo(
        "khronika_module_errors_total", Resource.REQUESTS, "requests", True, "module", "Requests answered 5xx"
    ),
    MetricInfo(
        "khronika_module_requests_per_second",
        Resource.REQUESTS,
        "requests",
        False,
        "module",
        "Request rate (what the Prometheus ingest asks for)",
    ),
    MetricInfo(
        "khronika_module_request_duration_seconds",
        Resource.LATENCY,
        "seconds",
        False,
        "module",
        "Mean request latency",
    ),
    # node_exporter
    MetricInfo("node_cpu_seconds_total", Resource.CPU, "cpu_seconds", True, "host", "CPU time by mode"),
    MetricInfo(
        "node_memory_MemTotal_bytes",
        Resource.MEMORY,
        "bytes",
        False,
        "host",
        "Memory present (node_exporter)",
    ),
    MetricInfo("node_memory_MemAvailable_bytes", Resource.MEMORY, "bytes", False, "host", "Memory available"),
    MetricInfo("node_filesystem_size_bytes", Resource.DISK, "bytes", False, "filesystem", "Filesystem size"),
    MetricInfo("node_filesystem_avail_bytes", Resource.DISK, "bytes", False, "filesystem", "Bytes available"),
    MetricInfo(
        "node_filesystem_free_bytes",
        Resource.DISK,
        "bytes",
        False,
        "filesystem",
        "Bytes free (incl. reserved)",
    ),
    MetricInfo("node_disk_reads_completed_total", Resource.DISK_IOPS, "iops", True, "disk", "Reads"),
    MetricInfo("node_disk_writes_completed_total", Resource.DISK_IOPS, "iops", True, "disk", "Writes"),
    MetricInfo("node_disk_read_bytes_total", Resource.DISK_THROUGHPUT, "bytes", True, "disk", "Bytes read"),
    MetricInfo(
        "node_disk_written_bytes_total", Resource.DISK_THROUGHPUT, "bytes", True, "disk", "Bytes written"
    ),
    MetricInfo(
        "node_network_receive_bytes_total", Resource.NETWORK, "bytes", True, "interface", "Bytes received"
    ),
    MetricInfo(
        "node_network_transmit_bytes_total", Resource.NETWORK, "bytes", True, "interface", "Bytes sent"
    ),
    # cAdvisor
    MetricInfo(
        "container_cpu_usage_seconds_total", Resource.CPU, "cpu_seconds", True, "container", "CPU time"
    ),
    MetricInfo(
        "container_memory_working_set_bytes", Resource.MEMORY, "bytes", False, "container", "Working set"
    ),
    # dcgm-exporter (utilisation in percent, framebuffer in MiB)
    MetricInfo("DCGM_FI_DEV_GPU_UTIL", Resource.GPU_UTILISATION, "percent", False, "gpu", "GPU utilisation"),
    MetricInfo(
        "DCGM_FI_DEV_FB_USED", Resource.GPU_MEMORY, "bytes", False, "gpu", "Framebuffer used (MiB)", 1024.0**2
    ),
    MetricInfo(
        "DCGM_FI_DEV_FB_FREE", Resource.GPU_MEMORY, "bytes", False, "gpu", "Framebuffer free (MiB)", 1024.0**2
    ),
)

KNOWN_METRICS: dict[str, MetricInfo] = {metric.name: metric for metric in _METRICS}


def lookup(name: str) -> MetricInfo | None:
    return KNOWN_METRICS.get(name)


def prometheus_matchers() -> dict[str, Any]:
    """What the Prometheus rule templates interpolate (filter `khronika.platform.metric_vocabulary`)."""
    return {
        "disk_fstype_exclude": promql_alternatives(NON_DISK_FILESYSTEMS),
        "pseudo_fstype_exclude": promql_alternatives(PSEUDO_FILESYSTEMS),
        "virtual_disk_exclude": promql_pattern(VIRTUAL_DISKS),
        "virtual_interface_exclude": promql_pattern(VIRTUAL_INTERFACES),
    }
