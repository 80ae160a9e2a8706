"""Checking an installation archive, and taking members out of it safely.

`verify` reads the archive once, start to end: every member's sha256 against SHA256SUMS, members missing
from it or not listed in it, unsafe names and links, a truncated file, the manifest's release, and the
signature of SHA256SUMS when there is one (and a key to check it with). Every problem found is reported,
each naming its member. `extract` takes members out only after their bytes hashed to the listed sums,
writing to a temporary name first, so a damaged member never lands under its real name.
"""

from __future__ import annotations

import hashlib
import json
import tarfile
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError

from khronika_ops.archive import layout
from khronika_ops.archive.signing import SigningError, verify_signature
from khronika_ops.validation import readable


class ArchiveError(RuntimeError):
    """The archive is refused; `problems` lists every reason, each naming its member."""

    def __init__(self, path: Path | str, problems: list[str]) -> None:
        self.path = str(path)
        self.problems = problems
        super().__init__(f"{path}: refused: " + "; ".join(problems))


@dataclass
class Verified:
    path: Path
    manifest: layout.ArchiveManifest
    sums: dict[str, str]
    sizes: dict[str, int]
    signature: str  # "gpg: <who signed>", "not signed", "signed (gpg), not checked: no key given"
    problems: list[str] = field(default_factory=list)


def _member_problem(member: tarfile.TarInfo, top: str) -> str | None:
    if not (member.isfile() or member.isdir()):
        return f"{member.name}: is a link or special file; an archive holds only files and folders"
    if (reason := layout.check_member_name(member.name)) is not None:
        return f"{member.name}: {reason}"
    if member.name != top and not member.name.startswith(top + "/"):
        return f"{member.name}: lies outside the archive's folder {top}/"
    return None


#: Names that tell an image tar (`docker save`, an OCI layout) from an installation archive.
_IMAGE_TAR_NAMES = ("manifest.json", "repositories", "oci-layout", "index.json")
#: Members looked at before a tar whose first member lies outside any khronika-<release>/ folder is
#: called what it is (not an installation archive), instead of listing each of its members.
_SNIFF_MEMBERS = 64


def _what_it_is(names: list[str]) -> str:
    """One line for a tar that is not an installation archive, saying what it seems to be instead."""
    tops = {name.split("/", 1)[0] for name in names}
    if tops & set(_IMAGE_TAR_NAMES) or any(name.startswith("blobs/") for name in names):
        return (
            "this is a container image tar (docker save or an OCI layout), not an installation archive: "
            "`khronika archive build` makes one (a khronika-<release>/ folder with archive.json and SHA256SUMS)"
        )
    return (
        "this is not an installation archive: it has no khronika-<release>/ folder with archive.json and "
        "SHA256SUMS (`khronika archive build` makes one)"
    )


def _size_problem(member: tarfile.TarInfo, archive_bytes: int) -> str | None:
    """A member that cannot be what it says: sparse (its declared size is not in the file), or larger
    than the whole archive file. Read anyway, either would make `verify` hash gigabytes of nothing."""
    if member.issparse():
        return f"{member.name}: is a sparse file; an archive holds only plain files"
    if member.size > archive_bytes:
        return (
            f"{member.name}: declares {member.size:,} bytes, more than the whole archive file "
            f"({archive_bytes:,} bytes): the file is truncated or not a tar archive made by khronika"
        )
    return None


def verify(
    path: str | Path,
    *,
    release: str | None = None,
    key: str | Path | None = None,
    allow_unsigned: bool = False,
    progress: Callable[[int], None] | None = None,
) -> Verified:
    """The archive's manifest and sums when everything holds, else ArchiveError with every problem.
    `release`: the release asked for (another release's archive is refused); `key`: the keyring (gpg) or
    public key file (minisign) the signature is checked with: given, a valid signature is required (an
    archive whose signature was removed is refused). Without a key the archive is refused unless
    `allow_unsigned`, and then its signature, if any, is not checked (Verified.signature says so)."""
    path = Path(path)
    if not path.is_file():
        what = (
            "is a folder, not an archive file"
            if path.is_dir()
            else "is not a regular file"
            if path.exists()
            else "no such file"
        )
        raise ArchiveError(path, [what])
    archive_bytes = path.stat().st_size
    problems: list[str] = []
    actual: dict[str, str] = {}
    sizes: dict[str, int] = {}
    texts: dict[str, bytes] = {}
    top: str | None = None
    current: str | None = None  # the member being read, named when the file ends inside it
    small = {layout.MANIFEST, layout.CHECKSUMS, *layout.SIGNATURES.values()}
    seen: set[str] = set()
    try:
        with tarfile.open(path, mode="r:") as archive:
            for member in archive:
                if top is None:
                    top = member.name.split("/", 1)[0]
                    if not top.startswith("khronika-") or not (member.isdir() or "/" in member.name):
                        names = [member.name]
                        for other in archive:
                            names.append(other.name)
                            if len(names) >= _SNIFF_MEMBERS:
                                break
                        raise ArchiveError(path, [_what_it_is(names)])
                normalised = member.name.rstrip("/")
                if normalised in seen:
                    problems.append(
                        f"{member.name}: appears more than once; a tool that extracts it would keep "
                        "the last copy, which need not be the one checked"
                    )
                    continue
                seen.add(normalised)
                if (problem := _size_problem(member, archive_bytes)) is not None:
                    # What follows it in the file is not where its header says: stop at the first.
                    raise ArchiveError(path, [*problems, problem])
                if (problem := _member_problem(member, top)) is not None:
                    problems.append(problem)
                    continue
                if member.isdir():
                    continue
                name = current = member.name[len(top) + 1 :]
                stream = archive.extractfile(member)
                assert stream is not None
                if name in small:
                    data = stream.read(16 << 20)
                    texts[name] = data
                    actual[name] = hashlib.sha256(data).hexdigest()
                    if progress is not None:
                        progress(len(data))
                else:
                    actual[name] = layout.sha256_stream(stream, progress)
                sizes[name] = member.size
                current = None
    except (tarfile.TarError, EOFError, OSError) as exc:
        if current is not None:
            where = f" inside member {current}"
        else:
            where = f" after member {list(actual)[-1]}" if actual else ""
        raise ArchiveError(path, [f"the file is truncated or not a tar archive{where} ({exc})"]) from exc
    if top is None:
        raise ArchiveError(path, ["the archive is empty"])

    sums: dict[str, str] = {}
    if layout.CHECKSUMS not in texts:
        problems.append(f"{layout.CHECKSUMS}: missing; nothing in the archive can be checked")
    else:
        try:
            sums = layout.parse_checksums(texts[layout.CHECKSUMS].decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            problems.append(f"{layout.CHECKSUMS}: {exc}")
    unlisted = set(layout.SIGNATURES.values()) | {layout.CHECKSUMS}
    for name in sorted(set(sums) | set(actual)):
        if name in unlisted:
            continue
        if name not in actual:
            problems.append(f"{name}: listed in {layout.CHECKSUMS} but missing from the archive")
        elif name not in sums:
            problems.append(f"{name}: in the archive but not listed in {layout.CHECKSUMS}")
        elif sums[name] != actual[name]:
            problems.append(
                f"{name}: checksum mismatch (listed {sums[name]}, the member hashes to {actual[name]})"
            )

    manifest = None
    if layout.MANIFEST in texts:
        try:
            manifest = layout.ArchiveManifest.model_validate(json.loads(texts[layout.MANIFEST]))
        except ValidationError as exc:
            problems.append(f"{layout.MANIFEST}: not an archive manifest ({readable(exc)})")
        except ValueError as exc:
            problems.append(f"{layout.MANIFEST}: not an archive manifest (not JSON: {exc})")
    else:
        problems.append(f"{layout.MANIFEST}: missing")
    if manifest is not None:
        if top != layout.top_folder(manifest.release):
            problems.append(
                f"{top}/: the folder of release {manifest.release} is {layout.top_folder(manifest.release)}/"
            )
        if release is not None and manifest.release != release:
            problems.append(
                f"{layout.MANIFEST}: the archive holds release {manifest.release}, not the release asked for ({release})"
            )
        for needed in (layout.release_member(manifest.release), layout.IMAGES):
            if needed not in actual:
                problems.append(f"{needed}: missing")
        for repo in manifest.os_repositories:
            lost = [name for name in repo.files if name not in actual]
            if lost:
                problems.append(
                    f"OS packages of {repo.profile}: {len(lost)} member(s) missing, e.g. {', '.join(lost[:3])}"
                )

    signature = _check_signature(texts, sums, key, allow_unsigned, problems)
    if problems or manifest is None:
        raise ArchiveError(path, problems)
    return Verified(path=path, manifest=manifest, sums=sums, sizes=sizes, signature=signature)


#: Verified.signature starts with this when the operator let an archive through unchecked.
UNCHECKED = "NOT CHECKED"


def _check_signature(
    texts: dict[str, bytes],
    sums: dict[str, str],
    key: str | Path | None,
    allow_unsigned: bool,
    problems: list[str],
) -> str:
    """What the signature says (a trusted signer), or a problem: a key given requires a valid signature,
    as a deb822 source with Signed-By does; only `allow_unsigned` lets an archive through unchecked."""
    present = [(scheme, name) for scheme, name in layout.SIGNATURES.items() if name in texts]
    if key is None:
        if not allow_unsigned:
            said = f"signed with {present[0][0]}" if present else "not signed"
            problems.append(
                f"{layout.CHECKSUMS}: {said}, and no key was given to check it with: give the site's trusted "
                "key (--key, khronika_archive_key), or accept an unchecked archive explicitly "
                "(--allow-unsigned, khronika_archive_allow_unsigned=true)"
            )
            return "not checked"
        if present:
            return f"{UNCHECKED}: signed ({present[0][0]}), no key given (--allow-unsigned)"
        return f"{UNCHECKED}: not signed (--allow-unsigned)"
    if not present:
        problems.append(
            f"{layout.CHECKSUMS}: not signed, but a key was given: a valid signature is required "
            f"({' or '.join(layout.SIGNATURES.values())} is missing; an archive whose signature was "
            "removed is refused)"
        )
        return "missing"
    scheme, name = present[0]
    if not sums:
        problems.append(f"{name}: cannot be checked: {layout.CHECKSUMS} is unreadable")
        return f"{scheme}: not checked"
    with tempfile.TemporaryDirectory(prefix="khronika-archive-sig-") as folder:
        checksums = Path(folder) / layout.CHECKSUMS
        checksums.write_bytes(texts[layout.CHECKSUMS])
        signature_file = Path(folder) / name
        signature_file.write_bytes(texts[name])
        try:
            said = verify_signature(scheme, checksums, signature_file, Path(key))  # type: ignore[arg-type]
        except SigningError as exc:
            problems.append(f"{name}: {exc}")
            return f"{scheme}: BAD"
    who = next((line for line in said.splitlines() if "Good signature" in line or "verified" in line), said)
    return f"{scheme}: {who.strip()}"


def extract(verified: Verified, members: Iterable[str], dest: Path) -> tuple[dict[str, Path], list[str]]:
    """Takes `members` (names inside the archive's folder) out to dest/<name>, each written under a
    temporary name, hashed on the way and renamed only when it matches its listed sum. A file already at
    dest with the right sum is kept (nothing written). Returns (name -> path, the names written)."""
    wanted = set(members)
    unknown = sorted(wanted - set(verified.sums))
    if unknown:
        raise ArchiveError(verified.path, [f"{name}: not in the archive" for name in unknown])
    out: dict[str, Path] = {}
    todo: set[str] = set()
    for name in wanted:
        target = dest / name
        if target.is_file() and target.stat().st_size == verified.sizes.get(name):
            with target.open("rb") as existing:
                if layout.sha256_stream(existing) == verified.sums[name]:
                    out[name] = target
                    continue
        todo.add(name)
    if not todo:
        return out, []
    top = layout.top_folder(verified.manifest.release)
    with tarfile.open(verified.path, mode="r:") as archive:
        for member in archive:
            name = member.name[len(top) + 1 :]
            if name not in todo or not member.isfile():
                continue
            target = dest / name
            target.parent.mkdir(parents=True, exist_ok=True)
            partial = target.with_name(f".{target.name}.partial")
            stream = archive.extractfile(member)
            assert stream is not None
            digest = hashlib.sha256()
            with partial.open("wb") as handle:
                while chunk := stream.read(1 << 20):
                    digest.update(chunk)
                    handle.write(chunk)
            if digest.hexdigest() != verified.sums[name]:
                partial.unlink()
                raise ArchiveError(
                    verified.path, [f"{name}: changed since it was verified (checksum mismatch)"]
                )
            partial.replace(target)
            out[name] = target
    return out, sorted(todo)
