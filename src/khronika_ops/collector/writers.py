"""Outputs: rotating long-format CSV (what `khronika plan --csv` reads) and a node_exporter textfile."""

from __future__ import annotations

import csv
import io
import os
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

from khronika_ops.collector.sampler import Sample
from khronika_ops.metrics import KNOWN_METRICS

CSV_HEADER = ("timestamp", "metric", "labels", "value")
TEXTFILE_NAME = "khronika.prom"


def format_labels(labels: tuple[tuple[str, str], ...]) -> str:
    return ";".join(f"{name}={value}" for name, value in labels)


class RotatingCsv:
    """One file per UTC day (`khronika-YYYYMMDD.csv`); files older than `keep_days` are removed."""

    def __init__(self, directory: Path, keep_days: int = 15) -> None:
        self.directory = directory
        self.keep_days = keep_days
        directory.mkdir(parents=True, exist_ok=True)

    def path_for(self, moment: datetime) -> Path:
        return self.directory / f"khronika-{moment:%Y%m%d}.csv"

    def write(self, timestamp: float, samples: list[Sample]) -> Path:
        moment = datetime.fromtimestamp(timestamp, UTC)
        path = self.path_for(moment)
        new = not path.exists()
        with path.open("a", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            if new:
                writer.writerow(CSV_HEADER)
            for sample in samples:
                writer.writerow(
                    (f"{timestamp:.3f}", sample.metric, format_labels(sample.labels), repr(sample.value))
                )
        self._prune(moment)
        return path

    def _prune(self, now: datetime) -> None:
        oldest = self.path_for(now - timedelta(days=self.keep_days)).name
        for old in self.directory.glob("khronika-*.csv"):
            if old.name < oldest:
                old.unlink(missing_ok=True)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def render_textfile(samples: list[Sample]) -> str:
    """Prometheus text exposition format, grouped by metric with HELP and TYPE lines."""
    out = io.StringIO()
    seen: set[str] = set()
    for sample in sorted(samples, key=lambda s: (s.metric, s.labels)):
        if sample.metric not in seen:
            seen.add(sample.metric)
            info = KNOWN_METRICS.get(sample.metric)
            out.write(f"# HELP {sample.metric} {info.help if info else sample.metric}\n")
            out.write(f"# TYPE {sample.metric} gauge\n")
        labels = ",".join(f'{name}="{_escape(value)}"' for name, value in sample.labels)
        out.write(f"{sample.metric}{{{labels}}} {sample.value!r}\n")
    return out.getvalue()


def write_textfile(directory: Path, samples: list[Sample]) -> Path:
    """Atomic: node_exporter must never read a half-written file, so write a temp file and rename it."""
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / TEXTFILE_NAME
    handle, temporary = tempfile.mkstemp(prefix=".khronika-", suffix=".prom.tmp", dir=directory)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(render_textfile(samples))
        Path(temporary).chmod(0o644)
        Path(temporary).replace(target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return target
