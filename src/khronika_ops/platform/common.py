"""Pieces the catalog and the release manifests share: strict models, sizes, problems that name a place."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer, ValidationError

from khronika_ops.platform.quantities import format_size, parse_size


class StrictModel(BaseModel):
    """Unknown keys are errors: a misspelt key silently ignored is a setting silently not applied."""

    model_config = ConfigDict(extra="forbid", frozen=True)


# Bytes in the model, `512m` style in YAML and JSON output.
SizeBytes = Annotated[int, BeforeValidator(parse_size), PlainSerializer(format_size, return_type=str)]


class HostMinimum(StrictModel):
    """What a host must have for a module to be placed there."""

    cores: float = Field(0.0, ge=0)
    memory: SizeBytes = 0
    disk: SizeBytes = 0
    gpus: int = Field(0, ge=0)


@dataclass(frozen=True)
class Problem:
    """One thing the user has to fix, located by module (None: the file as a whole) and field path."""

    module: str | None
    field: str
    message: str

    def __str__(self) -> str:
        if self.module is None:
            return f"{self.field}: {self.message}" if self.field else self.message
        return f"module {self.module!r}, field {self.field!r}: {self.message}"


class ProblemsError(Exception):
    """Raised with every problem found, so that one run shows the user everything to fix."""

    what = "validation"

    def __init__(self, problems: Sequence[Problem], source: str | None = None) -> None:
        self.problems = list(problems)
        self.source = source
        super().__init__(str(self))

    def __str__(self) -> str:
        head = f"{self.source}: " if self.source else ""
        lines = [f"{head}{len(self.problems)} {self.what} error(s)"]
        lines += [f"  - {problem}" for problem in self.problems]
        return "\n".join(lines)


def location(parts: Sequence[int | str]) -> str:
    """('ports', 0, 'host') -> 'ports[0].host'."""
    text = ""
    for part in parts:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text


def problems_from_validation(
    error: ValidationError, module: str | None, prefix: Sequence[int | str] = ()
) -> list[Problem]:
    problems = []
    for item in error.errors():
        loc = [*prefix, *item["loc"]]
        message = item["msg"].removeprefix("Value error, ").removeprefix("Assertion failed, ")
        if item["type"] == "extra_forbidden":
            message = f"unknown key {loc[-1]!r}"
        elif item["type"] == "missing":
            message = "is required"
        problems.append(Problem(module, location(loc), message))
    return problems


def describe_value(value: Any) -> str:
    return repr(value) if isinstance(value, str) else str(value)
