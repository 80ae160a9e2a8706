"""What an installation archive holds and how its members are named.

    khronika-<release>/archive.json         the archive's manifest (ArchiveManifest)
    khronika-<release>/SHA256SUMS           `sha256sum -c` format: every other member but the signature
    khronika-<release>/SHA256SUMS.asc       GPG detached signature of SHA256SUMS (when signed with GPG)
    khronika-<release>/SHA256SUMS.minisig   minisign signature of SHA256SUMS (when signed with minisign)
    khronika-<release>/release/<release>.yml   the release manifest
    khronika-<release>/images/images.tar    `docker save` of every module image of the release (by digest)
    khronika-<release>/collection/khronika-platform-<version>.tar.gz   the collection (ansible-galaxy build)
    khronika-<release>/collections/<ns>-<name>-<version>.tar.gz       requirements.yml's collections, as
                                            ansible_collections/<ns>/<name>/ (untar into a collections path)
    khronika-<release>/wheels/*.whl         khronika-ops and its dependencies for the controller's Python
    khronika-<release>/docs/...             README.md, CHANGELOG.md, LICENSE and the docs/ pages
    khronika-<release>/os/...               OS packages: a flat apt repository per host profile
                                            (khronika_ops.archive.os_repo)

The archive is a plain (uncompressed) tar: images and wheels are compressed already, and a plain tar
can be checked member by member while it is read once.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable, Mapping
from pathlib import PurePosixPath
from typing import IO, Literal

from pydantic import Field

from khronika_ops.platform.images import archive_tag, parse_image_reference
from khronika_ops.validation import StrictModel

FORMAT = 1
MANIFEST = "archive.json"
CHECKSUMS = "SHA256SUMS"
SIGNATURES: dict[str, str] = {"gpg": "SHA256SUMS.asc", "minisign": "SHA256SUMS.minisig"}
IMAGES = "images/images.tar"
COMPONENTS = ("images", "collection", "collections", "wheels", "docs", "os-packages")
# Components a build may leave out (`--without`): the images and the release manifest always go in.
OPTIONAL_COMPONENTS = ("collection", "collections", "wheels", "docs", "os-packages")
_CHUNK = 1 << 20
_SUM_LINE = re.compile(r"^([0-9a-f]{64}) [ *](.+)$")


class ArchiveImage(StrictModel):
    module: str
    reference: str  # repository@digest, as the release manifest pins it
    digest: str  # the registry's manifest digest
    image_id: str  # Docker's image ID (the config's sha256): what `docker load` gives back
    size: int  # bytes, as Docker reports the image


class ArchiveCollection(StrictModel):
    name: str
    version: str
    file: str


class ArchiveOsRepository(StrictModel):
    profile: str  # a host profile (khronika_ops.host_support): "debian-12"
    packages: list[str]  # what the roles install there (khronika_ops.os_packages), without dependencies
    files: list[str]  # the members its hosts need: os/pool/*.deb and os/dists/<profile>/*
    bytes: int  # the size of its package files
    signed: bool  # InRelease signed with the archive's GPG key


class ArchiveManifest(StrictModel):
    format: int = FORMAT
    release: str
    kind: str
    built_at: str  # UTC, ISO 8601
    built_by: str  # khronika-ops version
    components: list[str]
    images: list[ArchiveImage]
    collection: str | None = None  # the collection tarball's member
    collections: list[ArchiveCollection] = Field(default_factory=list)
    python: str | None = None  # the wheels' interpreter, e.g. "3.11"
    wheels: list[str] = Field(default_factory=list)
    signature: Literal["gpg", "minisign"] | None = None
    os_repositories: list[ArchiveOsRepository] = Field(default_factory=list)

    def os_repository(self, profile: str) -> ArchiveOsRepository | None:
        return next((repo for repo in self.os_repositories if repo.profile == profile), None)


def top_folder(release: str) -> str:
    return f"khronika-{release}"


def default_file_name(release: str) -> str:
    return f"khronika-{release}.tar"


def release_member(release: str) -> str:
    return f"release/{release}.yml"


def check_member_name(name: str) -> str | None:
    """Why a member name is unsafe to extract, or None: no absolute paths, no '..', no backslashes."""
    path = PurePosixPath(name)
    if path.is_absolute() or ".." in path.parts or "\\" in name or not name:
        return "its path is absolute or leaves the archive's folder"
    return None


def sha256_stream(stream: IO[bytes], progress: Callable[[int], None] | None = None) -> str:
    digest = hashlib.sha256()
    while chunk := stream.read(_CHUNK):
        digest.update(chunk)
        if progress is not None:
            progress(len(chunk))
    return digest.hexdigest()


def format_checksums(sums: Mapping[str, str]) -> str:
    return "".join(f"{sums[name]}  {name}\n" for name in sorted(sums))


def parse_checksums(text: str) -> dict[str, str]:
    """SHA256SUMS as written by format_checksums (or `sha256sum`); ValueError names the bad line."""
    sums: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        match = _SUM_LINE.match(line)
        if match is None:
            raise ValueError(f"{CHECKSUMS} line {number} is not '<sha256>  <member>': {line[:120]}")
        digest, name = match.groups()
        if (reason := check_member_name(name)) is not None:
            raise ValueError(f"{CHECKSUMS} line {number} names {name}: {reason}")
        if name in sums:
            raise ValueError(f"{CHECKSUMS} lists {name} twice")
        sums[name] = digest
    return sums


def load_tags(manifest: ArchiveManifest, images: Iterable[str]) -> list[dict[str, str]]:
    """For each image a plan runs from the archive (`repository:sha256-<hex>`, IMAGE_SOURCES 'archive'),
    the image ID the archive loads for it: [{name, image_id}]. ValueError when the archive lacks one."""
    by_digest = {image.digest: image for image in manifest.images}
    tags: list[dict[str, str]] = []
    missing: list[str] = []
    for name in sorted(set(images)):
        reference = parse_image_reference(name)
        digest = (reference.tag or "").replace("-", ":", 1)
        image = by_digest.get(digest)
        if image is None or reference.digest is not None or archive_tag(digest) != reference.tag:
            missing.append(name)  # (a digest by_digest knows is well formed: archive_tag accepts it)
            continue
        tags.append({"name": name, "image_id": image.image_id})
    if missing:
        raise ValueError(
            f"the archive of release {manifest.release} holds no image for {', '.join(missing)} "
            "(is it the archive of the release being deployed?)"
        )
    return tags
