"""The site as it is today, from the inventory: the planner's `hosts` and `modules` catalog entries.

`playbooks/plan.yml` gathers facts from every host and passes them here (through the filter
`khronika.platform.khronika_capacity_site`), so the plan's diff is against the real inventory:

- hosts: cores, memory, disk filesystems and their sizes, disk class, NIC speed and GPUs, as the one
  facts adapter (`khronika_ops.facts.host_resources`) reads them; the GPU model as the catalog names
  it when one matches the driver's name, and the catalog default NIC when the speed is unknown;
- modules: the enabled modules of `khronika_modules`, resolved onto the inventory by the platform
  catalog (the same placement the deploy uses): replicas and the host of each (the plan's starting
  point), their Docker limits (as minimums, and as what the severity compares with), and whether they
  keep data in volumes (a move of theirs has planned downtime).

Hosts whose facts could not be gathered (unreachable) are left out and listed in `notes`, which the
plan repeats among its warnings.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from khronika_ops.facts import HostResources, host_resources
from khronika_ops.gpu import gpu_model_matches
from khronika_ops.planner.catalog import default_catalog_data

GIB = 1024.0**3
MIB_PER_GIB = 1024.0
#: The groups whose hosts run modules (deploy.yml's platform play): the plan places modules only there.
#: A monitoring or gateway host that is in none of them is not a bin for modules.
MODULE_HOST_GROUPS = ("khronika_platform", "khronika_gpu")


def module_hosts(groups: Mapping[str, Sequence[str]]) -> list[str]:
    return sorted({str(host) for group in MODULE_HOST_GROUPS for host in groups.get(group, [])})


def catalog_gpu_model(driver_models: Sequence[str], catalog_models: Iterable[str]) -> str | None:
    """The catalog's name for the host's GPUs ("NVIDIA H100 80GB HBM3" -> "nvidia-h100-80gb"); the most
    specific match wins; None when the host mixes models or the catalog has none that matches."""
    if len(set(driver_models)) != 1:
        return None
    matches = [name for name in catalog_models if gpu_model_matches(name, driver_models[0])]
    return max(matches, key=len) if matches else None


def host_entry(host: HostResources, catalog_models: Iterable[str]) -> dict[str, Any]:
    disks = host.disk_filesystems
    entry: dict[str, Any] = {
        "name": host.name,
        "cores": host.cores,
        "memory_gib": round(host.memory_mb / MIB_PER_GIB, 3),
        # A device mounted twice (bind mounts) is one disk.
        "disk_gib": round(sum({fs.device: fs.size_bytes for fs in disks}.values()) / GIB, 3),
        "disk_class": host.disk_class,
        "mounts": {fs.mount: round(fs.size_bytes / GIB, 3) for fs in disks},
        "gpus": host.gpus,
    }
    if host.gpus:
        model = host.gpu_model or catalog_gpu_model(list(host.gpu_models), catalog_models)
        if model:
            entry["gpu_model"] = model
    if host.nic_gbps is not None:
        entry["nic_gbps"] = host.nic_gbps
    return entry


def module_entries(plan: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Planner modules from a resolved deployment (`khronika_ops.platform.catalog.resolve_deployment`)."""
    containers: dict[str, list[tuple[str, Mapping[str, Any]]]] = {}
    for host, host_plan in sorted((plan.get("hosts") or {}).items()):
        for container in host_plan.get("containers", []):
            containers.setdefault(str(container["module"]), []).append((str(host), container))
    entries = []
    for module, placed in sorted(containers.items()):
        placed.sort(key=lambda item: int(item[1].get("replica") or 0))
        hosts = [host for host, _ in placed]
        first = placed[0][1]
        entry: dict[str, Any] = {"name": module, "replicas": len(placed), "hosts": hosts}
        if len(set(hosts)) == 1 and len(hosts) > 1:
            entry["anti_affinity"] = False  # replicas the deploy puts on one host may stay together
        if first.get("cpus"):
            entry["min_cores"] = entry["current_cores"] = float(first["cpus"])
        memory = str(first.get("memory") or "")
        if memory.endswith("b") and memory[:-1].isdigit():
            entry["min_memory_gib"] = entry["current_memory_gib"] = round(int(memory[:-1]) / GIB, 6)
        if any(container.get("mounts") for _, container in placed):
            entry["stateful"] = True
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
        host = host_resources(name, hostvars.get(name) or {})
        if not host.facts_gathered:
            warnings.append(f"{name}: no facts (unreachable?): left out of the plan's current hosts")
            continue
        entries.append(host_entry(host, catalog_models))
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
    hosts_group: str | None = None,
) -> dict[str, Any]:
    """What the filter gives plan.yml: the hosts that run modules (`MODULE_HOST_GROUPS`, or the hosts of
    `hosts_group` when one is named) and, when the inventory has a module catalog, the modules resolved
    onto it exactly as the deploy resolves them."""
    from khronika_ops.platform.catalog import resolve_deployment
    from khronika_ops.platform.inventory_file import inventory_from_ansible

    hosts = (
        sorted({str(host) for host in groups.get(hosts_group, [])}) if hosts_group else module_hosts(groups)
    )
    plan = None
    if modules:
        plan = resolve_deployment(modules, inventory_from_ansible(groups, hostvars)).model_dump(mode="json")
    return site_catalog(hostvars, hosts, plan)
