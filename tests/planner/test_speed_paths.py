"""The fast paths (vectorised CSV parsing, sort-based quantiles, lazy CLI imports) give the same answers
as the straightforward ones."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from khronika_ops.planner.forecast import (
    DEMAND_QUANTILES,
    quantiles,
    select_order_statistics,
    weighted_quantiles,
)
from khronika_ops.planner.ingest import csvfile, read_csv
from khronika_ops.planner.ingest.numeric import parse_decimal_rows, parse_numeric_body

FORMATS = ["%.3f", "%.6f", "%.1f", "%.0f", "%.10f", "%.12g", "%.15g", "%.17g"]


def test_decimal_parser_is_bit_identical_to_loadtxt() -> None:
    rng = np.random.default_rng(7)
    parsed = 0
    for trial in range(400):
        values = rng.standard_normal((40, 3)) * 10.0 ** rng.integers(-6, 10, (40, 3))
        buffer = io.StringIO()
        np.savetxt(buffer, values, delimiter=";" if trial % 2 else ",", fmt=FORMATS[trial % len(FORMATS)])
        body = buffer.getvalue().encode()
        expected = np.loadtxt(io.BytesIO(body), delimiter=";" if trial % 2 else ",", ndmin=2)
        got = parse_decimal_rows(body, ";" if trial % 2 else ",", 3)
        if got is None:  # exponents or more than 15 digits: the general path parses those
            continue
        parsed += 1
        assert np.array_equal(got, expected)
        assert np.array_equal(np.signbit(got), np.signbit(expected))
    assert parsed > 150


@pytest.mark.parametrize(
    "body",
    [b"1,,\n", b"1,2\n3\n", b"1..2,3\n", b"-,3\n", b"1-2,3\n", b"1e5,3\n", b"--1,2\n", b"nan,3\n",
     b"1,2\n\n3,4\n", b"1,2\r\n3,4\n", b".,3\n", b" 1,2\n", b"1,2,3\n", b"12345678901234567,1\n"],
)  # fmt: skip
def test_decimal_parser_declines_anything_unusual(body: bytes) -> None:
    assert parse_decimal_rows(body, ",", 2) is None


def test_the_columnar_reader_is_bit_identical_to_loadtxt() -> None:
    """polars' reader (the path wide files take) against numpy's: every format, exponents included."""
    rng = np.random.default_rng(8)
    for trial in range(200):
        values = rng.standard_normal((40, 3)) * 10.0 ** rng.integers(-6, 10, (40, 3))
        buffer = io.StringIO()
        delimiter = ";" if trial % 2 else ","
        np.savetxt(buffer, values, delimiter=delimiter, fmt=FORMATS[trial % len(FORMATS)])
        body = buffer.getvalue().encode()
        got = parse_numeric_body(body, delimiter, 3)
        assert got is not None
        expected = np.loadtxt(io.BytesIO(body), delimiter=delimiter, ndmin=2)
        assert np.array_equal(got, expected) and np.array_equal(np.signbit(got), np.signbit(expected))


@pytest.mark.parametrize(
    "body",
    [b"1,,\n", b"1,2\n3\n", b"nan,3\n", b"inf,3\n", b"1,2\n\n3,4\n", b"1,2\r\n3,4\n", b"1,2,3\n",
     b'"1",2\n', b"a,2\n", b"1-2,3\n", b"2026-01-01T00:00:00Z,3\n"],
)  # fmt: skip
def test_the_columnar_reader_declines_anything_unusual(body: bytes) -> None:
    """Missing values, non-finite numbers, blank lines, CR, ragged rows, quotes, text: the checked path."""
    assert parse_numeric_body(body, ",", 2) is None


def test_the_columnar_reader_reads_the_body_after_the_header_in_place() -> None:
    """`start` skips the header line (quotes and commas in it included) without copying the body; a
    blank line in the body still sends the file down the checked path."""
    data = b'timestamp,cpu{mode="a,b"}\n1,2.5\n3,4\n'
    got = parse_numeric_body(data, ",", 2, start=data.find(b"\n") + 1)
    assert got is not None and got.tolist() == [[1.0, 2.5], [3.0, 4.0]]
    blank = b"timestamp,a\n1,2\n\n3,4\n"
    assert parse_numeric_body(blank, ",", 2, start=blank.find(b"\n") + 1) is None
    assert parse_numeric_body(b"timestamp,a\n", ",", 2, start=12) is None


def test_decimal_parser_edge_tokens() -> None:
    got = parse_decimal_rows(b"1.,.5\n-0,-.25\n007,-0.000", ",", 2)
    assert got is not None
    assert got.tolist() == [[1.0, 0.5], [0.0, -0.25], [7.0, 0.0]]
    assert np.signbit(got[1, 0]) and np.signbit(got[2, 1])


def test_fast_wide_read_equals_the_general_path(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    times = 1_700_000_000 + 60 * np.arange(500)
    path = tmp_path / "wide.csv"
    values = np.column_stack([times, rng.gamma(2, 10, (500, 4)) * [1, 100, 0.01, 1]])
    np.savetxt(path, values, delimiter=",", fmt="%.4f", header="timestamp,a,b_bytes,c,d", comments="")
    data = path.read_bytes()
    fast = csvfile._read_plain_wide(data, source=str(path), unit=None, allow_unsorted=False)
    assert fast is not None
    general = csvfile.read_csv_text(data.decode(), source=str(path))
    assert [s.key for s in fast] == [s.key for s in general]
    for a, b in zip(fast, general, strict=True):
        assert (a.unit, a.counter, a.resorted) == (b.unit, b.counter, b.resorted)
        assert np.array_equal(a.timestamps, b.timestamps)
        assert np.array_equal(a.values, b.values)
        assert a.lines is not None and b.lines is not None and np.array_equal(a.lines, b.lines)
    assert [s.key.metric for s in read_csv(path)] == ["a", "b_bytes", "c", "d"]


def test_quantiles_match_numpy_exactly() -> None:
    rng = np.random.default_rng(11)
    for trial in range(300):
        rows = int(rng.integers(1, 400))
        matrix = rng.integers(0, 5, (rows, 3)).astype(float) if trial % 2 else rng.standard_normal((rows, 3))
        for levels in ((0.01, 0.5, 0.99), (0.5,), (0.0, 0.95, 1.0)):
            expected = np.quantile(matrix, levels, axis=0)
            assert np.array_equal(quantiles(matrix, levels), expected)


def test_order_statistics_are_where_a_sort_puts_them() -> None:
    """Each selected position holds the sorted row's value there, nothing larger before it and nothing
    smaller after it: ties, neighbouring positions and the ends included."""
    rng = np.random.default_rng(13)
    for trial in range(1000):
        count = int(rng.integers(1, 40))
        rows = rng.integers(0, 6, (3, count)).astype(float) if trial % 2 else rng.standard_normal((3, count))
        kth = sorted(set(rng.integers(0, count, int(rng.integers(1, 6))).tolist()))
        selected = rows.copy()
        select_order_statistics(selected, kth)
        assert np.array_equal(selected[:, kth], np.sort(rows, axis=1)[:, kth])
        for position in kth:
            assert (selected[:, :position] <= selected[:, [position]]).all()
            assert (selected[:, position + 1 :] >= selected[:, [position]]).all()


def _reference_weighted(matrix: np.ndarray, weights: np.ndarray, levels: list[float]) -> np.ndarray:
    """The original column-wise implementation (argsort down the columns, count below q x total)."""
    weight_matrix = np.where(np.isfinite(matrix), weights[:, None], 0.0)
    filled = np.where(np.isfinite(matrix), matrix, np.inf)
    order = np.argsort(filled, axis=0)
    sorted_values = np.take_along_axis(filled, order, axis=0)
    cumulative = np.cumsum(np.take_along_axis(weight_matrix, order, axis=0), axis=0)
    counts = np.isfinite(matrix).sum(axis=0)
    result = np.empty((len(levels), matrix.shape[1]))
    for row, level in enumerate(levels):
        if level >= 1.0:
            index = counts - 1
        else:
            index = np.minimum((cumulative < level * cumulative[-1]).sum(axis=0), counts - 1)
        result[row] = sorted_values[np.maximum(index, 0), np.arange(matrix.shape[1])]
    return result


def test_weighted_quantiles_match_the_reference() -> None:
    rng = np.random.default_rng(5)
    levels = list(DEMAND_QUANTILES.values())
    for trial in range(200):
        rows = int(rng.integers(1, 300))
        matrix = rng.integers(0, 20, (rows, 4)).astype(float) if trial % 2 else rng.standard_normal((rows, 4))
        if trial % 3 == 0:
            matrix[rng.random(matrix.shape) < 0.3] = np.nan
        weights = 0.5 ** (rng.random(rows) * 3)
        assert np.array_equal(
            weighted_quantiles(matrix, weights, levels), _reference_weighted(matrix, weights, levels)
        )


def test_weighted_quantiles_order_values_closer_than_the_packed_keys_tell() -> None:
    """Values a few units in the last place apart share their sort key: their order is found exactly,
    negatives and zeros included (an infinity makes a column take the arg-sort; -0.0 and 0.0 compare
    equal, as they do for the reference)."""
    rng = np.random.default_rng(6)
    levels = list(DEMAND_QUANTILES.values())
    for trial in range(100):
        rows = int(rng.integers(2, 500))
        base = rng.choice([1.0, -3.5, 1e6, 0.0], size=(rows, 3))
        matrix = base + base * np.finfo(float).eps * rng.integers(0, 64, (rows, 3))
        matrix[rng.random(matrix.shape) < 0.05] = -0.0
        if trial % 4 == 0:
            matrix[0, 0] = np.inf
        weights = 0.5 ** (rng.random(rows) * 3)
        assert np.array_equal(
            weighted_quantiles(matrix, weights, levels), _reference_weighted(matrix, weights, levels)
        )


def test_cli_imports_stay_lazy() -> None:
    code = (
        "import sys, khronika_ops.cli; "
        "print(sorted(m for m in ('rich', 'numpy', 'pydantic', 'psutil', 'khronika_ops.collector.cli') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_timestamps_are_formatted_as_datetime_formats_them() -> None:
    """The vectorised ISO formatting gives `datetime.fromtimestamp`'s second (rounded to the microsecond
    first), just below whole seconds and before 1970 included."""
    from datetime import UTC, datetime

    from khronika_ops.planner.forecast import _iso_many

    rng = np.random.default_rng(14)
    epochs = np.concatenate(
        [
            [0.0, 1.5, -1.5, -1e-7, -4e-7, 86399.9999995, 1700000000.9999998, 1700000000.4999996],
            rng.uniform(-1e9, 4e9, 500),
            np.floor(rng.uniform(0, 4e9, 200)) + 1 - rng.uniform(0, 2e-6, 200),
        ]
    )
    expected = [datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ") for epoch in epochs]
    assert _iso_many(epochs) == expected
