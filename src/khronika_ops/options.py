"""Numbers from the command line, checked once for every command: finite and inside the option's range,
or a usage error (exit 2) that names the option. Click takes `nan`, `inf` and `1e308` as floats and its
ranges let NaN through (every comparison with it is false), so no command relies on them alone."""

from __future__ import annotations

import math

import typer


def number(
    value: float,
    option: str,
    *,
    above: float | None = None,
    at_least: float | None = None,
    at_most: float | None = None,
    below: float | None = None,
) -> float:
    """`value` when it is finite and inside the bounds given; typer.BadParameter naming `option` otherwise."""
    bounds = []
    if above is not None:
        bounds.append(f"above {above:g}")
    if at_least is not None:
        bounds.append(f"at least {at_least:g}")
    if below is not None:
        bounds.append(f"below {below:g}")
    if at_most is not None:
        bounds.append(f"at most {at_most:g}")
    wanted = "a finite number" + (" " + " and ".join(bounds) if bounds else "")
    inside = (
        math.isfinite(value)
        and (above is None or value > above)
        and (at_least is None or value >= at_least)
        and (below is None or value < below)
        and (at_most is None or value <= at_most)
    )
    if not inside:
        raise typer.BadParameter(f"{value!r} is not {wanted}", param_hint=option)
    return value
