"""`khronika collect`: sample every interval and write CSV and/or a textfile-collector file."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from khronika_ops.collector.sampler import Sampler
from khronika_ops.collector.writers import CSV_HEADER, RotatingCsv, format_labels, write_textfile


def _seconds(text: str) -> float:
    token = text.strip().lower()
    factors = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
    for suffix in ("ms", "s", "m", "h"):
        if token.endswith(suffix):
            try:
                return float(token[: -len(suffix)]) * factors[suffix]
            except ValueError:
                break
    try:
        return float(token)
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not an interval like 15s or 1m") from None


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
    period = _seconds(interval)
    if period <= 0:
        raise typer.BadParameter("the interval must be positive")
    sampler = Sampler()
    rotating = RotatingCsv(csv, keep_days) if csv else None
    reported = 0
    while True:
        started = time.time()
        samples = sampler.sample()
        for note in sampler.notes[reported:]:
            typer.echo(f"note: {note}", err=True)
        reported = len(sampler.notes)
        if rotating:
            rotating.write(started, samples)
        if textfile:
            write_textfile(textfile, samples)
        if not rotating and not textfile:
            typer.echo(",".join(CSV_HEADER))
            for sample in samples:
                typer.echo(f"{started:.3f},{sample.metric},{format_labels(sample.labels)},{sample.value!r}")
        if once:
            return
        sys.stdout.flush()
        time.sleep(max(0.0, period - (time.time() - started)))
