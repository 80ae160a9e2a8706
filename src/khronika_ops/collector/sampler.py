"""Take one sample of every metric: psutil for the host, the Docker Engine API for containers,
`nvidia-smi` for GPUs. Rates (CPU cores, IOPS, bytes/s) need two readings: a Sampler keeps the
previous one, and the first call takes a short baseline reading itself.
"""

from __future__ import annotations

import http.client
import json
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from khronika_ops.metrics import (
    NETWORK_DIRECTIONS,
    is_disk_mount,
    is_virtual_disk,
    is_virtual_interface,
)

DOCKER_SOCKET = Path("/var/run/docker.sock")
_BASELINE_SECONDS = 1.0


@dataclass(frozen=True)
class Sample:
    metric: str
    labels: tuple[tuple[str, str], ...]
    value: float


@dataclass
class Reading:
    time: float
    disk: dict[str, Any] = field(default_factory=dict)
    net: dict[str, Any] = field(default_factory=dict)
    containers: dict[str, tuple[str, float]] = field(default_factory=dict)  # id -> (name, cpu ns)


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: Path, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self.socket_path = str(path)

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self.socket_path)
        self.sock = sock


def docker_get(path: str, socket_path: Path = DOCKER_SOCKET, timeout: float = 5.0) -> Any:
    connection = _UnixConnection(socket_path, timeout)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        body = response.read()
        if response.status != 200:
            raise OSError(f"docker API {path}: HTTP {response.status}")
        return json.loads(body)
    finally:
        connection.close()


class Sampler:
    def __init__(self, *, docker_socket: Path = DOCKER_SOCKET, nvidia_smi: str | None = None) -> None:
        self.host = socket.gethostname()
        self.docker_socket = docker_socket
        self.nvidia_smi = nvidia_smi if nvidia_smi is not None else shutil.which("nvidia-smi")
        self.notes: list[str] = []
        self._previous: Reading | None = None
        self._memory_cache: dict[str, float] = {}  # container id -> working set of the latest reading

    def sample(self) -> list[Sample]:
        if self._previous is None:
            self._previous = self._read()
            time.sleep(_BASELINE_SECONDS)
        current = self._read()
        previous, self._previous = self._previous, current
        elapsed = max(current.time - previous.time, 1e-6)
        samples = self._host(current, previous, elapsed)
        samples += self._containers(current, previous, elapsed)
        samples += self._gpus()
        return samples

    def _labels(self, **extra: str) -> tuple[tuple[str, str], ...]:
        return tuple(sorted({"host": self.host, **extra}.items()))

    def _read(self) -> Reading:
        reading = Reading(time=time.time())
        if self._previous is None:
            psutil.cpu_percent(interval=None)  # primes the counter: the first call always returns 0
        # Loop, ram and device-mapper devices are left out: their I/O is counted on the disks below
        # them (or never reaches a disk), the same rule the planner applies to node_exporter series.
        reading.disk = {
            name: counters
            for name, counters in (psutil.disk_io_counters(perdisk=True) or {}).items()
            if not is_virtual_disk(name)
        }
        # Loopback, container veths and bridges: their traffic is counted on the physical NIC, or
        # never leaves the host.
        reading.net = {
            name: counters
            for name, counters in psutil.net_io_counters(pernic=True).items()
            if not is_virtual_interface(name)
        }
        reading.containers = self._container_cpu()
        return reading

    def _host(self, current: Reading, previous: Reading, elapsed: float) -> list[Sample]:
        cores = float(psutil.cpu_count() or 1)
        busy = psutil.cpu_percent(interval=None) / 100.0
        memory = psutil.virtual_memory()
        samples = [
            Sample("khronika_host_cpu_utilisation_ratio", self._labels(), busy),
            Sample("khronika_host_cpu_cores", self._labels(), cores),
            Sample("khronika_host_cpu_used_cores", self._labels(), busy * cores),
            Sample("khronika_host_memory_used_bytes", self._labels(), float(memory.total - memory.available)),
            Sample("khronika_host_memory_total_bytes", self._labels(), float(memory.total)),
        ]
        for partition in psutil.disk_partitions(all=False):
            if not is_disk_mount(partition.mountpoint, partition.fstype):
                continue
            try:
                usage = psutil.disk_usage(partition.mountpoint)
            except OSError:
                continue
            labels = self._labels(mount=partition.mountpoint)
            samples.append(Sample("khronika_filesystem_used_bytes", labels, float(usage.used)))
            samples.append(Sample("khronika_filesystem_size_bytes", labels, float(usage.total)))
        for device, now in sorted(current.disk.items()):
            before = previous.disk.get(device)
            if before is None:
                continue
            operations = (now.read_count - before.read_count) + (now.write_count - before.write_count)
            moved = (now.read_bytes - before.read_bytes) + (now.write_bytes - before.write_bytes)
            labels = self._labels(device=device)
            samples.append(Sample("khronika_disk_iops", labels, max(operations, 0) / elapsed))
            samples.append(
                Sample("khronika_disk_throughput_bytes_per_second", labels, max(moved, 0) / elapsed)
            )
        for interface, now in sorted(current.net.items()):
            before = previous.net.get(interface)
            if before is None:
                continue
            # Links are full duplex: each direction is its own series.
            for direction, moved in zip(
                NETWORK_DIRECTIONS,
                (now.bytes_recv - before.bytes_recv, now.bytes_sent - before.bytes_sent),
                strict=True,
            ):
                samples.append(
                    Sample(
                        "khronika_network_bytes_per_second",
                        self._labels(interface=interface, direction=direction),
                        max(moved, 0) / elapsed,
                    )
                )
        return samples

    def _container_cpu(self) -> dict[str, tuple[str, float]]:
        if not self.docker_socket.exists():
            self._note(f"docker: {self.docker_socket} absent, container metrics skipped")
            return {}
        try:
            containers = docker_get("/containers/json", self.docker_socket)
        except (OSError, KeyError, ValueError) as exc:
            self._note(f"docker: {exc}; container metrics skipped")
            return {}
        result: dict[str, tuple[str, float]] = {}
        # One container that goes away between the list and its stats (an update replacing it) or
        # answers oddly costs its own sample, never the others'.
        for container in containers:
            try:
                stats = docker_get(
                    f"/containers/{container['Id']}/stats?stream=false&one-shot=true", self.docker_socket
                )
                name = container["Names"][0].lstrip("/")
                result[container["Id"]] = (name, float(stats["cpu_stats"]["cpu_usage"]["total_usage"]))
                self._memory_cache[container["Id"]] = _working_set(stats)
            except (OSError, KeyError, ValueError, TypeError, IndexError) as exc:
                # One note per kind of failure, not per container: a long-running collector keeps few.
                self._note(f"docker: a container's stats failed ({type(exc).__name__}); its sample skipped")
        return result

    def _containers(self, current: Reading, previous: Reading, elapsed: float) -> list[Sample]:
        samples: list[Sample] = []
        for container_id, (name, cpu_ns) in sorted(current.containers.items(), key=lambda item: item[1][0]):
            labels = self._labels(container=name)
            before = previous.containers.get(container_id)
            if before is not None:
                cores = max(cpu_ns - before[1], 0.0) / 1e9 / elapsed
                samples.append(Sample("khronika_container_cpu_cores", labels, cores))
            memory = self._memory_cache.get(container_id)
            if memory is not None:
                samples.append(Sample("khronika_container_memory_bytes", labels, memory))
        return samples

    def _gpus(self) -> list[Sample]:
        if not self.nvidia_smi:
            return []
        query = "index,name,utilization.gpu,memory.used,memory.total"
        try:
            output = subprocess.run(
                [self.nvidia_smi, f"--query-gpu={query}", "--format=csv,noheader,nounits"],
                capture_output=True,
                text=True,
                timeout=10,
                check=True,
            ).stdout
        except (OSError, subprocess.SubprocessError) as exc:
            self._note(f"nvidia-smi failed: {exc}")
            return []
        return parse_nvidia_smi(output, self.host)

    def _note(self, message: str) -> None:
        if message not in self.notes:
            self.notes.append(message)


def _working_set(stats: dict[str, Any]) -> float:
    """Memory as cAdvisor's working set: usage minus inactive file cache (cgroup v2 and v1 names)."""
    memory = stats.get("memory_stats", {})
    detail = memory.get("stats", {})
    inactive = detail.get("inactive_file", detail.get("total_inactive_file", 0))
    return float(max(memory.get("usage", 0) - inactive, 0))


def parse_nvidia_smi(output: str, host: str) -> list[Sample]:
    samples: list[Sample] = []
    for line in output.strip().splitlines():
        fields = [field.strip() for field in line.split(",")]
        if len(fields) != 5:
            continue
        index, model, utilisation, used_mib, total_mib = fields
        labels = tuple(sorted({"host": host, "gpu": index, "model": model}.items()))
        try:
            samples.append(Sample("khronika_gpu_utilisation_ratio", labels, float(utilisation) / 100.0))
            samples.append(Sample("khronika_gpu_memory_used_bytes", labels, float(used_mib) * 1024**2))
            samples.append(Sample("khronika_gpu_memory_total_bytes", labels, float(total_mib) * 1024**2))
        except ValueError:
            continue  # "[N/A]" on GPUs that do not report a field
    return samples
