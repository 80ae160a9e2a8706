"""`khronika release list|show|diff` and `khronika catalog validate`."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from khronika_ops.console import error_text, labelled, make_console, styled
from khronika_ops.validation import ProblemsError

release_app = typer.Typer(
    help="Release manifests (releases/<version>.yml): list, show, and what a move from A to B changes.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
validate_app = typer.Typer(
    help="The module catalog (khronika_modules): validate it against an inventory.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
update_app = typer.Typer(
    help="Planned updates: what an update to a release does, and whether it may run now.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
_stdout = make_console()
_stderr = make_console(stderr=True)

ReleasesDir = Annotated[Path, typer.Option("--dir", help="Folder holding <version>.yml manifests.")]
JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def _fail(error: ProblemsError) -> typer.Exit:
    _stderr.print(error_text(error))
    return typer.Exit(code=1)


@release_app.command("list")
def list_command(directory: ReleasesDir = Path("releases"), json_output: JsonFlag = False) -> None:
    """Every release in the folder, oldest first."""
    from khronika_ops.platform.release import list_releases

    try:
        releases = list_releases(directory)
    except ProblemsError as exc:
        raise _fail(exc) from None
    if json_output:
        rows = [{"version": r.version, "kind": r.kind, "date": r.date.isoformat()} for r in releases]
        typer.echo(json.dumps(rows, indent=2))
        return
    table = Table("version", "kind", "date", "modules", title=f"releases in {directory}")
    for release in releases:
        table.add_row(release.version, release.kind, release.date.isoformat(), str(len(release.modules)))
    _stdout.print(table)


@release_app.command("show")
def show_command(
    version: Annotated[str, typer.Argument(help="Release version, e.g. 1.1.0.")],
    directory: ReleasesDir = Path("releases"),
    json_output: JsonFlag = False,
) -> None:
    """One release: images by digest, minimum resources, configuration changes, notes."""
    from khronika_ops.platform.release import find_release

    try:
        release = find_release(directory, version)
    except ProblemsError as exc:
        raise _fail(exc) from None
    if json_output:
        typer.echo(release.model_dump_json(indent=2, by_alias=True))
        return
    _stdout.print(styled(release.version, "bold"), f"({release.kind}, {release.date.isoformat()})")
    table = Table("module", "image", "cores", "memory", "disk", "gpus")
    for module in release.modules:
        minimum = module.min_resources.model_dump()
        table.add_row(
            module.name, module.image, *(str(minimum[key]) for key in ("cores", "memory", "disk", "gpus"))
        )
    _stdout.print(table)
    for change in release.config_changes:
        _stdout.print(f"config: {change.key}: {change.from_value!r} -> {change.to_value!r}  {change.note}")
    if release.notes:
        _stdout.print(release.notes.rstrip())


@release_app.command("diff")
def diff_command(
    from_version: Annotated[str, typer.Argument(metavar="A", help="The release a site runs now.")],
    to_version: Annotated[str, typer.Argument(metavar="B", help="The release to move to.")],
    directory: ReleasesDir = Path("releases"),
    catalog: Annotated[
        Path | None,
        typer.Option(help="The site's catalog, for each module's update strategy (default: recreate)."),
    ] = None,
    json_output: JsonFlag = False,
) -> None:
    """What moving from A to B changes: images, modules, configuration, resources, downtime class."""
    from khronika_ops.platform.catalog import load_yaml_file, update_strategies
    from khronika_ops.platform.release import diff, find_release, list_releases

    try:
        a = find_release(directory, from_version)
        b = find_release(directory, to_version)
        low, high = sorted((a.sort_key, b.sort_key))
        between = [r for r in list_releases(directory) if low < r.sort_key < high]
        strategies = update_strategies(load_yaml_file(catalog)) if catalog else None
    except ProblemsError as exc:
        raise _fail(exc) from None
    result = diff(a, b, strategies=strategies, between=between)
    if json_output:
        typer.echo(result.model_dump_json(indent=2, by_alias=True))
        return
    _print_diff(result.model_dump(by_alias=True))


def _short(image: str) -> str:
    """repo@sha256:0123456789ab: enough of a digest to tell two apart in a table (--json has it whole)."""
    repository, _, digest = image.partition("@")
    return f"{repository}@{digest[:19]}" if digest else repository


def _print_diff(result: dict[str, Any]) -> None:
    _stdout.print(
        styled(f"{result['from_version']} -> {result['to_version']}", "bold"), f"({result['direction']})"
    )
    table = Table("change", "module", "from", "to", title="what changes")
    for change in result["image_changes"]:
        table.add_row(
            f"image ({change['update']})", change["module"], change["from_image"], change["to_image"]
        )
    for module in result["added"]:
        table.add_row("added", module["module"], "", module["image"])
    for module in result["removed"]:
        table.add_row("removed", module["module"], module["image"], "")
    for change in result["resource_changes"]:
        before, after = change["from_resources"], change["to_resources"]
        keys = [key for key in before if before[key] != after[key]]
        table.add_row(
            "min resources",
            change["module"],
            ", ".join(f"{key} {before[key]}" for key in keys),
            ", ".join(f"{key} {after[key]}" for key in keys),
        )
    for change in result["config_changes"]:
        table.add_row("config", change["key"], repr(change["from"]), f"{change['to']!r}  {change['note']}")
    _stdout.print(table)
    colour = {"none": "green", "partial": "yellow", "full": "red"}[result["downtime"]]
    _stdout.print("downtime:", styled(result["downtime"], f"bold {colour}"))
    for reason in result["downtime_reasons"]:
        _stdout.print(f"  - {reason}")


@validate_app.command("validate")
def validate_command(
    catalog: Annotated[Path, typer.Argument(help="khronika_modules.yml (group_vars form or a bare list).")],
    inventory: Annotated[
        Path,
        typer.Option(
            help="Hosts, groups and GPU counts: an Ansible inventory or {hosts: {name: {groups, gpus}}}."
        ),
    ],
    release: Annotated[
        Path | None, typer.Option(help="A release manifest: also check that it has every enabled module.")
    ] = None,
    registry: Annotated[
        str | None, typer.Option(help="khronika_registry: where repositories without a registry come from.")
    ] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print the resolved plan as JSON.")] = False,
) -> None:
    """Validate a module catalog; print every error (exit 1) or, with --json, the plan per host."""
    from khronika_ops.platform.catalog import load_yaml_file, resolve_deployment
    from khronika_ops.platform.inventory_file import load_inventory
    from khronika_ops.platform.release import load_release

    try:
        plan = resolve_deployment(
            load_yaml_file(catalog),
            load_inventory(inventory),
            release=load_release(release) if release else None,
            default_registry=registry,
            source=str(catalog),
        )
    except ProblemsError as exc:
        raise _fail(exc) from None
    if json_output:
        typer.echo(plan.model_dump_json(indent=2))
        return
    containers = sum(len(host.containers) for host in plan.hosts.values())
    _stdout.print(
        labelled(
            "ok:",
            "green",
            f"{len(plan.order)} enabled module(s), {containers} container(s) on {len(plan.hosts)} host(s)",
        )
    )
    for host in plan.hosts.values():
        _stdout.print(f"  {host.host}: {', '.join(host.container_names)}")


@update_app.command("check")
def update_check_command(
    *,
    release: Annotated[str, typer.Option("--release", help="The release to update to, e.g. 1.1.0.")],
    catalog: Annotated[Path, typer.Option(help="The site's khronika_modules.yml.")],
    inventory: Annotated[str, typer.Option("--inventory", "-i", help="Ansible inventory of the site.")],
    directory: ReleasesDir = Path("releases"),
    pattern: Annotated[
        str, typer.Option("--limit", "-l", help="Hosts or groups to update.")
    ] = "khronika_platform:khronika_gpu",
    window_start: Annotated[
        str | None, typer.Option(help="Maintenance window start (ISO 8601, UTC unless zoned).")
    ] = None,
    window_duration: Annotated[str | None, typer.Option(help="Window length (4h, 90m).")] = None,
    window_every: Annotated[str | None, typer.Option(help="The window repeats this often (7d).")] = None,
    force_window: Annotated[bool, typer.Option(help="Allow the update outside the window.")] = False,
    allow_downgrade: Annotated[bool, typer.Option(help="Allow hosts to move to an older release.")] = False,
    registry: Annotated[
        str | None,
        typer.Option(
            help="khronika_registry: where repositories without a registry come from; also asked for every digest."
        ),
    ] = None,
    registry_user: Annotated[
        str | None, typer.Option(help="Registry user; the password from $KHRONIKA_REGISTRY_PASSWORD.")
    ] = None,
    registry_ca: Annotated[Path | None, typer.Option(help="CA of the registry's TLS certificate.")] = None,
    vault_password_file: Annotated[Path | None, typer.Option(help="Vault password file.")] = None,
    json_output: JsonFlag = False,
) -> None:
    """Pre-flight of an update: each host's recorded release, the window, the downtime class, the order,
    the images to pre-pull and the volumes to back up. Reads hosts; changes nothing (exit 1: refused)."""
    from datetime import UTC, datetime

    from khronika_ops.platform.catalog import load_yaml_file, resolve_deployment, update_strategies
    from khronika_ops.platform.inventory_file import load_inventory
    from khronika_ops.platform.release import find_release, list_releases
    from khronika_ops.platform.status import StatusError, check_inventory, check_pattern, read_records
    from khronika_ops.platform.update import MaintenanceWindow, preflight, render_text, states_from_records

    if (window_start is None) != (window_duration is None):
        raise typer.BadParameter("give both --window-start and --window-duration, or neither")
    try:
        window = (
            MaintenanceWindow.model_validate(
                {"start": window_start, "duration": window_duration, "every": window_every}
            )
            if window_start is not None
            else None
        )
    except ValueError as exc:
        from pydantic import ValidationError

        from khronika_ops.validation import readable

        fields = (
            {str(e["loc"][0]) for e in exc.errors() if e["loc"]}
            if isinstance(exc, ValidationError)
            else set()
        )
        options = [f"--window-{name}" for name in ("start", "duration", "every") if name in fields]
        raise typer.BadParameter(
            readable(exc), param_hint="/".join(options) or "--window-start/--window-duration/--window-every"
        ) from None
    try:
        check_inventory(inventory)
        check_pattern(pattern)
        modules = load_yaml_file(catalog)
        target = find_release(directory, release)
        deployment = resolve_deployment(
            modules, load_inventory(inventory), release=target, default_registry=registry, source=str(catalog)
        )
        states = states_from_records(
            read_records(inventory, pattern, vault_password_file=vault_password_file)
        )
        image_checks = []
        if registry is not None:
            from khronika_ops.platform.registry import Credentials, RegistryClient

            password = os.environ.get("KHRONIKA_REGISTRY_PASSWORD", "")
            if registry_user is not None and not password:
                raise typer.BadParameter("--registry-user needs the password in $KHRONIKA_REGISTRY_PASSWORD")
            credentials = (
                {registry.rstrip("/"): Credentials(registry_user, password)} if registry_user else {}
            )
            client = RegistryClient(credentials, ca_file=str(registry_ca) if registry_ca else None)
            targeted = {state.host for state in states}
            images = {
                c.image
                for name, host in deployment.hosts.items()
                if name in targeted
                for c in host.containers
            }
            image_checks = client.check_all(images)
        result = preflight(
            target=target,
            releases=list_releases(directory),
            deployment=deployment,
            states=states,
            strategies=update_strategies(modules),
            now=datetime.now(UTC),
            window=window,
            force_window=force_window,
            allow_downgrade=allow_downgrade,
            overrides={"window": "--force-window", "downgrade": "--allow-downgrade"},
            image_checks=image_checks,
        )
    except ProblemsError as exc:
        raise _fail(exc) from None
    except StatusError as exc:
        _stderr.print(error_text(exc))
        raise typer.Exit(code=2) from None
    if json_output:
        typer.echo(result.model_dump_json(indent=2, by_alias=True))
        return
    _stdout.print(render_text(result), end="")


@update_app.command("probe")
def update_probe_command(
    *,
    target: Annotated[
        list[str], typer.Option("--target", help="MODULE=URL to ask (repeat); loopback unless --allow-host.")
    ],
    out: Annotated[Path, typer.Option("--out", help="Where the JSON report goes when the probe stops.")],
    rate: Annotated[float, typer.Option(help="Requests per second per module (at most 50).")] = 10.0,
    max_seconds: Annotated[
        float, typer.Option(help="Stop after this long at the latest (at most 3600).")
    ] = 600.0,
    allow_host: Annotated[
        list[str] | None, typer.Option("--allow-host", help="A non-loopback host the probe may ask (repeat).")
    ] = None,
    ca_file: Annotated[Path | None, typer.Option(help="CA for an https gateway.")] = None,
    check_hostname: Annotated[
        bool, typer.Option(help="Compare the gateway certificate's name with the URL's host.")
    ] = True,
    stop_file: Annotated[Path | None, typer.Option(help="Stop as soon as this file exists.")] = None,
    watch_pid: Annotated[
        int | None, typer.Option(help="Stop when this process (the run's ansible-playbook) ends.")
    ] = None,
) -> None:
    """Measure downtime: ask each module through the gateway until stopped (SIGTERM, --stop-file or the
    time limit), then write every interval in which it did not answer 2xx, and the failed requests."""
    from khronika_ops.platform.probe import ProbeError, Prober, run_until_stopped

    targets = {}
    for item in target:
        module, sep, url = item.partition("=")
        if not sep or not module or not url:
            raise typer.BadParameter(f"{item!r} is not MODULE=URL", param_hint="--target")
        targets[module] = url
    try:
        prober = Prober(
            targets,
            rate=rate,
            max_seconds=max_seconds,
            allowed_hosts=allow_host or (),
            ca_file=str(ca_file) if ca_file else None,
            check_hostname=check_hostname,
        )
    except ProbeError as exc:
        _stderr.print(error_text(exc))
        raise typer.Exit(code=2) from None
    reports = run_until_stopped(prober, out, stop_file, watch_pid)
    for report in reports.values():
        typer.echo(
            f"{report.module}: {report.requests} requests, {report.failed} failed, "
            f"down {report.down_seconds:.2f} s in {len(report.outages)} interval(s)"
        )


@update_app.command("lease")
def update_lease_command(
    *,
    alertmanager: Annotated[str, typer.Option(help="Alertmanager's URL (API v2).")],
    silence_id: Annotated[str, typer.Option(help="The run's silence.")],
    watch_pid: Annotated[
        int, typer.Option(help="The run's ansible-playbook process: the lease ends with it.")
    ],
    until: Annotated[str, typer.Option(help="The window's end (ISO 8601): never renewed past it.")],
    lease: Annotated[str, typer.Option(help="How long a renewal holds the silence (30s to 1h).")] = "10m",
    stop_file: Annotated[Path | None, typer.Option(help="Stop as soon as this file exists.")] = None,
    id_file: Annotated[
        Path | None, typer.Option(help="Where the silence's id goes when Alertmanager replaces it.")
    ] = None,
    max_seconds: Annotated[float, typer.Option(help="Stop after this long at the latest.")] = 86400.0,
    user: Annotated[
        str, typer.Option(help="Basic-auth user (the password from KHRONIKA_ALERTMANAGER_PASSWORD).")
    ] = "",
    ca_file: Annotated[Path | None, typer.Option(help="CA of an https Alertmanager.")] = None,
) -> None:
    """Hold a running update's Alertmanager silence by a lease: renewed while the run's process lives,
    so a controller that dies mid-switch leaves a silence that lapses by itself within a lease."""
    from datetime import UTC, datetime

    from khronika_ops.options import number
    from khronika_ops.platform.lease import Alertmanager, LeaseError, keep
    from khronika_ops.platform.lease import lease_seconds as lease_limit

    try:
        lease_seconds = lease_limit(lease)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--lease") from None
    number(max_seconds, "--max-seconds", at_least=1, at_most=7 * 86400)
    try:
        end = datetime.fromisoformat(until.replace("Z", "+00:00"))
    except ValueError:
        raise typer.BadParameter(f"{until!r} is not an ISO 8601 time", param_hint="--until") from None
    if end.tzinfo is None:
        end = end.replace(tzinfo=UTC)
    client = Alertmanager(
        alertmanager,
        user=user,
        password=os.environ.get("KHRONIKA_ALERTMANAGER_PASSWORD", ""),
        ca_file=str(ca_file) if ca_file else None,
    )
    try:
        reason = keep(
            client,
            silence_id,
            lease=lease_seconds,
            until=end,
            watch_pid=watch_pid,
            stop_file=stop_file,
            max_seconds=max_seconds,
            id_file=id_file,
        )
    except LeaseError as exc:
        _stderr.print(error_text(exc))
        raise typer.Exit(code=2) from None
    typer.echo(f"lease of silence {silence_id} ended: {reason}")


def _channel_commands() -> None:
    from khronika_ops.platform import channel_cli

    update_app.add_typer(channel_cli.channel_app, name="channel")
    update_app.command("approve")(channel_cli.approve_command)
    update_app.command("resume")(channel_cli.resume_command)
    update_app.command("auto")(channel_cli.auto_command)
    release_app.command("publish")(channel_cli.publish_command)


_channel_commands()
