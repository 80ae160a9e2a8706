"""Terminal table via rich."""

from __future__ import annotations

import io

from rich.console import Console
from rich.table import Table

from khronika_ops.planner.pipeline import Plan
from khronika_ops.planner.report import HOST_COLUMNS, MODULE_COLUMNS

_COLOURS = {"CRITICAL": "red", "WARNING": "yellow", "GOOD": "green", "UNKNOWN": "dim"}


def render_table(plan: Plan) -> str:
    buffer = io.StringIO()
    console = Console(file=buffer, width=140, force_terminal=False)
    modules = Table(title=f"Modules (horizon {plan.horizon_days:g} d)")
    for column in MODULE_COLUMNS:
        modules.add_column(column)
    for module in plan.modules:
        colour = _COLOURS.get(module.severity, "")
        modules.add_row(
            module.name,
            str(module.replicas),
            f"{module.cores_per_replica:g}",
            f"{module.memory_gib_per_replica:.2f}",
            f"{module.gpus_per_replica} x {module.gpu_model}" if module.gpus_per_replica else "-",
            module.bottleneck,
            f"[{colour}]{module.severity}[/]",
        )
    hosts = Table(title=f"Hosts ({plan.placement.solver}, new cost {plan.total_new_cost:g})")
    for column in (*HOST_COLUMNS, "Downtime"):
        hosts.add_column(column)
    for host in plan.hosts:
        colour = _COLOURS.get(host.severity, "")
        hosts.add_row(
            host.name,
            host.shape,
            f"{host.cores_used:g}/{host.cores:g}",
            f"{host.memory_gib_used:.1f}/{host.memory_gib:g}",
            host.disk_class,
            host.bottleneck,
            f"[{colour}]{host.severity}[/]",
            "ok" if host.n_minus_1_holds else "FAILS",
            host.downtime,
        )
    console.print(modules)
    console.print(hosts)
    for host in plan.hosts:
        for evidence in (host.network_reason, host.gpu_reason):
            if evidence and evidence not in ("new host", "no network history"):
                console.print(f"{host.name}: {evidence}", highlight=False)
    for change in plan.changes:
        console.print(f"change: {change}")
    for warning in plan.warnings:
        console.print(f"[yellow]warning:[/] {warning}")
    return buffer.getvalue()
