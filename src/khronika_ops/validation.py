"""One strict model base and one error style for every input khronika-ops reads (module catalog,
release manifests, the planner's site catalog): unknown keys are errors, and a check reports every
problem at once, each located by module (or file) and field path."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from khronika_ops.safe_yaml import YamlError


class StrictModel(BaseModel):
    """Unknown keys are errors: a misspelt key silently ignored is a setting silently not applied."""

    model_config = ConfigDict(extra="forbid", frozen=True)


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


def readable(error: BaseException) -> str:
    """An error as the operator reads it: a pydantic ValidationError as its located messages (never
    its raw text, which lists input values and links to pydantic's documentation), others as they say."""
    if isinstance(error, ValidationError):
        return "; ".join(str(problem) for problem in problems_from_validation(error, None)) or "invalid input"
    return str(error)


def yaml_problem(error: YamlError) -> Problem:
    """A refused or invalid YAML file as a problem of the file as a whole, at its line."""
    return Problem(None, f"line {error.line}" if error.line else "", error.reason)


def describe_value(value: Any) -> str:
    return repr(value) if isinstance(value, str) else str(value)
