"""Sizes and durations as people write them: `512m`, `2g`, `1.5GiB`; `500ms`, `10s`, `1m30s`, `12h`,
`90d`, `2w`. One grammar for the module catalog, the collector's interval and the planner's horizon,
history and step: parts of a number and a unit (ms, s, m, h, d, w), largest first or in any order,
summed. A bare number is in the caller's unit (seconds for the catalog and the collector, days for the
planner's horizon), so `parse_duration` takes that unit."""

from __future__ import annotations

import math
import re

# Docker's convention: k, m, g, t are binary multiples, with or without a trailing b / ib.
_SIZE_RE = re.compile(r"^(?P<number>\d+(?:\.\d+)?)\s*(?P<unit>[kmgtp]?)(?:i?b)?$", re.IGNORECASE)
_SIZE_FACTORS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4, "p": 1024**5}
_DURATION_PART_RE = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ms|s|m|h|d|w)")
_DURATION_FACTORS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_NUMBER_RE = re.compile(r"^(?:\d+(?:\.\d*)?|\.\d+)$")
_DURATION_EXAMPLES = "10s, 1m30s, 500ms, 12h or 90d"


def parse_size(value: object) -> int:
    """Bytes. A bare number means bytes; units are binary (1g = 1024^3), as Docker reads them."""
    if isinstance(value, bool):
        raise ValueError("a size must be a number of bytes or a string such as 512m or 2g")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError("a size must not be negative")
        return int(value)
    if not isinstance(value, str):
        raise ValueError("a size must be a number of bytes or a string such as 512m or 2g")
    match = _SIZE_RE.match(value.strip())
    if not match:
        raise ValueError(f"{value!r} is not a size such as 512m, 2g or 1.5GiB (k, m, g, t, p; binary)")
    return int(float(match["number"]) * _SIZE_FACTORS[match["unit"].lower()])


def format_size(size_bytes: int) -> str:
    for unit in ("p", "t", "g", "m", "k"):
        factor = _SIZE_FACTORS[unit]
        if size_bytes >= factor and size_bytes % factor == 0:
            return f"{size_bytes // factor}{unit}"
    return f"{size_bytes}b"


def parse_duration(value: object, bare_seconds: float = 1.0) -> float:
    """Seconds. Strings combine parts (1m30s, 500ms, 2h, 90d, 2w); a bare number (or a numeric
    string) is in units of `bare_seconds` (1: seconds; 86400: days)."""
    bare_name = "seconds" if bare_seconds == 1.0 else "days" if bare_seconds == 86400.0 else "units"
    if isinstance(value, bool):
        raise ValueError(f"a duration must be {bare_name} or a string such as {_DURATION_EXAMPLES}")
    if isinstance(value, str) and _NUMBER_RE.match(value.strip()):
        value = float(value.strip())
    if isinstance(value, int | float):
        if not math.isfinite(value) or value < 0:
            raise ValueError("a duration must be a finite number, not negative")
        return float(value) * bare_seconds
    if not isinstance(value, str):
        raise ValueError(f"a duration must be {bare_name} or a string such as {_DURATION_EXAMPLES}")
    text = value.strip().lower()
    parts = _DURATION_PART_RE.findall(text)
    if not text or "".join(number + unit for number, unit in parts) != text:
        raise ValueError(f"{value!r} is not a duration such as {_DURATION_EXAMPLES}")
    return sum(float(number) * _DURATION_FACTORS[unit] for number, unit in parts)


def format_duration(seconds: float) -> str:
    """Docker's duration syntax, the form community.docker expects (`10s`, `1500ms`)."""
    milliseconds = round(seconds * 1000)
    return f"{milliseconds // 1000}s" if milliseconds % 1000 == 0 else f"{milliseconds}ms"
