"""`khronika update channel check|status`, `khronika update approve|resume` and `khronika release publish`:
the release channel (khronika_ops.platform.channel; docs/updates.md, "The release channel")."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from khronika_ops.console import error_text, json_text, make_console
from khronika_ops.runner import STRATEGY_HELP

if TYPE_CHECKING:
    from khronika_ops.platform.channel import ChannelState, StateStore
    from khronika_ops.platform.channel_site import Site

channel_app = typer.Typer(
    help="The release channel the site follows: what is newer, what the policy does with it, what ran.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
_stdout = make_console()
_stderr = make_console(stderr=True)

Inventory = Annotated[str, typer.Option("--inventory", "-i", help="Ansible inventory of the site.")]
VaultFile = Annotated[Path | None, typer.Option(help="Vault password file.")]
JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def _site(inventory: str, vault_password_file: Path | None) -> tuple[Site, StateStore]:
    from khronika_ops.platform.channel import ChannelError, StateStore, default_state_dir
    from khronika_ops.platform.channel_site import read_site
    from khronika_ops.platform.status import StatusError

    try:
        site = read_site(inventory, vault_password_file)
    except (ChannelError, StatusError) as exc:
        _stderr.print(error_text(exc))
        raise typer.Exit(code=2) from None
    return site, StateStore(site.policy.state_dir or default_state_dir(inventory))


def _operator() -> str:
    """Who ran the command, for the channel's run lines."""
    return os.environ.get("SUDO_USER") or os.environ.get("USER") or "unknown"


def _load(store: StateStore) -> ChannelState:
    from khronika_ops.platform.channel import ChannelError

    try:
        return store.load()
    except ChannelError as exc:
        _stderr.print(error_text(exc))
        raise typer.Exit(code=2) from None


@channel_app.command("check")
def check_command(
    inventory: Inventory, vault_password_file: VaultFile = None, json_output: JsonFlag = False
) -> None:
    """What the channel offers newer than the site runs, and what the policy will do with it now.
    Reads the channel and the inventory; changes nothing."""
    from datetime import UTC, datetime

    from khronika_ops.platform.channel import ChannelError, decide, open_channel, render_decision

    site, store = _site(inventory, vault_password_file)
    state = _load(store)
    channel = open_channel(site.policy)
    try:
        offer = channel.offer(newer_than=site.release)
    except ChannelError as exc:
        _stderr.print(error_text(exc))
        raise typer.Exit(code=1) from None
    decision = decide(site.policy, state, site.release, offer, datetime.now(UTC))
    if json_output:
        typer.echo(json_text({"channel": channel.name, **decision.model_dump()}))
        return
    _stdout.print(render_decision(decision, channel.name), end="", markup=False, highlight=False)


@channel_app.command("status")
def status_command(
    inventory: Inventory,
    vault_password_file: VaultFile = None,
    runs: Annotated[int, typer.Option(min=0, max=100, help="How many of the last runs to show.")] = 10,
    json_output: JsonFlag = False,
) -> None:
    """The channel, the policy, what runs where (each host's release record), the rollout, the last runs
    and the halt. Reads the hosts over Ansible; changes nothing."""
    from khronika_ops.platform.channel import open_channel, render_status
    from khronika_ops.platform.status import StatusError, read_records

    site, store = _site(inventory, vault_password_file)
    state = _load(store)
    try:
        records = read_records(
            inventory, "khronika_platform:khronika_gpu", vault_password_file=vault_password_file
        )
    except StatusError as exc:
        records = {host: {"error": str(exc)} for host in site.hosts}
    where = {
        host: str(record.get("version") or record.get("error") or "?") for host, record in records.items()
    }
    name = open_channel(site.policy).name
    if json_output:
        typer.echo(
            json_text(
                {
                    "channel": name,
                    "policy": site.policy.model_dump(
                        mode="json",
                        exclude={
                            "registry_password": True,
                            "watch": {"password"},
                            "alertmanager": {"password"},
                        },
                    ),
                    "site_release": site.release,
                    "hosts": where,
                    "state": state.model_dump(mode="json"),
                    "state_file": str(store.file),
                }
            )
        )
        return
    text = render_status(name, site.policy, site.release, where, state, runs=runs, state_file=str(store.file))
    _stdout.print(text, end="", markup=False, highlight=False)


def approve_command(
    version: Annotated[str, typer.Argument(help="The release to allow, e.g. 2.0.0.")],
    inventory: Inventory,
    vault_password_file: VaultFile = None,
) -> None:
    """Allow a release the policy holds for approval (a new version, by default): the channel applies it
    in its next window."""
    from khronika_ops.platform.channel import ChannelError, RunLine, approve, now_iso

    _, store = _site(inventory, vault_password_file)
    try:
        with store.lock():
            state = approve(_load(store), version)
            operator = _operator()
            store.save(
                state.with_run(
                    RunLine(
                        at=now_iso(),
                        action="approve",
                        release=version,
                        result="ok",
                        message=f"approved by {operator}",
                    )
                )
            )
    except ChannelError as exc:
        _stderr.print(error_text(exc))
        raise typer.Exit(code=1) from None
    _stdout.print(
        f"approved {version}: the channel applies it in its next window", markup=False, highlight=False
    )


def resume_command(inventory: Inventory, vault_password_file: VaultFile = None) -> None:
    """Lift the channel's halt after a look at why it halted (the release that failed stays failed); its
    Alertmanager alert is resolved."""
    from khronika_ops.platform.channel import ChannelError, RunLine, now_iso, resume

    site, store = _site(inventory, vault_password_file)
    try:
        with store.lock():
            state = _load(store)
            if state.halted is None:
                _stdout.print("the channel is not halted: nothing to resume", markup=False, highlight=False)
                return
            halt = state.halted
            operator = _operator()
            state = resume(state).with_run(
                RunLine(
                    at=now_iso(),
                    action="resume",
                    release=halt.release,
                    result="ok",
                    message=f"resumed by {operator} after: {halt.reason}",
                )
            )
            store.save(state)
    except ChannelError as exc:
        _stderr.print(error_text(exc))
        raise typer.Exit(code=1) from None
    from datetime import UTC, datetime

    from khronika_ops.platform.channel_run import Alerts

    Alerts.for_site(site.alertmanager).resolve(
        site.name, halt, datetime.now(UTC), lambda line: _stderr.print(line, markup=False, highlight=False)
    )
    _stdout.print(
        f"resumed: the halt on {halt.release} is lifted; {halt.release} itself is never retried by the channel",
        markup=False,
        highlight=False,
    )


def publish_command(
    manifest: Annotated[Path, typer.Argument(help="The release manifest (<version>.yml) to publish.")],
    registry: Annotated[str, typer.Option(help="The registry (host[:port]) the site's channel reads.")],
    repository: Annotated[str, typer.Option(help="The channel's repository.")] = "khronika/releases",
    registry_user: Annotated[
        str | None, typer.Option(help="Registry user; the password from $KHRONIKA_REGISTRY_PASSWORD.")
    ] = None,
    registry_ca: Annotated[Path | None, typer.Option(help="CA of the registry's TLS certificate.")] = None,
) -> None:
    """Publish a release manifest to a registry channel, as an OCI artifact tagged with its number (the
    vendor's side; the images it names must be pushed first)."""
    from khronika_ops.platform.channel import ChannelError, RegistryChannel
    from khronika_ops.platform.registry import Credentials, RegistryClient

    password = os.environ.get("KHRONIKA_REGISTRY_PASSWORD", "")
    if registry_user is not None and not password:
        raise typer.BadParameter("--registry-user needs the password in $KHRONIKA_REGISTRY_PASSWORD")
    try:
        text = manifest.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise typer.BadParameter(f"cannot read {manifest}: {exc}", param_hint="MANIFEST") from None
    credentials = {registry: Credentials(registry_user, password)} if registry_user else {}
    client = RegistryClient(credentials, ca_file=str(registry_ca) if registry_ca else None)
    try:
        origin, written = RegistryChannel(client, registry, repository).publish(text, str(manifest))
    except ChannelError as exc:
        _stderr.print(error_text(exc))
        raise typer.Exit(code=1) from None
    said = "published" if written else "already published (the same manifest)"
    _stdout.print(f"{said}: {origin}", markup=False, highlight=False)


def auto_command(
    inventory: Inventory,
    vault_password_file: VaultFile = None,
    strategy: Annotated[str | None, typer.Option(help=STRATEGY_HELP)] = None,
) -> None:
    """One run of the release channel (a systemd timer or an AWX schedule runs it): nothing to do or
    outside the window -> it says so and exits; a release the policy allows -> the canary, its soak
    watching Prometheus, then the batches; a bad sign -> rolled back, halted, alert firing.
    Exit 1 when this run halted the channel."""
    from datetime import UTC, datetime

    from khronika_ops.platform.channel import ChannelError
    from khronika_ops.platform.channel_run import Alerts, ChannelRun, Prometheus, playbook_executor
    from khronika_ops.runner import strategy_problem

    problem = strategy_problem(strategy)
    if problem:
        _stderr.print(error_text(problem))
        raise typer.Exit(code=2)
    site, store = _site(inventory, vault_password_file)

    def say(line: str) -> None:
        stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        _stdout.print(f"{stamp} {line}" if not line.startswith("  ") else line, markup=False, highlight=False)

    policy = site.policy
    run = ChannelRun(
        site,
        store,
        playbook_executor(
            inventory,
            vault_password_file=vault_password_file,
            artifacts_root=store.folder / "runs",
            strategy=strategy,
            say=say,
        ),
        alerts=Alerts.for_site(site.alertmanager),
        say=say,
        prometheus=Prometheus(policy.watch) if policy.watch.prometheus else None,
    )
    try:
        code = run.run()
    except ChannelError as exc:
        _stderr.print(error_text(exc))
        raise typer.Exit(code=2) from None
    raise typer.Exit(code=code)
