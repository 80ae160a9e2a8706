"""Severity and bottleneck, for modules and hosts alike: one ordering, one set of thresholds, and a reason
a reader can act on.

- CRITICAL: short: the need at the horizon is more than what it has (raise a limit, grow, move, buy);
- WARNING: over-provisioned: it needs less than half of what it has (lower a limit, free the room);
- GOOD: in between;
- UNKNOWN: nothing to judge (no history, or nothing it has to compare with): the reason says which.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum


class Severity(StrEnum):
    UNKNOWN = "UNKNOWN"
    GOOD = "GOOD"
    WARNING = "WARNING"
    CRITICAL = "CRITICAL"

    @property
    def rank(self) -> int:
        return ORDER.index(self)


ORDER = (Severity.UNKNOWN, Severity.GOOD, Severity.WARNING, Severity.CRITICAL)
SHORT_ABOVE = 1.0  # need / have above this: short
OVER_BELOW = 0.5  # need / have below this: over-provisioned
_EPSILON = 1e-4


class Bottleneck(StrEnum):
    """The resource that fills first: the larger share of the capacity it is measured against."""

    CPU = "cpu"
    MEMORY = "memory"


@dataclass(frozen=True)
class Verdict:
    severity: Severity
    reason: str


def judge(what: str, need: float | None, have: float | None, unit: str, *, short: str, over: str) -> Verdict:
    """`what` needs `need` and has `have` (same unit): the verdict and its reason; `short` and `over` say
    what to do in those cases."""
    if need is None:
        return Verdict(Severity.UNKNOWN, f"{what}: no usage history to judge by")
    if have is None or have <= 0:
        return Verdict(Severity.UNKNOWN, f"{what}: needs {need:.3g} {unit}; nothing to compare with ({over})")
    share = need / have
    if share > SHORT_ABOVE + _EPSILON:
        return Verdict(Severity.CRITICAL, f"{what}: needs {need:.3g} {unit}, has {have:.3g}: {short}")
    if share < OVER_BELOW:
        return Verdict(
            Severity.WARNING, f"{what}: needs {need:.3g} of its {have:.3g} {unit} ({share:.0%}): {over}"
        )
    return Verdict(Severity.GOOD, f"{what}: needs {need:.3g} of its {have:.3g} {unit} ({share:.0%})")


def worst(verdicts: Iterable[Verdict]) -> Verdict:
    """The most severe verdict; the reasons of every verdict at that severity, joined."""
    items = list(verdicts)
    if not items:
        return Verdict(Severity.UNKNOWN, "nothing to judge")
    top = max(item.severity.rank for item in items)
    return Verdict(ORDER[top], "; ".join(item.reason for item in items if item.severity.rank == top))


def bottleneck(cores: float, memory_gib: float, of_cores: float, of_memory_gib: float) -> Bottleneck:
    """CPU when the cores take at least the share of `of_cores` that the memory takes of `of_memory_gib`."""
    cpu_share = cores / of_cores if of_cores > 0 else 0.0
    memory_share = memory_gib / of_memory_gib if of_memory_gib > 0 else 0.0
    return Bottleneck.CPU if cpu_share >= memory_share else Bottleneck.MEMORY
