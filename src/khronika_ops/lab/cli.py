"""`khronika lab up|status|down` (scripts/lab.sh runs `up` after the machine set-up)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from typing import Annotated

import typer
from rich.table import Table

from khronika_ops.console import error_text, make_console
from khronika_ops.lab import INVENTORY_DIR, LAB_DIR, REGISTRY_PORT, REPO_ROOT, STATE_DIR, STRATEGY
from khronika_ops.lab.hosts import LabHost

lab_app = typer.Typer(
    help="The lab: a whole Khronika site on this machine (hosts as systemd containers over SSH).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
_out = make_console()


def _say(line: str) -> None:
    _out.print(f"{time.strftime('%H:%M:%S')} {line}")


@lab_app.command("up")
def up_command(
    *,
    hosts: Annotated[
        int,
        typer.Option(
            "--hosts", min=2, max=60, help="Hosts: 1 monitoring + gateway, the rest platform nodes."
        ),
    ] = 3,
    traffic: Annotated[
        float, typer.Option("--traffic-seconds", min=0, max=3600, help="Seconds of appeal traffic (0: none).")
    ] = 180,
    peak_rate: Annotated[
        float, typer.Option("--peak-rate", min=0.1, max=50, help="Visits a second at the day's peak.")
    ] = 8,
    update: Annotated[
        bool, typer.Option("--update/--no-update", help="Run the planned update 1.0.0 -> 1.1.0.")
    ] = True,
    plan: Annotated[
        bool, typer.Option("--plan/--no-plan", help="Write the capacity plan from the lab's Prometheus.")
    ] = True,
    forks: Annotated[int | None, typer.Option(help="Ansible forks (ansible.cfg's value when unset).")] = None,
    strategy: Annotated[
        str,
        typer.Option(
            help="Play strategy for the playbooks (see khronika run --help); linear is plain Ansible's."
        ),
    ] = STRATEGY,
) -> None:
    """Bring the lab up (or re-converge it): hosts, registry, site.yml, traffic, an update, a plan."""
    from khronika_ops.lab.up import Options, summary_lines, up
    from khronika_ops.options import number

    # Click's ranges let NaN through: every comparison with it is false.
    number(traffic, "--traffic-seconds", at_least=0, at_most=3600)
    number(peak_rate, "--peak-rate", at_least=0.1, at_most=50)
    if forks is not None:
        number(forks, "--forks", at_least=1, at_most=500)
    options = Options(
        hosts=hosts,
        traffic_seconds=traffic,
        peak_rate=peak_rate,
        update=update,
        plan=plan,
        forks=forks,
        strategy=strategy,
    )
    run = up(options, say=_say)
    for line in summary_lines(run):
        _out.print(line)
    raise typer.Exit(0 if run.ok else 1)


@lab_app.command("status")
def status_command() -> None:
    """The lab's hosts, release, endpoints and registry."""
    from khronika_ops.lab.hosts import LabError, groups_of, lab_containers
    from khronika_ops.lab.up import endpoints, release_state

    try:
        containers = lab_containers()
    except LabError as exc:
        _out.print(error_text(exc))
        raise typer.Exit(1) from None
    if not containers:
        _out.print("no lab on this machine (khronika lab up builds one)")
        raise typer.Exit(0)
    table = Table("host", "container", "state", "address", "groups", "runs release", title="lab hosts")
    hosts = []
    for item in containers:
        host = LabHost(item["host"], item["address"], groups_of(item["host"]))
        hosts.append(host)
        running = (
            _host_release(host) if item["state"] == "running" and "khronika_platform" in host.groups else "-"
        )
        table.add_row(
            host.name, item["container"], item["state"], host.address, ", ".join(host.groups), running
        )
    _out.print(table)
    _out.print(f"release in the lab's inventory: {release_state()}")
    registry = _registry_env()
    state = subprocess.run(
        [str(REPO_ROOT / "scripts" / "test-registry.sh"), "status"],
        env=registry,
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    for name, url in endpoints(hosts).items():
        _out.print(f"  {name:<12} {url}" + (f" [{state}]" if name == "registry" else ""))
    _out.print(f"  credentials  {STATE_DIR / 'credentials.yml'}")


def _host_release(host: LabHost) -> str:
    """What the host's platform record says it runs (/etc/khronika/release.json), over the lab's SSH."""
    from khronika_ops.lab.hosts import ssh_command

    try:
        done = subprocess.run(
            ssh_command(host, STATE_DIR / "ssh", "cat", "/etc/khronika/release.json"),
            capture_output=True,
            text=True,
            timeout=20,
            check=False,
        )
        return str(json.loads(done.stdout)["version"]) if done.returncode == 0 else "(none recorded)"
    except (ValueError, KeyError, subprocess.TimeoutExpired):
        return "(unreadable)"


def _registry_env() -> dict[str, str]:
    from khronika_ops.lab.up import REGISTRY_DIR

    return {
        **os.environ,
        "KHRONIKA_TEST_REGISTRY_DIR": str(REGISTRY_DIR),
        "KHRONIKA_TEST_REGISTRY_PORT": str(REGISTRY_PORT),
    }


@lab_app.command("down")
def down_command() -> None:
    """Remove every container, volume, network, image tag and file the lab made, and nothing else."""
    from khronika_ops.lab.hosts import LabError, docker, remove_all

    try:
        removed = remove_all()
        subprocess.run(
            [str(REPO_ROOT / "scripts" / "test-registry.sh"), "stop"],
            env=_registry_env(),
            capture_output=True,
            check=False,
        )
        tags = [
            t
            for t in docker("images", "--format", "{{.Repository}}:{{.Tag}}").split()
            if t.startswith(f"127.0.0.1:{REGISTRY_PORT}/")
        ]
        if tags:
            docker("rmi", *tags)
            removed.append(f"{len(tags)} image tags of the lab registry")
    except LabError as exc:
        _out.print(error_text(exc))
        raise typer.Exit(1) from None
    for folder in (INVENTORY_DIR, LAB_DIR):
        if folder.exists():
            shutil.rmtree(folder)
            removed.append(str(folder.relative_to(REPO_ROOT)) + "/")
    _out.print("removed: " + (", ".join(removed) if removed else "nothing (no lab here)"))
