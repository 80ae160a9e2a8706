"""`khronika status`: the release each host runs, read from its release record over Ansible.

The record is `<platform_record_dir>/release.json`, written by the platform role; the folder is each
host's own `platform_record_dir` (the role's default: DEFAULT_RECORD_DIR). Reading it through
`ansible` (the slurp module, its path templated per host) reaches hosts exactly as the playbooks do:
same inventory, variables, connection, become and vault settings.
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
from pathlib import Path
from typing import Annotated, Any

import typer

from khronika_ops.doctor import ansible_tool

# The platform role's default for `platform_record_dir` (roles/platform/defaults/main.yml; a test
# keeps the two equal).
DEFAULT_RECORD_DIR = "/etc/khronika"
RECORD_FILE = "release.json"
JSON_CALLBACK = "ansible.posix.json"  # the collection of requirements.yml that prints results as JSON
RECORD_SOURCE = f"{{{{ platform_record_dir | default('{DEFAULT_RECORD_DIR}') }}}}/{RECORD_FILE}"
_MISSING_PATH = re.compile(r"(/\S+)")


class StatusError(RuntimeError):
    """The inventory or ansible could not be used; the message says what to fix."""


def check_inventory(inventory: str) -> None:
    """A path that does not exist is named before ansible runs (a comma list of hosts is no path)."""
    if "," in inventory:
        return
    if not Path(inventory).exists():
        raise StatusError(f"inventory {inventory} does not exist")


_JINJA = ("{{", "{%", "{#")


def check_pattern(pattern: str) -> None:
    """An ad-hoc `ansible PATTERN` renders its pattern as a play's `hosts:`, a template: a pattern holding
    Jinja's delimiters would run what is in them. No host name or group has them; a regex's `{2}` is kept."""
    if any(mark in pattern for mark in _JINJA) or not pattern.strip():
        raise StatusError(f"{pattern!r} is not a host pattern (names, groups, ':', '&', '!', '*', '~regex')")


def _adhoc(
    inventory: str, pattern: str, module: list[str], timeout: int, vault_password_file: Path | None
) -> subprocess.CompletedProcess[str]:
    """`ansible PATTERN -i INVENTORY <module>` with its results as one JSON document on stdout."""
    from khronika_ops.runner import REPO_ROOT

    # The checkout's ansible.cfg (its collections, the json callback) unless the caller chose one: a
    # systemd timer or AWX runs us from anywhere.
    config = os.environ.get("ANSIBLE_CONFIG") or (
        str(REPO_ROOT / "ansible.cfg") if (REPO_ROOT / "ansible.cfg").is_file() else ""
    )
    env = dict(
        os.environ,
        ANSIBLE_LOAD_CALLBACK_PLUGINS="1",
        ANSIBLE_STDOUT_CALLBACK=JSON_CALLBACK,
        ANSIBLE_INVENTORY_UNPARSED_FAILED="1",
    )
    if config:
        env["ANSIBLE_CONFIG"] = config
    cmd = [ansible_tool("ansible"), pattern, "-i", inventory, *module]
    if vault_password_file is not None:
        cmd += ["--vault-password-file", str(Path(vault_password_file).resolve())]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout, check=False)


def adhoc_document(
    inventory: str, pattern: str, module: list[str], timeout: int, vault_password_file: Path | None
) -> tuple[dict[str, Any], str]:
    """The json callback's document of one ad-hoc run and Ansible's warnings; StatusError with Ansible's own words when it
    could not run (an inventory that does not parse, a vault without its password, no json callback)."""
    from khronika_ops.runner import ansible_errors

    if vault_password_file is not None and not Path(vault_password_file).is_file():
        raise StatusError(f"vault password file {vault_password_file} does not exist")
    proc = _adhoc(inventory, pattern, module, timeout, vault_password_file)
    said = ansible_errors(proc.stderr + "\n" + proc.stdout)
    if said:
        raise StatusError(f"ansible could not read {inventory}:\n  " + "\n  ".join(said))
    try:
        return parse_stdout(proc.stdout), proc.stderr
    except json.JSONDecodeError as exc:
        detail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        if JSON_CALLBACK in detail[0]:
            raise StatusError(
                f"ansible cannot load its {JSON_CALLBACK} callback: install the collections of "
                "requirements.yml (ansible-galaxy collection install -r requirements.yml), or run from "
                "a checkout whose scripts/setup.sh ran (its ansible.cfg finds them)"
            ) from exc
        raise StatusError(f"ansible failed (rc {proc.returncode}): {detail[0]}") from exc


def read_records(
    inventory: str,
    pattern: str = "khronika",
    timeout: int = 300,
    vault_password_file: Path | None = None,
) -> dict[str, dict[str, Any]]:
    """host -> record, or -> {"error": ...} for hosts that could not be read. StatusError when the
    inventory does not parse, or no host of it matches `pattern` (with Ansible's own words)."""
    check_pattern(pattern)
    document, warned = adhoc_document(
        inventory,
        pattern,
        ["-m", "ansible.builtin.slurp", "-a", f"src={RECORD_SOURCE}"],
        timeout,
        vault_password_file,
    )
    records = parse_ansible_json(document)
    if not records:
        warnings = [line for line in warned.splitlines() if "host pattern" in line or "No hosts" in line]
        raise StatusError(
            f"no host of {inventory} matches {pattern!r}"
            + (f" (ansible: {warnings[0].strip()})" if warnings else "")
        )
    return records


# What each host runs: every managed container's inspect document (no Jinja braces in the command: an
# ad-hoc module's arguments are templated).
CONTAINERS_COMMAND = "docker ps -q --filter label=khronika.managed=true | xargs -r docker inspect"
MODULE_LABEL = "khronika.module"
MAX_INSPECT = 16 * 1024 * 1024


def read_containers(
    inventory: str,
    pattern: str = "khronika",
    timeout: int = 300,
    vault_password_file: Path | None = None,
) -> dict[str, Any]:
    """host -> {module: [image references its containers run]}, or -> {"error": ...}; hosts without
    Docker answer an error that `host_state` leaves aside."""
    check_pattern(pattern)
    proc = _adhoc(
        inventory,
        pattern,
        ["-b", "-m", "ansible.builtin.shell", "-a", CONTAINERS_COMMAND],
        timeout,
        vault_password_file,
    )
    try:
        document = parse_stdout(proc.stdout)
    except json.JSONDecodeError:
        return {}
    return {host: running_modules(result) for host, result in host_results(document)}


def running_modules(result: dict[str, Any]) -> dict[str, Any]:
    """One host's answer to CONTAINERS_COMMAND as {module: sorted image references}."""
    if result.get("unreachable") or result.get("failed"):
        return {"error": str(result.get("msg") or result.get("stderr") or "no answer").strip()}
    text = str(result.get("stdout") or "")
    if len(text) > MAX_INSPECT:
        return {"error": f"docker inspect answered more than {MAX_INSPECT} bytes"}
    try:
        containers = json.loads(text) if text.strip() else []
    except json.JSONDecodeError:
        return {"error": "docker inspect did not answer JSON"}
    modules: dict[str, list[str]] = {}
    for container in containers if isinstance(containers, list) else []:
        config = container.get("Config") or {}
        module = (config.get("Labels") or {}).get(MODULE_LABEL)
        if module:
            modules.setdefault(str(module), []).append(str(config.get("Image", "")))
    return {module: sorted(images) for module, images in sorted(modules.items())}


def host_state(record: dict[str, Any], running: dict[str, Any] | None) -> tuple[str, list[str]]:
    """(state, why) of one host: `ok` when its containers run what its release record says; `switching`
    when an update marked the record and has not finished it (a run going on, or one that died);
    `drifted` when a container runs another image than the record's, or a recorded module runs no
    container, or a container runs a module the record does not name; `unknown` without an answer."""
    if "error" in record:
        return "unknown", [str(record["error"])]
    why: list[str] = []
    switching = record.get("switching")
    if isinstance(switching, dict):
        why.append(
            f"an update to {switching.get('to')} (run {switching.get('run')}) started switching at "
            f"{switching.get('started_at')} and has not finished: unless it is still running, run it again"
        )
    if running is None or "error" in running:
        if running is not None:
            why.append(f"cannot ask Docker: {running['error']}")
        return ("switching" if switching else "unknown"), why
    recorded = {str(m.get("name")): str(m.get("image", "")) for m in record.get("modules", [])}
    for module, image in sorted(recorded.items()):
        images = running.get(module) or []
        if not images:
            why.append(f"{module}: no container runs (the record says {image})")
        elif any(other != image for other in images):
            others = ", ".join(sorted({other for other in images if other != image}))
            why.append(f"{module}: runs {others}, the record says {image}")
    for module in sorted(set(running) - set(recorded)):
        why.append(f"{module}: runs {', '.join(running[module])}, which the record does not name")
    if switching:
        return "switching", why
    return ("drifted" if why else "ok"), why


def parse_stdout(stdout: str) -> dict[str, Any]:
    """The json callback's document; other enabled callbacks (profile_tasks, say) may print around it."""
    start = stdout.find("{")
    if start < 0:
        raise json.JSONDecodeError("no JSON document in ansible's output", stdout, 0)
    document, _ = json.JSONDecoder().raw_decode(stdout, start)
    if not isinstance(document, dict):
        raise json.JSONDecodeError("ansible's output is not a JSON object", stdout, start)
    return document


def host_results(document: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(host, result) of every task of every play in the json callback's document, in its order."""
    return [
        (host, result)
        for play in document.get("plays", [])
        for task in play.get("tasks", [])
        for host, result in task.get("hosts", {}).items()
    ]


def parse_ansible_json(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    records: dict[str, dict[str, Any]] = {}
    for host, result in host_results(document):
        if result.get("unreachable"):
            records[host] = {"error": f"unreachable: {result.get('msg', '')}".strip()}
        elif result.get("failed") or "content" not in result:
            message = str(result.get("msg", "no release record"))
            if "not found" in message or "No such file" in message:
                path = _MISSING_PATH.search(message)
                message = f"no release recorded ({path.group(1) if path else RECORD_FILE} missing)"
                # Reachable, nothing deployed yet: an update's first deployment, not a failure.
                records[host] = {"error": message, "missing": True}
            else:
                records[host] = {"error": message}
        else:
            records[host] = json.loads(base64.b64decode(result["content"]))
    return dict(sorted(records.items()))


def status(
    inventory: Annotated[str, typer.Option("--inventory", "-i", help="Ansible inventory of the site.")],
    pattern: Annotated[str, typer.Option("--limit", "-l", help="Hosts or groups to ask.")] = "khronika",
    json_output: Annotated[bool, typer.Option("--json", help="Print the records as JSON.")] = False,
    vault_password_file: Annotated[
        Path | None, typer.Option(help="Vault password file (a real site's inventory is vaulted).")
    ] = None,
) -> None:
    """Show the release each host runs (the platform role's record)."""
    try:
        check_inventory(inventory)
        records = read_records(inventory, pattern, vault_password_file=vault_password_file)
    except (StatusError, OSError, subprocess.TimeoutExpired) as exc:
        typer.echo(f"khronika status: {exc}", err=True)
        raise typer.Exit(2) from exc
    if not records:
        typer.echo(f"khronika status: no host of {inventory} matches {pattern!r}", err=True)
        raise typer.Exit(1)
    running = read_containers(inventory, pattern, vault_password_file=vault_password_file)
    states = {host: host_state(record, running.get(host)) for host, record in records.items()}
    versions = {record.get("version") for record in records.values() if "error" not in record}
    if json_output:
        typer.echo(
            json.dumps(
                {
                    host: record
                    | {"state": states[host][0], "why": states[host][1], "running": running.get(host)}
                    for host, record in records.items()
                },
                indent=2,
                sort_keys=True,
            )
        )
    else:
        from rich.table import Table

        from khronika_ops.console import make_console, styled

        table = Table(title="Khronika release per host", title_justify="left")
        for column in ("host", "release", "state", "kind", "deployed at", "modules"):
            table.add_column(column)
        colours = {"ok": "green", "switching": "yellow", "drifted": "red", "unknown": "red"}
        for host, record in records.items():
            state, why = states[host]
            if "error" in record:
                table.add_row(host, styled("?", "red"), styled(state, "red"), "", "", str(record["error"]))
                continue
            modules = ", ".join(
                f"{m['name']}@{str(m.get('digest', ''))[7:19]}" for m in record.get("modules", [])
            )
            table.add_row(
                host,
                str(record["version"]),
                styled(state, colours.get(state, "red")),
                str(record["kind"]),
                str(record.get("deployed_at", "")),
                modules,
            )
        make_console().print(table)
        for host, (state, why) in states.items():
            for line in why if state != "unknown" or "error" not in records[host] else []:
                typer.echo(f"{host}: {line}")
    if len(versions) > 1:
        typer.echo(f"mixed: hosts run different releases: {', '.join(sorted(map(str, versions)))}", err=True)
    healthy = all("error" not in r for r in records.values()) and all(
        state in {"ok", "unknown"} and "error" not in records[host] for host, (state, _) in states.items()
    )
    raise typer.Exit(0 if healthy and len(versions) <= 1 else 1)
