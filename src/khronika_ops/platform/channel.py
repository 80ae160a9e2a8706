"""The release channel a site follows unattended (docs/updates.md, "The release channel").

A channel is where new releases appear:

- `registry`: each release manifest published beside the images as an OCI artifact, the tag being the
  release number (`<registry>/khronika/releases:1.1.0`, artifact type `RELEASE_ARTIFACT`, one layer: the
  manifest's YAML). `publish` puts one there; a published number is never changed (the same bytes again
  are "already published", other bytes are refused). What the registry answers is checked: the layer's
  bytes against the digest the manifest names, the YAML against the release schema, the number inside
  against the tag.
- `folder`: a drop folder of signed installation archives (`khronika archive build --sign`), for a closed
  site; each is verified in full against the site's key (`khronika_ops.archive.verify`); an unsigned or
  tampered archive is refused and named, never offered.

The policy (`khronika_update_channel` in the inventory, `ChannelPolicy`) says which kinds apply by
themselves, the recurring window, the canary, the soak, the batches, the failure budget and a pause; the
channel's own state (`ChannelState`, a JSON file beside the inventory) holds the approvals, the halt, the
releases that failed (never retried automatically), the rollout in progress and the last runs.
`decide` is the one rule that turns the three into what a run does now.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator

from khronika_ops import safe_yaml
from khronika_ops.platform.common import Seconds
from khronika_ops.platform.registry import RegistryClient
from khronika_ops.platform.release import SEMVER_RE, Release, ReleaseError, parse_release, semver_key
from khronika_ops.platform.update import MaintenanceWindow, human, iso
from khronika_ops.validation import Problem, ProblemsError, StrictModel, problems_from_validation

POLICY_VARIABLE = "khronika_update_channel"
RELEASE_ARTIFACT = "application/vnd.khronika.release.v1+yaml"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
EMPTY_JSON = b"{}"
DEFAULT_REPOSITORY = "khronika/releases"
STATE_SCHEMA = 1
#: Bounds on what a channel may hand us: a release manifest, the tags of its repository, archives.
MAX_MANIFEST_BYTES = 1 << 20
MAX_TAGS = 10_000
MAX_ARCHIVES = 200
MAX_RUNS = 100  # run lines the state keeps
MAX_STATE_BYTES = 4 << 20
_REPOSITORY = re.compile(r"^[a-z0-9]+(?:[._-][a-z0-9]+)*(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*$")
_REGISTRY = re.compile(r"^[A-Za-z0-9.-]+(?::[0-9]{1,5})?$")

Kind = Literal["change-release", "new-version"]
Rule = Literal["auto", "approve", "never"]
DEFAULT_APPLY: dict[Kind, Rule] = {"change-release": "auto", "new-version": "approve"}


class ChannelError(ProblemsError):
    what = "release channel"


def problem(message: str, field: str = "") -> ChannelError:
    return ChannelError([Problem(None, field, message)])


# --- the policy -------------------------------------------------------------------------------------


class Canary(StrictModel):
    """The hosts that go first: an inventory group, or the first `count` hosts in inventory order."""

    group: str | None = None
    count: int | None = Field(None, ge=1, le=1000)

    @model_validator(mode="after")
    def _one(self) -> Canary:
        if (self.group is None) == (self.count is None):
            raise ValueError("give the canary as a group or as a count, not both and not neither")
        return self


class Batch(StrictModel):
    """After the canary: `hosts` per batch, or `percent` of the remaining hosts per batch."""

    hosts: int | None = Field(None, ge=1, le=10_000)
    percent: int | None = Field(None, ge=1, le=100)

    @model_validator(mode="after")
    def _one(self) -> Batch:
        if (self.hosts is None) == (self.percent is None):
            raise ValueError("give the batch as hosts or as percent, not both and not neither")
        return self


class Watch(StrictModel):
    """What the soak watches in the site's Prometheus, against the same figures before the switch."""

    prometheus: str | None = None  # the URL as the controller reaches it; none: the soak only waits
    user: str = ""
    password: str = ""
    ca_file: str | None = None
    error_share: float = Field(
        0.05, ge=0, le=1
    )  # a module answering more 5xx than this (and more than before)
    latency_ratio: float = Field(2.0, gt=1, le=100)  # mean latency above this many times the one before
    latency_floor: Seconds = Field(0.05, ge=0, le=60)  # never a bad sign below this
    min_requests: int = Field(20, ge=1)  # a module with fewer requests in the soak is not judged on shares
    interval: Seconds = Field(15, ge=1, le=600)
    baseline: Seconds = Field(600, ge=60, le=86400)  # how far back before the switch "before" looks
    alerts: bool = True  # an alert firing in the site (the update's own silenced ones aside) is a bad sign

    @field_validator("prometheus")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^https?://[^\s/]+(/\S*)?$", value):
            raise ValueError(f"{value!r} is not an http(s) URL")
        return value


class AlertmanagerAccess(StrictModel):
    """Where the halt's alert goes (default: the update's khronika_update_alertmanager_* settings)."""

    url: str
    user: str = ""
    password: str = ""
    ca_file: str | None = None

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not re.match(r"^https?://[^\s/]+(/\S*)?$", value):
            raise ValueError(f"{value!r} is not an http(s) URL")
        return value


class ChannelPolicy(StrictModel):
    source: Literal["registry", "folder"]
    registry: str | None = None  # host[:port] as the controller reaches it (default khronika_registry)
    repository: str = DEFAULT_REPOSITORY
    registry_user: str = ""
    registry_password: str = ""
    registry_ca: str | None = None
    folder: str | None = None
    # The keyring (gpg) or public key (minisign) the folder's archives are checked with.
    key: str | None = None
    apply: dict[Kind, Rule] = Field(default_factory=lambda: dict(DEFAULT_APPLY))
    window: MaintenanceWindow
    canary: Canary = Field(default_factory=lambda: Canary(count=1))
    soak: Seconds = Field(900, ge=0, le=7 * 86400)
    batch: Batch = Field(default_factory=lambda: Batch(percent=50))
    failure_budget: int = Field(0, ge=0, le=10_000)  # hosts that may fail across all batches of a rollout
    paused: bool = False
    late_rollback_restore: bool = (
        False  # after traffic: restore the pre-update backup (the newer data kept aside)
    )
    watch: Watch = Field(default_factory=Watch)
    alertmanager: AlertmanagerAccess | None = None
    state_dir: str | None = None

    @field_validator("repository")
    @classmethod
    def _repository(cls, value: str) -> str:
        if not _REPOSITORY.match(value) or len(value) > 255:
            raise ValueError(f"{value!r} is not a registry repository name such as khronika/releases")
        return value

    @field_validator("registry")
    @classmethod
    def _registry(cls, value: str | None) -> str | None:
        if value is not None and not _REGISTRY.match(value):
            raise ValueError(f"{value!r} is not a registry host[:port]")
        return value

    @field_validator("apply")
    @classmethod
    def _apply(cls, value: dict[Kind, Rule]) -> dict[Kind, Rule]:
        return {**DEFAULT_APPLY, **value}

    @model_validator(mode="after")
    def _source(self) -> ChannelPolicy:
        if self.source == "registry" and not self.registry:
            raise ValueError("a registry channel needs `registry` (or khronika_registry in the inventory)")
        if self.source == "folder" and not (self.folder and self.key):
            raise ValueError("a folder channel needs `folder` and `key`: its archives are refused unsigned")
        return self


def parse_policy(value: Any, source: str = POLICY_VARIABLE) -> ChannelPolicy:
    if not isinstance(value, Mapping):
        raise ChannelError(
            [Problem(None, "", f"{POLICY_VARIABLE} must be a mapping (docs/updates.md)")], source
        )
    try:
        return ChannelPolicy.model_validate(value)
    except ValidationError as exc:
        raise ChannelError(problems_from_validation(exc, None), source) from None


# --- what the channel offers ------------------------------------------------------------------------


@dataclass(frozen=True)
class ChannelRelease:
    release: Release
    origin: str  # registry://host/repository:tag@digest, or the archive's path
    text: str  # the release manifest as published (YAML)
    archive: str | None = None  # a folder channel: the verified archive file

    @property
    def version(self) -> str:
        return self.release.version


@dataclass(frozen=True)
class Refused:
    origin: str
    reason: str


@dataclass(frozen=True)
class Offer:
    releases: list[ChannelRelease]
    refused: list[Refused]


def _json(answer_body: bytes, what: str) -> Any:
    try:
        return json.loads(answer_body)
    except ValueError:
        raise problem(f"{what}: the registry answered something that is not JSON") from None


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class RegistryChannel:
    """Release manifests as OCI artifacts in `repository` of `registry` (HTTPS, as the hosts pull)."""

    def __init__(self, client: RegistryClient, registry: str, repository: str = DEFAULT_REPOSITORY) -> None:
        self.client = client
        self.registry = registry
        self.repository = repository
        self.base = f"https://{registry}/v2/{repository}"

    @property
    def name(self) -> str:
        return f"registry {self.registry}/{self.repository}"

    def _send(self, method: str, url: str, **options: Any) -> Any:
        try:
            return self.client.send(method, self.registry, self.repository, url, **options)
        except OSError as exc:
            reason = getattr(exc, "reason", exc)
            raise problem(f"{self.name} does not answer: {reason}") from None

    def tags(self) -> list[str]:
        """The repository's release tags (semantic versions; other tags are not releases)."""
        tags: list[str] = []
        url: str | None = f"{self.base}/tags/list?n=1000"
        while url is not None and len(tags) < MAX_TAGS:
            answer = self._send("GET", url)
            if answer.status == 404:
                return []  # nothing published yet
            if answer.status != 200:
                raise problem(f"{self.name}: listing the tags answered HTTP {answer.status}")
            document = _json(answer.body, "the tag list")
            tags += [str(tag) for tag in (document.get("tags") or []) if isinstance(tag, str)]
            link = re.match(r'^<([^>]+)>;\s*rel="next"', answer.headers.get("Link", ""))
            url = (
                f"https://{self.registry}{link.group(1)}"
                if link and link.group(1).startswith("/v2/")
                else None
            )
        return sorted({tag for tag in tags if SEMVER_RE.match(tag)}, key=semver_key)

    def fetch(self, tag: str) -> ChannelRelease:
        answer = self._send("GET", f"{self.base}/manifests/{tag}", headers={"Accept": OCI_MANIFEST})
        origin = f"registry://{self.registry}/{self.repository}:{tag}"
        if answer.status != 200:
            raise problem(f"{origin}: the registry answered HTTP {answer.status}")
        manifest = _json(answer.body, origin)
        layers = manifest.get("layers") if isinstance(manifest, dict) else None
        if (
            not isinstance(layers, list)
            or len(layers) != 1
            or not isinstance(layers[0], dict)
            or layers[0].get("mediaType") != RELEASE_ARTIFACT
        ):
            raise problem(f"{origin}: not a release manifest artifact ({RELEASE_ARTIFACT}, one layer)")
        layer = layers[0]
        digest, size = str(layer.get("digest", "")), layer.get("size")
        if not isinstance(size, int) or not 0 < size <= MAX_MANIFEST_BYTES:
            raise problem(
                f"{origin}: its release manifest's size {size!r} is not 1 to {MAX_MANIFEST_BYTES} bytes"
            )
        blob = self._send("GET", f"{self.base}/blobs/{digest}", limit=MAX_MANIFEST_BYTES)
        if blob.status != 200:
            raise problem(f"{origin}: its release manifest {digest} answered HTTP {blob.status}")
        if _digest(blob.body) != digest:
            raise problem(f"{origin}: the bytes the registry gave are not {digest} (refused)")
        text = blob.body.decode("utf-8", errors="replace")
        release = load_release_text(text, origin)
        if release.version != tag:
            raise problem(f"{origin}: the manifest inside says release {release.version}, not {tag}")
        manifest_digest = answer.headers.get("Docker-Content-Digest") or _digest(answer.body)
        return ChannelRelease(release, f"{origin}@{manifest_digest}", text)

    def offer(self, newer_than: str | None = None) -> Offer:
        releases, refused = [], []
        for tag in self.tags():
            if newer_than is not None and semver_key(tag) <= semver_key(newer_than):
                continue
            try:
                releases.append(self.fetch(tag))
            except ChannelError as exc:
                refused.append(
                    Refused(f"{self.registry}/{self.repository}:{tag}", "; ".join(map(str, exc.problems)))
                )
        return Offer(releases, refused)

    def _upload(self, data: bytes, media_type: str) -> str:
        digest = _digest(data)
        if self._send("HEAD", f"{self.base}/blobs/{digest}").status == 200:
            return digest
        started = self._send("POST", f"{self.base}/blobs/uploads/", data=b"")
        location = started.headers.get("Location", "")
        if started.status != 202 or not location:
            raise problem(f"{self.name}: starting an upload answered HTTP {started.status}")
        if location.startswith("/"):
            location = f"https://{self.registry}{location}"
        joined = "&" if "?" in location else "?"
        done = self._send(
            "PUT",
            f"{location}{joined}digest={digest}",
            data=data,
            headers={"Content-Type": "application/octet-stream", "Content-Length": str(len(data))},
        )
        if done.status != 201:
            raise problem(f"{self.name}: uploading {media_type} answered HTTP {done.status}")
        return digest

    def publish(self, text: str, source: str = "<manifest>") -> tuple[str, bool]:
        """Publish a release manifest; (origin, True) when written, (origin, False) when the same bytes
        were already there. Another manifest under the same number is refused: a number names one release."""
        release = load_release_text(text, source)
        data = text.encode()
        if release.version in self.tags():
            existing = self.fetch(release.version)
            if existing.text.encode() == data:
                return existing.origin, False
            raise problem(
                f"{self.name}: release {release.version} is already published with other contents; "
                "a release number is never reused (publish a new number)"
            )
        config = self._upload(EMPTY_JSON, OCI_EMPTY)
        layer = self._upload(data, RELEASE_ARTIFACT)
        manifest = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": RELEASE_ARTIFACT,
            "config": {"mediaType": OCI_EMPTY, "digest": config, "size": len(EMPTY_JSON)},
            "layers": [
                {
                    "mediaType": RELEASE_ARTIFACT,
                    "digest": layer,
                    "size": len(data),
                    "annotations": {"org.opencontainers.image.title": f"{release.version}.yml"},
                }
            ],
            "annotations": {
                "org.opencontainers.image.version": release.version,
                "org.opencontainers.image.created": f"{release.date.isoformat()}T00:00:00Z",
                "io.khronika.release.kind": release.kind,
            },
        }
        body = json.dumps(manifest, sort_keys=True).encode()
        answer = self._send(
            "PUT",
            f"{self.base}/manifests/{release.version}",
            data=body,
            headers={"Content-Type": OCI_MANIFEST},
        )
        if answer.status != 201:
            detail = answer.body[:300].decode("utf-8", errors="replace")
            raise problem(f"{self.name}: the manifest was refused (HTTP {answer.status}): {detail}")
        digest = answer.headers.get("Docker-Content-Digest") or _digest(body)
        return f"registry://{self.registry}/{self.repository}:{release.version}@{digest}", True


def load_release_text(text: str, source: str) -> Release:
    if len(text.encode()) > MAX_MANIFEST_BYTES:
        raise problem(f"{source}: a release manifest is at most {MAX_MANIFEST_BYTES} bytes")
    try:
        data = safe_yaml.load_text(text, source)
    except safe_yaml.YamlError as exc:
        raise problem(f"{source}: {exc}") from None
    try:
        return parse_release(data, source)
    except ReleaseError as exc:
        raise ChannelError(exc.problems, source) from None


class FolderChannel:
    """Signed installation archives dropped in a folder (`*.tar`), each verified in full against `key`."""

    def __init__(self, folder: str | Path, key: str | Path) -> None:
        self.folder = Path(folder)
        self.key = Path(key)

    @property
    def name(self) -> str:
        return f"folder {self.folder}"

    def offer(self, newer_than: str | None = None) -> Offer:
        from khronika_ops.archive import layout
        from khronika_ops.archive.verify import ArchiveError, verify

        if not self.folder.is_dir():
            raise problem(f"{self.name}: no such folder")
        if not self.key.is_file():
            raise problem(f"{self.name}: the key {self.key} is not a file (archives are refused unsigned)")
        archives = sorted(path for path in self.folder.iterdir() if path.suffix == ".tar")
        if len(archives) > MAX_ARCHIVES:
            raise problem(f"{self.name}: more than {MAX_ARCHIVES} archives; move the old ones away")
        found: dict[str, ChannelRelease] = {}
        refused: list[Refused] = []
        for path in archives:
            named = re.match(r"^khronika-(.+)\.tar$", path.name)
            version = named.group(1) if named else None
            if (
                version is not None
                and SEMVER_RE.match(version)
                and newer_than is not None
                and semver_key(version) <= semver_key(newer_than)
            ):
                continue  # the name says it is not newer; verify reads it in full otherwise
            try:
                verified = verify(path, key=self.key)
            except ArchiveError as exc:
                refused.append(Refused(str(path), "; ".join(exc.problems)))
                continue
            manifest = verified.manifest
            if newer_than is not None and semver_key(manifest.release) <= semver_key(newer_than):
                continue
            member = layout.release_member(manifest.release)
            text = _archive_member(
                path, f"{layout.top_folder(manifest.release)}/{member}", verified.sums.get(member)
            )
            try:
                release = load_release_text(text, f"{path}:{member}")
            except ChannelError as exc:
                refused.append(Refused(str(path), "; ".join(map(str, exc.problems))))
                continue
            if manifest.release in found:
                refused.append(
                    Refused(
                        str(path), f"release {manifest.release} is also in {found[manifest.release].archive}"
                    )
                )
                continue
            found[manifest.release] = ChannelRelease(release, str(path), text, archive=str(path))
        return Offer(sorted(found.values(), key=lambda item: semver_key(item.version)), refused)


def _archive_member(path: Path, name: str, expected: str | None) -> str:
    """One small member's text, checked again against the verified sum (the file may change under us)."""
    import tarfile

    with tarfile.open(path, mode="r:") as archive:
        member = archive.getmember(name)
        if member.size > MAX_MANIFEST_BYTES:
            raise problem(f"{path}: {name} is larger than {MAX_MANIFEST_BYTES} bytes")
        handle = archive.extractfile(member)
        data = handle.read(MAX_MANIFEST_BYTES + 1) if handle is not None else b""
    if expected is None or hashlib.sha256(data).hexdigest() != expected:
        raise problem(f"{path}: {name} changed since it was verified (refused)")
    return data.decode("utf-8", errors="replace")


def open_channel(policy: ChannelPolicy) -> RegistryChannel | FolderChannel:
    if policy.source == "folder":
        assert policy.folder is not None and policy.key is not None
        return FolderChannel(policy.folder, policy.key)
    from khronika_ops.platform.registry import Credentials

    assert policy.registry is not None
    credentials = (
        {policy.registry: Credentials(policy.registry_user, policy.registry_password)}
        if policy.registry_user
        else {}
    )
    return RegistryChannel(
        RegistryClient(credentials, ca_file=policy.registry_ca), policy.registry, policy.repository
    )


# --- the channel's state ----------------------------------------------------------------------------


class Halt(StrictModel):
    release: str
    reason: str
    at: str
    run: str = ""


class Stage(StrictModel):
    name: str  # "canary", "batch 1", ...
    hosts: list[str]
    state: Literal["pending", "switched", "soaked", "rolled-back", "failed"] = "pending"
    run: str = ""  # the update run's report folder
    started_at: str | None = None  # the stage's update began: "before" is measured up to here
    switched_at: str | None = None
    soaked_at: str | None = None
    alerts_before: list[str] | None = None  # alerts firing when the stage began (not bad signs of it)
    note: str = ""


class Rollout(StrictModel):
    release: str
    from_release: str
    started_at: str
    stages: list[Stage]
    origin: str = ""  # where the release came from (registry artifact or archive)
    archive: str | None = None  # a folder channel's verified archive: install-offline.yml installs it
    failed_hosts: list[str] = Field(default_factory=list)

    def next_stage(self) -> Stage | None:
        return next((stage for stage in self.stages if stage.state in ("pending", "switched")), None)


class RunLine(StrictModel):
    at: str
    action: str
    release: str | None = None
    result: str
    message: str


class ChannelState(StrictModel):
    schema_version: Literal[1] = 1
    approved: list[str] = Field(default_factory=list)
    failed: dict[str, str] = Field(default_factory=dict)  # release -> why, never retried automatically
    halted: Halt | None = None
    rollout: Rollout | None = None
    last_rollout: Rollout | None = None  # the one that ended (applied, failed, rolled back)
    runs: list[RunLine] = Field(default_factory=list)

    def with_run(self, line: RunLine) -> ChannelState:
        return self.model_copy(update={"runs": [*self.runs, line][-MAX_RUNS:]})


def default_state_dir(inventory: str | Path) -> Path:
    """Beside the inventory, in a folder Ansible does not read as inventory (names starting with a dot)."""
    path = Path(inventory).resolve()
    return (path if path.is_dir() else path.parent) / ".khronika" / "channel"


class StateStore:
    """`state.json` in `folder`, written atomically; `lock()` keeps two runs of one site apart."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.file = self.folder / "state.json"

    def load(self) -> ChannelState:
        if not self.file.exists():
            return ChannelState()
        if self.file.stat().st_size > MAX_STATE_BYTES:
            raise problem(f"{self.file}: larger than {MAX_STATE_BYTES} bytes")
        try:
            return ChannelState.model_validate_json(self.file.read_bytes())
        except ValidationError as exc:
            raise ChannelError(problems_from_validation(exc, None), str(self.file)) from None

    def save(self, state: ChannelState) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=self.folder, prefix=".state-", suffix=".json")
        try:
            with os.fdopen(handle, "w") as out:
                out.write(state.model_dump_json(indent=2) + "\n")
                out.flush()
                os.fsync(out.fileno())
            Path(temporary).replace(self.file)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                Path(temporary).unlink()
            raise

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        self.folder.mkdir(parents=True, exist_ok=True)
        with (self.folder / "lock").open("a") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise problem(
                    f"another channel run holds {self.folder / 'lock'}; this one does nothing"
                ) from None
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


def approve(state: ChannelState, version: str, known: Sequence[str] = ()) -> ChannelState:
    if not SEMVER_RE.match(version):
        raise problem(f"{version!r} is not a release version such as 2.0.0")
    if version in state.failed:
        raise problem(
            f"release {version} failed ({state.failed[version]}): a failed release is never applied by the "
            "channel again; publish a fixed release, or run update.yml for it by hand"
        )
    if version in state.approved:
        return state
    return state.model_copy(update={"approved": sorted({*state.approved, version}, key=semver_key)})


def resume(state: ChannelState) -> ChannelState:
    """Lift the halt (its failed release stays failed). A rollout that was in progress goes on."""
    return state.model_copy(update={"halted": None})


# --- the decision -----------------------------------------------------------------------------------

Action = Literal["nothing", "halted", "paused", "wait", "apply", "continue"]


class Candidate(StrictModel):
    version: str
    kind: Kind
    move: Kind  # what moving to it crosses: new-version when any release on the way is one
    origin: str
    verdict: str  # "applies", "needs approval", "not by policy", "failed", "a newer release applies"


class Decision(StrictModel):
    action: Action
    release: str | None = None
    site_release: str | None
    message: str
    window: str
    candidates: list[Candidate] = Field(default_factory=list)
    refused: list[dict[str, str]] = Field(default_factory=list)


def _gates(site_release: str | None, target: Release, offered: Sequence[Release]) -> tuple[Kind, list[str]]:
    """What moving to `target` is, and the new versions it crosses (each needs its own approval under
    `apply.new-version: approve`; approving 2.0.0 lets 2.0.1 through). A major number changing counts
    as a new version even when the channel no longer offers the release that changed it."""
    crossed = [
        release.version
        for release in offered
        if release.kind == "new-version"
        and (site_release is None or semver_key(site_release) < semver_key(release.version))
        and semver_key(release.version) <= semver_key(target.version)
    ]
    if target.kind == "new-version" and target.version not in crossed:
        crossed.append(target.version)
    if (
        not crossed
        and site_release is not None
        and semver_key(target.version)[0] != semver_key(site_release)[0]
    ):
        crossed.append(target.version)
    return ("new-version" if crossed else "change-release"), sorted(crossed, key=semver_key)


def window_text(window: MaintenanceWindow, now: datetime) -> str:
    opened = window.opening(now)
    if opened is None:
        return "closed for good (the window does not repeat): set a new one"
    start, end = opened
    if start <= now < end:
        return f"open until {iso(end)}"
    return f"closed; opens at {iso(start)}"


def decide(
    policy: ChannelPolicy,
    state: ChannelState,
    site_release: str | None,
    offer: Offer,
    now: datetime,
) -> Decision:
    """What a run of the channel does now (the one rule `check`, `status` and `auto` share)."""
    now = now.astimezone(UTC)
    window = window_text(policy.window, now)
    releases = [item.release for item in offer.releases]
    candidates: list[Candidate] = []
    target: ChannelRelease | None = None
    for item in sorted(offer.releases, key=lambda item: semver_key(item.version), reverse=True):
        if site_release is not None and semver_key(item.version) <= semver_key(site_release):
            continue
        move, crossed = _gates(site_release, item.release, releases)
        rule = policy.apply[move]
        gates = crossed if move == "new-version" else [item.version]
        waiting = [version for version in gates if version not in state.approved]
        if item.version in state.failed:
            verdict = f"failed: {state.failed[item.version]} (never retried automatically)"
        elif rule == "never":
            verdict = f"not by policy (apply.{move}: never)"
        elif rule == "approve" and waiting:
            verdict = f"needs approval: khronika update approve {waiting[0]}"
        elif target is not None:
            verdict = f"a newer release applies ({target.version})"
        else:
            verdict = "applies"
            target = item
        candidates.append(
            Candidate(
                version=item.version, kind=item.release.kind, move=move, origin=item.origin, verdict=verdict
            )
        )
    candidates.reverse()
    refused = [{"origin": item.origin, "reason": item.reason} for item in offer.refused]

    def decision(action: Action, message: str, release: str | None = None) -> Decision:
        return Decision(
            action=action,
            release=release,
            site_release=site_release,
            message=message,
            window=window,
            candidates=candidates,
            refused=refused,
        )

    if state.halted is not None:
        halt = state.halted
        return decision(
            "halted",
            f"halted since {halt.at}: release {halt.release}: {halt.reason}; "
            "after a look, `khronika update resume` lets the channel go on",
            halt.release,
        )
    rollout = state.rollout
    if rollout is not None and rollout.next_stage() is not None:
        if policy.paused:
            return decision(
                "paused", f"paused by the policy, with release {rollout.release} rolling out", rollout.release
            )
        if not policy.window.contains(now):
            return decision(
                "wait", f"release {rollout.release} is rolling out; the window is {window}", rollout.release
            )
        stage = rollout.next_stage()
        assert stage is not None
        return decision(
            "continue",
            f"release {rollout.release}: {stage.name} ({', '.join(stage.hosts)}) next",
            rollout.release,
        )
    if target is None:
        held = [c for c in candidates if c.verdict.startswith("needs approval")]
        message = (
            f"nothing to apply: {held[-1].version} {held[-1].verdict}"
            if held
            else f"nothing newer than {site_release or 'nothing'} to apply"
        )
        return decision("nothing", message)
    if policy.paused:
        return decision("paused", f"paused by the policy; {target.version} would apply", target.version)
    if not policy.window.contains(now):
        return decision(
            "wait", f"{target.version} applies in the window; the window is {window}", target.version
        )
    return decision("apply", f"{target.version} applies now (window {window})", target.version)


def plan_stages(
    hosts: Sequence[str], canary: Canary, canary_hosts: Sequence[str], batch: Batch
) -> list[Stage]:
    """The canary first (its group's hosts among `hosts`, or the first `count`), then batches of the rest
    in inventory order. A canary group with no host of the site is an error, not an empty stage."""
    if not hosts:
        raise problem("the site has no platform host to update")
    if canary.group is not None:
        first = [host for host in hosts if host in set(canary_hosts)]
        if not first:
            raise problem(f"the canary group {canary.group!r} has no platform host", "canary.group")
    else:
        assert canary.count is not None
        first = list(hosts[: canary.count])
    rest = [host for host in hosts if host not in first]
    size = batch.hosts if batch.hosts is not None else max(1, -(-len(rest) * (batch.percent or 100) // 100))
    stages = [Stage(name="canary", hosts=first)]
    for index in range(0, len(rest), size):
        stages.append(Stage(name=f"batch {index // size + 1}", hosts=rest[index : index + size]))
    return stages


def render_decision(decision: Decision, channel: str) -> str:
    lines = [
        f"channel:  {channel}",
        f"site:     release {decision.site_release or '(none recorded)'}",
        f"window:   {decision.window}",
        f"decision: {decision.action}: {decision.message}",
    ]
    if decision.candidates:
        lines.append("newer releases:")
        lines += [
            f"  {c.version:<10} {c.kind:<15} {c.verdict}"
            + (" (crosses a new version)" if c.move != c.kind else "")
            for c in decision.candidates
        ]
    if decision.refused:
        lines.append("refused by the channel:")
        lines += [f"  {item['origin']}: {item['reason']}" for item in decision.refused]
    return "\n".join(lines) + "\n"


def now_iso(now: datetime | None = None) -> str:
    return iso(now or datetime.now(UTC))


def _span(seconds: float) -> str:
    return f"{seconds:g}s" if seconds < 60 else human(seconds)


def describe_policy(policy: ChannelPolicy) -> list[str]:
    canary = f"group {policy.canary.group}" if policy.canary.group else f"first {policy.canary.count} host(s)"
    batch = f"{policy.batch.hosts} host(s)" if policy.batch.hosts else f"{policy.batch.percent} % of the rest"
    window = policy.window
    every = f", every {_span(window.every)}" if window.every else ""
    lines = [
        f"applies:  change-release {policy.apply['change-release']}, new-version {policy.apply['new-version']}",
        f"window:   from {iso(window.start)} for {_span(window.duration)}{every}",
        f"stages:   canary {canary}, soak {_span(policy.soak)}, then batches of {batch};"
        f" failure budget {policy.failure_budget} host(s)",
        f"watch:    {policy.watch.prometheus or 'no Prometheus (the soak only waits)'}",
        f"late rollback: {'restores the backup (the newer data kept aside)' if policy.late_rollback_restore else 'never restores by itself (the newer data stays; the channel halts)'}",
    ]
    if policy.paused:
        lines.append("paused:   yes (khronika_update_channel.paused)")
    return lines


def render_status(
    channel: str,
    policy: ChannelPolicy,
    site_release: str | None,
    hosts: Mapping[str, str],
    state: ChannelState,
    *,
    runs: int,
    state_file: str,
) -> str:
    lines = [
        f"channel:  {channel}",
        *describe_policy(policy),
        f"state:    {state_file}",
        f"site:     release {site_release or '(none recorded)'}",
    ]
    lines += [f"  {host:<24} {release}" for host, release in hosts.items()]
    if state.halted is not None:
        halt = state.halted
        lines.append(f"HALTED:   since {halt.at}, release {halt.release}: {halt.reason}")
        lines.append("          `khronika update resume` after a look lets the channel go on")
    if state.rollout is not None:
        rollout = state.rollout
        lines.append(f"rollout:  {rollout.from_release} -> {rollout.release}, started {rollout.started_at}")
        lines += [
            f"  {stage.name:<10} {stage.state:<12} {', '.join(stage.hosts)}"
            + (f"  ({stage.note})" if stage.note else "")
            for stage in rollout.stages
        ]
    if state.approved:
        lines.append(f"approved: {', '.join(state.approved)}")
    if state.failed:
        lines.append("failed (never retried by the channel):")
        lines += [
            f"  {version}: {why}"
            for version, why in sorted(state.failed.items(), key=lambda item: semver_key(item[0]))
        ]
    shown = state.runs[-runs:] if runs else []
    if shown:
        lines.append("last runs:")
        lines += [f"  {run.at} {run.action:<9} {run.result:<9} {run.message}" for run in shown]
    return "\n".join(lines) + "\n"
