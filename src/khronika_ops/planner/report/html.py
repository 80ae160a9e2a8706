"""Self-contained HTML: the Markdown tables plus inline SVG plots (history, forecast band, capacity)."""

from __future__ import annotations

import html
import io
import re

import numpy as np
import numpy.typing as npt

from khronika_ops.planner.models import FloatArray, SizeResult
from khronika_ops.planner.plan import Plan
from khronika_ops.planner.report import replayed_traces

_STYLE = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;font-size:90%}
.CRITICAL{color:#b00}.WARNING{color:#a60}.GOOD{color:#070}figure{margin:1em 0}
.glance td{vertical-align:top}.glance td:nth-child(5){max-width:28em}"""


def _dates(epochs: FloatArray) -> npt.NDArray[np.datetime64]:
    return (epochs * 1000).astype("datetime64[ms]")


def plot_svg(figure: SizeResult) -> str:
    """History (max-pooled), forecast mean and band, and the recommended capacity as a line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axis = plt.subplots(figsize=(8, 2.6))
    band = figure.band
    if band is not None:
        axis.plot(_dates(band.history_t), band.history_y, lw=0.8, label="history (max per point)")
        future = _dates(band.future_t)
        axis.plot(future, band.future_mean, lw=0.8, label="forecast")
        axis.fill_between(future, band.future_lower, band.future_upper, alpha=0.25, label="1-99 % band")
    if figure.recommended is not None:
        axis.axhline(figure.recommended, color="red", lw=1, ls="--", label="recommended")
    axis.set_title(f"{figure.series} ({figure.unit})", fontsize=9)
    axis.legend(fontsize=7, loc="upper left")
    axis.tick_params(labelsize=7)
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None})
    plt.close(fig)
    text = buffer.getvalue()
    return text[text.index("<svg") :]


_SEVERITY_CLASS = {name: f" class='{name}'" for name in ("CRITICAL", "WARNING", "GOOD")} | {
    "FAILS": " class='CRITICAL'"
}


def _inline(text: str) -> str:
    escaped = html.escape(text)
    escaped = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", escaped)
    return re.sub(r"`(.+?)`", r"<code>\1</code>", escaped)


def _cells(line: str) -> list[str]:
    """Cells of a Markdown table row, with `\\|` kept as a literal bar."""
    inner = line.strip()[1:-1]
    return [cell.strip().replace("\\|", "|") for cell in re.split(r"(?<!\\)\|", inner)]


def markdown_to_html(text: str) -> str:
    """The subset render_markdown writes: headings, bullet lists, tables and fenced code."""
    out: list[str] = []
    lines = text.splitlines()
    index = 0
    while index < len(lines):
        line = lines[index]
        if line.startswith("```"):
            end = lines.index("```", index + 1)
            out.append(f"<pre>{html.escape(chr(10).join(lines[index + 1 : end]))}</pre>")
            index = end + 1
            continue
        if line.startswith("|"):
            rows = []
            while index < len(lines) and lines[index].startswith("|"):
                rows.append(lines[index])
                index += 1
            head, body = _cells(rows[0]), [_cells(row) for row in rows[2:]]
            header = "".join(f"<th>{_inline(cell)}</th>" for cell in head)
            cells = "".join(
                "<tr>" + "".join(f"<td{_SEVERITY_CLASS.get(c, '')}>{_inline(c)}</td>" for c in row) + "</tr>"
                for row in body
            )
            out.append(f"<table><thead><tr>{header}</tr></thead><tbody>{cells}</tbody></table>")
            continue
        if line.startswith("- "):
            items = []
            while index < len(lines) and lines[index].startswith("- "):
                items.append(f"<li>{_inline(lines[index][2:])}</li>")
                index += 1
            out.append(f"<ul>{''.join(items)}</ul>")
            continue
        heading = re.match(r"^(#{1,6}) (.*)$", line)
        if heading:
            level = len(heading.group(1))
            out.append(f"<h{level}>{_inline(heading.group(2))}</h{level}>")
        elif line.strip():
            out.append(f"<p>{_inline(line)}</p>")
        index += 1
    return "\n".join(out)


def _share(used: float, total: float) -> str:
    return f"{used / total:.0%}" if total else "-"


def glance(plan: Plan) -> str:
    """One row per host, first on the page: what it has now, what its modules need at the horizon,
    what to change, and why (the bottleneck with its share, the disk and network evidence)."""
    rows = []
    for host in plan.hosts:
        gpus = f", {host.gpus} x {host.gpu_model}" if host.gpus else ""
        now = (
            "none: a host to buy"
            if host.new
            else f"{host.cores:g} cores, {host.memory_gib:g} GiB, {host.disk_gib:g} GiB {host.disk_class_now}{gpus}"
        )
        disks = [
            f"{result.extra.get('mount', '?')} {(result.recommended or 0) / 1024**3:.0f} GiB"
            for result in host.disk
            if result.recommended is not None
        ]
        needs = f"{host.cores_used:.1f} cores, {host.memory_gib_used:.1f} GiB" + "".join(
            f", {d}" for d in disks
        )
        if host.disk_class_now and host.disk_class != host.disk_class_now:
            needs += f", {host.disk_class} disks"
        if host.new:
            needs += f" (buy: {host.shape}, {host.cores:g} cores, {host.memory_gib:g} GiB{gpus})"
        why = [
            f"{host.bottleneck} bound: {_share(host.cores_used, host.cores)} of cores, "
            f"{_share(host.memory_gib_used, host.memory_gib)} of memory at the horizon"
        ]
        why += [
            reason
            for reason in (host.severity_reason, host.disk_class_reason, host.network_reason, host.gpu_reason)
            if reason
        ]
        cells = [
            host.name,
            now,
            needs,
            "; ".join(host.changes) or "none",
            "; ".join(why),
        ]
        row = "".join(f"<td>{html.escape(cell)}</td>" for cell in cells)
        rows.append(
            f"<tr>{row}<td class='{html.escape(host.severity)}'>{html.escape(host.severity)}</td></tr>"
        )
    header = "".join(
        f"<th>{name}</th>" for name in ("Host", "Now", "Needs at the horizon", "Change", "Why", "Severity")
    )
    target = (
        f", at most {plan.target_under:.2%} of samples above each size"
        if plan.target_under is not None
        else ""
    )
    return (
        f"<h2>At a glance: {len(plan.hosts)} hosts, horizon {plan.horizon_days:g} days{html.escape(target)}</h2>"
        f"<table class='glance'><thead><tr>{header}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )


def render_html(plan: Plan) -> str:
    from khronika_ops.planner.report.markdown import render_markdown

    body = [glance(plan), markdown_to_html(render_markdown(plan)), "<h2>Plots</h2>"]
    captioned = [(module.name, figure) for module in plan.modules for figure in module.figures]
    captioned += [(host.name, figure) for host in plan.hosts for figure in host.disk]
    captioned += [(host.name, host.network) for host in plan.hosts if host.network is not None]
    for owner, figure in captioned:
        replayed = replayed_traces(plan, figure.series)
        replayed_note = f" (history replayed from {', '.join(replayed)})" if replayed else ""
        caption = html.escape(f"{owner}{replayed_note}: {figure.reason}")
        body.append(f"<figure>{plot_svg(figure)}<figcaption>{caption}</figcaption></figure>")
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>Khronika capacity plan</title>"
        f"<style>{_STYLE}</style></head><body>{''.join(body)}</body></html>\n"
    )
