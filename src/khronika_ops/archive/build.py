"""`khronika archive build`: one installation archive for a release.

Everything is gathered in a staging folder beside the output (the images saved from the controller's
Docker, pulled by digest first when missing; the collection built with ansible-galaxy; the pinned
collections of requirements.yml from where ansible-core finds them (khronika_ops.doctor); khronika-ops' wheel and its
dependencies for this Python, with the repository's constraints; the docs), hashed into SHA256SUMS,
optionally signed, then written as one tar under a temporary name and renamed into place: an interrupted
build leaves no archive, and the staging folder is removed whatever happens.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from khronika_ops import __version__, safe_yaml
from khronika_ops.archive import layout, os_repo
from khronika_ops.archive.signing import Signer
from khronika_ops.doctor import ansible_tool, collection_search_paths, find_collection
from khronika_ops.platform.images import parse_image_reference
from khronika_ops.platform.release import Release, find_release

DOC_FILES = ("README.md", "CHANGELOG.md", "LICENSE")


class BuildError(RuntimeError):
    """The archive cannot be built; the message says why. Nothing is left behind."""


# step name, bytes done so far, bytes in the step (0 when unknown)
Progress = Callable[[str, int, int], None]


@dataclass
class BuildOptions:
    release: str
    source: Path  # a khronika-ops checkout (the collection, docs, pyproject and constraints come from it)
    releases_dir: Path
    output: Path | None = None
    registry: str | None = None  # where images whose reference names no registry are pulled from
    without: set[str] = field(default_factory=set)
    signer: Signer | None = None
    requirements: Path | None = None  # default: source/requirements.yml
    os_profiles: list[str] = field(default_factory=lambda: list(os_repo.DEFAULT_PROFILES))
    os_images: dict[str, str] = field(default_factory=dict)  # profile -> base image (default: BASE_IMAGES)


@dataclass
class BuildResult:
    path: Path
    bytes: int
    seconds: float
    manifest: layout.ArchiveManifest
    steps: dict[str, float]  # step -> seconds


def _run(command: list[str], what: str, **kwargs: object) -> str:
    try:
        done = subprocess.run(command, capture_output=True, text=True, check=False, **kwargs)  # type: ignore[call-overload]
    except FileNotFoundError as exc:
        raise BuildError(f"{what}: {command[0]} is not installed") from exc
    if done.returncode != 0:
        said = (done.stderr or done.stdout).strip().splitlines()
        raise BuildError(f"{what} failed: {' / '.join(said[-3:]) or f'exit status {done.returncode}'}")
    return str(done.stdout)


def check_options(options: BuildOptions) -> Release:
    """Everything that can be refused before any work: the release, the components, the source."""
    unknown = options.without - set(layout.OPTIONAL_COMPONENTS)
    if unknown:
        raise BuildError(
            f"--without takes {', '.join(layout.OPTIONAL_COMPONENTS)}; not {', '.join(sorted(unknown))} "
            "(the images and the release manifest are what an archive is for)"
        )
    if not (options.source / "galaxy.yml").is_file():
        raise BuildError(f"{options.source} is not a khronika-ops checkout (no galaxy.yml)")
    try:
        release = find_release(options.releases_dir, options.release)
    except Exception as exc:  # ReleaseError and friends: their text says what is wrong
        raise BuildError(str(exc)) from exc
    for module in release.modules:
        if module.reference.registry is None and not options.registry:
            raise BuildError(
                f"module {module.name}: image {module.image} names no registry; give --registry HOST[:PORT] "
                "to pull it from (or build where the image is already in Docker under that name)"
            )
    return release


def _pull_reference(image: str, registry: str | None) -> str:
    reference = parse_image_reference(image)
    if reference.registry is None and registry:
        return f"{registry.rstrip('/')}/{reference.path}@{reference.digest}"
    return image


def _images(
    release: Release, options: BuildOptions, staging: Path, progress: Progress
) -> list[layout.ArchiveImage]:
    images: list[layout.ArchiveImage] = []
    references: list[str] = []
    for module in release.modules:
        pull = _pull_reference(module.image, options.registry)
        inspect = subprocess.run(
            ["docker", "image", "inspect", pull], capture_output=True, text=True, check=False
        )
        if inspect.returncode != 0:
            progress(f"pulling {pull}", 0, 0)
            _run(["docker", "pull", "--quiet", pull], f"docker pull {pull}", timeout=1800)
        data = json.loads(_run(["docker", "image", "inspect", pull], f"docker image inspect {pull}"))[0]
        images.append(
            layout.ArchiveImage(
                module=module.name,
                reference=module.image,
                digest=module.digest,
                image_id=str(data["Id"]),
                size=int(data.get("Size", 0)),
            )
        )
        references.append(pull)
    target = staging / layout.IMAGES
    target.parent.mkdir(parents=True)
    total = sum(image.size for image in images)
    progress("saving images", 0, total)
    _run(["docker", "save", "--output", str(target), *dict.fromkeys(references)], "docker save", timeout=3600)
    return images


def _collection(options: BuildOptions, staging: Path) -> str:
    folder = staging / "collection"
    folder.mkdir()
    _run(
        [
            ansible_tool("ansible-galaxy"),
            "collection",
            "build",
            str(options.source),
            "--output-path",
            str(folder),
        ],
        "ansible-galaxy collection build",
        timeout=600,
    )
    built = sorted(folder.glob("*.tar.gz"))
    if len(built) != 1:
        raise BuildError(f"ansible-galaxy collection build made {len(built)} files, expected one")
    return f"collection/{built[0].name}"


def _collections(options: BuildOptions, staging: Path) -> list[layout.ArchiveCollection]:
    requirements = options.requirements or options.source / "requirements.yml"
    data = safe_yaml.load_file(requirements) or {}
    search_paths = collection_search_paths()
    folder = staging / "collections"
    folder.mkdir()
    out: list[layout.ArchiveCollection] = []
    for entry in data.get("collections", []):
        fqcn, version = str(entry["name"]), str(entry.get("version", ""))
        have = find_collection(fqcn, search_paths)
        if have is None or have[0] != version:
            found = f"version {have[0]} at {have[1]}" if have else "not installed"
            raise BuildError(
                f"collection {fqcn} {version} (requirements.yml) is {found}: run scripts/setup.sh"
            )
        namespace, name = fqcn.split(".", 1)
        file_name = f"{namespace}-{name}-{version}.tar.gz"
        with tarfile.open(folder / file_name, "w:gz") as tar:
            tar.add(have[1], arcname=f"ansible_collections/{namespace}/{name}", filter=_no_bytecode)
        out.append(layout.ArchiveCollection(name=fqcn, version=version, file=f"collections/{file_name}"))
    return out


def _no_bytecode(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
    return None if "__pycache__" in info.name.split("/") or info.name.endswith(".pyc") else info


def _wheels(options: BuildOptions, staging: Path) -> list[str]:
    from khronika_ops.wheelhouse import WheelhouseError, ensure_wheel

    folder = staging / "wheels"
    folder.mkdir()
    try:
        wheel, _, _ = ensure_wheel(options.source)
    except WheelhouseError as exc:
        raise BuildError(str(exc)) from exc
    command = [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check"]
    command += ["--only-binary=:all:", "--dest", str(folder), str(wheel)]
    constraints = options.source / "constraints.txt"
    if constraints.is_file():
        command += ["--constraint", str(constraints)]
    _run(command, "pip download of the controller's wheels", timeout=3600)
    return sorted(f"wheels/{path.name}" for path in folder.iterdir())


def _docs(options: BuildOptions, staging: Path) -> None:
    folder = staging / "docs"
    folder.mkdir()
    for name in DOC_FILES:
        if (options.source / name).is_file():
            shutil.copy2(options.source / name, folder / name)
    if (options.source / "docs").is_dir():
        shutil.copytree(options.source / "docs", folder, dirs_exist_ok=True)


def _os_packages(options: BuildOptions, staging: Path, report: Progress) -> list[layout.ArchiveOsRepository]:
    signer = options.signer if options.signer is not None and options.signer.scheme == "gpg" else None
    try:
        built = os_repo.build_repositories(
            staging,
            options.os_profiles,
            options.os_images,
            clear_sign=signer.clear_sign if signer is not None else None,
            report=lambda text: report(text, 0, 0),
        )
    except (os_repo.OsRepoError, OSError) as exc:
        raise BuildError(f"OS packages: {exc}") from exc
    return [
        layout.ArchiveOsRepository(
            profile=repo.profile,
            packages=repo.packages,
            files=repo.files,
            bytes=repo.bytes,
            signed=signer is not None,
        )
        for repo in built
    ]


def _files(staging: Path) -> list[str]:
    return sorted(
        str(path.relative_to(staging)).replace(os.sep, "/") for path in staging.rglob("*") if path.is_file()
    )


def build(options: BuildOptions, progress: Progress | None = None) -> BuildResult:
    report: Progress = progress or (lambda step, done, total: None)
    started = time.monotonic()
    release = check_options(options)
    output = (options.output or Path(layout.default_file_name(release.version))).resolve()
    if output.is_dir():
        raise BuildError(
            f"--output {output} is a folder; name the archive file (khronika-{release.version}.tar)"
        )
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".khronika-archive-", dir=output.parent))
    except OSError as exc:
        raise BuildError(f"--output {output}: cannot write in {output.parent}: {exc.strerror}") from None
    steps: dict[str, float] = {}
    built_at = datetime.now(UTC).replace(microsecond=0)
    partial = output.with_name(f".{output.name}.partial")
    try:

        def step(name: str, work: Callable[[], object]) -> object:
            began = time.monotonic()
            report(name, 0, 0)
            result = work()
            steps[name] = round(time.monotonic() - began, 1)
            return result

        images = step("images", lambda: _images(release, options, staging, report))
        release_file = staging / layout.release_member(release.version)
        release_file.parent.mkdir(parents=True)
        shutil.copy2(Path(options.releases_dir) / f"{release.version}.yml", release_file)
        components = ["images"]
        collection = collections = wheels = None
        if "collection" not in options.without:
            collection = step("collection", lambda: _collection(options, staging))
            components.append("collection")
        if "collections" not in options.without:
            collections = step("collections", lambda: _collections(options, staging))
            components.append("collections")
        if "wheels" not in options.without:
            wheels = step("wheels", lambda: _wheels(options, staging))
            components.append("wheels")
        if "docs" not in options.without:
            step("docs", lambda: _docs(options, staging))
            components.append("docs")
        repositories: list[layout.ArchiveOsRepository] = []
        if "os-packages" not in options.without and options.os_profiles:
            repositories = step("os-packages", lambda: _os_packages(options, staging, report))  # type: ignore[assignment]
            components.append("os-packages")
        manifest = layout.ArchiveManifest(
            release=release.version,
            kind=release.kind,
            built_at=built_at.isoformat().replace("+00:00", "Z"),
            built_by=__version__,
            components=components,
            images=images,
            collection=collection,
            collections=collections or [],
            python=f"{sys.version_info.major}.{sys.version_info.minor}" if wheels is not None else None,
            wheels=wheels or [],
            signature=options.signer.scheme if options.signer else None,
            os_repositories=repositories,
        )
        (staging / layout.MANIFEST).write_text(manifest.model_dump_json(indent=2) + "\n", encoding="utf-8")
        step("checksums", lambda: _write_checksums(staging, report))
        if options.signer is not None:
            step("signing", lambda: options.signer.sign(staging / layout.CHECKSUMS))  # type: ignore[union-attr]
        step("archive", lambda: _write_tar(staging, partial, release.version, built_at, report))
        partial.replace(output)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return BuildResult(
        path=output,
        bytes=output.stat().st_size,
        seconds=round(time.monotonic() - started, 1),
        manifest=manifest,
        steps=steps,
    )


def _write_checksums(staging: Path, report: Progress) -> None:
    """SHA256SUMS of every member staged so far (the signature, made after it, is the only one left out)."""
    members = _files(staging)
    total = sum((staging / name).stat().st_size for name in members)
    done = 0

    def advance(count: int) -> None:
        nonlocal done
        done += count
        report("checksums", done, total)

    sums = {}
    for name in members:
        with (staging / name).open("rb") as handle:
            sums[name] = layout.sha256_stream(handle, advance)
    (staging / layout.CHECKSUMS).write_text(layout.format_checksums(sums), encoding="utf-8")


def _write_tar(staging: Path, target: Path, release: str, built_at: datetime, report: Progress) -> None:
    """The members in a fixed order (manifest, sums and signature first, so a reader knows what to expect),
    owned by root, dated at the build time."""
    first = [layout.MANIFEST, layout.CHECKSUMS, *layout.SIGNATURES.values()]
    names = [name for name in first if (staging / name).is_file()]
    names += [name for name in _files(staging) if name not in names]
    top = layout.top_folder(release)
    total = sum((staging / name).stat().st_size for name in names)
    done = 0
    mtime = int(built_at.timestamp())
    with tarfile.open(target, mode="w", format=tarfile.PAX_FORMAT) as tar:
        folders: set[str] = set()
        for name in names:
            parts = name.split("/")
            for depth in range(len(parts)):
                folder = "/".join([top, *parts[:depth]])
                if folder not in folders:
                    folders.add(folder)
                    info = tarfile.TarInfo(folder)
                    info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, mtime
                    tar.addfile(info)
            path = staging / name
            info = tarfile.TarInfo(f"{top}/{name}")
            info.size, info.mode, info.mtime = path.stat().st_size, 0o644, mtime
            with path.open("rb") as handle:
                tar.addfile(info, handle)
            done += info.size
            report("archive", done, total)
