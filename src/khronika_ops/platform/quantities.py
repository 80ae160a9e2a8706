"""Sizes and durations as people write them in YAML: `512m`, `2g`, `1.5GiB`; `10s`, `1m30s`, `500ms`."""

from __future__ import annotations

import re

# Docker's convention: k, m, g, t are binary multiples, with or without a trailing b / ib.
_SIZE_RE = re.compile(r"^(?P<number>\d+(?:\.\d+)?)\s*(?P<unit>[kmgtp]?)(?:i?b)?$", re.IGNORECASE)
_SIZE_FACTORS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4, "p": 1024**5}
_DURATION_PART_RE = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_DURATION_FACTORS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


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


def parse_duration(value: object) -> float:
    """Seconds. A bare number means seconds; strings combine parts: 1m30s, 500ms, 2h."""
    if isinstance(value, bool):
        raise ValueError("a duration must be seconds or a string such as 10s, 1m30s or 500ms")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError("a duration must not be negative")
        return float(value)
    if not isinstance(value, str):
        raise ValueError("a duration must be seconds or a string such as 10s, 1m30s or 500ms")
    text = value.strip().lower()
    parts = _DURATION_PART_RE.findall(text)
    if not text or "".join(number + unit for number, unit in parts) != text:
        raise ValueError(f"{value!r} is not a duration such as 10s, 1m30s or 500ms")
    return sum(float(number) * _DURATION_FACTORS[unit] for number, unit in parts)


def format_duration(seconds: float) -> str:
    """Docker's duration syntax, the form community.docker expects (`10s`, `1500ms`)."""
    milliseconds = round(seconds * 1000)
    return f"{milliseconds // 1000}s" if milliseconds % 1000 == 0 else f"{milliseconds}ms"
