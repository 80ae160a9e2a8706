"""Terminal table via rich."""

from __future__ import annotations

import io

from rich.table import Table

from khronika_ops.console import labelled, make_console, styled
from khronika_ops.planner.plan import Plan
from khronika_ops.planner.report import HOST_COLUMNS, MODULE_COLUMNS, host_cells, module_cells

_COLOURS = {"CRITICAL": "red", "WARNING": "yellow", "GOOD": "green", "UNKNOWN": "dim"}


def render_table(plan: Plan) -> str:
    buffer = io.StringIO()
    console = make_console(file=buffer, width=140)
    modules = Table(title=f"Modules (horizon {plan.horizon_days:g} d)")
    for column in MODULE_COLUMNS:
        modules.add_column(column)
    for module in plan.modules:
        *cells, severity = module_cells(module)
        modules.add_row(*cells, styled(severity, _COLOURS.get(severity, "")))
    hosts = Table(title=f"Hosts ({plan.placement.solver}, new cost {plan.total_new_cost:g})")
    for column in (*HOST_COLUMNS, "Downtime"):
        hosts.add_column(column)
    for host in plan.hosts:
        *cells, severity, n_minus_1 = host_cells(host)
        hosts.add_row(*cells, styled(severity, _COLOURS.get(severity, "")), n_minus_1, host.downtime)
    console.print(f"sizing: {plan.sizing}")
    console.print(modules)
    console.print(hosts)
    for host in plan.hosts:
        for evidence in (host.network_reason, host.gpu_reason):
            if evidence and evidence not in ("new host", "no network history"):
                console.print(f"{host.name}: {evidence}")
    for name, severity, reason in [(m.name, m.severity, m.severity_reason) for m in plan.modules] + [
        (h.name, h.severity, h.severity_reason) for h in plan.hosts
    ]:
        if reason and severity != "GOOD":
            console.print(f"{severity.lower()}: {name}: {reason}")
    for change in plan.changes:
        console.print(f"change: {change}")
    for warning in plan.warnings:
        console.print(labelled("warning:", "yellow", warning))
    return buffer.getvalue()
