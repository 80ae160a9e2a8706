"""The inventory as the catalog needs it: hosts, their groups, GPUs and the resources the inventory
declares (the role's preflight checks facts on the host itself)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from khronika_ops.platform.catalog.schema import CatalogError
from khronika_ops.quantities import parse_size
from khronika_ops.validation import Problem


@dataclass(frozen=True)
class InventoryHost:
    name: str
    groups: frozenset[str]
    gpus: int = 0
    # Known only when the inventory says so (the role's preflight checks facts on the host itself).
    cores: float | None = None
    memory: int | None = None
    disk: int | None = None


@dataclass(frozen=True)
class Inventory:
    hosts: Mapping[str, InventoryHost]

    @property
    def groups(self) -> frozenset[str]:
        return frozenset(group for host in self.hosts.values() for group in host.groups)

    @classmethod
    def from_groups(
        cls,
        groups: Mapping[str, Iterable[str]],
        gpu_counts: Mapping[str, Any] | None = None,
        resources: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> Inventory:
        """From Ansible's `groups` (group -> hosts), GPU counts per host and optional known resources."""
        memberships: dict[str, set[str]] = {}
        for group, members in groups.items():
            for host in members:
                memberships.setdefault(str(host), set()).add(str(group))
        gpu_counts = gpu_counts or {}
        resources = resources or {}
        hosts = {}
        for name in sorted(memberships):
            known = resources.get(name, {})
            hosts[name] = InventoryHost(
                name=name,
                groups=frozenset(memberships[name]),
                gpus=int(gpu_counts.get(name) or 0),
                cores=float(known["cores"]) if known.get("cores") is not None else None,
                memory=parse_size(known["memory"]) if known.get("memory") is not None else None,
                disk=parse_size(known["disk"]) if known.get("disk") is not None else None,
            )
        return cls(hosts)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> Inventory:
        """The plain form: {hosts: {name: {groups: [...], gpus: 0, cores: 8, memory: 32g, disk: 500g}}}."""
        entries = data.get("hosts")
        if not isinstance(entries, Mapping):
            raise CatalogError([Problem(None, "hosts", "an inventory needs a 'hosts' mapping")])
        groups: dict[str, list[str]] = {"all": []}
        gpu_counts, resources = {}, {}
        for name, raw_entry in entries.items():
            entry = raw_entry or {}
            if not isinstance(entry, Mapping):
                raise CatalogError([Problem(None, f"hosts.{name}", "must be a mapping")])
            groups["all"].append(name)
            for group in entry.get("groups", []):
                groups.setdefault(group, []).append(name)
            gpu_counts[name] = entry.get("gpus", 0)
            resources[name] = {key: entry.get(key) for key in ("cores", "memory", "disk")}
        return cls.from_groups(groups, gpu_counts, resources)
