"""Report formatters (one module each, like krr's): json, md, html, table."""

from __future__ import annotations

from khronika_ops.planner.models import SizeResult
from khronika_ops.planner.plan import HostPlan, ModulePlan, Plan

# Column headings both the Markdown and the terminal report use (each adds its own last columns).
MODULE_COLUMNS = (
    "Module",
    "Replicas",
    "Cores/replica",
    "Memory GiB/replica",
    "GPUs",
    "Bottleneck",
    "Severity",
)
HOST_COLUMNS = (
    "Host",
    "Shape",
    "Cores used/total",
    "Memory GiB used/total",
    "Disk class",
    "Bottleneck",
    "Severity",
    "N-1",
)


def module_cells(module: ModulePlan) -> list[str]:
    """The MODULE_COLUMNS cells of one module, as text."""
    gpus = f"{module.gpus_per_replica} x {module.gpu_model}" if module.gpus_per_replica else "-"
    return [
        module.name,
        str(module.replicas),
        f"{module.cores_per_replica:g}",
        f"{module.memory_gib_per_replica:.2f}",
        gpus,
        module.bottleneck,
        module.severity,
    ]


def host_cells(host: HostPlan) -> list[str]:
    """The HOST_COLUMNS cells of one host, as text."""
    return [
        host.name,
        host.shape,
        f"{host.cores_used:g}/{host.cores:g}",
        f"{host.memory_gib_used:.1f}/{host.memory_gib:g}",
        host.disk_class,
        host.bottleneck,
        host.severity,
        "ok" if host.n_minus_1_holds else "FAILS",
    ]


def disk_recommended(result: SizeResult) -> str:
    """A disk's recommended size in GiB; where there is no history to size it, keep what it has."""
    if result.recommended is not None:
        return f"{result.recommended / 1024**3:.1f}"
    current = result.extra.get("current_gib")
    return f"keep {float(current):.1f}" if current else "keep (size unknown)"


def replayed_traces(plan: Plan, series: str) -> list[str]:
    """The traces behind a figure's series whose history was replayed: the series itself, or each
    member of a sum (`sum(a,b)`: a module's replicas)."""
    members = series[4:-1] if series.startswith("sum(") and series.endswith(")") else series
    return sorted(
        {
            trace
            for key, trace in plan.replayed_series.items()
            if members == key
            or members.startswith(key + ",")
            or members.endswith("," + key)
            or f",{key}," in members
        }
    )


def plan_json(plan: Plan) -> str:
    from khronika_ops.console import json_text

    return json_text(plan.model_dump(mode="json")) + "\n"


def render(plan: Plan, output_format: str) -> str:
    if output_format == "json":
        return plan_json(plan)
    if output_format == "md":
        from khronika_ops.planner.report.markdown import render_markdown

        return render_markdown(plan)
    if output_format == "html":
        from khronika_ops.planner.report.html import render_html

        return render_html(plan)
    from khronika_ops.planner.report.table import render_table

    return render_table(plan)
