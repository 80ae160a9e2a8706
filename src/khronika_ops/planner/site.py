"""The site as it is today, from the inventory: the planner's `hosts` and `modules` catalog entries.

`playbooks/plan.yml` gathers facts from every host and passes them here (through the filter
`khronika.platform.khronika_capacity_site`), so the plan's diff is against the real inventory:

- hosts: cores (`ansible_processor_vcpus`), memory (`ansible_memtotal_mb`), real filesystems and their
  sizes (`ansible_mounts`, pseudo filesystems left out), the disk class (`khronika_disk_class`, else
  NVMe when an `nvme*` disk is present, HDD when the largest disk is rotational, else SATA SSD), the
  NIC speed of the default route's interface (`ansible_<if>.speed` in Mbit/s; unknown in VMs and
  containers, then `khronika_nic_gbps` or the catalog default), and GPUs from the nvidia role's fact
  `ansible_local.khronika_gpu` (the model as the catalog names it when one matches the driver's name);
- modules: the enabled modules of `khronika_modules`, resolved onto the inventory by the platform
  catalog (the same placement the deploy uses): replicas, the host they run on when it is one, and
  their Docker limits as minimums.

Hosts whose facts could not be gathered (unreachable) are left out and listed in `notes`, which the
plan repeats among its warnings.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from khronika_ops.gpu import gpu_model_matches
from khronika_ops.planner.catalog import default_catalog_data
from khronika_ops.planner.metrics import PSEUDO_FILESYSTEMS

GIB = 1024.0**3
MIB_PER_GIB = 1024.0


def _fact(hostvars: Mapping[str, Any], key: str, default: Any = None) -> Any:
    facts = hostvars.get("ansible_facts") or {}
    return facts.get(key, hostvars.get(f"ansible_{key}", default))


def disk_class_from_facts(hostvars: Mapping[str, Any]) -> str:
    explicit = hostvars.get("khronika_disk_class")
    if explicit:
        return str(explicit)
    devices = _fact(hostvars, "devices", {}) or {}
    disks = {
        name: info
        for name, info in devices.items()
        if isinstance(info, Mapping) and not name.startswith(("loop", "ram", "sr", "dm-", "zram"))
    }
    if any(name.startswith("nvme") for name in disks):
        return "nvme"
    if disks:
        largest = max(disks.items(), key=lambda item: int(item[1].get("sectors") or 0))
        if str(largest[1].get("rotational", "0")) == "1":
            return "hdd"
    return "sata_ssd"


def nic_gbps_from_facts(hostvars: Mapping[str, Any]) -> float | None:
    explicit = hostvars.get("khronika_nic_gbps")
    if explicit:
        return float(explicit)
    interface = (_fact(hostvars, "default_ipv4", {}) or {}).get("interface")
    if not interface:
        return None
    details = _fact(hostvars, interface.replace("-", "_"), {}) or {}
    speed = details.get("speed") if isinstance(details, Mapping) else None
    if not isinstance(speed, int | float | str):
        return None
    try:
        mbits = float(speed)
    except ValueError:
        return None
    return mbits / 1000.0 if mbits > 0 else None


def catalog_gpu_model(driver_models: Sequence[str], catalog_models: Iterable[str]) -> str | None:
    """The catalog's name for the host's GPUs ("NVIDIA H100 80GB HBM3" -> "nvidia-h100-80gb"); the most
    specific match wins; None when the host mixes models or the catalog has none that matches."""
    if len(set(driver_models)) != 1:
        return None
    matches = [name for name in catalog_models if gpu_model_matches(name, driver_models[0])]
    return max(matches, key=len) if matches else None


def host_entry(name: str, hostvars: Mapping[str, Any], catalog_models: Iterable[str]) -> dict[str, Any]:
    mounts = {
        str(mount["mount"]): round(float(mount.get("size_total") or 0) / GIB, 3)
        for mount in _fact(hostvars, "mounts", []) or []
        if isinstance(mount, Mapping)
        and mount.get("fstype") not in PSEUDO_FILESYSTEMS
        and float(mount.get("size_total") or 0) > 0
    }
    devices = {
        str(mount.get("device")): float(mount.get("size_total") or 0) / GIB
        for mount in _fact(hostvars, "mounts", []) or []
        if isinstance(mount, Mapping) and str(mount.get("mount")) in mounts
    }
    gpu_fact = (_fact(hostvars, "local", {}) or {}).get("khronika_gpu", {}) or {}
    gpus = int(hostvars.get("khronika_gpu_count", gpu_fact.get("count", 0)) or 0)
    entry: dict[str, Any] = {
        "name": name,
        "cores": float(_fact(hostvars, "processor_vcpus") or _fact(hostvars, "processor_nproc") or 0),
        "memory_gib": round(float(_fact(hostvars, "memtotal_mb", 0) or 0) / MIB_PER_GIB, 3),
        "disk_gib": round(sum(devices.values()), 3),
        "disk_class": disk_class_from_facts(hostvars),
        "mounts": mounts,
        "gpus": gpus,
    }
    if gpus:
        model = hostvars.get("khronika_gpu_model") or catalog_gpu_model(
            [str(m) for m in gpu_fact.get("models", []) or []], catalog_models
        )
        if model:
            entry["gpu_model"] = str(model)
    nic = nic_gbps_from_facts(hostvars)
    if nic is not None:
        entry["nic_gbps"] = nic
    return entry


def module_entries(plan: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Planner modules from a resolved platform plan (`khronika_ops.platform.catalog.build_plan`)."""
    containers: dict[str, list[tuple[str, Mapping[str, Any]]]] = {}
    for host, host_plan in sorted((plan.get("hosts") or {}).items()):
        for container in host_plan.get("containers", []):
            containers.setdefault(str(container["module"]), []).append((str(host), container))
    entries = []
    for module, placed in sorted(containers.items()):
        hosts = sorted({host for host, _ in placed})
        first = placed[0][1]
        entry: dict[str, Any] = {"name": module, "replicas": len(placed)}
        if len(hosts) == 1:
            entry["host"] = hosts[0]
            entry["anti_affinity"] = False  # replicas the deploy puts on one host may stay together
        if first.get("cpus"):
            entry["min_cores"] = float(first["cpus"])
        memory = str(first.get("memory") or "")
        if memory.endswith("b") and memory[:-1].isdigit():
            entry["min_memory_gib"] = round(int(memory[:-1]) / GIB, 6)
        entries.append(entry)
    return entries


def site_catalog(
    hostvars: Mapping[str, Mapping[str, Any]],
    hosts: Sequence[str],
    platform_plan: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The catalog fragment (`hosts`, `modules`, `warnings`) for the hosts whose facts are known."""
    catalog_models = [str(model["name"]) for model in default_catalog_data().get("gpu_models", [])]
    entries, warnings = [], []
    for name in hosts:
        variables = hostvars.get(name) or {}
        if not _fact(variables, "memtotal_mb"):
            warnings.append(f"{name}: no facts (unreachable?): left out of the plan's current hosts")
            continue
        entries.append(host_entry(name, variables, catalog_models))
    site: dict[str, Any] = {"hosts": entries}
    if platform_plan:
        site["modules"] = module_entries(platform_plan)
    if warnings:
        site["notes"] = warnings
    return site


def site_catalog_from_ansible(
    hostvars: Mapping[str, Mapping[str, Any]],
    groups: Mapping[str, Sequence[str]],
    modules: Any = None,
    hosts_group: str = "khronika",
) -> dict[str, Any]:
    """What the filter gives plan.yml: the hosts of `hosts_group` and, when the inventory has a module
    catalog, the modules resolved onto it exactly as the deploy resolves them."""
    from khronika_ops.platform.catalog import build_plan
    from khronika_ops.platform.inventory_file import inventory_from_ansible

    hosts = sorted({str(host) for host in groups.get(hosts_group, [])})
    plan = None
    if modules:
        plan = build_plan(modules, inventory_from_ansible(groups, hostvars)).model_dump(mode="json")
    return site_catalog(hostvars, hosts, plan)
