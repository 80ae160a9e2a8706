"""Archives an operator receives from elsewhere or picks by mistake: `archive verify` refuses each in
a bounded time, with one clear reason (no registry needed: the tars are made here)."""

from __future__ import annotations

import io
import shutil
import subprocess
import tarfile
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from khronika_ops.archive.verify import ArchiveError, verify
from khronika_ops.cli import app

TOP = "khronika-9.9.9"


def _tar(path: Path, members: list[tuple[str, bytes]], *, sizes: dict[str, int] | None = None) -> Path:
    """A tar of `members`; `sizes` declares another size in a header than the bytes that follow."""
    with path.open("wb") as raw, tarfile.open(fileobj=raw, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    if sizes:  # rewrite the declared sizes in place (the header checksum with them)
        with tarfile.open(path) as tar:
            offsets = {member.name: member.offset for member in tar}
        with path.open("r+b") as handle:
            for name, size in sizes.items():
                handle.seek(offsets[name])
                header = bytearray(handle.read(512))
                header[124:136] = b"\x80" + size.to_bytes(11, "big")  # GNU base-256 size field
                header[148:156] = b"        "
                header[148:156] = f"{sum(header):06o}\0 ".encode()
                handle.seek(offsets[name])
                handle.write(header)
    return path


def test_a_member_larger_than_the_archive_is_refused_at_once(tmp_path: Path) -> None:
    archive = _tar(
        tmp_path / "huge.tar",
        [(f"{TOP}/archive.json", b"{}"), (f"{TOP}/images/images.tar", b"x" * 1024)],
        sizes={f"{TOP}/images/images.tar": 64 << 30},
    )
    started = time.monotonic()
    with pytest.raises(ArchiveError) as caught:
        verify(archive, allow_unsigned=True)
    assert time.monotonic() - started < 5
    assert any(
        p.startswith(
            f"{TOP}/images/images.tar: declares 68,719,476,736 bytes, more than the whole archive file"
        )
        for p in caught.value.problems
    ), caught.value.problems


def test_a_sparse_member_is_refused_without_reading_its_holes(tmp_path: Path) -> None:
    if shutil.which("tar") is None:
        pytest.skip("GNU tar makes the sparse member")
    folder = tmp_path / TOP
    (folder / "images").mkdir(parents=True)
    (folder / "archive.json").write_text("{}")
    with (folder / "images" / "images.tar").open("wb") as handle:
        handle.truncate(64 << 30)  # 64 GiB of holes, a few KB in the tar
    archive = tmp_path / "sparse.tar"
    subprocess.run(["tar", "--sparse", "-C", str(tmp_path), "-cf", str(archive), TOP], check=True)
    assert archive.stat().st_size < 1 << 20
    started = time.monotonic()
    with pytest.raises(ArchiveError) as caught:
        verify(archive, allow_unsigned=True)
    assert time.monotonic() - started < 5
    assert (
        f"{TOP}/images/images.tar: is a sparse file; an archive holds only plain files"
        in caught.value.problems
    )


def test_a_duplicate_member_is_refused(tmp_path: Path) -> None:
    """Whichever copy a checker reads, an extractor keeps the last: two copies of a name are refused."""
    archive = _tar(
        tmp_path / "twice.tar",
        [
            (f"{TOP}/archive.json", b"{}"),
            (f"{TOP}/release/9.9.9.yml", b"a"),
            (f"{TOP}/release/9.9.9.yml", b"b"),
        ],
    )
    with pytest.raises(ArchiveError) as caught:
        verify(archive, allow_unsigned=True)
    assert any(
        p.startswith(f"{TOP}/release/9.9.9.yml: appears more than once") for p in caught.value.problems
    )


@pytest.mark.parametrize(
    ("members", "said"),
    [
        (
            [("manifest.json", b"[]"), ("repositories", b"{}")]
            + [(f"{n:064x}/layer.tar", b"l") for n in range(80)],
            "this is a container image tar (docker save or an OCI layout), not an installation archive",
        ),
        ([("oci-layout", b"{}"), ("index.json", b"{}"), ("blobs/sha256/ab", b"x")], "container image tar"),
        (
            [("SHA256SUMS", b""), ("archive.json", b"{}"), ("images/images.tar", b"")],
            "is not an installation archive",
        ),
        ([("etc/passwd", b"root:x:0:0")], "is not an installation archive"),
    ],
)
def test_a_tar_that_is_not_an_archive_gets_one_line(tmp_path: Path, members, said) -> None:
    archive = _tar(tmp_path / "other.tar", members)
    with pytest.raises(ArchiveError) as caught:
        verify(archive, allow_unsigned=True)
    assert len(caught.value.problems) == 1 and said in caught.value.problems[0]
    result = CliRunner().invoke(app, ["archive", "verify", str(archive), "--allow-unsigned"])
    assert result.exit_code == 1
    assert result.output.count("\n") == 2, result.output  # "<file>: REFUSED" and the one reason
