"""Terminal output for every `khronika` command: what the user wrote, what a file holds and what a
validation says is printed literally. Rich markup, highlighting and emoji codes are off on every
console made here (`[a-z]{0,62}` in a pattern stays `[a-z]{0,62}`); styles come only from the
program, as Text with a style."""

from __future__ import annotations

import json
import math
from typing import IO

from rich.console import Console
from rich.text import Text


def make_console(*, stderr: bool = False, file: IO[str] | None = None, width: int | None = None) -> Console:
    return Console(
        stderr=stderr,
        file=file,
        width=width,
        markup=False,
        highlight=False,
        emoji=False,
        soft_wrap=file is None,
        # A report written to a file (or a buffer) carries no colour codes, whatever FORCE_COLOR says.
        force_terminal=False if file is not None else None,
    )


def styled(text: object, style: str) -> Text:
    return Text(str(text), style=style)


def labelled(label: str, style: str, text: object) -> Text:
    """`label` in `style`, then the text as it is."""
    return Text.assemble((label, style), " ", str(text))


def error_text(message: object) -> Text:
    return labelled("error:", "bold red", message)


def finite(value: object) -> object:
    """`value` with every NaN or infinite float replaced by None (JSON has no such numbers)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [finite(item) for item in value]
    return value


def json_text(value: object, indent: int | None = 2) -> str:
    """Valid JSON, always: a number that is not finite is written as null, never as NaN or Infinity."""
    return json.dumps(finite(value), indent=indent, allow_nan=False, ensure_ascii=False)
