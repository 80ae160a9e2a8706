"""Values as Ansible hands them to plugins (lazy containers, tagged strings) turned into plain Python,
so that pydantic and the rest of the package see ordinary dicts, lists and strings. Used by the
collection's filter plugins, which are thin adapters over this package."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(key): plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [plain(item) for item in value]
    if isinstance(value, str):
        return str(value)
    return value
