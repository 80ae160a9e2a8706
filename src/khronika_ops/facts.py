"""One way from a host's Ansible variables (gathered facts + inventory) to the resources it has.

The capacity gate (`planner/gate.py`), the site as the planner sees it (`planner/site.py`) and the
inventory the module catalog is resolved on (`platform/inventory_file.py`) all read hosts through
`host_resources`, so they agree on every figure:

- cores: `ansible_processor_vcpus`, else `ansible_processor_nproc`;
- memory: `ansible_memtotal_mb`;
- filesystems: `ansible_mounts` (size and free), every mount; `disk_filesystems` are the ones
  capacity is planned for (pseudo and memory-backed ones, and files a container runtime bind-mounts,
  left out: khronika_ops.metrics);
- disk class: `khronika_disk_class`, else NVMe when an `nvme*` disk is present, HDD when the largest
  disk is rotational, else SATA SSD (virtual devices left out);
- NIC: `khronika_nic_gbps`, else the speed of the default route's interface (`ansible_<if>.speed`,
  Mbit/s; unknown in VMs and containers);
- GPUs (one rule, `gpu_count`): `khronika_gpu_count` from the inventory, else the nvidia role's detection fact
  (`ansible_local.khronika_gpu.count`), else `khronika_gpu_expected_count`, else none. The capacity
  gate checks evidence and leaves the expected count out (`host_resources(..., evidence_only=True)`).
  The model is `khronika_gpu_model`, else the names the driver reports.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from khronika_ops.metrics import is_disk_mount, is_virtual_disk

MIB = 1024**2
# The inventory variables a host's resources are read from besides its facts; the filters pass only
# these (and `ansible_facts`) to the package, so nothing else (vault secrets included) is resolved.
INVENTORY_VARIABLES = (
    "khronika_disk_class",
    "khronika_nic_gbps",
    "khronika_gpu_count",
    "khronika_gpu_model",
    "khronika_gpu_expected_count",
)


class FactsError(ValueError):
    """An inventory variable that does not say what it must (a GPU count that is no number, say)."""


@dataclass(frozen=True)
class Filesystem:
    mount: str
    device: str
    fstype: str
    size_bytes: float
    free_bytes: float

    @property
    def disk(self) -> bool:
        return is_disk_mount(self.mount, self.fstype)


@dataclass(frozen=True)
class HostResources:
    name: str
    facts_gathered: bool  # False: the host was unreachable, or facts were not gathered
    cores: float = 0.0
    memory_mb: float = 0.0
    filesystems: tuple[Filesystem, ...] = ()
    disk_class: str = "sata_ssd"
    nic_gbps: float | None = None
    gpus: int = 0
    gpu_models: tuple[str, ...] = ()  # as the driver names them, one entry per distinct model
    gpu_model: str | None = None  # the inventory's `khronika_gpu_model`, when it names one

    @property
    def disk_filesystems(self) -> tuple[Filesystem, ...]:
        return tuple(fs for fs in self.filesystems if fs.disk and fs.size_bytes > 0)


def fact(hostvars: Mapping[str, Any], key: str, default: Any = None) -> Any:
    """A gathered fact, from `ansible_facts` or the `ansible_<key>` form of older injections."""
    facts = hostvars.get("ansible_facts") or {}
    return facts.get(key, hostvars.get(f"ansible_{key}", default))


def gpu_count(hostvars: Mapping[str, Any], *, evidence_only: bool = False) -> int:
    """The inventory's `khronika_gpu_count`, else the detection fact's count, else (unless
    `evidence_only`) the count the inventory expects."""
    candidates: list[tuple[str, Any]] = [("khronika_gpu_count", hostvars.get("khronika_gpu_count"))]
    detected = _gpu_fact(hostvars).get("count")
    candidates.append(("ansible_local.khronika_gpu.count", detected))
    if not evidence_only:
        candidates.append(("khronika_gpu_expected_count", hostvars.get("khronika_gpu_expected_count")))
    for name, value in candidates:
        if value in (None, ""):
            continue
        try:
            count = int(value)
        except (TypeError, ValueError):
            raise FactsError(f"{name} must be a whole number of GPUs, not {value!r}") from None
        if count < 0:  # the nvidia role's "-1: do not check" for the expected count
            continue
        return count
    return 0


def _gpu_fact(hostvars: Mapping[str, Any]) -> Mapping[str, Any]:
    local = fact(hostvars, "local", {}) or {}
    detected = local.get("khronika_gpu") if isinstance(local, Mapping) else None
    return detected if isinstance(detected, Mapping) else {}


def filesystems(hostvars: Mapping[str, Any]) -> tuple[Filesystem, ...]:
    """Every mount of `ansible_mounts`: free room at a path is a question for any of them (in a
    container `/` is an overlay); `HostResources.disk_filesystems` are the ones capacity plans for."""
    found = []
    for mount in fact(hostvars, "mounts", []) or []:
        if not isinstance(mount, Mapping) or "mount" not in mount:
            continue
        fstype = str(mount.get("fstype") or "")
        found.append(
            Filesystem(
                mount=str(mount["mount"]),
                device=str(mount.get("device") or ""),
                fstype=fstype,
                size_bytes=float(mount.get("size_total") or 0),
                free_bytes=float(mount.get("size_available") or 0),
            )
        )
    return tuple(found)


def disk_class(hostvars: Mapping[str, Any]) -> str:
    explicit = hostvars.get("khronika_disk_class")
    if explicit:
        return str(explicit)
    devices = fact(hostvars, "devices", {}) or {}
    disks = {
        name: info
        for name, info in devices.items()
        if isinstance(info, Mapping) and not is_virtual_disk(str(name))
    }
    if any(name.startswith("nvme") for name in disks):
        return "nvme"
    if disks:
        largest = max(disks.items(), key=lambda item: int(item[1].get("sectors") or 0))
        if str(largest[1].get("rotational", "0")) == "1":
            return "hdd"
    return "sata_ssd"


def nic_gbps(hostvars: Mapping[str, Any]) -> float | None:
    explicit = hostvars.get("khronika_nic_gbps")
    if explicit:
        return float(explicit)
    interface = (fact(hostvars, "default_ipv4", {}) or {}).get("interface")
    if not interface:
        return None
    details = fact(hostvars, str(interface).replace("-", "_"), {}) or {}
    speed = details.get("speed") if isinstance(details, Mapping) else None
    if not isinstance(speed, int | float | str):
        return None
    try:
        mbits = float(speed)
    except ValueError:
        return None
    return mbits / 1000.0 if mbits > 0 else None


def host_resources(name: str, hostvars: Mapping[str, Any], *, evidence_only: bool = False) -> HostResources:
    """What the host has, by the rules in this module's docstring."""
    gathered = bool(fact(hostvars, "memtotal_mb"))
    models = tuple(str(model) for model in _gpu_fact(hostvars).get("models", []) or [])
    model = hostvars.get("khronika_gpu_model")
    return HostResources(
        name=name,
        facts_gathered=gathered,
        cores=float(fact(hostvars, "processor_vcpus") or fact(hostvars, "processor_nproc") or 0),
        memory_mb=float(fact(hostvars, "memtotal_mb", 0) or 0),
        filesystems=filesystems(hostvars),
        disk_class=disk_class(hostvars),
        nic_gbps=nic_gbps(hostvars),
        gpus=gpu_count(hostvars, evidence_only=evidence_only),
        gpu_models=models,
        gpu_model=str(model) if model else None,
    )


def wanted_variables(variables: Mapping[str, Any]) -> dict[str, Any]:
    """The part of a host's variables `host_resources` reads (what a filter passes on)."""
    return {key: variables[key] for key in ("ansible_facts", *INVENTORY_VARIABLES) if key in variables}
