"""`khronika support bundle|schema`: the support bundle and request draft (docs/support.md)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from khronika_ops.console import error_text, make_console

support_app = typer.Typer(
    help="Support requests: a redacted bundle of the site's state with a request draft, and its schema.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


@support_app.command("bundle")
def bundle_command(  # noqa: PLR0917 - typer passes options as arguments
    inventory: Annotated[Path, typer.Option("-i", "--inventory", help="The site's inventory.")],
    category: Annotated[
        str, typer.Option(help="incident, problem, service-request or development-request.")
    ] = "incident",
    describe: Annotated[str, typer.Option("--describe", help="What happened, when, what was expected.")] = "",
    pseudonymize: Annotated[
        bool, typer.Option(help="Stable stand-ins for host names and IPv4 addresses in the whole bundle.")
    ] = False,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Folder for the bundle (default reports/support).")
    ] = None,
    vault_password_file: Annotated[Path | None, typer.Option(help="Vault password file.")] = None,
    limit: Annotated[str | None, typer.Option("-l", "--limit", help="Only these hosts.")] = None,
) -> None:
    """Collect every host's state into one redacted bundle with request.json (playbooks/support-bundle.yml)."""
    from khronika_ops.runner import run_and_exit
    from khronika_ops.support.request import CATEGORIES

    console = make_console()
    if category not in CATEGORIES:
        console.print(error_text(f"--category must be one of {', '.join(CATEGORIES)}, not {category!r}"))
        raise typer.Exit(2)
    extravars: dict[str, Any] = {
        "khronika_support_category": category,
        "khronika_support_pseudonymize": pseudonymize,
    }
    if describe:
        extravars["khronika_support_description"] = describe
    if output is not None:
        extravars["khronika_support_dest"] = str(output.resolve())
    run_and_exit(
        console,
        "support-bundle",
        inventory,
        extravars=extravars,
        limit=limit,
        vault_password_file=vault_password_file,
    )


@support_app.command("schema")
def schema_command() -> None:
    """Print the JSON schema of request.json."""
    from khronika_ops.support.request import schema

    typer.echo(json.dumps(schema(), indent=2))
