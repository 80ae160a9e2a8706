"""CSV ingest: NAB `timestamp,value`, wide (one column per series) and long (`timestamp,metric,...,value`).

Formats are told apart by the header: a `metric` column means long (the `khronika collect` output is
long); otherwise the first (or the `timestamp`) column holds times and every other column is a series.
A file without a header is recognised by a parseable timestamp in its first field. Timestamps may be
epoch seconds or milliseconds, or ISO 8601 (naive times are UTC). Every error names file and line.
"""

from __future__ import annotations

import csv
import io
import math
import os
import re
import stat
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from khronika_ops.metrics import lookup
from khronika_ops.planner.errors import InputError
from khronika_ops.planner.ingest.numeric import parse_numeric_body
from khronika_ops.planner.models import FloatArray, IntArray, RawSeries, SeriesKey
from khronika_ops.planner.units import UNKNOWN_UNIT, parse_unit, unit_from_name

#: Bytes read of one history file at most (two weeks of 15 s samples of 100 series in a wide file are
#: about 50 MiB): a mistaken disk image or a pipe that never ends must not fill the memory.
MAX_CSV_BYTES = 2 << 30
MISSING_TOKENS = frozenset({"", "nan", "na", "n/a", "null", "none", "-"})
_TIME_COLUMNS = ("timestamp", "time", "ts", "datetime", "date")
_METRIC_COLUMNS = ("metric", "__name__", "name", "series")
_RESERVED_LONG = frozenset({"value", "unit", "labels"})
# Epoch values above this are milliseconds (1e11 s is the year 5138).
_EPOCH_MS_THRESHOLD = 1e11


def read_csv(
    path: str | Path, *, unit: str | None = None, allow_unsorted: bool = False, metric: str | None = None
) -> list[RawSeries]:
    """Read every series in a CSV file. `metric` accepts that name in a long file even if unknown."""
    source = str(path)
    too_large = InputError(
        f"larger than {MAX_CSV_BYTES >> 30} GiB: not a history file, or split it", source=source
    )
    try:
        with Path(path).open("rb") as handle:
            status = os.fstat(handle.fileno())
            if stat.S_ISCHR(status.st_mode) or stat.S_ISBLK(status.st_mode):
                raise InputError("is a device, not a history file", source=source)
            if stat.S_ISREG(status.st_mode) and status.st_size > MAX_CSV_BYTES:
                raise too_large
            data = handle.read(MAX_CSV_BYTES + 1)  # a pipe: read up to the bound
    except OSError as exc:
        raise InputError(f"cannot read file: {exc.strerror}", source=source) from exc
    if len(data) > MAX_CSV_BYTES:
        raise too_large
    fast = _read_plain_wide(data, source=source, unit=unit, allow_unsorted=allow_unsorted)
    if fast is not None:
        return fast
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise InputError("not UTF-8 text (is this a CSV file?)", source=source, line=line) from exc
    return read_csv_text(text, source=source, unit=unit, allow_unsorted=allow_unsorted, metric=metric)


def read_csv_text(
    text: str,
    *,
    source: str = "<csv>",
    unit: str | None = None,
    allow_unsorted: bool = False,
    metric: str | None = None,
) -> list[RawSeries]:
    numbered = [
        (number, line)
        for number, line in enumerate(text.splitlines(), start=1)
        if line.strip() and not line.lstrip().startswith("#")
    ]
    if not numbered:
        raise InputError("file is empty: expected a header or `timestamp,value` rows", source=source, line=1)
    delimiter = _detect_delimiter(numbered[0][1])
    first = next(csv.reader([numbered[0][1]], delimiter=delimiter))
    if len(first) < 2:
        raise InputError(
            f"expected at least two columns (timestamp and value), found {len(first)}",
            source=source,
            line=numbered[0][0],
        )
    has_header = not _looks_like_timestamp(first[0])
    header = [name.strip() for name in first] if has_header else _default_header(len(first))
    rows = numbered[1:] if has_header else numbered
    if not rows:
        raise InputError("no data rows after the header (empty series)", source=source, line=numbered[0][0])
    explicit_unit = _parse_unit_option(unit, source)
    lowered = [name.lower() for name in header]
    if any(name in _METRIC_COLUMNS for name in lowered) and "value" in lowered:
        return _read_long(
            rows,
            header,
            delimiter=delimiter,
            source=source,
            explicit_unit=explicit_unit,
            allow_unsorted=allow_unsorted,
            requested_metric=metric,
        )
    return _read_wide(
        rows,
        header,
        delimiter=delimiter,
        source=source,
        explicit_unit=explicit_unit,
        allow_unsorted=allow_unsorted,
    )


def _unit_of(
    metric: str, unit_text: str | None, explicit_unit: tuple[str, float] | None, source: str
) -> tuple[str, bool, float]:
    """(unit, counter, scale) of a series: from its name, the metric table, a unit column, `--unit`
    (later ones win)."""
    unit, counter = unit_from_name(metric)
    scale = 1.0
    info = lookup(metric)
    if info is not None:
        unit, counter, scale = info.unit, info.counter, info.scale
    if unit_text:
        unit, scale = _parse_unit_option(unit_text, source) or (UNKNOWN_UNIT, 1.0)
    if explicit_unit is not None:
        unit, scale = explicit_unit
    return unit, counter, scale


def _parse_unit_option(unit: str | None, source: str) -> tuple[str, float] | None:
    if unit is None:
        return None
    try:
        return parse_unit(unit)
    except ValueError as exc:
        raise InputError(str(exc), source=source) from exc


def _detect_delimiter(line: str) -> str:
    counts = {delimiter: line.count(delimiter) for delimiter in (",", ";", "\t")}
    best = max(counts, key=lambda delimiter: counts[delimiter])
    return best if counts[best] else ","


def _default_header(columns: int) -> list[str]:
    if columns == 2:
        return ["timestamp", "value"]
    return ["timestamp", *(f"value_{index}" for index in range(1, columns))]


def _looks_like_timestamp(field: str) -> bool:
    token = field.strip()
    try:
        float(token)
        return True
    except ValueError:
        pass
    try:
        datetime.fromisoformat(token)
        return True
    except ValueError:
        return False


def _time_column(lowered: Sequence[str]) -> int:
    for name in _TIME_COLUMNS:
        if name in lowered:
            return lowered.index(name)
    return 0


def _read_wide(
    rows: list[tuple[int, str]],
    header: list[str],
    *,
    delimiter: str,
    source: str,
    explicit_unit: tuple[str, float] | None,
    allow_unsorted: bool,
) -> list[RawSeries]:
    lowered = [name.lower() for name in header]
    time_index = _time_column(lowered)
    value_indices = [index for index in range(len(header)) if index != time_index]
    line_numbers = np.fromiter((number for number, _ in rows), dtype=np.int64, count=len(rows))
    matrix = _fast_numeric(rows, delimiter, len(header))
    if matrix is not None:
        times = _epoch_seconds(matrix[:, time_index])
        values = matrix[:, value_indices]
        # np.loadtxt reads `inf` and `1e999` as numbers; the checked path refuses them, and so does this.
        infinite = np.isinf(values).any(axis=1)
        if infinite.any():
            row = int(np.argmax(infinite))
            token = next(v for v in values[row] if math.isinf(v))
            raise InputError(
                f"value {token!r} is not a finite number", source=source, line=int(line_numbers[row])
            )
    else:
        time_tokens, values = _parse_rows(
            rows, delimiter, len(header), time_index=time_index, value_indices=value_indices, source=source
        )
        times = parse_timestamps(time_tokens, line_numbers, source)
    return _wide_series(
        header,
        value_indices,
        times,
        values,
        line_numbers,
        source=source,
        explicit_unit=explicit_unit,
        allow_unsorted=allow_unsorted,
    )


def _read_plain_wide(
    data: bytes, *, source: str, unit: str | None, allow_unsorted: bool
) -> list[RawSeries] | None:
    """The common case without per-row Python: a wide (or NAB) file whose rows are all plain decimals
    (epoch times), `\n` line ends, no comments or blank lines. None means "use the general path"
    (which also produces every error message)."""
    data = data.removeprefix(b"\xef\xbb\xbf")
    newline = data.find(b"\n")
    if newline <= 0 or b"\r" in data[:newline]:
        return None
    try:
        first_line = data[:newline].decode("utf-8")
    except UnicodeDecodeError:
        return None
    if not first_line.strip() or first_line.lstrip().startswith("#"):
        return None
    delimiter = _detect_delimiter(first_line)
    first = next(csv.reader([first_line], delimiter=delimiter))
    if len(first) < 2:
        return None
    has_header = not _looks_like_timestamp(first[0])
    header = [name.strip() for name in first] if has_header else _default_header(len(first))
    lowered = [name.lower() for name in header]
    if any(name in _METRIC_COLUMNS for name in lowered) and "value" in lowered:
        return None  # long format
    matrix = parse_numeric_body(data, delimiter, len(header), start=newline + 1 if has_header else 0)
    if matrix is None:
        return None
    first_number = 2 if has_header else 1
    line_numbers = np.arange(first_number, first_number + matrix.shape[0], dtype=np.int64)
    time_index = _time_column(lowered)
    value_indices = [index for index in range(len(header)) if index != time_index]
    return _wide_series(
        header,
        value_indices,
        _epoch_seconds(matrix[:, time_index]),
        _columns(matrix, value_indices),
        line_numbers,
        source=source,
        explicit_unit=_parse_unit_option(unit, source),
        allow_unsorted=allow_unsorted,
    )


def _columns(matrix: FloatArray, indices: list[int]) -> FloatArray:
    """These columns of a column-major matrix, column-major: a view when they are consecutive (the time
    column first or last), a copy otherwise."""
    if indices == list(range(indices[0], indices[0] + len(indices))):
        return matrix[:, indices[0] : indices[0] + len(indices)]
    columns: FloatArray = matrix.T[indices].T
    return columns


def _wide_series(
    header: list[str],
    value_indices: list[int],
    times: FloatArray,
    values: FloatArray,
    line_numbers: IntArray,
    *,
    source: str,
    explicit_unit: tuple[str, float] | None,
    allow_unsorted: bool,
) -> list[RawSeries]:
    order = _check_order(times, line_numbers, source, allow_unsorted)
    if order is not None:
        times = times[order]
    # Shared by every column's series (cleaning relies on the times not changing), and kept as read (a
    # series' values are a view of the parsed matrix, which cleaning then need not copy).
    times.flags.writeable = False
    values.flags.writeable = False
    header_line = max(int(line_numbers[0]) - 1, 1) if line_numbers.size else 1
    series: list[RawSeries] = []
    for column, index in enumerate(value_indices):
        name, labels = parse_series_name(header[index] or f"value_{column + 1}", source, header_line)
        unit, counter, scale = _unit_of(name, None, explicit_unit, source)
        column_values = values[:, column]
        if order is not None:
            column_values = column_values[order]
        series.append(
            RawSeries(
                key=SeriesKey(metric=name, labels=labels),
                unit=unit,
                counter=counter,
                source=source,
                timestamps=times,
                values=column_values * scale if scale != 1.0 else column_values,
                lines=line_numbers if order is None else line_numbers[order],
                resorted=order is not None,
            )
        )
    return series


_SERIES_NAME = re.compile(r"^\s*([a-zA-Z_:][a-zA-Z0-9_:]*)?\s*\{(.*)\}\s*$", re.DOTALL)
_LABEL_PAIR = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*(?:,|$)')


def parse_series_name(text: str, source: str, line: int) -> tuple[str, tuple[tuple[str, str], ...]]:
    """A wide column header: a plain name, or Prometheus notation `metric{label="value",...}` (also
    `{__name__="metric",...}`, as Prometheus and Grafana exports write it) -> (metric, sorted labels)."""
    if "{" not in text:
        return text, ()
    match = _SERIES_NAME.match(text)
    if match is None:
        raise InputError(f'column {text!r}: expected metric{{label="value",...}}', source=source, line=line)
    metric, inner = match.group(1) or "", match.group(2)
    labels: dict[str, str] = {}
    position = 0
    while position < len(inner.rstrip()):
        pair = _LABEL_PAIR.match(inner, position)
        if pair is None:
            raise InputError(
                f"column {text!r}: cannot read the labels from {inner[position:]!r} "
                '(expected name="value" pairs separated by commas)',
                source=source,
                line=line,
            )
        labels[pair.group(1)] = re.sub(r"\\(.)", r"\1", pair.group(2))
        position = pair.end()
    metric = labels.pop("__name__", metric)
    if not metric:
        raise InputError(f"column {text!r}: no metric name", source=source, line=line)
    return metric, tuple(sorted(labels.items()))


def _fast_numeric(rows: list[tuple[int, str]], delimiter: str, columns: int) -> FloatArray | None:
    """All-numeric files (epoch timestamps) parse in C; anything unusual takes the checked path."""
    first_fields = rows[0][1].split(delimiter)
    try:
        float(first_fields[0])
    except ValueError:
        return None
    try:
        matrix = np.loadtxt(
            io.StringIO("\n".join(line for _, line in rows)),
            delimiter=delimiter,
            dtype=np.float64,
            ndmin=2,
            comments=None,
        )
    except ValueError:
        return None
    if matrix.shape != (len(rows), columns):
        return None
    return matrix


def _parse_rows(
    rows: list[tuple[int, str]],
    delimiter: str,
    columns: int,
    *,
    time_index: int,
    value_indices: list[int],
    source: str,
) -> tuple[list[str], FloatArray]:
    time_tokens: list[str] = []
    values = np.empty((len(rows), len(value_indices)), dtype=np.float64)
    reader = csv.reader((line for _, line in rows), delimiter=delimiter)
    for row_index, (fields, (number, _)) in enumerate(zip(reader, rows, strict=True)):
        if len(fields) != columns:
            raise InputError(
                f"expected {columns} fields like the first row, found {len(fields)}",
                source=source,
                line=number,
            )
        time_tokens.append(fields[time_index])
        for column, index in enumerate(value_indices):
            values[row_index, column] = parse_value(fields[index], source, number)
    return time_tokens, values


def parse_value(token: str, source: str, line: int) -> float:
    stripped = token.strip()
    if stripped.lower() in MISSING_TOKENS:
        return float("nan")
    try:
        value = float(stripped)
    except ValueError:
        raise InputError(f"value {stripped!r} is not a number", source=source, line=line) from None
    if not math.isfinite(value):
        raise InputError(f"value {stripped!r} is not a finite number", source=source, line=line)
    return value


def parse_timestamps(tokens: Sequence[str], lines: IntArray, source: str) -> FloatArray:
    """Epoch seconds for timestamp strings: numbers (s or ms) or ISO 8601 (naive = UTC)."""
    stripped = [token.strip() for token in tokens]
    try:
        numeric = np.array(stripped, dtype=np.float64)
    except ValueError:
        numeric = None
    if numeric is not None:
        bad = ~np.isfinite(numeric)
        if bad.any():
            index = int(np.argmax(bad))
            raise InputError(
                f"timestamp {stripped[index]!r} is not a time", source=source, line=int(lines[index])
            )
        return _epoch_seconds(numeric)
    naive = [token.removesuffix("Z") for token in stripped]
    try:
        parsed = np.array(naive, dtype="datetime64[ms]")
        return parsed.astype(np.int64).astype(np.float64) / 1000.0
    except ValueError:
        pass  # offsets or odd formats: parse one by one, which also finds the bad line
    result = np.empty(len(stripped), dtype=np.float64)
    for index, token in enumerate(stripped):
        try:
            moment = datetime.fromisoformat(token)
        except ValueError:
            raise InputError(
                f"timestamp {token!r} is neither epoch seconds nor ISO 8601",
                source=source,
                line=int(lines[index]),
            ) from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        result[index] = moment.timestamp()
    return result


def _epoch_seconds(values: FloatArray) -> FloatArray:
    if values.size and float(np.nanmedian(values)) > _EPOCH_MS_THRESHOLD:
        return values / 1000.0
    return values


def _check_order(times: FloatArray, lines: IntArray, source: str, allow_unsorted: bool) -> IntArray | None:
    """None when times never go backwards; else the sorting order (allowed) or an error naming the line."""
    backwards = np.flatnonzero(np.diff(times) < 0)
    if backwards.size == 0:
        return None
    if not allow_unsorted:
        index = int(backwards[0]) + 1
        raise InputError(
            f"timestamps go backwards (earlier than line {int(lines[index - 1])}); "
            "sort the file or pass --sort to sort it and flag that in the result",
            source=source,
            line=int(lines[index]),
        )
    return np.argsort(times, kind="stable")


def _read_long(
    rows: list[tuple[int, str]],
    header: list[str],
    *,
    delimiter: str,
    source: str,
    explicit_unit: tuple[str, float] | None,
    allow_unsorted: bool,
    requested_metric: str | None,
) -> list[RawSeries]:
    lowered = [name.lower() for name in header]
    time_index = _time_column(lowered)
    metric_index = next(lowered.index(name) for name in _METRIC_COLUMNS if name in lowered)
    value_index = lowered.index("value")
    unit_index = lowered.index("unit") if "unit" in lowered else None
    labels_index = lowered.index("labels") if "labels" in lowered else None
    label_columns = [
        index
        for index, name in enumerate(lowered)
        if index not in (time_index, metric_index) and name not in _RESERVED_LONG
    ]
    groups: dict[SeriesKey, tuple[list[str], list[float], list[int], str | None]] = {}
    reader = csv.reader((line for _, line in rows), delimiter=delimiter)
    for fields, (number, _) in zip(reader, rows, strict=True):
        if len(fields) != len(header):
            raise InputError(
                f"expected {len(header)} fields like the header, found {len(fields)}",
                source=source,
                line=number,
            )
        name = fields[metric_index].strip()
        if lookup(name) is None and name != requested_metric:
            raise InputError(
                f"unknown metric {name!r} (see docs/metrics.md for the names the planner reads, "
                "or name it with --metric)",
                source=source,
                line=number,
            )
        labels = {header[index]: fields[index].strip() for index in label_columns if fields[index].strip()}
        if labels_index is not None:
            labels.update(_parse_labels(fields[labels_index], source, number))
        key = SeriesKey(metric=name, labels=tuple(sorted(labels.items())))
        group = groups.setdefault(
            key, ([], [], [], fields[unit_index].strip() if unit_index is not None else None)
        )
        group[0].append(fields[time_index])
        group[1].append(parse_value(fields[value_index], source, number))
        group[2].append(number)
    series: list[RawSeries] = []
    for key, (time_tokens, values, numbers, unit_text) in groups.items():
        lines = np.array(numbers, dtype=np.int64)
        times = parse_timestamps(time_tokens, lines, source)
        order = _check_order(times, lines, source, allow_unsorted)
        array = np.array(values, dtype=np.float64)
        unit, counter, scale = _unit_of(key.metric, unit_text, explicit_unit, source)
        if order is not None:
            times, array, lines = times[order], array[order], lines[order]
        series.append(
            RawSeries(
                key=key,
                unit=unit,
                counter=counter,
                source=source,
                timestamps=times,
                values=array * scale if scale != 1.0 else array,
                lines=lines,
                resorted=order is not None,
            )
        )
    return series


def _parse_labels(text: str, source: str, line: int) -> dict[str, str]:
    labels: dict[str, str] = {}
    for pair in filter(None, (part.strip() for part in text.split(";"))):
        name, separator, value = pair.partition("=")
        if not separator or not name.strip():
            raise InputError(f"label {pair!r} is not name=value", source=source, line=line)
        labels[name.strip()] = value.strip()
    return labels
