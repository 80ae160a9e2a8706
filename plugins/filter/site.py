"""Filters of khronika.platform for the site state and the fencing of module volumes: thin adapters over
khronika_ops.platform.site_state and khronika_ops.platform.fencing (docs/architecture.md, "The site state").

khronika_site_catalog(khronika_modules, khronika_site_state)
    -> the catalog the site should run (the state's placement, replicas, limits and GPUs applied).
khronika_site_release(khronika_release_version, khronika_site_state)
    -> the release the site should run (the state's, else the inventory's).
khronika_site_differences(khronika_modules, khronika_release_version, khronika_site_state)
    -> one warning per thing the inventory says otherwise than the state.
khronika_site_fence(plan, hostvars, hosts, khronika_site_state, marks_var, state_copy_var, moves=[])
    -> every reason the plan would serve stale data or follow an inventory older than the hosts' state
       (hosts: those whose slurped files marks_var / state_copy_var are read).
khronika_site_release_conflicts(release, hostvars, hosts, record_var)
    -> why a deployment must not run: a host on another release, or an update that stopped half-way.
khronika_volume_marks(marks_var_value, host, volumes, khronika_site_state, run, at)
    -> the host's volumes.json once its planned volumes exist (fencing.after_deploy).
khronika_volume_marks_moved(marks_var_value, host, moves, hostvars, marks_var, run, at, back=false)
    -> the host's volumes.json once the scale's moves copied data (or rolled back: back=true).
khronika_volume_marks_restored(marks_var_value, backups, run, at)
    -> the host's volumes.json once `backups` ({module, volume, ...}) were restored (fencing.after_restore).
khronika_site_state_file(inventory_dir)
    -> where the inventory keeps the site state.
khronika_site_state_next(khronika_site_state, kind, run, operator, result, now, release, catalog, hostvars, hosts, marks_var)
    -> {'text': the new file, 'diff': lines, 'serial': n, 'unchanged': whether it records what the last did}.
khronika_site_state_markdown(result_of_khronika_site_state_next, failure='')
    -> the report's "Site state" section.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from ansible.errors import AnsibleFilterError

try:
    from khronika_ops.ansible_data import plain
    from khronika_ops.lazy import lazy
except ImportError as exc:  # pragma: no cover - depends on the controller's environment
    raise AnsibleFilterError(
        "khronika.platform needs the Python package khronika-ops on the controller: pip install khronika-ops"
    ) from exc

site_state = lazy("khronika_ops.platform.site_state")
fencing = lazy("khronika_ops.platform.fencing")
safe_yaml = lazy("khronika_ops.safe_yaml")
validation = lazy("khronika_ops.validation")

MAX_FILE = 4 * 1024 * 1024


def _state(value: Any) -> Any:
    try:
        return site_state.parse(plain(value))
    except validation.ProblemsError as exc:
        raise AnsibleFilterError(validation.readable(exc)) from exc


def _slurped(result: Any) -> bytes | None:
    """The bytes of a slurp result (None when the file was not there or could not be read)."""
    if not isinstance(result, Mapping) or not result.get("content"):
        return None
    content = str(result["content"])
    if len(content) > MAX_FILE * 4 // 3 + 4:
        return None
    try:
        return base64.b64decode(content, validate=True)
    except (binascii.Error, ValueError):
        return None


def _marks(result: Any) -> dict[str, Any]:
    data = _slurped(result)
    if data is None:
        return {}
    try:
        return fencing.parse_marks(json.loads(data))
    except (ValueError, UnicodeDecodeError):
        return {}


def _state_copy(result: Any, host: str) -> Any:
    data = _slurped(result)
    if data is None:
        return None
    try:
        loaded = safe_yaml.load_text(data, f"{host}:{site_state.HOST_COPY}")
    except (safe_yaml.YamlError, UnicodeDecodeError):
        return None
    if isinstance(loaded, Mapping):
        return loaded.get(site_state.STATE_VARIABLE)
    return None


def khronika_site_catalog(catalog: Any, state: Any = None) -> list[dict[str, Any]]:
    return site_state.apply(plain(catalog) or [], _state(state))


def khronika_site_release(release: Any, state: Any = None) -> str:
    return site_state.release(str(release or ""), _state(state))


def khronika_site_differences(catalog: Any, release: Any, state: Any = None) -> list[str]:
    return site_state.differences(plain(catalog) or [], str(release or ""), _state(state))


def _host_values(hostvars: Any, hosts: Any, var: str) -> dict[str, Any]:
    out = {}
    for host in plain(hosts) or []:
        values = hostvars.get(host) if isinstance(hostvars, Mapping) else None
        if values is not None and var in values:
            out[str(host)] = values[var]
    return out


def khronika_site_fence(  # noqa: PLR0917 - a Jinja filter takes its arguments by position
    plan: Any, hostvars: Any, hosts: Any, state: Any, marks_var: str, state_copy_var: str, moves: Any = None
) -> list[str]:
    parsed = _state(state)
    marks = {host: _marks(plain(value)) for host, value in _host_values(hostvars, hosts, marks_var).items()}
    copies = {
        host: _state_copy(plain(value), host)
        for host, value in _host_values(hostvars, hosts, state_copy_var).items()
    }
    problems = []
    stale = site_state.stale_inventory(parsed, copies)
    if stale is not None:
        problems.append(stale)
    problems += fencing.check((plain(plan) or {}).get("hosts") or {}, marks, parsed, plain(moves) or [])
    return [str(problem) for problem in problems]


def khronika_site_release_conflicts(release: Any, hostvars: Any, hosts: Any, record_var: str) -> list[str]:
    records = {}
    for host, value in _host_values(hostvars, hosts, record_var).items():
        data = _slurped(plain(value))
        try:
            records[host] = json.loads(data) if data else None
        except ValueError:
            records[host] = None
    return [str(problem) for problem in site_state.release_conflicts(records, str(release or ""))]


def khronika_volume_marks(  # noqa: PLR0917
    marks: Any, host: str, volumes: Any, state: Any, run: str, at: str
) -> dict[str, Any]:
    return fencing.after_deploy(
        str(host),
        volumes=plain(volumes) or [],
        marks=_marks(plain(marks)),
        state=_state(state),
        run=str(run),
        at=str(at),
    )


def khronika_volume_marks_moved(  # noqa: PLR0917
    marks: Any, host: str, moves: Any, hostvars: Any, marks_var: str, run: str, at: str, back: bool = False
) -> dict[str, Any]:
    moves = plain(moves) or []
    hosts = sorted({str(m[k]) for m in moves for k in ("from_host", "to_host")})
    marks_of = {h: _marks(plain(value)) for h, value in _host_values(hostvars, hosts, marks_var).items()}
    return fencing.after_moves(
        str(host),
        _marks(plain(marks)),
        moves=moves,
        marks_of=marks_of,
        run=str(run),
        at=str(at),
        back=bool(back),
    )


def khronika_volume_marks_restored(marks: Any, backups: Any, run: str, at: str) -> dict[str, Any]:
    return fencing.after_restores(_marks(plain(marks)), plain(backups) or [], str(run), str(at))


def khronika_site_state_file(inventory_dir: Any) -> str:
    return site_state.state_file(str(inventory_dir or "."))


def khronika_site_state_next(  # noqa: PLR0917
    state: Any,
    kind: str,
    run: str,
    operator: str,
    result: str,
    release: str,
    catalog: Any,
    hostvars: Any,
    hosts: Any,
    marks_var: str,
) -> dict[str, Any]:
    previous = _state(state)
    marks = {host: _marks(plain(value)) for host, value in _host_values(hostvars, hosts, marks_var).items()}
    volumes = fencing.recorded_copies(previous.volumes if previous else {}, marks)
    try:
        new = site_state.next_state(
            previous,
            kind=kind,  # type: ignore[arg-type]
            run=str(run),
            operator=str(operator),
            result=str(result),
            now=datetime.now(UTC),
            release_version=str(release),
            catalog=plain(catalog) or [],
            volumes=volumes,
        )
    except (validation.ProblemsError, ValueError) as exc:
        raise AnsibleFilterError(f"khronika_site_state_next: {validation.readable(exc)}") from exc
    if site_state.same(previous, new):
        return {"text": site_state.render(previous), "diff": [], "serial": previous.serial, "unchanged": True}
    return {
        "text": site_state.render(new),
        "diff": site_state.diff(previous, new),
        "serial": new.serial,
        "unchanged": False,
    }


def khronika_site_state_markdown(result: Any, failure: Any = "") -> str:
    result = plain(result) or {}
    if failure:
        return site_state.markdown(None, [], failure=str(failure))
    if not result:
        return ""
    return site_state.markdown(
        int(result["serial"]), list(result.get("diff") or []), bool(result.get("unchanged"))
    )


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {
            "khronika_site_catalog": khronika_site_catalog,
            "khronika_site_release": khronika_site_release,
            "khronika_site_differences": khronika_site_differences,
            "khronika_site_fence": khronika_site_fence,
            "khronika_site_release_conflicts": khronika_site_release_conflicts,
            "khronika_volume_marks": khronika_volume_marks,
            "khronika_volume_marks_moved": khronika_volume_marks_moved,
            "khronika_volume_marks_restored": khronika_volume_marks_restored,
            "khronika_site_state_next": khronika_site_state_next,
            "khronika_site_state_file": khronika_site_state_file,
            "khronika_site_state_markdown": khronika_site_state_markdown,
        }
