"""Values as Ansible hands them to plugins (lazy containers, tagged strings) turned into plain Python,
so that pydantic and the rest of the package see ordinary dicts, lists and strings. Used by the
collection's filter plugins, which are thin adapters over this package.

Ansible's own YAML loader shares the value an alias points at, so an inventory holding an alias bomb
arrives here as a small graph that expands to billions of values: `plain` counts what it copies and
refuses beyond `MAX_VALUES` (the bound khronika_ops.safe_yaml puts on the files the package reads)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from khronika_ops.safe_yaml import MAX_NODES as MAX_VALUES


class TooLargeError(ValueError):
    """The value expands to more than MAX_VALUES values."""


def plain(value: Any) -> Any:
    budget = [MAX_VALUES]
    return _plain(value, budget)


def _plain(value: Any, budget: list[int]) -> Any:
    budget[0] -= 1
    if budget[0] < 0:
        raise TooLargeError(
            f"the value expands to more than {MAX_VALUES:,} items (a YAML alias bomb in the inventory?)"
        )
    if isinstance(value, Mapping):
        return {str(key): _plain(item, budget) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item, budget) for item in value]
    if isinstance(value, str):
        return str(value)
    return value
