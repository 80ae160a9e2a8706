"""Ingest: turn files and Prometheus answers into RawSeries."""

from khronika_ops.planner.ingest.csvfile import read_csv, read_csv_text

__all__ = ["read_csv", "read_csv_text"]
