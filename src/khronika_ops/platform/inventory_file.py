"""Read the hosts, groups and GPU counts the catalog needs from an inventory file, for the CLI.

Two forms: the plain one tests and quick checks use (`{hosts: {name: {groups, gpus, cores, memory,
disk}}}`), or any inventory Ansible reads (group_vars and host_vars beside it included), where a
host's GPUs are counted by the one facts adapter (`khronika_ops.facts.gpu_count`).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from khronika_ops import safe_yaml
from khronika_ops.facts import FactsError, gpu_count
from khronika_ops.platform.catalog import CatalogError, Inventory
from khronika_ops.validation import Problem, yaml_problem


def inventory_from_ansible(groups: Mapping[str, Any], gpus: Mapping[str, Any] | None = None) -> Inventory:
    """From Ansible's `groups` (group -> hosts) and, per host, either a GPU count or the host's
    variables (counted by `khronika_ops.facts.gpu_count`)."""
    plain_groups = {str(name): [str(host) for host in members] for name, members in groups.items()}
    counts = {}
    for host in sorted({host for members in plain_groups.values() for host in members}):
        value = gpus.get(host) if gpus is not None else None
        try:
            counts[host] = gpu_count(value) if isinstance(value, Mapping) else int(value or 0)
        except (FactsError, TypeError, ValueError) as exc:
            raise CatalogError([Problem(None, host, str(exc))]) from None
    return Inventory.from_groups(plain_groups, counts)


def _is_plain_form(data: Any) -> bool:
    hosts = data.get("hosts") if isinstance(data, Mapping) else None
    return (
        isinstance(hosts, Mapping)
        and len(data) == 1
        and all(isinstance(entry, Mapping) and "groups" in entry for entry in hosts.values())
    )


def load_inventory(path: str | Path) -> Inventory:
    path = Path(path)
    if path.is_file() and path.suffix in {".yml", ".yaml"}:
        try:
            data = safe_yaml.load_file(path)
        except OSError as exc:
            raise CatalogError(
                [Problem(None, "", f"cannot read the inventory: {exc.strerror}")], str(path)
            ) from exc
        except safe_yaml.YamlError as exc:
            raise CatalogError([yaml_problem(exc)], str(path)) from None
        if _is_plain_form(data):
            return Inventory.from_mapping(data)
    return _load_ansible_inventory(path)


def _load_ansible_inventory(path: Path) -> Inventory:
    from ansible.errors import AnsibleError
    from ansible.inventory.manager import InventoryManager
    from ansible.parsing.dataloader import DataLoader
    from ansible.vars.manager import VariableManager

    if not path.exists():
        raise CatalogError([Problem(None, "", "no such inventory")], str(path))
    loader = DataLoader()
    manager = InventoryManager(loader=loader, sources=[str(path)])
    variables = VariableManager(loader=loader, inventory=manager)
    groups = {name: list(members) for name, members in manager.get_groups_dict().items()}
    if not groups.get("all"):
        raise CatalogError([Problem(None, "", "the inventory has no hosts")], str(path))
    gpu_counts = {}
    for host in manager.get_hosts():
        try:
            host_vars = variables.get_vars(host=host, include_hostvars=False)
        except AnsibleError:
            host_vars = host.get_vars()  # e.g. a vault file without its password: inventory vars only
        try:
            gpu_counts[host.name] = gpu_count(host_vars)
        except FactsError as exc:
            raise CatalogError([Problem(None, host.name, str(exc))], str(path)) from None
    return Inventory.from_groups(groups, gpu_counts)
