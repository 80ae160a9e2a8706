"""The installation archive built from a real image in the test registry: verify, every way it is refused
(each naming its member), signatures with GPG and minisign, the wheels installing with no index, and the
controller side of install-offline.yml (action khronika.platform.archive_unpack)."""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import (
    REPO,
    ansible_env,
    docker_available,
    gpg_keyring,
    pinned_test_image,
    require_service,
    tool,
)
from conftest import TEST_REGISTRY_LOCAL as LOCAL
from khronika_ops.archive import layout
from khronika_ops.archive.build import BuildError, BuildOptions, build
from khronika_ops.archive.signing import Signer, SigningError
from khronika_ops.archive.verify import ArchiveError, extract, verify
from khronika_ops.cli import app


@pytest.fixture(scope="module")
def releases(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("releases")
    image = pinned_test_image()
    (folder / "3.0.0.yml").write_text(
        f"version: '3.0.0'\nkind: new-version\ndate: 2026-11-30\nmodules:\n  - name: probe\n    image: {image}\n",
        encoding="utf-8",
    )
    return folder


@pytest.fixture(scope="module", autouse=True)
def _registry_login() -> None:
    state = os.environ.get("KHRONIKA_TEST_REGISTRY_DIR")
    if state:
        os.environ.setdefault("DOCKER_CONFIG", str(Path(state) / "docker-config"))


def _options(releases: Path, output: Path, **kwargs: object) -> BuildOptions:
    values: dict[str, object] = {
        "release": "3.0.0",
        "source": REPO,
        "releases_dir": releases,
        "output": output,
        "registry": LOCAL,
        "without": {"wheels", "os-packages"},
    }
    values.update(kwargs)
    return BuildOptions(**values)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def archive(releases: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    output = tmp_path_factory.mktemp("archive") / "khronika-3.0.0.tar"
    steps: list[str] = []
    result = build(_options(releases, output), lambda step, done, total: steps.append(step))
    assert result.path == output and output.is_file()
    assert {"images", "collection", "collections", "docs", "checksums", "archive"} <= set(steps)
    return output


def _copy(archive: Path, tmp_path: Path) -> Path:
    target = tmp_path / archive.name
    shutil.copy(archive, target)
    return target


def _flip(path: Path, member: str, where: float = 0.5) -> None:
    with tarfile.open(path) as tar:
        info = tar.getmember(f"khronika-3.0.0/{member}")
    with path.open("r+b") as handle:
        handle.seek(info.offset_data + int(info.size * where))
        byte = handle.read(1)
        handle.seek(-1, os.SEEK_CUR)
        handle.write(bytes([byte[0] ^ 0x01]))


def test_the_archive_holds_the_release_and_checks_out(archive: Path, releases: Path, tmp_path: Path) -> None:
    verified = verify(archive, release="3.0.0", allow_unsigned=True)
    manifest = verified.manifest
    assert manifest.release == "3.0.0" and manifest.components == [
        "images",
        "collection",
        "collections",
        "docs",
    ]
    assert [image.module for image in manifest.images] == ["probe"]
    assert manifest.images[0].reference == (releases / "3.0.0.yml").read_text().split("image: ")[1].strip()
    assert manifest.collection and manifest.collection.startswith("collection/khronika-platform-")
    assert {c.name for c in manifest.collections} == {
        "community.docker",
        "ansible.posix",
        "community.library_inventory_filtering_v1",
    }
    assert verified.signature == "NOT CHECKED: not signed (--allow-unsigned)"
    # SHA256SUMS is what `sha256sum -c` reads, from the archive's folder.
    subprocess.run(["tar", "-xf", str(archive), "-C", str(tmp_path)], check=True)
    checked = subprocess.run(
        ["sha256sum", "--check", "--strict", "SHA256SUMS"],
        cwd=tmp_path / "khronika-3.0.0",
        capture_output=True,
        text=True,
        check=False,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    # The images' tar loads into Docker as the image the release pins (its ID recorded in the manifest).
    loaded = subprocess.run(
        ["docker", "load", "-i", str(tmp_path / "khronika-3.0.0" / layout.IMAGES)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert manifest.images[0].image_id in loaded
    # The pinned collections untar into a collections path as Ansible expects them.
    docker = next(c for c in manifest.collections if c.name == "community.docker")
    with tarfile.open(tmp_path / "khronika-3.0.0" / docker.file) as tar:
        meta = tar.extractfile("ansible_collections/community/docker/MANIFEST.json")
        assert meta is not None and json.load(meta)["collection_info"]["version"] == docker.version


@pytest.mark.parametrize(
    ("member", "said"),
    [
        (layout.IMAGES, r"^images/images\.tar: checksum mismatch"),
        ("release/3.0.0.yml", r"^release/3\.0\.0\.yml: checksum mismatch"),
        (layout.MANIFEST, r"^archive\.json: checksum mismatch"),
        # A flipped character in the sums either breaks its line or changes a listed digest.
        (layout.CHECKSUMS, r"SHA256SUMS line \d+ is not|checksum mismatch|not listed in SHA256SUMS"),
    ],
)
def test_a_changed_byte_is_refused_naming_its_member(
    archive: Path, tmp_path: Path, member: str, said: str
) -> None:
    damaged = _copy(archive, tmp_path)
    _flip(damaged, member)
    with pytest.raises(ArchiveError) as caught:
        verify(damaged, release="3.0.0", allow_unsigned=True)
    assert any(re.search(said, problem) for problem in caught.value.problems), caught.value.problems


def test_truncated_missing_added_and_unsafe_members_are_refused(archive: Path, tmp_path: Path) -> None:
    truncated = tmp_path / "truncated.tar"
    truncated.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    with pytest.raises(ArchiveError, match="truncated or not a tar archive"):
        verify(truncated, allow_unsigned=True)

    added = _copy(archive, tmp_path)
    with tarfile.open(added, "a") as tar:
        info = tarfile.TarInfo("khronika-3.0.0/images/extra.tar")
        info.size = 3
        tar.addfile(info, io.BytesIO(b"bad"))
        link = tarfile.TarInfo("khronika-3.0.0/docs/passwd")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tar.addfile(link)
        escape = tarfile.TarInfo("khronika-3.0.0/../../tmp/owned")
        escape.size = 1
        tar.addfile(escape, io.BytesIO(b"x"))
    with pytest.raises(ArchiveError) as caught:
        verify(added, allow_unsigned=True)
    problems = "\n".join(caught.value.problems)
    assert "images/extra.tar: in the archive but not listed in SHA256SUMS" in problems
    assert "docs/passwd: is a link or special file" in problems
    assert "../../tmp/owned: its path is absolute or leaves the archive's folder" in problems

    shorter = tmp_path / "shorter.tar"
    with tarfile.open(archive) as source, tarfile.open(shorter, "w") as tar:
        for info in source:
            if not info.name.endswith("release/3.0.0.yml"):
                tar.addfile(info, source.extractfile(info) if info.isfile() else None)
    with pytest.raises(ArchiveError) as caught:
        verify(shorter, allow_unsigned=True)
    assert "release/3.0.0.yml: listed in SHA256SUMS but missing from the archive" in caught.value.problems


def test_another_release_is_refused(archive: Path) -> None:
    with pytest.raises(ArchiveError) as caught:
        verify(archive, release="3.0.1", allow_unsigned=True)
    assert caught.value.problems == [
        "archive.json: the archive holds release 3.0.0, not the release asked for (3.0.1)"
    ]


def test_extract_writes_only_verified_bytes_and_keeps_good_files(archive: Path, tmp_path: Path) -> None:
    verified = verify(archive, allow_unsigned=True)
    paths, written = extract(verified, [layout.IMAGES], tmp_path)
    assert written == [layout.IMAGES]
    assert hashlib.sha256(paths[layout.IMAGES].read_bytes()).hexdigest() == verified.sums[layout.IMAGES]
    again, written = extract(verified, [layout.IMAGES], tmp_path)
    assert written == [] and again == paths
    # The file changes after verify (a swapped disk, a second writer): refused, nothing left under its name.
    paths[layout.IMAGES].unlink()
    (tmp_path / "swap").mkdir()
    swapped = _copy(archive, tmp_path / "swap")
    _flip(swapped, layout.IMAGES)
    verified.path = swapped
    with pytest.raises(ArchiveError, match="changed since it was verified"):
        extract(verified, [layout.IMAGES], tmp_path)
    assert not (tmp_path / layout.IMAGES).exists()
    assert not list((tmp_path / "images").glob(".*partial"))


def test_a_failed_build_leaves_nothing(releases: Path, tmp_path: Path) -> None:
    output = tmp_path / "out" / "khronika-3.0.0.tar"
    with pytest.raises(BuildError, match=r"9\.9\.9"):
        build(_options(releases, output, release="9.9.9"))
    with pytest.raises(BuildError, match="names no registry; give --registry"):
        build(_options(releases, output, registry=None))
    with pytest.raises(
        BuildError, match="--without takes collection, collections, wheels, docs, os-packages; not images"
    ):
        build(_options(releases, output, without={"images"}))
    broken = tmp_path / "broken"
    broken.mkdir()
    image = (releases / "3.0.0.yml").read_text().split("image: ")[1].strip()
    missing = image.rsplit("@", 1)[0] + "@sha256:" + "0" * 64
    (broken / "3.0.0.yml").write_text((releases / "3.0.0.yml").read_text().replace(image, missing))
    with pytest.raises(BuildError, match="docker pull"):
        build(_options(broken, output, releases_dir=broken))
    assert not output.parent.exists() or list(output.parent.iterdir()) == []


def test_gpg_signature(releases: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    require_service(shutil.which("gpg") is not None and shutil.which("gpgv") is not None, "gpg and gpgv")
    monkeypatch.setenv("GNUPGHOME", str(tmp_path / "signer"))
    keyring = gpg_keyring(tmp_path / "signer")
    signed = build(
        _options(
            releases,
            tmp_path / "signed.tar",
            signer=Signer.parse("gpg:archive-test@khronika.invalid"),
            without={"wheels", "collection", "collections", "docs", "os-packages"},
        )
    ).path
    verified = verify(signed, key=keyring)
    assert verified.manifest.signature == "gpg" and verified.signature.startswith("gpg: ")
    assert "Good signature" in verified.signature
    # Signed but no key to check it with: refused, unless the operator lets it through unchecked (said so).
    with pytest.raises(ArchiveError, match="signed with gpg, and no key was given"):
        verify(signed)
    assert (
        verify(signed, allow_unsigned=True).signature
        == "NOT CHECKED: signed (gpg), no key given (--allow-unsigned)"
    )
    # Another key, or sums rewritten to match a changed member: the signature check fails.
    other = gpg_keyring(tmp_path / "other")
    with pytest.raises(ArchiveError, match=r"SHA256SUMS\.asc: the signature check failed"):
        verify(signed, key=other)
    forged = tmp_path / "forged.tar"
    with tarfile.open(signed) as source, tarfile.open(forged, "w") as tar:
        release_bytes = b"version: '3.0.0'\nkind: new-version\ndate: 2026-11-30\nmodules: []\n"
        sums_info = None
        for info in source:
            data = source.extractfile(info).read() if info.isfile() else None  # type: ignore[union-attr]
            if info.name.endswith("release/3.0.0.yml"):
                data = release_bytes
            if info.name.endswith("/SHA256SUMS"):
                sums = layout.parse_checksums(data.decode())  # type: ignore[union-attr]
                sums["release/3.0.0.yml"] = hashlib.sha256(release_bytes).hexdigest()
                data = layout.format_checksums(sums).encode()
                sums_info = info
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
        assert sums_info is not None
    with pytest.raises(ArchiveError, match="signature check failed"):
        verify(forged, key=keyring)
    # Without the key the sums alone agree: which is why an archive is refused without one by default.
    assert verify(forged, allow_unsigned=True).signature.startswith("NOT CHECKED")
    # The signature simply removed: with the key given, refused (a key means a valid signature is required).
    stripped = tmp_path / "stripped.tar"
    with tarfile.open(forged) as source, tarfile.open(stripped, "w") as tar:
        for info in source:
            if not info.name.endswith("SHA256SUMS.asc"):
                tar.addfile(info, source.extractfile(info) if info.isfile() else None)
    with pytest.raises(ArchiveError, match="not signed, but a key was given: a valid signature is required"):
        verify(stripped, key=keyring)


def test_minisign_signature(releases: Path, tmp_path: Path) -> None:
    require_service(shutil.which("minisign") is not None, "minisign (Debian package minisign)")
    secret, public = tmp_path / "minisign.key", tmp_path / "minisign.pub"
    subprocess.run(
        ["minisign", "-G", "-W", "-p", str(public), "-s", str(secret)], check=True, capture_output=True
    )
    signed = build(
        _options(
            releases,
            tmp_path / "signed.tar",
            signer=Signer.parse(f"minisign:{secret}"),
            without={"wheels", "collection", "collections", "docs", "os-packages"},
        )
    ).path
    verified = verify(signed, key=public)
    assert verified.signature.startswith("minisign: ")
    other_secret, other_public = tmp_path / "other.key", tmp_path / "other.pub"
    subprocess.run(
        ["minisign", "-G", "-W", "-p", str(other_public), "-s", str(other_secret)],
        check=True,
        capture_output=True,
    )
    with pytest.raises(ArchiveError, match=r"SHA256SUMS\.minisig: the signature check failed"):
        verify(signed, key=other_public)
    with pytest.raises(SigningError, match="does not exist"):
        Signer.parse(f"minisign:{tmp_path / 'none.key'}")
    with pytest.raises(SigningError, match="gpg:KEY or minisign:SECRET_KEY_FILE"):
        Signer.parse("pgp:key")


def test_an_unsigned_archive_needs_a_key_or_an_explicit_allowance(archive: Path, tmp_path: Path) -> None:
    with pytest.raises(ArchiveError, match="SHA256SUMS: not signed, and no key was given to check it with"):
        verify(archive)
    key = tmp_path / "trusted.pub"
    key.write_text("untrusted comment: a key\nRWQ0000000000000000000000000000000000000000000000000000000\n")
    with pytest.raises(ArchiveError, match="not signed, but a key was given"):
        verify(archive, key=key)
    assert verify(archive, allow_unsigned=True).signature == "NOT CHECKED: not signed (--allow-unsigned)"


def test_the_wheels_install_with_no_index(releases: Path, tmp_path: Path) -> None:
    result = build(
        _options(
            releases, tmp_path / "wheels.tar", without={"collection", "collections", "docs", "os-packages"}
        )
    )
    assert result.manifest.python and result.manifest.wheels
    subprocess.run(["tar", "-xf", str(result.path), "-C", str(tmp_path)], check=True)
    folder = tmp_path / "khronika-3.0.0" / "wheels"
    done = subprocess.run(
        [
            tool("python"),
            "-m",
            "pip",
            "install",
            "--dry-run",
            "--no-index",
            "--find-links",
            str(folder),
            "--ignore-installed",
            "--quiet",
            "--report",
            "-",
            "khronika-ops",
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    names = {item["metadata"]["name"].lower() for item in json.loads(done.stdout)["install"]}
    assert {"khronika-ops", "ansible-core", "pydantic", "numpy"} <= names


def test_cli_build_and_verify(releases: Path, tmp_path: Path, archive: Path) -> None:
    runner = CliRunner()
    output = tmp_path / "cli.tar"
    result = runner.invoke(
        app,
        [
            "archive",
            "build",
            "--release",
            "3.0.0",
            "--releases-dir",
            str(releases),
            "--registry",
            LOCAL,
            "--source",
            str(REPO),
            "-o",
            str(output),
            "--without",
            "wheels",
            "--without",
            "docs",
            "--without",
            "os-packages",
        ],
    )
    assert result.exit_code == 0, result.output
    assert (
        f"archive {output}" in result.output
        and "components: images, collection, collections" in result.output
    )
    refused_unsigned = runner.invoke(app, ["archive", "verify", str(output), "--release", "3.0.0"])
    assert refused_unsigned.exit_code == 1 and "no key was given" in refused_unsigned.output
    ok = runner.invoke(app, ["archive", "verify", str(output), "--release", "3.0.0", "--allow-unsigned"])
    assert ok.exit_code == 0 and ": OK" in ok.output and "signature: NOT CHECKED" in ok.output
    assert "WARNING: the signature was NOT checked" in ok.output
    damaged = _copy(archive, tmp_path)
    _flip(damaged, layout.IMAGES)
    refused = runner.invoke(app, ["archive", "verify", str(damaged)])
    assert refused.exit_code == 1
    assert "REFUSED" in refused.output and "images/images.tar: checksum mismatch" in refused.output


def test_archive_unpack_action(archive: Path, tmp_path: Path) -> None:
    """The controller step of install-offline.yml: refuses before writing, unpacks once, then changes nothing."""
    playbook = tmp_path / "unpack.yml"
    releases, cache = tmp_path / "site-releases", tmp_path / "cache"
    playbook.write_text(
        "- hosts: localhost\n  gather_facts: false\n  tasks:\n"
        "    - khronika.platform.archive_unpack:\n"
        "        path: '{{ archive }}'\n        release: '{{ release }}'\n"
        f"        releases_dir: {releases}\n        dest: {cache}\n"
        "        allow_unsigned: '{{ allow | default(false) }}'\n"
        "      register: unpacked\n"
        "    - ansible.builtin.debug:\n        msg: 'UNPACKED {{ unpacked | to_json }}'\n",
        encoding="utf-8",
    )

    def run(path: Path, release: str, allow: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                tool("ansible-playbook"),
                "-i",
                "localhost,",
                "-c",
                "local",
                str(playbook),
                "-e",
                f"archive={path}",
                "-e",
                f"release={release}",
                "-e",
                f"allow={allow}",
            ],
            capture_output=True,
            text=True,
            env=ansible_env(),
            cwd=REPO,
            check=False,
            timeout=300,
        )

    wrong = run(archive, "3.0.1")
    assert wrong.returncode != 0
    assert "the archive is refused before any host changes" in wrong.stdout
    assert "not the release asked for (3.0.1)" in wrong.stdout
    assert not releases.exists() and not cache.exists()
    unsigned = run(archive, "3.0.0", allow=False)
    assert unsigned.returncode != 0 and "no key was given to check it with" in unsigned.stdout
    assert not releases.exists() and not cache.exists()
    first = run(archive, "3.0.0")
    assert first.returncode == 0, first.stdout[-3000:]
    assert "INSTALLING AN UNCHECKED ARCHIVE" in first.stdout + first.stderr
    assert "changed=1" in first.stdout
    assert (releases / "3.0.0.yml").is_file() and (cache / "3.0.0" / layout.IMAGES).is_file()
    second = run(archive, "3.0.0")
    assert second.returncode == 0 and "changed=0" in second.stdout
    # A different manifest already filed under the same release number is not overwritten.
    (releases / "3.0.0.yml").write_text("version: '3.0.0'\n", encoding="utf-8")
    clash = run(archive, "3.0.0")
    assert (
        clash.returncode != 0 and "differs from the manifest of release 3.0.0 in the archive" in clash.stdout
    )


def test_os_packages_are_a_signed_flat_apt_repository(
    releases: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--with-os-packages for debian-12: resolved in the local bookworm base image from the machine's mirror,
    every file in the index with its own sums, InRelease signed with the archive's GPG key; a changed
    package file is refused by name; a profile with no base image is refused before any work."""
    require_service(shutil.which("gpg") is not None and shutil.which("gpgv") is not None, "gpg and gpgv")
    from khronika_ops.archive import os_repo

    require_service(
        docker_available()
        and subprocess.run(
            ["docker", "image", "inspect", os_repo.BASE_IMAGES["debian-12"]], capture_output=True, check=False
        ).returncode
        == 0,
        "the debian-12 base image (scripts/build-base-images.sh)",
    )
    monkeypatch.setenv("GNUPGHOME", str(tmp_path / "signer"))
    keyring = gpg_keyring(tmp_path / "signer")
    result = build(
        _options(
            releases,
            tmp_path / "os.tar",
            signer=Signer.parse("gpg:archive-test@khronika.invalid"),
            without={"wheels", "collection", "collections", "docs"},
            os_profiles=["debian-12"],
        )
    )
    assert "os-packages" in result.manifest.components
    (repo,) = result.manifest.os_repositories
    assert repo.profile == "debian-12" and repo.signed
    assert {"docker.io", "nginx", "prometheus", "systemd-timesyncd", "chrony"} <= set(repo.packages)
    verified = verify(result.path, key=keyring)
    out = tmp_path / "out"
    extract(verified, repo.files, out)
    suite = out / "os" / "dists" / "debian-12"
    check = subprocess.run(
        ["gpgv", "--keyring", keyring, str(suite / "InRelease")], capture_output=True, text=True, check=False
    )
    assert check.returncode == 0, check.stderr
    release = (suite / "Release").read_text()
    packages = (suite / "Packages").read_bytes()
    assert f" {hashlib.sha256(packages).hexdigest()} {len(packages)} Packages" in release
    assert "Origin: khronika-ops" in release and "Codename: bookworm" in release
    stanzas = {}
    for stanza in packages.decode().strip().split("\n\n"):
        fields = dict(re.findall(r"^([A-Za-z0-9-]+): (.*)$", stanza, re.MULTILINE))
        stanzas[fields["Package"]] = fields
    # The dependencies came along (containerd and runc for docker.io), each file listed with its sum.
    assert {"docker.io", "containerd", "runc", "nginx"} <= set(stanzas)
    pool = {name for name in repo.files if name.endswith(".deb")}
    assert {f"os/{fields['Filename']}" for fields in stanzas.values()} == pool
    for fields in stanzas.values():
        data = (out / "os" / fields["Filename"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == fields["SHA256"] and len(data) == int(fields["Size"])
    # One tar per profile for the hosts: the index and every package it names.
    bundle = tmp_path / "os-debian-12.tar"
    os_repo.host_bundle(out / "os", repo.files, bundle)
    with tarfile.open(bundle) as tar:
        assert set(tar.getnames()) == {name[len("os/") :] for name in repo.files}
    # A package changed inside the archive is refused by name before anything is unpacked.
    docker_deb = next(name for name in pool if name.startswith("os/pool/docker.io_"))
    tampered = tmp_path / "tampered.tar"
    shutil.copy(result.path, tampered)
    with tarfile.open(result.path) as tar:
        member = tar.getmember(f"khronika-3.0.0/{docker_deb}")
    with tampered.open("r+b") as handle:
        handle.seek(member.offset_data + member.size // 2)
        byte = handle.read(1)
        handle.seek(member.offset_data + member.size // 2)
        handle.write(bytes([byte[0] ^ 0xFF]))
    with pytest.raises(ArchiveError, match=re.escape(f"{docker_deb}: checksum mismatch")):
        verify(tampered, key=keyring)
    with pytest.raises(BuildError, match=r"no base image for astra-1\.7"):
        build(
            _options(
                releases,
                tmp_path / "astra.tar",
                without={"wheels", "collection", "collections", "docs"},
                os_profiles=["astra-1.7"],
            )
        )
    assert not (tmp_path / "astra.tar").exists()
