"""The verdict on a container after it was started: the health gate of a deploy level and of an update
step (roles/platform/tasks/containers.yml, filter khronika_container_problems).

Healthy at the end is not enough. A container this run started (or recreated) that exited, was
OOM-killed or was restarted by Docker's policy while the gate waited has failed its start even if it
answers now: a release that rewrites its data on start, crashes half way and comes up healthy on its
second try has already changed the data the next start reads. Docker's RestartCount counts the
policy's restarts since the container was last started by a client, so for a container started here it
counts exactly the restarts during this gate. A container this run left as it was (a converge that
changed nothing) is judged by its health alone: its restarts belong to its past, not to this change.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

HEALTH_LOG_CHARS = 400


def last_health_output(state: Mapping[str, Any]) -> str:
    """The end of the container's last health check output (`none` when it has none)."""
    log = (state.get("Health") or {}).get("Log") or []
    output = str((log[-1] if log else {}).get("Output") or "none").strip()
    return output if len(output) <= HEALTH_LOG_CHARS else "..." + output[-HEALTH_LOG_CHARS:]


def container_problems(
    info: Mapping[str, Any] | None, *, name: str, host: str, started_here: bool
) -> list[str]:
    """Why the container `name` (docker inspect as `info`; None: it does not exist) failed the gate;
    empty when it passed."""
    if not info:
        return [f"{name} on {host} does not exist after its start. See docker ps -a on {host}."]
    state = info.get("State") or {}
    health = (state.get("Health") or {}).get("Status")
    problems: list[str] = []
    if not state.get("Running"):
        problems.append(
            f"{name} on {host} is not running ({state.get('Status', 'missing')}, exit code "
            f"{state.get('ExitCode', '?')}{', OOM-killed' if state.get('OOMKilled') else ''})"
        )
    elif health == "starting":
        problems.append(f"{name} on {host} is still starting (no health verdict yet)")
    elif health not in (None, "healthy"):
        problems.append(
            f"{name} on {host} is {health}; last health check (its end): {last_health_output(state)}"
        )
    restarts = int(info.get("RestartCount") or 0)
    if started_here and (restarts or state.get("OOMKilled")):
        what = [f"was restarted {restarts} time(s) by Docker"] if restarts else []
        what += ["was OOM-killed"] if state.get("OOMKilled") else []
        problems.append(
            f"{name} on {host} {' and '.join(what)} after this run started it: a start that crashed may "
            "already have changed the module's data, so the start failed even if the container answers now"
        )
    if problems:
        problems[-1] += f". See docker logs {name} on {host}."
    return problems


def gate(infos: list[Mapping[str, Any]], started: list[Mapping[str, Any]], host: str) -> list[str]:
    """Every problem of the containers `infos` (docker_container_info results, each with its `item`)
    given the start task's results `started` (docker_container results: `changed` means started here)."""
    started_here = {
        str((result.get("item") or {}).get("name")): bool(result.get("changed")) for result in started
    }
    problems: list[str] = []
    for result in infos:
        name = str((result.get("item") or {}).get("name"))
        if not re.match(r"^[\w.-]+$", name):
            name = repr(name)
        problems += container_problems(
            result.get("container") if result.get("exists", True) else None,
            name=name,
            host=host,
            started_here=started_here.get(name, True),
        )
    return problems
