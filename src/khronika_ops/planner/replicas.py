"""A replica's name in a plan's placement (`module#index`): written by the planner (`place.py`), read back
by `scale.yml` (`platform/scale.py`). Standard library only: the scale's filter imports it."""

from __future__ import annotations


def replica_id(module: str, index: int) -> str:
    """`module#index`."""
    return f"{module}#{index}"


def replica_module(replica: str) -> str:
    """The module of a placement's replica name (`replica_id`'s inverse)."""
    return str(replica).rsplit("#", 1)[0]
