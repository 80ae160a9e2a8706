"""Markdown report: summary, modules, hosts, changes with downtime, N-1, host_vars fragment."""

from __future__ import annotations

import yaml

from khronika_ops.planner.plan import Plan
from khronika_ops.planner.report import (
    HOST_COLUMNS,
    MODULE_COLUMNS,
    disk_recommended,
    host_cells,
    module_cells,
)


def _row(*cells: object) -> str:
    return "| " + " | ".join(" ".join(str(cell).splitlines()).replace("|", "\\|") for cell in cells) + " |"


def render_markdown(plan: Plan) -> str:
    lines = [
        "# Khronika capacity plan",
        "",
        f"- Horizon: {plan.horizon_days:g} days; history: {plan.history_source} ({plan.series_read} series)",
        f"- Sizing: {plan.sizing}",
        f"- Placement: {plan.placement.solver} ({plan.placement.status}), cost of new hosts {plan.total_new_cost:g}",
        f"- N-1 (any one host drained): {'holds' if all(plan.n_minus_1.values()) else 'FAILS'}",
        *(
            [
                f"- Replayed history: {len(plan.replayed_series)} of the {plan.series_read} series hold history "
                "replayed from real traces, not measured here (listed under Replayed history)"
            ]
            if plan.replayed_series
            else []
        ),
        "",
        "## Modules",
        "",
        _row(*MODULE_COLUMNS, "Why"),
        _row(*["---"] * (len(MODULE_COLUMNS) + 1)),
    ]
    for module in plan.modules:
        why = "; ".join(
            [f"severity: {module.severity_reason}"] + [f"{k}: {v}" for k, v in module.reasons.items()]
        )
        lines.append(_row(*module_cells(module), why))
    lines += [
        "",
        "## Hosts",
        "",
        _row(*HOST_COLUMNS, "Modules", "Why"),
        _row(*["---"] * (len(HOST_COLUMNS) + 2)),
    ]
    for host in plan.hosts:
        lines.append(_row(*host_cells(host), ", ".join(host.modules) or "-", host.severity_reason or "-"))
    lines += [
        "",
        "## Disks",
        "",
        _row("Host", "Mount", "Recommended GiB", "Days until 85 %", "Why"),
        _row(*["---"] * 5),
    ]
    for host in plan.hosts:
        for disk in host.disk:
            days = disk.extra.get("days_until_max_usage")
            lines.append(
                _row(
                    host.name,
                    disk.extra.get("mount", "?"),
                    disk_recommended(disk),
                    "never (no growth)" if days is None else f"{days:.0f}",
                    disk.reason,
                )
            )
    lines += [
        "",
        "## Network and GPUs",
        "",
        _row("Host", "NIC Gbit/s", "Network", "GPUs"),
        _row(*["---"] * 4),
    ]
    for host in plan.hosts:
        gpus = f"{host.gpus} x {host.gpu_model}" if host.gpus else "-"
        if host.gpu_reason:
            gpus += f"; {host.gpu_reason}"
        lines.append(_row(host.name, f"{host.nic_gbps:g}", host.network_reason or "-", gpus))
    lines += ["", "## Changes and downtime", ""]
    for host in plan.hosts:
        for change in host.changes:
            lines.append(f"- **{host.name}**: {change} — downtime: {host.downtime}")
    lines += [
        f"- {change}"
        for change in plan.changes
        if not any(change.startswith(h.name + ":") for h in plan.hosts)
    ]
    if plan.warnings:
        lines += ["", "## Warnings", ""] + [f"- {warning}" for warning in plan.warnings]
    if plan.insufficient_series:
        lines += ["", "## Insufficient data (not sized)", ""] + [
            f"- `{name}`" for name in plan.insufficient_series
        ]
    if plan.replayed_series:
        lines += [
            "",
            "## Replayed history",
            "",
            "The history of these series before the site's own samples was replayed from the trace named "
            "(its shape, around the series' own level); the plan's figures for them show what the planner "
            "does with such a history, not this site's past.",
            "",
            _row("Series", "Trace"),
            _row("---", "---"),
        ]
        lines += [_row(f"`{name}`", trace) for name, trace in sorted(plan.replayed_series.items())]
    lines += [
        "",
        "## Inventory fragment (host_vars)",
        "",
        "```yaml",
        yaml.safe_dump(plan.host_vars, sort_keys=True).rstrip(),
        "```",
        "",
    ]
    return "\n".join(lines)
