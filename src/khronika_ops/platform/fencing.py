"""Fencing of module volumes: a module never starts with its data on a copy that is not the newest.

Each platform host keeps one mark per module volume it holds, in `/etc/khronika/volumes.json`:

    {"khronika-appeals-api-data": {"module": "appeals-api", "generation": 3, "state": "current",
                                   "newest_on": null, "run": "scale-20261206T101500Z", "at": "..."}}

- a deployment marks a volume it creates `current`, generation 1 (or the generation the site state
  records for that host);
- `scale.yml`, moving a module's data from A to B, marks B's copy `current` one generation up and A's
  `stale`, naming B; a rolled-back move marks them the other way round;
- a rollback that restores a volume from its backup counts a generation up on that host (`after_restores`).

`check` is the rule every path applies before it changes anything (the `platform` role's pre-flight,
`update.yml`, `scale.yml`): a module is refused on a host whose copy is stale or older than the newest
the site state records, and a placement that would leave the newest copy on a host no longer running its
module (the inventory edited back by hand, a host wiped and re-added) is refused naming the host that
holds it and the command that moves it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

from pydantic import Field, ValidationError

from khronika_ops.platform.site_state import STATE_FILE, SiteState
from khronika_ops.validation import Problem, StrictModel

MARKS_FILE = "/etc/khronika/volumes.json"
MOVE_HINT = "move it with playbooks/scale.yml (a plan that places the module there)."


class VolumeMark(StrictModel):
    module: str
    generation: int = Field(ge=1)
    state: Literal["current", "stale"] = "current"
    newest_on: str | None = None  # for a stale copy: the host its newest copy went to
    run: str = ""
    at: str = ""


def parse_marks(value: Any) -> dict[str, VolumeMark]:
    """A host's marks (its volumes.json parsed); an entry that does not read is left out (and its
    volume then counts as unmarked, which `check` treats with the site state's record)."""
    if not isinstance(value, Mapping):
        return {}
    marks = {}
    for volume, mark in value.items():
        try:
            marks[str(volume)] = VolumeMark.model_validate(mark)
        except ValidationError:
            continue
    return marks


def planned_volumes(plan_hosts: Mapping[str, Any]) -> dict[str, tuple[str, list[str]]]:
    """Docker volume -> (module, the hosts the plan runs it on) from a DeployPlan's `hosts` (as JSON)."""
    out: dict[str, tuple[str, list[str]]] = {}
    for host, part in sorted(plan_hosts.items()):
        for volume in (part or {}).get("volumes") or []:
            name, module = str(volume["docker_name"]), str(volume["module"])
            out.setdefault(name, (module, []))[1].append(str(host))
    return out


def check(
    plan_hosts: Mapping[str, Any],
    marks: Mapping[str, Mapping[str, VolumeMark]],
    state: SiteState | None,
    moves: Sequence[Mapping[str, Any]] = (),
) -> list[Problem]:
    """Every reason the plan would start a module on a copy of its data that is not the newest.

    `marks`: host -> its marks, for every host that answered (a host missing here is not judged by its
    marks; the site state's record still speaks for it). `moves`: the data a scale copies
    ({volume, from_host, to_host}) before the plan starts: the copy that arrives replaces the target's,
    and the source's copy is what moves, so neither is judged as it is now."""
    arriving = {(str(m["volume"]), str(m["to_host"])) for m in moves}
    leaving = {(str(m["volume"]), str(m["from_host"])) for m in moves}
    problems: list[Problem] = []
    for volume, (module, hosts) in sorted(planned_volumes(plan_hosts).items()):
        recorded = dict(state.volumes.get(volume, {})) if state else {}
        for host in hosts:
            if (volume, host) in arriving:
                continue
            mark = marks.get(host, {}).get(volume)
            if mark is not None and mark.state == "stale":
                problems.append(
                    Problem(
                        module,
                        "placement",
                        f"{volume} on {host} is a stale copy (generation {mark.generation}, left by run "
                        f"{mark.run or 'unknown'}): the newest is on {mark.newest_on or 'another host'}. "
                        f"Run the module there, or {MOVE_HINT}",
                    )
                )
            elif host in recorded and host in marks and (mark is None or mark.generation < recorded[host]):
                problems.append(
                    Problem(
                        module,
                        "placement",
                        f"{volume} on {host} is {'missing' if mark is None else f'generation {mark.generation}'}, "
                        f"older than generation {recorded[host]} that {STATE_FILE} records there: the host's "
                        "data is not the newest (restored from an old disk, or wiped). Restore its newest copy first",
                    )
                )
        if not hosts:
            continue  # the module runs nowhere: nothing is served from any copy
        named = {
            m.newest_on
            for h in hosts
            if (m := marks.get(h, {}).get(volume)) is not None and m.state == "stale"
        }
        holders: dict[str, str] = {}
        for host, host_marks in sorted(marks.items()):
            mark = host_marks.get(volume)
            if host in named or (volume, host) in leaving:
                continue  # the stale copy's refusal already names it; a copy that moves is not left behind
            if host not in hosts and mark is not None and mark.state == "current":
                holders[host] = f"generation {mark.generation}, written by run {mark.run or 'unknown'}"
        for host, generation in sorted(recorded.items()):
            if (
                host not in hosts
                and host not in holders
                and host not in named
                and (volume, host) not in leaving
            ):
                holders[host] = f"generation {generation}, as {STATE_FILE} records"
        for host, what in sorted(holders.items()):
            problems.append(
                Problem(
                    module,
                    "placement",
                    f"the newest copy of {volume} ({what}) is on {host}, which would no longer run it; "
                    f"the placement runs it on {', '.join(hosts)} with another copy. Keep it on {host}, or {MOVE_HINT}",
                )
            )
    return problems


def _mark(module: str, generation: int, run: str, at: str, newest_on: str | None = None) -> dict[str, Any]:
    return VolumeMark(
        module=module,
        generation=generation,
        state="stale" if newest_on else "current",
        newest_on=newest_on,
        run=run,
        at=at,
    ).model_dump()


def after_deploy(
    host: str,
    *,
    volumes: Sequence[Mapping[str, Any]],
    marks: Mapping[str, VolumeMark],
    state: SiteState | None,
    run: str,
    at: str,
) -> dict[str, Any]:
    """A host's marks once its planned volumes exist: a volume without a mark gets one (generation as
    the site state records for this host, else 1); every other mark is kept as it is."""
    out = {volume: mark.model_dump() for volume, mark in sorted(marks.items())}
    for volume in volumes:
        name = str(volume["docker_name"])
        if name not in out:
            generation = (state.volumes.get(name, {}).get(host, 1)) if state else 1
            out[name] = _mark(str(volume["module"]), generation, run, at)
    return out


def after_move(
    volume: str,
    module: str,
    *,
    source: Mapping[str, VolumeMark],
    from_host: str,
    to_host: str,
    run: str,
    at: str,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the source host's mark, the target host's mark) once `volume` was copied from one to the other:
    the target one generation up and current, the source stale, naming the target."""
    was = source.get(volume)
    generation = was.generation if was else 1
    return (
        _mark(module, generation, run, at, newest_on=to_host),
        _mark(module, generation + 1, run, at),
    )


def after_moves(
    host: str,
    marks: Mapping[str, VolumeMark],
    *,
    moves: Sequence[Mapping[str, Any]],
    marks_of: Mapping[str, Mapping[str, VolumeMark]],
    run: str,
    at: str,
    back: bool = False,
) -> dict[str, Any]:
    """A host's marks once the scale's `moves` ({module, volume, from_host, to_host}) copied data: a
    volume that left this host is stale, one that arrived is current one generation up from the copy
    it came from. `back`: the scale is rolled back, and each move counts the other way round (the data
    starts again where it came from). `marks_of`: host -> its marks before the moves."""
    out = {volume: mark.model_dump() for volume, mark in sorted(marks.items())}
    for move in moves:
        volume, module = str(move["volume"]), str(move["module"])
        source, target = str(move["from_host"]), str(move["to_host"])
        if back:
            source, target = target, source
        if host not in (source, target):
            continue
        if back:
            # The rolled-back copy was made from the original, one generation up; the original goes up again.
            first = marks_of.get(target, {}).get(volume)
            generation = (first.generation if first else 1) + 1
            left, arrived = (
                _mark(module, generation, run, at, newest_on=target),
                _mark(module, generation + 1, run, at),
            )
        else:
            left, arrived = after_move(
                volume,
                module,
                source=marks_of.get(source, {}),
                from_host=source,
                to_host=target,
                run=run,
                at=at,
            )
        out[volume] = left if host == source else arrived
    return out


def after_restores(
    marks: Mapping[str, VolumeMark], backups: Sequence[Mapping[str, Any]], run: str, at: str
) -> dict[str, Any]:
    """A host's marks once `backups` ({module, volume, ...}) were restored into their volumes there: each
    restored volume one generation up, current."""
    out = {volume: mark.model_dump() for volume, mark in sorted(marks.items())}
    for backup in backups:
        volume = str(backup["volume"])
        was = marks.get(volume)
        out[volume] = _mark(str(backup["module"]), (was.generation if was else 1) + 1, run, at)
    return out


def recorded_copies(
    previous: Mapping[str, Mapping[str, int]], marks: Mapping[str, Mapping[str, VolumeMark]]
) -> dict[str, dict[str, int]]:
    """What the site state records after a run: Docker volume -> {host: generation} of its current
    copies. A host that answered speaks for itself (its current marks in, its stale ones out); a host
    that did not keeps what the state recorded of it."""
    out = {volume: dict(hosts) for volume, hosts in previous.items()}
    for host, host_marks in sorted(marks.items()):
        for volume, mark in host_marks.items():
            if mark.state == "current":
                out.setdefault(volume, {})[host] = mark.generation
            else:
                out.get(volume, {}).pop(host, None)
    # A host that answered without a mark the state records keeps its record: check() refuses it.
    return {volume: hosts for volume, hosts in sorted(out.items()) if hosts}


def newest(marks: Mapping[str, Mapping[str, VolumeMark]]) -> dict[str, dict[str, int]]:
    """Docker volume -> {host: generation} of its current copies: what the site state records."""
    out: dict[str, dict[str, int]] = {}
    for host, host_marks in sorted(marks.items()):
        for volume, mark in sorted(host_marks.items()):
            if mark.state == "current":
                out.setdefault(volume, {})[host] = mark.generation
    return out
