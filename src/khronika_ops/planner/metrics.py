"""The metric names the planner understands: the collector's own, node_exporter, cAdvisor, dcgm-exporter.

docs/metrics.md is the human-readable copy of this table; keep them in step.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from khronika_ops.planner.units import Resource

# Devices and interfaces whose traffic is already counted on another one (device-mapper volumes sit on
# disks; container veths and bridges carry what the physical NIC carries) or never leaves the host.
VIRTUAL_DISKS = re.compile(r"^(dm-[0-9]+|loop[0-9]+|ram[0-9]+|sr[0-9]+)$")
VIRTUAL_INTERFACES = re.compile(r"^(lo|veth.*|docker[0-9]*|br-.*|virbr.*|cni.*|flannel.*|cali.*|tun[0-9]*)$")
PSEUDO_FILESYSTEMS = frozenset({"tmpfs", "overlay", "squashfs", "nsfs", "ramfs", "devtmpfs", "autofs"})


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
