"""Errors the planner raises for bad input; each names where the problem is."""

from __future__ import annotations


class PlannerError(Exception):
    """Base class: something the user has to fix (input, catalog, options)."""


class InputError(PlannerError):
    """Bad input data, located by file (or URL) and 1-based line where known."""

    def __init__(self, message: str, *, source: str | None = None, line: int | None = None) -> None:
        self.message = message
        self.source = source
        self.line = line
        super().__init__(str(self))

    def __str__(self) -> str:
        where = self.source or "<input>"
        if self.line is not None:
            where = f"{where}, line {self.line}"
        return f"{where}: {self.message}"
