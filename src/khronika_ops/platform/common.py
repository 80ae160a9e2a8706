"""Pieces the catalog and the release manifests share: sizes, durations, host minimums. The strict
model base and the problem reports are khronika_ops.validation's (both halves use them)."""

from __future__ import annotations

from typing import Annotated

from pydantic import BeforeValidator, Field, PlainSerializer

from khronika_ops.quantities import format_size, parse_duration, parse_size
from khronika_ops.validation import StrictModel

# Seconds in the model, `1m30s` style in YAML (khronika_ops.quantities' grammar).
Seconds = Annotated[float, BeforeValidator(parse_duration)]
# Bytes in the model, `512m` style in YAML and JSON output.
SizeBytes = Annotated[int, BeforeValidator(parse_size), PlainSerializer(format_size, return_type=str)]


class HostMinimum(StrictModel):
    """What a host must have for a module to be placed there."""

    cores: float = Field(0.0, ge=0)
    memory: SizeBytes = 0
    disk: SizeBytes = 0
    gpus: int = Field(0, ge=0)
