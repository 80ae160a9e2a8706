"""The khronika-ops wheel the collector hosts install, built on the controller once per source state.

`pip wheel` takes seconds on every run, although the sources rarely change between runs. The wheel is
kept under a cache folder named by a digest of everything that goes into it (pyproject.toml, README,
LICENSE and the `src/` tree, without byte code), so a run with unchanged sources finds it and builds
nothing. The build is reproducible (fixed SOURCE_DATE_EPOCH: the same sources give the same bytes, so the
hosts' copies stay unchanged) and atomic (built in a temporary folder, renamed into place), and only the
newest few digests are kept.

    python -m khronika_ops.wheelhouse SOURCE [--cache DIR] [--keep N]

prints one JSON line: {"wheel": path, "digest": ..., "built": bool}. The monitoring_agent role runs it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

# The files outside src/ that the wheel's metadata is made from.
TOP_FILES = ("pyproject.toml", "README.md", "LICENSE", "setup.cfg", "setup.py")
SKIPPED_DIRS = {"__pycache__", ".mypy_cache", ".pytest_cache"}
SKIPPED_SUFFIXES = (".pyc", ".pyo")
# 1980-01-01, the earliest date a zip file records.
SOURCE_DATE_EPOCH = "315532800"
KEEP = 3


class WheelhouseError(RuntimeError):
    """The source tree cannot be built into a wheel; the message says why."""


def default_cache() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "khronika-ops" / "wheels"


def _source_files(source: Path) -> list[Path]:
    files = [source / name for name in TOP_FILES if (source / name).is_file()]
    for root, dirs, names in os.walk(source / "src"):
        dirs[:] = sorted(d for d in dirs if d not in SKIPPED_DIRS and not d.endswith(".egg-info"))
        files.extend(Path(root) / name for name in sorted(names) if not name.endswith(SKIPPED_SUFFIXES))
    return files


def source_digest(source: Path) -> str:
    """sha256 over the relative path and bytes of every file the wheel is built from (first 16 hex)."""
    if not (source / "pyproject.toml").is_file():
        raise WheelhouseError(f"{source}: no pyproject.toml; point at a khronika-ops checkout")
    digest = hashlib.sha256()
    for path in _source_files(source):
        digest.update(str(path.relative_to(source)).encode() + b"\0")
        digest.update(path.read_bytes())
        digest.update(b"\0")
    return digest.hexdigest()[:16]


def _wheels(folder: Path) -> list[Path]:
    return sorted(folder.glob("khronika_ops-*.whl"))


def ensure_wheel(source: Path, cache: Path | None = None, *, keep: int = KEEP) -> tuple[Path, str, bool]:
    """The wheel for `source`'s current state: (path, digest, built now)."""
    source = source.resolve()
    cache = cache or default_cache()
    digest = source_digest(source)
    target = cache / digest
    found = _wheels(target)
    if len(found) == 1:
        os.utime(target)  # newest use first when pruning
        return found[0], digest, False
    cache.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{digest}.", dir=cache))
    try:
        env = {**os.environ, "SOURCE_DATE_EPOCH": SOURCE_DATE_EPOCH, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
        result = subprocess.run(
            [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(staging), str(source)],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise WheelhouseError(
                f"pip wheel {source} failed:\n{result.stderr.strip() or result.stdout.strip()}"
            )
        if len(_wheels(staging)) != 1:
            raise WheelhouseError(f"pip wheel {source} did not leave exactly one khronika_ops wheel")
        shutil.rmtree(target, ignore_errors=True)  # a folder without its one wheel is not a cache entry
        staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    _prune(cache, keep)
    return _wheels(target)[0], digest, True


def _prune(cache: Path, keep: int) -> None:
    entries = sorted(
        (p for p in cache.iterdir() if p.is_dir() and not p.name.startswith(".")),
        key=lambda p: p.stat().st_mtime,
        reverse=True,
    )
    for old in entries[keep:]:
        shutil.rmtree(old, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m khronika_ops.wheelhouse", description=__doc__.split("\n")[0]
    )
    parser.add_argument("source", type=Path, help="a khronika-ops checkout (holds pyproject.toml)")
    parser.add_argument("--cache", type=Path, default=None, help=f"default {default_cache()}")
    parser.add_argument("--keep", type=int, default=KEEP, help="source digests kept (newest used first)")
    args = parser.parse_args(argv)
    try:
        wheel, digest, built = ensure_wheel(args.source, args.cache, keep=max(1, args.keep))
    except (WheelhouseError, OSError) as exc:
        print(f"khronika_ops.wheelhouse: {exc}", file=sys.stderr)
        return 1
    print(json.dumps({"wheel": str(wheel), "digest": digest, "built": built}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
