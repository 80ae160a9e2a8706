"""The `khronika` command line."""

from __future__ import annotations

import importlib
import os
from functools import cache
from typing import TYPE_CHECKING, Annotated

import typer
from typer.core import TyperGroup

from khronika_ops import __version__

if TYPE_CHECKING:
    from rich.console import Console
    from typer import _click  # typer's own copy of click: the types its group methods take

# Command groups that live in their own modules: (module, attribute, name). A group whose module
# is absent is simply not offered, so the CLI grows as features land without touching this file twice.
# Their modules are imported only when the group is run or listed (help): `khronika plan size` must
# not pay for the collector's psutil/HTTP imports, nor `khronika --version` for numpy and pydantic.
_SUBCOMMAND_GROUPS: tuple[tuple[str, str, str], ...] = (
    ("khronika_ops.planner.cli", "plan_app", "plan"),
    ("khronika_ops.collector.cli", "collect_app", "collect"),
    ("khronika_ops.platform.cli", "release_app", "release"),
    ("khronika_ops.platform.cli", "validate_app", "catalog"),
    ("khronika_ops.platform.cli", "update_app", "update"),
    ("khronika_ops.platform.status", "status", "status"),
    ("khronika_ops.runner", "run_command", "run"),
    ("khronika_ops.lab.cli", "lab_app", "lab"),
    ("khronika_ops.archive.cli", "archive_app", "archive"),
    ("khronika_ops.support.cli", "support_app", "support"),
)


@cache
def _load_group(name: str) -> _click.Command | None:
    for module_name, attribute, group_name in _SUBCOMMAND_GROUPS:
        if group_name != name:
            continue
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name is not None and module_name.startswith(exc.name):
                return None  # the feature is not part of this build
            raise
        # Registered on a throwaway root exactly as `add_typer`/`command` on `app` would (same help,
        # same settings), then taken out as the click command the root group dispatches to.
        holder = typer.Typer(add_completion=False, rich_markup_mode=None)
        holder.callback()(_no_op)
        group = getattr(module, attribute)
        if isinstance(group, typer.Typer):
            holder.add_typer(group, name=name)
        else:
            holder.command(name=name)(group)
        root = typer.main.get_command(holder)
        assert isinstance(root, TyperGroup)
        return root.commands[name]
    return None


def _no_op() -> None:
    """Placeholder callback of the holder used by `_load_group`."""


class _LazyGroups(TyperGroup):
    """The root group: subcommand groups from `_SUBCOMMAND_GROUPS` are imported on first use."""

    def list_commands(self, ctx: _click.Context) -> list[str]:
        names = list(super().list_commands(ctx))
        loaded = [(name, command) for _, _, name in _SUBCOMMAND_GROUPS if (command := _load_group(name))]
        # Listed as typer lists them: plain commands before command groups.
        loaded.sort(key=lambda item: isinstance(item[1], TyperGroup))
        return names + [name for name, _ in loaded]

    def get_command(self, ctx: _click.Context, cmd_name: str) -> _click.Command | None:
        return super().get_command(ctx, cmd_name) or _load_group(cmd_name)


app = typer.Typer(
    name="khronika",
    help="Operations toolkit for the Khronika platform.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    cls=_LazyGroups,
)


@cache
def _console() -> Console:
    from khronika_ops.console import make_console

    return make_console()


def _version_callback(value: bool) -> None:
    if value:
        _console().print(f"khronika-ops {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version_callback, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Operations toolkit for the Khronika platform."""


@app.command()
def doctor(
    lab: Annotated[
        bool, typer.Option("--lab", help="Also require what the local lab needs (Docker).")
    ] = False,
    json_output: Annotated[bool, typer.Option("--json", help="Print the results as JSON.")] = False,
) -> None:
    """Check this controller: Python, ansible-core, collections, SSH and Docker."""
    from khronika_ops import doctor as doctor_mod

    results = doctor_mod.run_checks(require_docker=lab)
    if json_output:
        typer.echo(doctor_mod.results_to_json(results))
    else:
        doctor_mod.print_results(results, _console())
    raise typer.Exit(code=0 if doctor_mod.all_required_ok(results) else 1)


def main() -> None:
    try:
        app()
    except Exception as exc:  # the last line of defence: one sentence, not a traceback
        if os.environ.get("KHRONIKA_DEBUG"):
            raise
        from pydantic import ValidationError

        from khronika_ops.console import error_text, make_console
        from khronika_ops.validation import readable

        console = make_console(stderr=True)
        if isinstance(exc, ValidationError):
            console.print(error_text(readable(exc)))
            raise SystemExit(2) from None
        console.print(
            error_text(
                f"khronika stopped on an unexpected {type(exc).__name__}: {exc}. This is a bug: please "
                "report it with the command line; KHRONIKA_DEBUG=1 shows where it happened."
            )
        )
        raise SystemExit(70) from None


if __name__ == "__main__":
    main()
