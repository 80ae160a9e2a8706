"""`khronika support bundle|schema`: the support bundle and request draft (docs/support.md)."""

from __future__ import annotations

import json
import os
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
    describe: Annotated[
        str, typer.Option("--describe", help="What happened, when, what was expected (required).")
    ] = "",
    subject: Annotated[
        str,
        typer.Option("--subject", help="The request's subject, one line (default: the description's first)."),
    ] = "",
    attach: Annotated[
        list[Path] | None,
        typer.Option(
            "--attach",
            help="A file to attach: a screenshot of the failure (PNG, JPEG, GIF, WebP) or a text file; "
            "5 MiB each, 10 at most (repeatable).",
        ),
    ] = None,
    pseudonymize: Annotated[
        bool, typer.Option(help="Stable stand-ins for host names and IPv4 addresses in the whole bundle.")
    ] = False,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Folder for the bundle (default reports/support).")
    ] = None,
    vault_password_file: Annotated[Path | None, typer.Option(help="Vault password file.")] = None,
    limit: Annotated[
        str | None,
        typer.Option("-l", "--limit", help="Only these hosts (a host pattern; default: group khronika)."),
    ] = None,
) -> None:
    """Collect every host's state into one redacted bundle with request.json (playbooks/support-bundle.yml).
    What you type and the files you name reach Ansible as data: nothing in them is ever rendered."""
    from khronika_ops.runner import run_and_exit
    from khronika_ops.support.request import CATEGORIES, check_request

    console = make_console()
    if category not in CATEGORIES:
        console.print(error_text(f"--category must be one of {', '.join(CATEGORIES)}, not {category!r}"))
        raise typer.Exit(2)
    attachments = [path.expanduser().resolve() for path in attach or []]
    # The request's own fields, before Ansible starts (the playbook's first play checks them again with
    # the site's organisation, contact and hosts, before anything is collected).
    problems = check_request(category, describe, subject, [str(path) for path in attachments])
    if output is not None:
        existing = next(folder for folder in (output, *output.absolute().parents) if folder.exists())
        if existing == output and not output.is_dir():
            problems.append(f"-o {output}: is a file; the bundle goes into a folder")
        elif not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
            problems.append(f"-o {output}: cannot write in {existing}")
    if problems:
        for problem in problems:
            console.print(error_text(problem))
        console.print("Nothing was collected.")
        raise typer.Exit(2)
    extravars: dict[str, Any] = {
        "khronika_support_category": category,
        "khronika_support_pseudonymize": pseudonymize,
        "khronika_support_description": describe,
        "khronika_support_subject": subject,
        "khronika_support_attachments": [str(path) for path in attachments],
    }
    if output is not None:
        extravars["khronika_support_dest"] = str(output.resolve())
    if limit is not None:
        # The hosts collected from, as a pattern of the play: Ansible's --limit would also leave out the
        # controller's own plays (localhost), which check the request and write the bundle.
        extravars["khronika_support_hosts"] = limit
    run_and_exit(
        console,
        "support-bundle",
        inventory,
        extravars=extravars,
        vault_password_file=vault_password_file,
    )


@support_app.command("schema")
def schema_command() -> None:
    """Print the JSON schema of request.json."""
    from khronika_ops.support.request import schema

    typer.echo(json.dumps(schema(), indent=2))
