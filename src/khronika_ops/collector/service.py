"""The sampling loop of `khronika collect`, free of the CLI framework.

Monitoring hosts run it as `python -m khronika_ops.collector` (role monitoring_agent): there only psutil
(a distribution package) and this package are installed, not typer and its dependencies. `khronika collect`
calls the same loop, so both take the same options and write the same files.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from khronika_ops.collector.sampler import Sampler
from khronika_ops.collector.writers import CSV_HEADER, RotatingCsv, format_labels, write_textfile
from khronika_ops.quantities import parse_duration


def parse_interval(text: str) -> float:
    """`15s`, `1m30s`, `500ms`, `2h` or plain seconds -> seconds (khronika_ops.quantities' grammar)."""
    return parse_duration(text)


def run(period: float, csv: Path | None, textfile: Path | None, once: bool, keep_days: int) -> None:
    """Sample every `period` seconds; CSV and/or textfile outputs, else CSV on stdout."""
    sampler = Sampler()
    rotating = RotatingCsv(csv, keep_days) if csv else None
    reported = 0
    while True:
        started = time.time()
        samples = sampler.sample()
        for note in sampler.notes[reported:]:
            print(f"note: {note}", file=sys.stderr)
        reported = len(sampler.notes)
        if rotating:
            rotating.write(started, samples)
        if textfile:
            write_textfile(textfile, samples)
        if not rotating and not textfile:
            print(",".join(CSV_HEADER))
            for sample in samples:
                print(f"{started:.3f},{sample.metric},{format_labels(sample.labels)},{sample.value!r}")
        if once:
            return
        sys.stdout.flush()
        time.sleep(max(0.0, period - (time.time() - started)))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m khronika_ops.collector", description="khronika collect without the CLI framework."
    )
    parser.add_argument("--interval", default="15s", help="Time between samples (15s, 1m).")
    parser.add_argument("--csv", type=Path, help="Directory for rotating CSV files.")
    parser.add_argument(
        "--textfile", type=Path, help="node_exporter textfile-collector directory (khronika.prom)."
    )
    parser.add_argument("--once", action="store_true", help="Take one sample and exit.")
    parser.add_argument("--keep-days", type=int, default=15, help="Days of CSV files to keep.")
    options = parser.parse_args(argv)
    try:
        period = parse_interval(options.interval)
    except ValueError as exc:
        parser.error(str(exc))
    if period <= 0:
        parser.error("the interval must be positive")
    run(period, options.csv, options.textfile, options.once, options.keep_days)
    return 0
