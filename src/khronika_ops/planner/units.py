"""Units: what a column's unit is, which units a resource accepts, and conversions to base units.

A unit comes from (in order) an explicit `--unit`/`unit` column, then the metric or column name by the
Prometheus naming conventions (`_bytes`, `_ratio`, `_seconds_total`, ...). Unknown units are allowed and
results are then reported "in the file's own units"; a unit that contradicts the resource is an error.
"""

from __future__ import annotations

from khronika_ops.metrics import Resource

__all__ = ["Resource"]  # the vocabulary's enum, re-exported for the planner's modules


# The resources `khronika plan size` sizes; the others are evidence for the full plan.
SIZEABLE_RESOURCES = (Resource.CPU, Resource.MEMORY, Resource.DISK, Resource.REQUESTS)

UNKNOWN_UNIT = "same_as_input"

# Spelling -> (canonical unit, factor to the canonical unit).
_UNIT_ALIASES: dict[str, tuple[str, float]] = {
    "%": ("percent", 1.0),
    "percent": ("percent", 1.0),
    "pct": ("percent", 1.0),
    "ratio": ("ratio", 1.0),
    "cores": ("cores", 1.0),
    "core": ("cores", 1.0),
    "cpu": ("cores", 1.0),
    "millicores": ("cores", 1e-3),
    "m": ("cores", 1e-3),
    "cpu_seconds": ("cpu_seconds", 1.0),
    "b": ("bytes", 1.0),
    "bytes": ("bytes", 1.0),
    "kb": ("bytes", 1e3),
    "mb": ("bytes", 1e6),
    "gb": ("bytes", 1e9),
    "tb": ("bytes", 1e12),
    "kib": ("bytes", 1024.0),
    "mib": ("bytes", 1024.0**2),
    "gib": ("bytes", 1024.0**3),
    "tib": ("bytes", 1024.0**4),
    "requests": ("requests", 1.0),
    "req": ("requests", 1.0),
    "count": ("count", 1.0),
    "iops": ("iops", 1.0),
    "seconds": ("seconds", 1.0),
    "s": ("seconds", 1.0),
    "ms": ("seconds", 1e-3),
}

# Units each sizeable resource accepts (besides unknown). Rates of anything are "requests"-like demand.
_ACCEPTED: dict[Resource, frozenset[str]] = {
    Resource.CPU: frozenset({"percent", "ratio", "cores", "cpu_seconds"}),
    Resource.MEMORY: frozenset({"bytes"}),
    Resource.DISK: frozenset({"bytes", "percent"}),
    Resource.REQUESTS: frozenset({"requests", "count", "bytes", "iops"}),
}


def parse_unit(text: str) -> tuple[str, float]:
    """Canonical unit and scale factor for a unit spelling; ValueError when unknown."""
    key = text.strip().lower().replace(" ", "")
    if key in ("", UNKNOWN_UNIT, "unknown", "none"):
        return UNKNOWN_UNIT, 1.0
    if key in _UNIT_ALIASES:
        return _UNIT_ALIASES[key]
    raise ValueError(f"unknown unit {text!r}; known: {', '.join(sorted(_UNIT_ALIASES))}")


def unit_from_name(name: str) -> tuple[str, bool]:
    """(unit, is_counter) inferred from a metric or column name by Prometheus conventions."""
    lowered = name.lower()
    counter = lowered.endswith("_total")
    stem = lowered.removesuffix("_total")
    if "cpu" in stem and stem.endswith("_seconds"):
        return "cpu_seconds", counter
    if stem.endswith("_bytes") or stem.endswith("_bytes_per_second"):
        return "bytes", counter
    if stem.endswith("_ratio"):
        return "ratio", counter
    if stem.endswith(("_percent", "_pct")) or "percent" in stem:
        return "percent", counter
    if stem.endswith("_cores"):
        return "cores", counter
    if stem.endswith("_seconds"):
        return "seconds", counter
    if "request" in stem:
        return "requests", counter
    if stem.endswith("_iops") or stem.endswith(("_reads_completed", "_writes_completed")):
        return "iops", counter
    return UNKNOWN_UNIT, counter


def check_unit(resource: Resource, unit: str) -> str | None:
    """None when `unit` fits `resource`, else a message saying what was expected."""
    accepted = _ACCEPTED.get(resource)
    if accepted is None or unit == UNKNOWN_UNIT or unit in accepted:
        return None
    return f"unit {unit!r} does not fit resource {resource.value!r} (expected one of: {', '.join(sorted(accepted))})"


def rate_unit(unit: str) -> str:
    """Unit of the per-second rate of a counter in `unit`."""
    if unit == "cpu_seconds":
        return "cores"
    if unit == UNKNOWN_UNIT:
        return "same_as_input_per_second"
    return f"{unit}_per_second"
