"""`khronika collect`: sample every interval and write CSV and/or a textfile-collector file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from khronika_ops.collector.service import parse_interval, run


def _seconds(text: str) -> float:
    try:
        return parse_interval(text)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


def collect_app(
    *,
    interval: Annotated[str, typer.Option(help="Time between samples (15s, 1m).")] = "15s",
    csv: Annotated[Path | None, typer.Option("--csv", help="Directory for rotating CSV files.")] = None,
    textfile: Annotated[
        Path | None, typer.Option(help="node_exporter textfile-collector directory (khronika.prom).")
    ] = None,
    once: Annotated[bool, typer.Option("--once", help="Take one sample and exit.")] = False,
    keep_days: Annotated[int, typer.Option(help="Days of CSV files to keep.")] = 15,
) -> None:
    """Sample host, container (Docker) and GPU (nvidia-smi) metrics; see docs/metrics.md for names."""
    from khronika_ops.options import number

    number(keep_days, "--keep-days", at_least=1, at_most=3650)
    period = _seconds(interval)
    if period <= 0:
        raise typer.BadParameter("the interval must be positive")
    run(period, csv, textfile, once, keep_days)
