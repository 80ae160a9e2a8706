"""Controller checks behind `khronika doctor`.

Each check is a small function returning a CheckResult; the command prints them as a table or JSON and
fails when a required check fails. Versions that matter are the ones the collection is tested with.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path

from rich.console import Console
from rich.table import Table

from khronika_ops.console import styled

MIN_PYTHON = (3, 11)
MIN_ANSIBLE_CORE = (2, 17)
# Collections the roles call, with the lowest version they are tested against (requirements.yml pins).
REQUIRED_COLLECTIONS: dict[str, tuple[int, ...]] = {
    "community.docker": (3, 10, 2),
    "ansible.posix": (1, 4, 0),
}
DOCKER_SOCKET = Path("/var/run/docker.sock")


@dataclass(frozen=True)
class CheckResult:
    name: str
    ok: bool
    detail: str
    required: bool = True
    hint: str = ""


def parse_version(text: str) -> tuple[int, ...]:
    """Leading numeric components of a version string: '2.19.14rc1' -> (2, 19, 14)."""
    parts: list[int] = []
    for piece in text.strip().split("."):
        digits = ""
        for char in piece:
            if not char.isdigit():
                break
            digits += char
        if not digits:
            break
        parts.append(int(digits))
        if len(digits) != len(piece):
            break
    return tuple(parts)


def check_python() -> CheckResult:
    version = sys.version_info[:3]
    text = ".".join(map(str, version))
    return CheckResult(
        "python",
        version[:2] >= MIN_PYTHON,
        f"{text} ({sys.executable})",
        hint=f"khronika-ops needs Python {'.'.join(map(str, MIN_PYTHON))} or newer",
    )


def check_ansible_core() -> CheckResult:
    try:
        version = metadata.version("ansible-core")
    except metadata.PackageNotFoundError:
        return CheckResult("ansible-core", False, "not installed", hint="pip install -c constraints.txt -e .")
    ok = parse_version(version)[:2] >= MIN_ANSIBLE_CORE
    return CheckResult(
        "ansible-core",
        ok,
        version,
        hint=f"needs ansible-core {'.'.join(map(str, MIN_ANSIBLE_CORE))} or newer",
    )


def ansible_tool(name: str) -> str:
    """An Ansible command (ansible, ansible-galaxy...) beside this Python, i.e. the virtual
    environment's, else the one on PATH."""
    candidate = Path(sys.executable).with_name(name)
    return str(candidate) if candidate.exists() else name


def collection_search_paths() -> list[Path]:
    """Where ansible-core looks for collections, in its own order (config, env, sys.path)."""
    try:
        from ansible.config.manager import ConfigManager

        configured = ConfigManager().get_config_value("COLLECTIONS_PATHS")
    except Exception:  # ansible missing or a broken ansible.cfg: fall back to the environment
        configured = os.environ.get("ANSIBLE_COLLECTIONS_PATH", "").split(os.pathsep)
    paths = [Path(p).expanduser() for p in configured if p]
    paths += [Path(p) for p in sys.path if p]
    return paths


def find_collection(fqcn: str, search_paths: Iterable[Path]) -> tuple[str, Path] | None:
    """(version, folder) of the first installed copy of a collection in the search paths."""
    namespace, name = fqcn.split(".", 1)
    for base in search_paths:
        root = base / "ansible_collections" / namespace / name
        for manifest_name in ("MANIFEST.json", "galaxy.yml"):
            manifest = root / manifest_name
            if not manifest.is_file():
                continue
            if manifest_name == "MANIFEST.json":
                info = json.loads(manifest.read_text(encoding="utf-8"))["collection_info"]
                return str(info["version"]), root
            from khronika_ops import safe_yaml

            return str(safe_yaml.load_file(manifest)["version"]), root
    return None


def find_collection_version(fqcn: str, search_paths: Iterable[Path]) -> str | None:
    found = find_collection(fqcn, search_paths)
    return found[0] if found else None


def check_collections(search_paths: list[Path] | None = None) -> list[CheckResult]:
    paths = collection_search_paths() if search_paths is None else search_paths
    results = []
    for fqcn, minimum in REQUIRED_COLLECTIONS.items():
        version = find_collection_version(fqcn, paths)
        wanted = ".".join(map(str, minimum))
        if version is None:
            results.append(
                CheckResult(
                    fqcn,
                    False,
                    "not found",
                    hint="run scripts/setup.sh, or: ansible-galaxy collection install -r requirements.yml",
                )
            )
        else:
            results.append(
                CheckResult(fqcn, parse_version(version) >= minimum, version, hint=f"needs >= {wanted}")
            )
    return results


def check_ssh() -> CheckResult:
    path = shutil.which("ssh")
    if path is None:
        return CheckResult("ssh client", False, "not found", hint="apt-get install openssh-client")
    proc = subprocess.run([path, "-V"], capture_output=True, text=True, check=False, timeout=10)
    return CheckResult("ssh client", True, (proc.stderr or proc.stdout).strip())


def check_docker(required: bool, socket_path: Path = DOCKER_SOCKET) -> CheckResult:
    """Ask the Engine API directly (GET /version over the unix socket): no docker CLI needed."""
    if not socket_path.exists():
        return CheckResult(
            "docker engine",
            False,
            f"{socket_path} missing",
            required=required,
            hint="start dockerd (scripts/setup.sh does it on the lab machine)",
        )
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(5)
            sock.connect(str(socket_path))
            sock.sendall(b"GET /version HTTP/1.0\r\nHost: docker\r\n\r\n")
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
    except OSError as exc:
        return CheckResult("docker engine", False, f"{socket_path}: {exc}", required=required)
    head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
    if b" 200 " not in head.split(b"\r\n", 1)[0]:
        return CheckResult("docker engine", False, head.split(b"\r\n", 1)[0].decode(), required=required)
    info = json.loads(body)
    return CheckResult(
        "docker engine", True, f"{info.get('Version')} (API {info.get('ApiVersion')})", required=required
    )


def run_checks(require_docker: bool = False) -> list[CheckResult]:
    checks: list[Callable[[], CheckResult | list[CheckResult]]] = [
        check_python,
        check_ansible_core,
        check_collections,
        check_ssh,
        lambda: check_docker(required=require_docker),
    ]
    results: list[CheckResult] = []
    for check in checks:
        outcome = check()
        results.extend(outcome if isinstance(outcome, list) else [outcome])
    return results


def all_required_ok(results: Iterable[CheckResult]) -> bool:
    return all(r.ok for r in results if r.required)


def results_to_json(results: Iterable[CheckResult]) -> str:
    return json.dumps([asdict(r) for r in results], indent=2, sort_keys=True)


def print_results(results: list[CheckResult], console: Console) -> None:
    table = Table(title="khronika doctor", title_justify="left")
    table.add_column("check")
    table.add_column("status")
    table.add_column("detail")
    for result in results:
        if result.ok:
            status = styled("ok", "green")
        elif result.required:
            status = styled("FAIL", "red")
        else:
            status = styled("warn", "yellow")
        detail = result.detail if result.ok or not result.hint else f"{result.detail} — {result.hint}"
        table.add_row(result.name, status, detail)
    console.print(table)
    ready = all_required_ok(results)
    console.print(styled("controller ready", "green") if ready else styled("controller not ready", "red"))
