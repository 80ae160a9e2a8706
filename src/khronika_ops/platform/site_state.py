"""The site state: the one record of what the site should run, written by the change paths and read by all.

The operator's inventory says what the platform is (`khronika_modules`: images, ports, environment,
volumes, health checks; `khronika_release_version` for the first deployment). What a change run decided
since then (the release `update.yml` switched to; the placement, replicas and limits `scale.yml`
applied) is recorded in one file the inventory loads with its group variables (a run that did not
succeed leaves it as it was; a deployment then refuses a host whose release differs from it, and the
same update run again finishes the change: `release_conflicts`):

    inventories/<site>/group_vars/all/khronika_site_state.yml   (the variable `khronika_site_state`)

Every path reads it (`site.yml`/`deploy.yml` through the `platform` and `gateway` roles, `update.yml`,
`scale.yml`, `plan.yml`): for a module it names, its placement, replicas, limits and GPUs are the
state's, and the release is the state's, whatever the catalog says (a difference is shown as a warning
naming both). `update.yml` and `scale.yml` write it when they succeed, the previous one kept beside the
run's report, and the same file on every platform host (`/etc/khronika/khronika_site_state.yml`), so an
inventory older than what the hosts recorded (a checkout from before the last change, an AWX job whose
workspace was thrown away) is refused, not deployed.

The state also records where the newest copy of each module volume lives (`volumes`: the Docker
volume -> {host: generation}); `platform/fencing.py` refuses to start a module on any other copy.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, ValidationError, field_validator

from khronika_ops.platform.release import SEMVER_RE
from khronika_ops.validation import Problem, ProblemsError, StrictModel, problems_from_validation

STATE_VARIABLE = "khronika_site_state"
STATE_FILE = "group_vars/all/khronika_site_state.yml"
HOST_COPY = "/etc/khronika/khronika_site_state.yml"  # the same text as the inventory's file
SCHEMA_VERSION = 1
# The catalog fields a change run decides; every other field stays the operator's.
STATE_FIELDS = ("placement", "replicas", "resources", "gpus")


class SiteStateError(ProblemsError):
    what = "site state"


class WrittenBy(StrictModel):
    kind: Literal["update", "scale"]
    run: str  # the run's report folder name
    operator: str = ""
    result: str = "succeeded"


class ModuleState(StrictModel):
    placement: dict[str, list[str]]
    replicas: int = Field(1, ge=1)
    resources: dict[str, Any] = Field(default_factory=dict)
    gpus: int | dict[str, Any] | None = None


class SiteState(StrictModel):
    schema_version: Literal[1] = 1
    serial: int = Field(ge=1)
    written_at: str
    written_by: WrittenBy
    release: str
    modules: dict[str, ModuleState] = Field(default_factory=dict)
    # Docker volume -> {host: generation} of its newest copies (one host per copy lineage).
    volumes: dict[str, dict[str, int]] = Field(default_factory=dict)

    @field_validator("release")
    @classmethod
    def _semver(cls, value: str) -> str:
        if not SEMVER_RE.match(value):
            raise ValueError(f"{value!r} is not a release version such as 1.2.0")
        return value


def state_file(inventory_dir: str) -> str:
    """Where the inventory in `inventory_dir` keeps the site state."""
    return str(Path(inventory_dir) / STATE_FILE)


def parse(value: Any, source: str = STATE_VARIABLE) -> SiteState | None:
    """The state from the inventory's variable (None, '' or {} when the site has none yet)."""
    if value is None or value in ("", {}):
        return None
    if not isinstance(value, Mapping):
        raise SiteStateError(
            [
                Problem(
                    None,
                    "",
                    f"must be a mapping written by update.yml or scale.yml, not {type(value).__name__}",
                )
            ],
            source,
        )
    try:
        return SiteState.model_validate(dict(value))
    except ValidationError as exc:
        raise SiteStateError(problems_from_validation(exc, None), source) from None


def module_state(module: Mapping[str, Any]) -> ModuleState:
    """What the state records of one catalog entry."""
    return ModuleState(
        placement={k: list(v) for k, v in dict(module.get("placement") or {}).items()},
        replicas=int(module.get("replicas") or 1),
        resources=dict(module.get("resources") or {}),
        gpus=module.get("gpus"),
    )


def _fields(module: Mapping[str, Any]) -> dict[str, Any]:
    return module_state(module).model_dump()


def apply(catalog: Sequence[Mapping[str, Any]], state: SiteState | None) -> list[dict[str, Any]]:
    """The catalog the site should run: each module the state names takes the state's placement,
    replicas, limits and GPUs; a module the state does not name is the catalog's."""
    out: list[dict[str, Any]] = []
    for module in catalog:
        entry = dict(module)
        recorded = state.modules.get(str(module.get("name"))) if state else None
        if recorded is not None:
            entry["placement"] = dict(recorded.placement)
            entry["replicas"] = recorded.replicas
            if recorded.resources:
                entry["resources"] = dict(recorded.resources)
            else:
                entry.pop("resources", None)
            if recorded.gpus is None:
                entry.pop("gpus", None)
            else:
                entry["gpus"] = recorded.gpus
        out.append(entry)
    return out


def release(inventory_release: str | None, state: SiteState | None) -> str:
    """The release the site should run: the state's, else the inventory's (a first deployment)."""
    if state is not None:
        return state.release
    return str(inventory_release or "")


def differences(
    catalog: Sequence[Mapping[str, Any]], inventory_release: str | None, state: SiteState | None
) -> list[str]:
    """Where the inventory says otherwise than the state (the state wins): one sentence each."""
    if state is None:
        return []
    lines = []
    where = f"the site state ({STATE_FILE}, serial {state.serial}, written by {state.written_by.kind} run {state.written_by.run})"
    if inventory_release and str(inventory_release) != state.release:
        lines.append(
            f"khronika_release_version is {inventory_release} in the inventory, {state.release} in {where}: "
            f"{state.release} is deployed; change releases with playbooks/update.yml"
        )
    names = {str(m.get("name")) for m in catalog}
    for module in catalog:
        name = str(module.get("name"))
        recorded = state.modules.get(name)
        if recorded is None:
            continue
        have, want = _fields(module), recorded.model_dump()
        changed = [field for field in STATE_FIELDS if have.get(field) != want.get(field)]
        if changed:
            lines.append(
                f"module {name}: the catalog's {', '.join(changed)} differ from {where}: the state's are "
                f"deployed ({_short(want, changed)}); change them with playbooks/scale.yml, or edit the state"
            )
    for name in sorted(set(state.modules) - names):
        lines.append(f"module {name} is in {where} but not in the catalog: it is not deployed")
    return lines


def _short(fields: Mapping[str, Any], which: Sequence[str]) -> str:
    return "; ".join(f"{field} {fields.get(field)}" for field in which)


def next_state(
    previous: SiteState | None,
    *,
    kind: Literal["update", "scale"],
    run: str,
    operator: str,
    result: str,
    now: datetime,
    release_version: str,
    catalog: Sequence[Mapping[str, Any]],
    volumes: Mapping[str, Mapping[str, int]] | None = None,
) -> SiteState:
    """The state after a run: `catalog` is the catalog the site now runs (the state already applied);
    every enabled module's placement, replicas and limits are recorded, so the next converge deploys
    exactly what runs."""
    modules = {
        str(module.get("name")): module_state(module) for module in catalog if module.get("enabled", True)
    }
    return SiteState(
        serial=(previous.serial + 1) if previous else 1,
        written_at=now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        written_by=WrittenBy(kind=kind, run=run, operator=operator, result=result),
        release=release_version,
        modules=modules,
        volumes={str(v): {str(h): int(g) for h, g in hosts.items()} for v, hosts in (volumes or {}).items()}
        if volumes is not None
        else (dict(previous.volumes) if previous else {}),
    )


def render(state: SiteState) -> str:
    """The file's text: a header saying what it is, then `khronika_site_state:`."""
    header = (
        "# The site state: written by khronika-ops (playbooks/update.yml, playbooks/scale.yml) when a run\n"
        '# changes what the site runs; every playbook reads it (docs/architecture.md, "The site state").\n'
        "# Its placement, replicas, limits and release override the catalog's. Edit it only to undo a change\n"
        "# by hand: a module placed away from the newest copy of its data is refused (docs/updates.md).\n"
    )
    body = yaml.safe_dump(
        {STATE_VARIABLE: state.model_dump(mode="json")}, sort_keys=False, default_flow_style=False, width=120
    )
    return header + body


def diff(previous: SiteState | None, new: SiteState) -> list[str]:
    """What a run changed in the state, one line each (the report's "Site state" section)."""
    if previous is None:
        return [f"recorded for the first time: release {new.release}, {len(new.modules)} module(s)"]
    lines = []
    if previous.release != new.release:
        lines.append(f"release {previous.release} -> {new.release}")
    for name in sorted(set(previous.modules) | set(new.modules)):
        was, now = previous.modules.get(name), new.modules.get(name)
        if was == now:
            continue
        if was is None:
            lines.append(f"{name}: recorded ({_short(now.model_dump(), STATE_FIELDS) if now else ''})")
            continue
        if now is None:
            lines.append(f"{name}: no longer recorded")
            continue
        old_fields, new_fields = was.model_dump(), now.model_dump()
        for field in STATE_FIELDS:
            if old_fields[field] != new_fields[field]:
                lines.append(f"{name}: {field} {old_fields[field]} -> {new_fields[field]}")
    for volume in sorted(set(previous.volumes) | set(new.volumes)):
        if previous.volumes.get(volume) != new.volumes.get(volume):
            lines.append(f"{volume}: newest copy {previous.volumes.get(volume)} -> {new.volumes.get(volume)}")
    return lines


def same(previous: SiteState | None, new: SiteState) -> bool:
    """Whether a run changed nothing the state records (it is then not written again)."""
    if previous is None:
        return False
    keep = {"release", "modules", "volumes"}
    return previous.model_dump(include=keep) == new.model_dump(include=keep)


def markdown(serial: int | None, lines: Sequence[str], unchanged: bool = False, failure: str = "") -> str:
    """The report's "Site state" section."""
    if failure:
        return (
            f"\n## Site state\n\n- NOT WRITTEN: {failure}\n- the hosts run what this report says; until the state "
            f"says so too, the next deploy follows the state before (fencing refuses what would serve stale data)\n"
        )
    if serial is None:
        return ""
    out = ["", "## Site state", ""]
    if unchanged:
        out.append(f"- unchanged (serial {serial}, {STATE_FILE})")
    else:
        out.append(f"- written: serial {serial} in the inventory's {STATE_FILE} and on every platform host")
        out += [f"- {line}" for line in lines]
    return "\n".join(out) + "\n"


def release_conflicts(records: Mapping[str, Any], release_version: str) -> list[Problem]:
    """Why a deployment (`deploy.yml`, `site.yml`) must not run: it never changes the release a host
    runs, nor finishes an update that stopped half-way; both are `update.yml`'s, with its backups, health
    gate and rollback. `records`: host -> its release record (None: nothing deployed there yet)."""
    problems = []
    for host, record in sorted(records.items()):
        if not isinstance(record, Mapping) or not record.get("version"):
            continue
        switching = record.get("switching")
        if isinstance(switching, Mapping):
            problems.append(
                Problem(
                    None,
                    host,
                    f"an update to {switching.get('to')} (run {switching.get('run')}) did not finish here: run it again "
                    f"(playbooks/update.yml -e khronika_release_version={switching.get('to')}) before a deployment.",
                )
            )
        elif str(record["version"]) != release_version:
            problems.append(
                Problem(
                    None,
                    host,
                    f"runs release {record['version']}, and this deployment would run {release_version} (the site "
                    f"state's release, else khronika_release_version): a deployment never changes a host's release; "
                    f"update it with playbooks/update.yml -e khronika_release_version=..., which backs up, checks "
                    "and rolls back.",
                )
            )
    return problems


def newest_host_copy(copies: Mapping[str, Any]) -> tuple[str, SiteState] | None:
    """Of the state copies read from the hosts (host -> the parsed file, or nothing), the one with the
    highest serial, and its host."""
    best: tuple[str, SiteState] | None = None
    for host, value in sorted(copies.items()):
        if not value:
            continue
        try:
            state = parse(value, f"{host}:{HOST_COPY}")
        except SiteStateError:
            continue  # a damaged copy is not newer than anything
        if state is not None and (best is None or state.serial > best[1].serial):
            best = (host, state)
    return best


def stale_inventory(inventory_state: SiteState | None, copies: Mapping[str, Any]) -> Problem | None:
    """A refusal when a host recorded a newer state than the inventory holds."""
    newest = newest_host_copy(copies)
    if newest is None:
        return None
    host, state = newest
    have = inventory_state.serial if inventory_state else 0
    if state.serial <= have:
        return None
    return Problem(
        None,
        "site state",
        f"{host} recorded serial {state.serial} ({state.written_by.kind} run {state.written_by.run}, "
        f"{state.written_at}), the inventory's {STATE_FILE} has "
        f"{f'serial {have}' if have else 'none'}: this inventory is older than what the site runs. "
        f"copy {host}:{HOST_COPY} (the same file) to the inventory's {STATE_FILE} and run again",
    )
