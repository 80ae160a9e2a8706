"""Modules imported on first use, for the collection's plugin adapters.

Ansible runs each task on each host in a fresh worker process and, to find one filter of a collection,
loads every filter file of it. Filter files that import the package eagerly made every task that used any
khronika.platform filter import pydantic, numpy and most of the package again, per host: about 0.6
CPU-seconds each time. Through `lazy()`, loading a filter file imports nothing; a module is imported
when one of its filters is first called.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any


class LazyModule:
    """Stands for the module `name`; the first attribute read imports it."""

    __slots__ = ("_module", "_name")

    def __init__(self, name: str) -> None:
        self._name = name
        self._module: ModuleType | None = None

    def __getattr__(self, attribute: str) -> Any:
        if self._module is None:
            self._module = importlib.import_module(self._name)
        return getattr(self._module, attribute)

    def __repr__(self) -> str:
        state = "imported" if self._module is not None else "not imported yet"
        return f"<lazy module {self._name} ({state})>"


def lazy(name: str) -> Any:
    """`name` imported on first use (typed Any: callers use it as the module)."""
    return LazyModule(name)
