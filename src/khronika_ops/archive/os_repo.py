"""The archive's OS packages: a flat apt repository per host profile, shared files stored once.

    os/pool/<package>_<version>_<arch>.deb     every profile's packages (one file where two profiles share it)
    os/dists/<profile>/Packages                 the profile's index (Filename relative to os/)
    os/dists/<profile>/Release                  SHA256 of Packages; Origin "khronika-ops"
    os/dists/<profile>/InRelease                Release clear-signed with the archive's GPG key (when it is)

The packages are resolved inside a container of the profile's own base image (the local
khronika/debian-systemd images, debootstrapped from the machine's configured mirror): `apt-get install
--download-only` of every list of khronika_ops.os_packages for that profile, so the dependency closure is
the one a freshly installed host of that release needs (recommends included, as the roles install them).
The Packages index is written here from each .deb's own control file (a bounded ar/tar reader).
"""

from __future__ import annotations

import hashlib
import io
import lzma
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
import zlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path

from khronika_ops.host_support import parse_os_release, profile_from_os_release
from khronika_ops.os_packages import archive_groups

ROOT = "os"
POOL = "os/pool"
ORIGIN = "khronika-ops"
# Profiles an archive can carry: a local base image of that exact release resolves their closure.
BASE_IMAGES: dict[str, str] = {
    "debian-12": "khronika/debian-systemd:bookworm",
    "debian-13": "khronika/debian-systemd:trixie",
}
DEFAULT_PROFILES = ("debian-12", "debian-13")
_DEB_MAX_CONTROL = 1 << 20  # a control.tar larger than 1 MiB is not a package's metadata
_AR_MAGIC = b"!<arch>\n"
_NAME = re.compile(r"^[a-z0-9][a-z0-9+.-]+$")


class OsRepoError(RuntimeError):
    """The OS packages cannot be resolved or indexed; the message says why."""


def suite_dir(profile: str) -> str:
    return f"{ROOT}/dists/{profile}"


@dataclass(frozen=True)
class Deb:
    """One package file: its control fields (in order) and where it lies."""

    control: str  # the control file's text, stripped
    file: str  # pool/<name>, relative to os/
    size: int
    sha256: str
    md5: str

    @property
    def package(self) -> str:
        return _field(self.control, "Package")


def _field(control: str, name: str) -> str:
    match = re.search(rf"^{re.escape(name)}:\s*(.*)$", control, re.MULTILINE)
    return match.group(1).strip() if match else ""


def read_control(path: Path) -> str:
    """The control file of a .deb (ar archive with control.tar.{xz,gz}); OsRepoError when it is not one."""
    with path.open("rb") as handle:
        if handle.read(8) != _AR_MAGIC:
            raise OsRepoError(f"{path.name} is not a Debian package (no ar header)")
        for _ in range(16):  # debian-binary, control.tar.*, data.tar.*: a few members at most
            header = handle.read(60)
            if len(header) < 60:
                break
            name = header[:16].decode("ascii", "replace").strip().rstrip("/")
            try:
                size = int(header[48:58].decode("ascii").strip())
            except ValueError:
                raise OsRepoError(f"{path.name}: a damaged ar member header") from None
            if name.startswith("control.tar"):
                if size > _DEB_MAX_CONTROL:
                    raise OsRepoError(f"{path.name}: control member of {size} bytes (more than 1 MiB)")
                data = handle.read(size)
                if name.endswith(".xz"):
                    data = lzma.decompress(data)
                elif name.endswith(".gz"):
                    data = zlib.decompress(data, 16 + zlib.MAX_WBITS)
                elif name != "control.tar":
                    raise OsRepoError(f"{path.name}: {name} is compressed in a way this reader does not know")
                with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
                    for member in tar:
                        if member.name in ("./control", "control") and member.isfile():
                            if member.size > _DEB_MAX_CONTROL:
                                break
                            stream = tar.extractfile(member)
                            assert stream is not None
                            return stream.read().decode("utf-8", "replace").strip()
                raise OsRepoError(f"{path.name}: no control file in {name}")
            handle.seek(size + (size % 2), os.SEEK_CUR)
    raise OsRepoError(f"{path.name}: no control member")


def index_deb(path: Path, pool_name: str) -> Deb:
    sha256, md5 = hashlib.sha256(), hashlib.md5()  # apt's MD5sum field, beside SHA256
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            sha256.update(chunk)
            md5.update(chunk)
    return Deb(read_control(path), pool_name, path.stat().st_size, sha256.hexdigest(), md5.hexdigest())


def packages_index(debs: Iterable[Deb]) -> str:
    """The Packages file: each package's control fields, then where it lies and its sums."""
    stanzas = []
    for deb in sorted(debs, key=lambda item: (item.package, item.file)):
        stanzas.append(
            f"{deb.control}\nFilename: {deb.file}\nSize: {deb.size}\nMD5sum: {deb.md5}\nSHA256: {deb.sha256}\n"
        )
    return "\n".join(stanzas)


def release_file(profile: str, codename: str, packages: bytes, when: datetime) -> str:
    digest = hashlib.sha256(packages).hexdigest()
    return (
        f"Origin: {ORIGIN}\nLabel: {ORIGIN} installation archive\nSuite: {profile}\nCodename: {codename}\n"
        f"Date: {format_datetime(when.astimezone(UTC), usegmt=True)}\nArchitectures: amd64 all\n"
        f"Description: OS packages of the installation archive for {profile}\n"
        f"SHA256:\n {digest} {len(packages)} Packages\n"
    )


def _docker(command: list[str], what: str, timeout: int) -> str:
    try:
        done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=timeout)
    except FileNotFoundError:
        raise OsRepoError(f"{what}: docker is not installed") from None
    except subprocess.TimeoutExpired:
        raise OsRepoError(f"{what}: no answer in {timeout} s") from None
    if done.returncode != 0:
        said = (done.stderr or done.stdout).strip().splitlines()
        raise OsRepoError(f"{what} failed: {' / '.join(said[-4:]) or f'exit status {done.returncode}'}")
    return done.stdout


def _download_script(groups: list[list[str]]) -> str:
    # Packages of the base image itself are not downloaded: a host of that release has them already.
    # Each group is resolved on its own (alternatives conflict with the main set).
    installs = "; ".join(
        f"apt-get install -y -qq --download-only {' '.join(group)} >> /out/apt.log" for group in groups
    )
    return (
        "set -e; export DEBIAN_FRONTEND=noninteractive; cat /etc/os-release > /out/os-release; "
        f"rm -f /var/cache/apt/archives/*.deb; apt-get update -qq; {installs}; "
        "cp /var/cache/apt/archives/*.deb /out/ 2>/dev/null || true"
    )


def download(
    profile: str, image: str, groups: list[list[str]], dest: Path
) -> tuple[list[Path], dict[str, str]]:
    """The .deb files of each group of packages and their dependencies, as a fresh host of `image` needs
    them, into dest; returns them with the image's os-release values (checked to be `profile`'s)."""
    for name in (name for group in groups for name in group):
        if not _NAME.match(name):
            raise OsRepoError(f"{name!r} is not a Debian package name")
    environment: list[str] = []
    for variable in ("http_proxy", "https_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY"):
        if os.environ.get(variable):
            environment += ["--env", f"{variable}={os.environ[variable]}"]
    dest.mkdir(parents=True, exist_ok=True)
    _docker(
        ["docker", "image", "inspect", "--format", "{{.Id}}", image],
        f"the base image {image} of {profile}",
        60,
    )
    command = ["docker", "run", "--rm", "--network", "bridge", *environment, "--volume", f"{dest}:/out"]
    command += ["--entrypoint", "/bin/sh", image, "-c", _download_script(groups)]
    _docker(command, f"resolving the {profile} packages in {image}", 1800)
    values = parse_os_release((dest / "os-release").read_text(encoding="utf-8"))
    seen = profile_from_os_release(values).profile
    if seen != profile:
        raise OsRepoError(f"the base image {image} is {seen or 'an unknown OS'}, not {profile}")
    return sorted(dest.glob("*.deb")), values


@dataclass(frozen=True)
class BuiltRepository:
    profile: str
    packages: list[str]  # the names asked for (the roles' lists)
    files: list[str]  # every member under os/ this profile's hosts need (pool files and dists/<profile>/)
    bytes: int  # the pool files' size


def build_repositories(  # noqa: PLR0917 - the build passes them in order
    staging: Path,
    profiles: Iterable[str],
    images: Mapping[str, str] | None = None,
    clear_sign: Callable[[Path, Path], None] | None = None,
    report: Callable[[str], None] | None = None,
    when: datetime | None = None,
) -> list[BuiltRepository]:
    """Resolves, stores once and indexes each profile's packages under staging/os/."""
    chosen = dict(BASE_IMAGES)
    chosen.update(images or {})
    when = when or datetime.now(UTC)
    pool = staging / POOL
    pool.mkdir(parents=True, exist_ok=True)
    built: list[BuiltRepository] = []
    for profile in dict.fromkeys(profiles):
        if profile not in chosen:
            raise OsRepoError(
                f"no base image for {profile}: an archive carries OS packages for "
                f"{', '.join(sorted(chosen))} (give --os-image {profile}=IMAGE for another)"
            )
        groups = archive_groups({"profile": profile, "id": profile.split("-")[0], "family": "debian"})
        wanted = sorted({name for group in groups for name in group})
        if report:
            report(f"resolving {len(wanted)} packages for {profile} in {chosen[profile]}")
        with tempfile.TemporaryDirectory(prefix=f".os-{profile}-", dir=staging.parent) as work:
            files, values = download(profile, chosen[profile], groups, Path(work))
            debs: list[Deb] = []
            for path in files:
                target = pool / path.name
                if target.exists():
                    if _sha256(target) != _sha256(path):
                        raise OsRepoError(f"two different files are both named {path.name}")
                else:
                    shutil.move(str(path), target)
                debs.append(index_deb(target, f"pool/{path.name}"))
        suite = staging / suite_dir(profile)
        suite.mkdir(parents=True)
        index = packages_index(debs).encode("utf-8")
        (suite / "Packages").write_bytes(index)
        release = suite / "Release"
        release.write_text(
            release_file(profile, values.get("VERSION_CODENAME", profile), index, when), encoding="utf-8"
        )
        if clear_sign is not None:
            clear_sign(release, suite / "InRelease")
        members = [f"{ROOT}/{deb.file}" for deb in debs]
        members += sorted(f"{suite_dir(profile)}/{path.name}" for path in suite.iterdir())
        built.append(BuiltRepository(profile, wanted, sorted(members), sum(deb.size for deb in debs)))
    return built


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def host_bundle(os_dir: Path, files: Iterable[str], target: Path) -> str:
    """One plain tar of a profile's members (paths under os/, as the manifest lists them) for copying to a
    host in one transfer; returns its sha256. Written under a temporary name, renamed when complete."""
    partial = target.with_name(f".{target.name}.partial")
    target.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(partial, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in sorted(files):
            relative = name[len(ROOT) + 1 :]
            info = tar.gettarinfo(str(os_dir / relative), arcname=relative)
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            info.mode = 0o644
            with (os_dir / relative).open("rb") as handle:
                tar.addfile(info, handle)
    partial.replace(target)
    return _sha256(target)
