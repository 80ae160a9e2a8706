"""The collector's wheel: built once per state of the sources, reproducible, atomic, pruned."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from khronika_ops import wheelhouse

REPO = Path(__file__).resolve().parents[1]


def _tree(root: Path) -> Path:
    (root / "src" / "khronika_ops" / "data").mkdir(parents=True)
    (root / "pyproject.toml").write_text("[project]\nname = 'khronika-ops'\n")
    (root / "README.md").write_text("readme\n")
    (root / "src" / "khronika_ops" / "__init__.py").write_text("__version__ = '0'\n")
    (root / "src" / "khronika_ops" / "data" / "x.json").write_text("{}\n")
    return root


def test_the_digest_follows_sources_not_byte_code_or_build_metadata(tmp_path: Path) -> None:
    tree = _tree(tmp_path / "src-tree")
    first = wheelhouse.source_digest(tree)
    (tree / "src" / "khronika_ops" / "__pycache__").mkdir()
    (tree / "src" / "khronika_ops" / "__pycache__" / "a.cpython-311.pyc").write_bytes(b"\0")
    (tree / "src" / "khronika_ops.egg-info").mkdir()
    (tree / "src" / "khronika_ops.egg-info" / "PKG-INFO").write_text("x")
    (tree / "build").mkdir()
    (tree / "tests.txt").write_text("not in the wheel")
    assert wheelhouse.source_digest(tree) == first

    for change in (
        lambda: (tree / "src" / "khronika_ops" / "data" / "x.json").write_text('{"a": 1}\n'),
        lambda: (tree / "README.md").write_text("another readme\n"),
        lambda: (tree / "src" / "khronika_ops" / "new.py").write_text(""),
    ):
        before = wheelhouse.source_digest(tree)
        change()
        assert wheelhouse.source_digest(tree) != before


def test_a_moved_file_changes_the_digest(tmp_path: Path) -> None:
    tree = _tree(tmp_path / "t")
    before = wheelhouse.source_digest(tree)
    (tree / "src" / "khronika_ops" / "data" / "x.json").rename(tree / "src" / "khronika_ops" / "x.json")
    assert wheelhouse.source_digest(tree) != before


def test_a_folder_without_pyproject_is_refused(tmp_path: Path) -> None:
    assert wheelhouse.main([str(tmp_path)]) == 1
    with pytest.raises(wheelhouse.WheelhouseError, match=r"no pyproject\.toml"):
        wheelhouse.source_digest(tmp_path)


def test_a_failed_build_leaves_no_cache_entry(tmp_path: Path) -> None:
    tree = tmp_path / "broken"
    tree.mkdir()
    (tree / "pyproject.toml").write_text("[project\n")  # not TOML
    cache = tmp_path / "cache"
    with pytest.raises(wheelhouse.WheelhouseError, match=r"pip wheel .* failed"):
        wheelhouse.ensure_wheel(tree, cache)
    assert [p.name for p in cache.iterdir()] == []


def test_pruning_keeps_the_newest_used_digests(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    for age, name in enumerate(["d", "c", "b", "a"]):
        (cache / name).mkdir(parents=True)
        os.utime(cache / name, (1_000_000 - age * 1000, 1_000_000 - age * 1000))
    (cache / ".a.staging").mkdir()
    wheelhouse._prune(cache, 2)
    assert sorted(p.name for p in cache.iterdir()) == [".a.staging", "c", "d"]


@pytest.mark.slow
def test_the_repository_builds_once_and_the_bytes_repeat(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "checkout"
    shutil.copytree(
        REPO, source, ignore=shutil.ignore_patterns(".*", "tests", "molecule", "lab", "build", "*.egg-info")
    )
    cache = tmp_path / "cache"
    assert wheelhouse.main([str(source), "--cache", str(cache)]) == 0
    first = json.loads(capsys.readouterr().out)
    assert first["built"] is True and Path(first["wheel"]).parent == cache / first["digest"]
    data = Path(first["wheel"]).read_bytes()

    assert wheelhouse.main([str(source), "--cache", str(cache)]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again == {**first, "built": False}

    # Another cache, the same sources: the same bytes (the hosts' copy stays unchanged).
    wheel, _, built = wheelhouse.ensure_wheel(source, tmp_path / "other")
    assert built and wheel.read_bytes() == data
