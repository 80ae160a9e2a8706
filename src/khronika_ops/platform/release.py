"""Release manifests (`releases/<version>.yml`) and what moving from one release to another changes.

A release pins every module's image by digest. The catalog says where a site pulls from (its registry
or mirror); the release says which bytes. `diff` is what `khronika release diff A B` prints.

Downtime class of a move (the rule an update plans its maintenance window by):
  * `full`    - a `new-version` release is crossed (moving to it, or back from it), or a module with
                the `recreate` strategy changes image (the vendor's usual full stop), or a required
                configuration change does not name one module (`khronika_modules.<name>.` keys do),
                so it may touch every module;
  * `partial` - only `rolling` modules change (capacity dips while replicas roll) or modules are
                removed (the rest keeps serving);
  * `none`    - nothing running restarts: added modules, changed minimum resources, notes.
A module whose strategy is unknown (no catalog given) counts as `recreate`: better to announce a
window that is not needed than to miss one.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator

from khronika_ops import safe_yaml
from khronika_ops.platform.common import HostMinimum
from khronika_ops.platform.images import ImageReference, parse_pinned_reference
from khronika_ops.validation import (
    Problem,
    ProblemsError,
    StrictModel,
    problems_from_validation,
    yaml_problem,
)

# semver.org's regular expression (without the leading "v" some tags carry).
SEMVER_RE = re.compile(
    r"^(?P<major>0|[1-9]\d*)\.(?P<minor>0|[1-9]\d*)\.(?P<patch>0|[1-9]\d*)"
    r"(?:-(?P<pre>(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+(?P<build>[0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$"
)
MODULE_CONFIG_KEY_RE = re.compile(r"^khronika_modules\.(?P<module>[a-z0-9][a-z0-9-]*)\.")

ReleaseKind = Literal["new-version", "change-release"]
DowntimeClass = Literal["none", "partial", "full"]
UpdateStrategy = Literal["recreate", "rolling"]
DOWNTIME_RANK: dict[DowntimeClass, int] = {"none": 0, "partial": 1, "full": 2}


class ReleaseError(ProblemsError):
    what = "release manifest"


def semver_key(version: str) -> tuple[Any, ...]:
    """Sort key by semver precedence: a pre-release sorts before its release; build metadata is ignored."""
    match = SEMVER_RE.match(version)
    if not match:
        raise ValueError(f"{version!r} is not a semantic version such as 1.2.0")
    core = (int(match["major"]), int(match["minor"]), int(match["patch"]))
    if match["pre"] is None:
        return (*core, 1, ())
    identifiers = tuple(
        (0, int(part), "") if part.isdigit() else (1, 0, part) for part in match["pre"].split(".")
    )
    return (*core, 0, identifiers)


class ReleaseModule(StrictModel):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")
    image: str
    min_resources: HostMinimum = HostMinimum()

    @field_validator("image")
    @classmethod
    def _pinned(cls, value: str) -> str:
        parse_pinned_reference(value)
        return value

    @property
    def reference(self) -> ImageReference:
        return parse_pinned_reference(self.image)

    @property
    def digest(self) -> str:
        return self.image.partition("@")[2]


class ConfigChange(StrictModel):
    """A setting the administrator must change when moving to this release."""

    model_config = StrictModel.model_config | {"populate_by_name": True}

    key: str = Field(min_length=1)
    from_value: Any = Field(None, alias="from")
    to_value: Any = Field(None, alias="to")
    note: str = ""

    @property
    def module(self) -> str | None:
        match = MODULE_CONFIG_KEY_RE.match(self.key)
        return match["module"] if match else None

    def reversed(self) -> ConfigChange:
        return ConfigChange.model_validate(
            {"key": self.key, "from": self.to_value, "to": self.from_value, "note": self.note}
        )


class Release(StrictModel):
    version: str
    kind: ReleaseKind
    date: dt.date
    modules: list[ReleaseModule] = Field(min_length=1)
    config_changes: list[ConfigChange] = Field(default_factory=list)
    notes: str = ""

    @field_validator("version", mode="before")
    @classmethod
    def _semver(cls, value: Any) -> Any:
        if not isinstance(value, str) or not SEMVER_RE.match(value):
            raise ValueError(f"{value!r} is not a semantic version such as 1.2.0 (quote it in YAML)")
        return value

    @model_validator(mode="after")
    def _unique_modules(self) -> Release:
        names = [module.name for module in self.modules]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"modules listed twice: {', '.join(duplicates)}")
        return self

    def module(self, name: str) -> ReleaseModule | None:
        return next((module for module in self.modules if module.name == name), None)

    @property
    def sort_key(self) -> tuple[Any, ...]:
        return semver_key(self.version)


def parse_release(data: Any, source: str | None = None) -> Release:
    if not isinstance(data, Mapping):
        raise ReleaseError([Problem(None, "", "a release manifest must be a mapping")], source)
    try:
        return Release.model_validate(data)
    except ValidationError as exc:
        problems = []
        for problem in problems_from_validation(exc, None):
            module = _module_of(data, problem.field)
            if module is None:
                problems.append(problem)
            else:
                problems.append(Problem(module, problem.field.partition(".")[2], problem.message))
        raise ReleaseError(problems, source) from exc


def _module_of(data: Mapping[str, Any], field: str) -> str | None:
    match = re.match(r"^modules\[(\d+)\]\.", field)
    modules = data.get("modules")
    if not match or not isinstance(modules, list):
        return None
    entry = modules[int(match[1])]
    name = entry.get("name") if isinstance(entry, Mapping) else None
    return str(name) if name else f"modules[{match[1]}]"


def load_release(path: str | Path) -> Release:
    path = Path(path)
    source = str(path)
    try:
        data = safe_yaml.load_file(path)
    except OSError as exc:
        raise ReleaseError([Problem(None, "", f"cannot read: {exc.strerror}")], source) from exc
    except safe_yaml.YamlError as exc:
        raise ReleaseError([yaml_problem(exc)], source) from None
    release = parse_release(data, source)
    if path.stem != release.version:
        problem = Problem(None, "version", f"{release.version!r} does not match the file name {path.name!r}")
        raise ReleaseError([problem], source)
    return release


def list_releases(directory: str | Path) -> list[Release]:
    """Every `<version>.yml` in the directory, oldest first; a bad manifest fails the whole listing."""
    directory = Path(directory)
    if not directory.is_dir():
        raise ReleaseError([Problem(None, "", "no such releases directory")], str(directory))
    paths = [path for path in directory.iterdir() if path.suffix in {".yml", ".yaml"} and path.is_file()]
    return sorted((load_release(path) for path in paths), key=lambda release: release.sort_key)


def find_release(directory: str | Path, version: str) -> Release:
    # A version is a file name here: `../../x` would read a manifest from anywhere.
    if not SEMVER_RE.match(version):
        raise ReleaseError(
            [Problem(None, "", f"{version!r} is not a release version such as 1.2.0")], str(directory)
        )
    for suffix in (".yml", ".yaml"):
        path = Path(directory) / f"{version}{suffix}"
        if path.is_file():
            return load_release(path)
    raise ReleaseError(
        [Problem(None, "", f"no release {version!r} (looked for {version}.yml)")], str(directory)
    )


class ImageChange(StrictModel):
    module: str
    from_image: str
    to_image: str
    update: UpdateStrategy


class ModuleImage(StrictModel):
    module: str
    image: str


class ResourceChange(StrictModel):
    module: str
    from_resources: HostMinimum
    to_resources: HostMinimum


class ReleaseDiff(StrictModel):
    from_version: str
    to_version: str
    direction: Literal["upgrade", "downgrade", "same"]
    crosses_new_version: bool
    image_changes: list[ImageChange]
    added: list[ModuleImage]
    removed: list[ModuleImage]
    config_changes: list[ConfigChange]
    resource_changes: list[ResourceChange]
    downtime: DowntimeClass
    downtime_reasons: list[str]


def diff(
    a: Release,
    b: Release,
    strategies: Mapping[str, UpdateStrategy] | None = None,
    between: Iterable[Release] = (),
    modules: Collection[str] | None = None,
) -> ReleaseDiff:
    """What moving a site from release `a` to release `b` changes.

    `strategies` (module -> recreate|rolling) come from the site's catalog. `between` are the releases
    strictly between the two, whose required configuration changes apply too when a move skips them.
    `modules`: only what touches these modules (a host that runs them), plus what touches every module
    (a new version crossed, a configuration change that names no module).
    """
    strategies = strategies or {}
    direction: Literal["upgrade", "downgrade", "same"] = (
        "same" if a.sort_key == b.sort_key else "upgrade" if a.sort_key < b.sort_key else "downgrade"
    )
    newer = a if direction == "downgrade" else b
    crossed = sorted((*between, newer) if direction != "same" else (), key=lambda release: release.sort_key)
    config_changes = [change for release in crossed for change in release.config_changes]
    if direction == "downgrade":
        config_changes = [change.reversed() for change in reversed(config_changes)]

    image_changes, added, removed, resource_changes = [], [], [], []
    for module in b.modules:
        before = a.module(module.name)
        if before is None:
            added.append(ModuleImage(module=module.name, image=module.image))
            continue
        if before.image != module.image:
            strategy = strategies.get(module.name, "recreate")
            image_changes.append(
                ImageChange(
                    module=module.name, from_image=before.image, to_image=module.image, update=strategy
                )
            )
        if before.min_resources != module.min_resources:
            resource_changes.append(
                ResourceChange(
                    module=module.name, from_resources=before.min_resources, to_resources=module.min_resources
                )
            )
    removed = [ModuleImage(module=m.name, image=m.image) for m in a.modules if b.module(m.name) is None]
    if modules is not None:
        kept = set(modules)
        image_changes = [change for change in image_changes if change.module in kept]
        added = [item for item in added if item.module in kept]
        removed = [item for item in removed if item.module in kept]
        resource_changes = [change for change in resource_changes if change.module in kept]
        config_changes = [
            change for change in config_changes if change.module is None or change.module in kept
        ]

    downtime, reasons = _downtime(crossed, image_changes, removed, config_changes, strategies)
    return ReleaseDiff(
        from_version=a.version,
        to_version=b.version,
        direction=direction,
        crosses_new_version=any(release.kind == "new-version" for release in crossed),
        image_changes=image_changes,
        added=added,
        removed=removed,
        config_changes=config_changes,
        resource_changes=resource_changes,
        downtime=downtime,
        downtime_reasons=reasons,
    )


def _downtime(
    crossed: Sequence[Release],
    image_changes: Sequence[ImageChange],
    removed: Sequence[ModuleImage],
    config_changes: Sequence[ConfigChange],
    strategies: Mapping[str, UpdateStrategy],
) -> tuple[DowntimeClass, list[str]]:
    findings: list[tuple[DowntimeClass, str]] = []
    findings += [
        ("full", f"{release.version} is a new-version release")
        for release in crossed
        if release.kind == "new-version"
    ]
    for change in image_changes:
        if change.update == "recreate":
            findings.append(("full", f"{change.module} changes image and is updated with recreate"))
        else:
            findings.append(("partial", f"{change.module} changes image and rolls replica by replica"))
    findings += [("partial", f"{module.module} is removed") for module in removed]
    for config in config_changes:
        module = config.module
        if module is None:
            findings.append(("full", f"configuration change {config.key} may touch every module"))
        elif strategies.get(module, "recreate") == "recreate":
            findings.append(("full", f"configuration change {config.key} restarts {module} (recreate)"))
        else:
            findings.append(("partial", f"configuration change {config.key} rolls {module}"))
    if not findings:
        return "none", ["no running module restarts"]
    worst = max((level for level, _ in findings), key=DOWNTIME_RANK.__getitem__)
    return worst, [reason for level, reason in findings if level == worst]


def release_record(
    release: Release, deployed_at: str, containers: Iterable[Mapping[str, Any]] | None = None
) -> dict[str, Any]:
    """The JSON recorded on a host at /etc/khronika/release.json (and read back by `khronika status`).

    With `containers` (the host's part of the catalog plan) the record lists what runs on that host,
    by the image reference actually pulled; without, every module of the release.
    """
    if containers is None:
        modules = [{"name": m.name, "image": m.image, "digest": m.digest} for m in release.modules]
    else:
        seen: dict[str, dict[str, str]] = {}
        for container in containers:
            image = str(container["image"])
            seen.setdefault(
                str(container["module"]),
                {"name": str(container["module"]), "image": image, "digest": image.partition("@")[2]},
            )
        modules = sorted(seen.values(), key=lambda module: module["name"])
    return {
        "version": release.version,
        "kind": release.kind,
        "date": release.date.isoformat(),
        "deployed_at": deployed_at,
        "modules": modules,
    }
