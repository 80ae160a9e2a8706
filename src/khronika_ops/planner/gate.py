"""Pre-flight capacity gate: do the hosts have the disk, RAM, cores and GPUs a release needs?

Used by the Ansible action plugin `khronika.platform.capacity_check` (which only passes facts in and
the verdict out). Hosts are read from their Ansible facts by `khronika_ops.facts.host_resources`, or
are given directly.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from khronika_ops.facts import MIB, host_resources
from khronika_ops.gpu import gpu_model_matches


class HostFacts(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    cores: float = Field(ge=0)
    memory_mb: float = Field(ge=0)
    disk_free_mb: dict[str, float] = Field(default_factory=dict)  # mount point -> free MB
    gpus: int = Field(0, ge=0)
    gpu_model: str | None = None


class ModuleMinimum(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    cores: float = Field(0.0, ge=0)
    memory_mb: float = Field(0.0, ge=0)
    disk_mb: float = Field(0.0, ge=0)
    disk_path: str = "/"
    gpus: int = Field(0, ge=0)
    gpu_model: str | None = None


class CheckRow(BaseModel):
    host: str
    resource: str
    needed: float
    available: float
    ok: bool
    modules: list[str]


class GateResult(BaseModel):
    ok: bool
    rows: list[CheckRow]
    table: str


def mount_for(path: str, mounts: Mapping[str, float]) -> str | None:
    """The mount point holding `path`: the longest mount that is a prefix of it."""
    candidates = [m for m in mounts if path == m or path.startswith(m.rstrip("/") + "/") or m == "/"]
    return max(candidates, key=len) if candidates else None


def check(
    hosts: list[HostFacts], modules: list[ModuleMinimum], placement: Mapping[str, list[str]]
) -> GateResult:
    """`placement` maps module name -> hosts it runs on. Modules on a host add up."""
    by_name = {module.name: module for module in modules}
    unknown = sorted(set(placement) - set(by_name))
    if unknown:
        raise ValueError(f"placement names modules without minimums: {', '.join(unknown)}")
    rows: list[CheckRow] = []
    for host in sorted(hosts, key=lambda h: h.name):
        placed = sorted(name for name, targets in placement.items() if host.name in targets)
        if not placed:
            continue
        wanted = [by_name[name] for name in placed]
        rows.append(_row(host, "cores", sum(m.cores for m in wanted), host.cores, placed))
        rows.append(_row(host, "memory_mb", sum(m.memory_mb for m in wanted), host.memory_mb, placed))
        gpu_modules = [m for m in wanted if m.gpus]
        if gpu_modules:
            gpus_needed = sum(m.gpus for m in gpu_modules)
            wrong_model = [
                m.name
                for m in gpu_modules
                if m.gpu_model and not (host.gpu_model and gpu_model_matches(m.gpu_model, host.gpu_model))
            ]
            row = _row(host, "gpus", gpus_needed, host.gpus, [m.name for m in gpu_modules])
            if wrong_model:
                row = row.model_copy(
                    update={"ok": False, "resource": f"gpus ({host.gpu_model or 'none'} present)"}
                )
            rows.append(row)
        disk_needs: dict[str, tuple[float, list[str]]] = {}
        for module in wanted:
            if module.disk_mb <= 0:
                continue
            mount = mount_for(module.disk_path, host.disk_free_mb) or module.disk_path
            total, names = disk_needs.get(mount, (0.0, []))
            disk_needs[mount] = (total + module.disk_mb, [*names, module.name])
        for mount, (needed, names) in sorted(disk_needs.items()):
            rows.append(_row(host, f"disk_mb {mount}", needed, host.disk_free_mb.get(mount, 0.0), names))
    ok = all(row.ok for row in rows)
    return GateResult(ok=ok, rows=rows, table=render_table(rows))


def _row(host: HostFacts, resource: str, needed: float, available: float, modules: list[str]) -> CheckRow:
    return CheckRow(
        host=host.name,
        resource=resource,
        needed=needed,
        available=available,
        ok=needed <= available,
        modules=modules,
    )


def render_table(rows: list[CheckRow]) -> str:
    header = ("HOST", "RESOURCE", "NEEDED", "AVAILABLE", "STATUS", "MODULES")
    body = [
        (
            r.host,
            r.resource,
            f"{r.needed:g}",
            f"{r.available:g}",
            "ok" if r.ok else "SHORT",
            ",".join(r.modules),
        )
        for r in rows
    ]
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True))
        for line in [header, *body]
    ]
    return "\n".join(line.rstrip() for line in lines)


def facts_from_ansible(name: str, hostvars: Mapping[str, Any]) -> HostFacts:
    """HostFacts from a host's Ansible variables, read by the one facts adapter (khronika_ops.facts);
    GPUs by evidence only: a count the inventory merely expects is no GPU to run a module on."""
    host = host_resources(name, hostvars, evidence_only=True)
    return HostFacts(
        name=name,
        cores=host.cores,
        memory_mb=host.memory_mb,
        disk_free_mb={fs.mount: fs.free_bytes / MIB for fs in host.filesystems},
        gpus=host.gpus,
        gpu_model=host.gpu_model or (", ".join(host.gpu_models) if host.gpu_models else None),
    )
