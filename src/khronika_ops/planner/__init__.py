"""Capacity planner: load metrics -> cleaned series -> forecasts -> sized resources -> placement -> report.

Stages are small modules with typed models between them (see docs/planner.md):
ingest (`ingest/`), `clean`, `forecast`, `size` (+ `erlang`, `hardware`), `place`, `report/`.
"""
