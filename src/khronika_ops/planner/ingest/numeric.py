"""Vectorised parsing of plain decimal CSV bodies (the common case of a wide file with epoch times).

`parse_numeric_body` is the entry point: polars' CSV reader (native, columnar, correctly rounded like
`strtod`) where it is installed, about five times fewer CPU seconds than the numpy parser below; the
numpy parser otherwise. Either gives None for anything but a rectangle of finite numbers, and the
caller then takes the checked path, which names the line of any error.

`parse_decimal_rows` turns `[-]digits[.digits]` tokens into float64 with numpy operations over the
raw bytes (no per-row Python, no per-token `float()`), about twice as fast as `np.loadtxt`. It is exact:
a token with at most 15 significant digits is an integer mantissa m < 2**53 and a scale 10**f with
f <= 22, both exactly representable, so m / 10**f is one correctly rounded IEEE division, the same
double that `strtod`/`float()`/`np.loadtxt` produce. Anything else (exponents, `nan`, empty fields,
spaces, CR line ends, ragged rows, more digits) returns None and the caller takes the checked path,
which parses those and names the line of any error.

How: the separators' positions give every token's end and length. Tokens of one column-width group
are gathered right-aligned into an (n, width) byte matrix through a zero-copy sliding window over
the buffer, so that per-token work is done along short rows with matrix-vector products: one counts
digits and dots and locates the dot, one sums digits times powers of ten. The dot is then removed
from the integer with an exact integer division.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import numpy.typing as npt
from numpy.lib.stride_tricks import sliding_window_view

from khronika_ops.planner.models import FloatArray

_NEWLINE = 10
_DOT = 46
_MINUS = 45
_ZERO = 48
# 15 significant digits plus sign and dot; wider tokens may not fit the exact mantissa.
_MAX_WIDTH = 17
_TWO_53 = float(2**53)
_POW10 = 10.0 ** np.arange(_MAX_WIDTH + 1)
_POW10_INT = 10 ** np.arange(_MAX_WIDTH + 1, dtype=np.int64)
# Tokens per block: keeps the (tokens, width) temporaries within the CPU caches.
_BLOCK = 1 << 16


def parse_numeric_body(data: bytes, delimiter: str, columns: int, *, start: int = 0) -> FloatArray | None:
    """The (rows, columns) matrix of the header-less body of numbers `data[start:]`, or None (see the
    module's text). `start` is where the body begins: just after the header line, or 0 (the 14 MB of a
    large file are not copied to drop their first line)."""
    if len(data) <= start or len(delimiter) != 1 or columns < 1:
        return None
    try:
        import polars
    except ImportError:  # pragma: no cover - polars is a dependency; kept usable without it
        return parse_decimal_rows(data[start:], delimiter, columns)
    return _parse_with_polars(polars, data, start, delimiter, columns)


def _parse_with_polars(
    polars: Any, data: bytes, start: int, delimiter: str, columns: int
) -> FloatArray | None:
    # Stricter than the numpy parser's None cases, never looser: quotes, comments, ragged rows, empty
    # fields (nulls), NaN/inf and anything not a number all end in None.
    if data.find(b'"', start) >= 0 or data.find(b"\r", start) >= 0:
        return None
    if start and data[start - 1 : start] != b"\n":
        return None  # the body must begin a line: polars skips rows, which without quoting are lines
    schema = {f"c{index}": polars.Float64 for index in range(columns)}
    try:
        frame = polars.read_csv(
            io.BytesIO(data),  # shares the bytes, no copy
            has_header=False,
            skip_rows=data.count(b"\n", 0, start),
            separator=delimiter,
            schema=schema,
            quote_char=None,
            truncate_ragged_lines=False,
            raise_if_empty=True,
        )
    except Exception:  # any refusal of the fast path means "take the checked path"
        return None
    if frame.width != columns or frame.height == 0 or frame.null_count().sum_horizontal().item() != 0:
        return None
    # Blank lines, which polars skips: the body's lines counted (from `start`, without copying it).
    lines = np.count_nonzero(np.frombuffer(data, dtype=np.uint8, offset=start) == _NEWLINE)
    if frame.height != lines + (0 if data.endswith(b"\n") else 1):
        return None
    matrix: FloatArray = frame.to_numpy(order="fortran")
    if matrix.dtype != np.float64 or not np.isfinite(matrix).all():
        return None
    return matrix


def parse_decimal_rows(body: bytes, delimiter: str, columns: int) -> FloatArray | None:
    """The (rows, columns) matrix (column-major) of `\\n`-terminated rows of plain decimals, or None."""
    if not body or len(delimiter) != 1 or columns < 1:
        return None
    if not body.endswith(b"\n"):
        body += b"\n"
    rows = body.count(b"\n")
    buffer = np.frombuffer(body, dtype=np.uint8)
    separators = np.flatnonzero((buffer == ord(delimiter)) | (buffer == _NEWLINE))
    if separators.size != rows * columns:
        return None
    ends = separators.reshape(rows, columns)
    if not (buffer[ends[:, -1]] == _NEWLINE).all():
        return None  # some row has too few or too many fields
    lengths = np.empty(separators.size, dtype=np.int64)
    lengths[0] = separators[0]
    np.subtract(separators[1:], separators[:-1] + 1, out=lengths[1:])
    if lengths.min() < 1:
        return None  # an empty field (a missing value) or an empty line
    widths = lengths.reshape(rows, columns).max(axis=0)
    if widths.max() > _MAX_WIDTH:
        return None
    padded = np.concatenate((np.full(_MAX_WIDTH, _NEWLINE, dtype=np.uint8), buffer))
    # Work column by column (each series' values end up contiguous: the result is column-major).
    ends_by_column, lengths_by_column = ends.T, lengths.reshape(rows, columns).T
    out = np.empty((columns, rows))
    for width in np.unique(widths).tolist():
        group = np.flatnonzero(widths == width)
        # Row k of this view is buffer[k - width : k]: row `end` holds the token right-aligned.
        windows = sliding_window_view(padded[_MAX_WIDTH - width :], width)
        group_ends = ends_by_column[group].ravel()
        group_lengths = lengths_by_column[group].ravel()
        parsed = np.empty(group_ends.size)
        for first in range(0, group_ends.size, _BLOCK):
            block = slice(first, first + _BLOCK)
            values = _parse_tokens(windows[group_ends[block]], group_lengths[block])
            if values is None:
                return None
            parsed[block] = values
        out[group] = parsed.reshape(group.size, rows)
    return out.T


def _parse_tokens(window: npt.NDArray[np.uint8], size: npt.NDArray[np.int64]) -> FloatArray | None:
    """Tokens right-aligned in `window` (n, width), `size` characters each."""
    count, width = window.shape
    index = np.arange(width, dtype=np.uint16)
    lead = width - size
    inside = index >= lead[:, None]
    digit = window - np.uint8(_ZERO)  # wraps around for characters below '0'
    is_digit = (digit < 10) & inside
    is_dot = (window == _DOT) & inside
    negative = window[np.arange(count), lead] == _MINUS
    # One product packs, per token: digits (units), dots (x32) and the dot's column (x1024).
    code = is_digit.view(np.uint8) + is_dot * (32 + 1024 * index).astype(np.uint16)
    packed = (code.astype(np.float32) @ np.ones(width, dtype=np.float32)).astype(np.int64)
    digits, dots, dot_at = packed % 32, (packed // 32) % 32, packed // 1024
    if dots.max() > 1 or digits.min() < 1 or not np.array_equal(digits + dots + negative, size):
        return None  # a character other than digits, one dot and a leading minus
    total = (digit * is_digit).astype(np.float64) @ _POW10[width - 1 - np.arange(width)]
    if total.max() >= _TWO_53:
        return None
    has_dot = dots > 0
    fraction = (width - 1 - dot_at) * has_dot
    mantissa = total.astype(np.int64)
    if has_dot.any():
        # The dot's column holds a zero: digits left of it are one power of ten too high.
        right = mantissa % _POW10_INT[fraction + 1]
        mantissa = np.where(has_dot, (mantissa - right) // 10 + right, mantissa)
    values: FloatArray = mantissa.astype(np.float64) / _POW10[fraction]
    np.negative(values, out=values, where=negative)
    return values
