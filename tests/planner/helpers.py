"""Helpers shared by the planner tests."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
from typer.testing import CliRunner

from khronika_ops.cli import app
from khronika_ops.planner.models import CleanReport, CleanSeries, SeriesKey

DATA = Path(__file__).resolve().parent.parent / "data"
NAB = Path(__file__).resolve().parents[2] / "src" / "khronika_ops" / "data" / "traces" / "nab"


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def run_cli(*args: str) -> tuple[int, str, str]:
    """Exit code, stdout and stderr, without terminal styling (typer styles errors when it thinks
    it writes to a terminal, e.g. whenever PY_COLORS or FORCE_COLOR is set)."""
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, _ANSI.sub("", result.stdout), _ANSI.sub("", result.stderr)


def size_json(path: Path, resource: str, *extra: str) -> dict[str, Any]:
    code, out, err = run_cli("plan", "size", "--csv", str(path), "--resource", resource, "--json", *extra)
    assert code == 0, err
    parsed: dict[str, Any] = json.loads(out)
    return parsed


def write_series(
    path: Path,
    values: np.ndarray,
    *,
    step: int = 300,
    start: int = 1_700_000_000,
    header: str | None = "timestamp,value",
    iso: bool = True,
) -> Path:
    from datetime import UTC, datetime

    lines = [header] if header else []
    for index, value in enumerate(values):
        moment = start + index * step
        stamp = datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%d %H:%M:%S") if iso else str(moment)
        lines.append(f"{stamp},{float(value)!r}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def daily_load(days: float, step: int = 300, seed: int = 7, level: float = 40.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(days * 86400 / step)) * step / 86400
    return level + 10 * np.sin(2 * np.pi * t) + rng.normal(0, 2, t.size).clip(-6, 6)


def clean_series(values: np.ndarray, step: float, *, start: float = 0.0, metric: str = "load") -> CleanSeries:
    """A series as the cleaner would hand it on: every value kept, on a regular grid."""
    return CleanSeries(
        key=SeriesKey(metric=metric),
        unit="cores",
        source="<test>",
        start=start,
        step=step,
        values=values,
        report=CleanReport(points_in=values.size, points_used=values.size, step_seconds=step),
    )
