"""Fixtures shared by the test suite: the repo, a throwaway Debian host in a container, playbook runs."""

from __future__ import annotations

import base64
import os
import shutil
import ssl
import subprocess
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import settings

REPO = Path(__file__).resolve().parents[1]
VENV_BIN = Path(os.environ.get("VIRTUAL_ENV", REPO / ".venv")) / "bin"
BASE_IMAGE = os.environ.get("KHRONIKA_TEST_BASE_IMAGE", "khronika/debian-systemd:bookworm")

# The property tests draw the same examples on every run of the test command: a fresh CI machine has no
# example database, and a verdict must not depend on the draw. KHRONIKA_HYPOTHESIS_RANDOM=1 draws anew
# (a failure prints the blob that reproduces it).
settings.register_profile("repeatable", derandomize=True, print_blob=True)
settings.register_profile("random", print_blob=True)
settings.load_profile("random" if os.environ.get("KHRONIKA_HYPOTHESIS_RANDOM") == "1" else "repeatable")


def require_service(available: bool, reason: str) -> None:
    """Skip when a service is missing on a developer machine; fail in CI (KHRONIKA_REQUIRE_SERVICES=1)."""
    if available:
        return
    if os.environ.get("KHRONIKA_REQUIRE_SERVICES") == "1":
        pytest.fail(f"required service missing: {reason}")
    pytest.skip(reason)


def tool(name: str) -> str:
    candidate = VENV_BIN / name
    return str(candidate) if candidate.exists() else name


def ansible_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        ANSIBLE_CONFIG=str(REPO / "ansible.cfg"),
        ANSIBLE_FORCE_COLOR="0",
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_RETRY_FILES_ENABLED="0",
    )
    env.update(extra)
    return env


@dataclass
class PlaybookRun:
    rc: int
    output: str

    def recap_changed(self) -> int:
        """Sum of changed= over the PLAY RECAP lines."""
        total = 0
        for line in self.output.splitlines():
            if "changed=" in line and ("ok=" in line):
                total += int(line.split("changed=")[1].split()[0])
        return total


def run_playbook(
    playbook: Path, inventory: Path, *args: str, env: dict[str, str] | None = None
) -> PlaybookRun:
    cmd = [tool("ansible-playbook"), "-i", str(inventory), str(playbook), *args]
    proc = subprocess.run(
        cmd, capture_output=True, text=True, env=env or ansible_env(), cwd=REPO, timeout=600, check=False
    )
    return PlaybookRun(proc.returncode, proc.stdout + proc.stderr)


def docker_available() -> bool:
    if shutil.which("docker") is None:
        return False
    proc = subprocess.run(
        ["docker", "version", "--format", "{{.Server.Version}}"], capture_output=True, check=False
    )
    return proc.returncode == 0


def image_present(image: str) -> bool:
    return (
        subprocess.run(["docker", "image", "inspect", image], capture_output=True, check=False).returncode
        == 0
    )


@dataclass
class TargetHost:
    """A Debian container reached with the community.docker.docker connection: a host a test may break."""

    name: str
    inventory: Path

    def exec(self, *cmd: str) -> str:
        return subprocess.run(
            ["docker", "exec", self.name, *cmd], capture_output=True, text=True, check=True
        ).stdout


def start_target(tmp_path: Path, image: str = BASE_IMAGE) -> Iterator[TargetHost]:
    require_service(docker_available(), "no Docker engine")
    require_service(image_present(image), f"base image {image} missing (scripts/build-base-images.sh)")
    name = f"kh-pytest-{uuid.uuid4().hex[:8]}"
    subprocess.run(
        ["docker", "run", "-d", "--name", name, "--label", "khronika.test=1", image, "sleep", "infinity"],
        check=True,
        capture_output=True,
    )
    inventory = tmp_path / "hosts.ini"
    inventory.write_text(
        f"[khronika]\n{name} ansible_connection=community.docker.docker ansible_host={name}\n",
        encoding="utf-8",
    )
    try:
        yield TargetHost(name, inventory)
    finally:
        subprocess.run(["docker", "rm", "-f", "-v", name], capture_output=True, check=False)


@pytest.fixture(scope="module")
def target_host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TargetHost]:
    yield from start_target(tmp_path_factory.mktemp("target"))


TEST_REGISTRY_LOCAL = "127.0.0.1:5000"  # the test registry as this machine reaches it


def pinned_test_image() -> str:
    """khronika-test/busybox@<the digest the running registry holds for the test tag>."""
    state = os.environ.get("KHRONIKA_TEST_REGISTRY_DIR")
    require_service(bool(state) and Path(state or "").is_dir() and docker_available(), "the test registry")
    assert state is not None
    password = (Path(state) / "password").read_text(encoding="utf-8").strip()
    user = os.environ["KHRONIKA_TEST_REGISTRY_USER"]
    repository, tag = (
        os.environ["KHRONIKA_TEST_IMAGE"].replace("registry.test:5000", TEST_REGISTRY_LOCAL).rsplit(":", 1)
    )
    path = repository.split("/", 1)[1]

    request = urllib.request.Request(
        f"https://{TEST_REGISTRY_LOCAL}/v2/{path}/manifests/{tag}",
        headers={
            "Accept": "application/vnd.docker.distribution.manifest.v2+json",
            "Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode(),
        },
        method="HEAD",
    )
    context = ssl.create_default_context(cafile=os.environ["KHRONIKA_TEST_REGISTRY_CA"])
    with urllib.request.urlopen(request, context=context, timeout=10) as answer:
        return f"{path}@{answer.headers['Docker-Content-Digest']}"


def gpg_keyring(home: Path) -> str:
    """A new signing key in GNUPGHOME `home`; the keyring file holding its public half."""
    home.mkdir(mode=0o700)
    env = {**os.environ, "GNUPGHOME": str(home)}
    subprocess.run(
        [
            "gpg",
            "--batch",
            "--passphrase",
            "",
            "--quick-gen-key",
            "archive-test@khronika.invalid",
            "ed25519",
            "sign",
            "1d",
        ],
        env=env,
        check=True,
        capture_output=True,
    )
    keyring = home / "trusted.gpg"
    keyring.write_bytes(
        subprocess.run(
            ["gpg", "--export", "archive-test@khronika.invalid"], env=env, check=True, capture_output=True
        ).stdout
    )
    return str(keyring)
