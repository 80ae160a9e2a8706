#!/usr/bin/env python3
"""Install the collections named in requirements.yml into a collections path, online or air-gapped.

Sources, tried in this order unless --source picks one:
  dir     a folder made by `ansible-galaxy collection download -r requirements.yml` (air-gapped sites:
          copy that folder over and point KHRONIKA_COLLECTIONS_DIR at it);
  galaxy  the Galaxy server ansible-galaxy is configured with;
  bundle  the `ansible` community bundle wheel from the configured Python package index, or from a
          local wheelhouse (KHRONIKA_WHEELHOUSE, installed with --no-index): only the required
          collection folders are unpacked.
Every install is checked afterwards: each collection must be present at exactly the pinned version.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import yaml

# The ansible community bundle release that carries exactly the versions pinned in requirements.yml.
ANSIBLE_BUNDLE = "ansible==12.3.0"


def load_requirements(path: Path) -> dict[str, str]:
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    wanted: dict[str, str] = {}
    for entry in data.get("collections", []):
        name = entry["name"] if isinstance(entry, dict) else entry
        version = str(entry.get("version", "")) if isinstance(entry, dict) else ""
        if not version or any(c in version for c in "<>=*,"):
            sys.exit(f"{path}: collection {name} must be pinned to one exact version, got {version!r}")
        wanted[name] = version
    return wanted


def installed_version(dest: Path, fqcn: str) -> str | None:
    namespace, name = fqcn.split(".", 1)
    manifest = dest / "ansible_collections" / namespace / name / "MANIFEST.json"
    if not manifest.is_file():
        return None
    return str(json.loads(manifest.read_text(encoding="utf-8"))["collection_info"]["version"])


def missing(dest: Path, wanted: dict[str, str]) -> dict[str, str]:
    return {fqcn: v for fqcn, v in wanted.items() if installed_version(dest, fqcn) != v}


def galaxy_bin() -> str:
    candidate = Path(sys.executable).with_name("ansible-galaxy")
    return str(candidate) if candidate.exists() else "ansible-galaxy"


def from_dir(requirements: Path, dest: Path, source_dir: Path) -> None:
    reqs = source_dir / "requirements.yml"
    # A download folder lists every collection it holds (dependencies included), so none is resolved.
    cmd = [galaxy_bin(), "collection", "install", "--offline", "--no-deps", "--force", "-p", str(dest)]
    cmd += ["-r", str(reqs if reqs.is_file() else requirements)]
    subprocess.run(cmd, check=True, cwd=source_dir)


def from_galaxy(requirements: Path, dest: Path, timeout: int) -> None:
    cmd = [galaxy_bin(), "collection", "install", "--force", "-r", str(requirements), "-p", str(dest)]
    proc = subprocess.run(cmd, check=False, timeout=timeout, capture_output=True, text=True)
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise subprocess.CalledProcessError(proc.returncode, cmd, stderr=last)


def from_bundle(wanted: dict[str, str], dest: Path, wheelhouse: str | None, cache: Path) -> None:
    """Unpack the pinned collections from the bundle wheel; the wheel is kept in `cache` for reuse."""
    version = ANSIBLE_BUNDLE.split("==", 1)[1]
    cache.mkdir(parents=True, exist_ok=True)
    wheel = cache / f"ansible-{version}-py3-none-any.whl"
    if not wheel.is_file():
        cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", str(cache), ANSIBLE_BUNDLE]
        if wheelhouse:
            cmd += ["--no-index", "--find-links", wheelhouse]
        subprocess.run(cmd, check=True)
    prefixes = tuple("ansible_collections/{}/{}/".format(*fqcn.split(".", 1)) for fqcn in wanted)
    with zipfile.ZipFile(wheel) as archive:
        for prefix in prefixes:
            shutil.rmtree(dest / prefix, ignore_errors=True)
        members = [m for m in archive.namelist() if m.startswith(prefixes)]
        archive.extractall(dest, members)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requirements", type=Path, default=Path("requirements.yml"))
    parser.add_argument("--dest", type=Path, default=Path(".ansible/collections"))
    parser.add_argument("--source", choices=["auto", "dir", "galaxy", "bundle"], default="auto")
    parser.add_argument("--galaxy-timeout", type=int, default=60)
    parser.add_argument("--cache", type=Path, default=Path(".cache/wheelhouse"))
    args = parser.parse_args()

    wanted = load_requirements(args.requirements)
    args.dest.mkdir(parents=True, exist_ok=True)
    if not missing(args.dest, wanted):
        print(f"collections: {len(wanted)} present at the pinned versions")
        return 0

    source_dir = os.environ.get("KHRONIKA_COLLECTIONS_DIR")
    wheelhouse = os.environ.get("KHRONIKA_WHEELHOUSE")
    if args.source == "auto":
        order = (["dir"] if source_dir else []) + ([] if wheelhouse else ["galaxy"]) + ["bundle"]
    else:
        order = [args.source]
    errors = []
    for source in order:
        try:
            if source == "dir":
                if not source_dir:
                    sys.exit("--source dir needs KHRONIKA_COLLECTIONS_DIR")
                from_dir(args.requirements, args.dest, Path(source_dir))
            elif source == "galaxy":
                from_galaxy(args.requirements, args.dest, args.galaxy_timeout)
            else:
                from_bundle(wanted, args.dest, wheelhouse, args.cache)
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired, StopIteration) as exc:
            detail = getattr(exc, "stderr", None) or exc
            errors.append(f"{source}: {detail}")
            print(f"collections: source {source} failed ({detail}), trying the next one", file=sys.stderr)
            continue
        still_missing = missing(args.dest, wanted)
        if not still_missing:
            print(f"collections: installed {', '.join(f'{k} {v}' for k, v in wanted.items())} from {source}")
            return 0
        errors.append(f"{source}: wrong or missing versions {still_missing}")
    print("collections: could not install " + "; ".join(errors), file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
