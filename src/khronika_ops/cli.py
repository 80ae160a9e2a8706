"""The `khronika` command line."""

from __future__ import annotations

import importlib
from typing import Annotated

import typer
from rich.console import Console

from khronika_ops import __version__

app = typer.Typer(
    name="khronika",
    help="Operations toolkit for the Khronika platform.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()

# Command groups that live in their own modules: (module, attribute, name). A group whose module
# is absent is simply not offered, so the CLI grows as features land without touching this file twice.
_SUBCOMMAND_GROUPS: tuple[tuple[str, str, str], ...] = (
    ("khronika_ops.planner.cli", "plan_app", "plan"),
    ("khronika_ops.collector.cli", "collect_app", "collect"),
)


def _version_callback(value: bool) -> None:
    if value:
        console.print(f"khronika-ops {__version__}")
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
        doctor_mod.print_results(results, console)
    raise typer.Exit(code=0 if doctor_mod.all_required_ok(results) else 1)


def _register_groups() -> None:
    for module_name, attribute, name in _SUBCOMMAND_GROUPS:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name is not None and module_name.startswith(exc.name):
                continue  # the feature is not part of this build
            raise
        group = getattr(module, attribute)
        if isinstance(group, typer.Typer):
            app.add_typer(group, name=name)
        else:
            app.command(name=name)(group)


_register_groups()


def main() -> None:
    app()


if __name__ == "__main__":
    main()
