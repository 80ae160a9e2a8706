"""The update's registry pre-flight against the real TLS + htpasswd test registry (scripts/test-registry.sh)."""

from __future__ import annotations

import os
import socket
import ssl
import urllib.request
from pathlib import Path

from conftest import require_service
from khronika_ops.platform.registry import MANIFEST_TYPES, Credentials, RegistryClient

LOCAL = "127.0.0.1:5000"  # this machine pushes there; test hosts say registry.test:5000


def _registry() -> tuple[str, Credentials, str]:
    state = os.environ.get("KHRONIKA_TEST_REGISTRY_DIR")
    require_service(
        bool(state) and Path(state or "").is_dir(), "the test registry (scripts/test-registry.sh start)"
    )
    assert state is not None
    password = (Path(state) / "password").read_text(encoding="utf-8").strip()
    user = os.environ["KHRONIKA_TEST_REGISTRY_USER"]
    ca = os.environ["KHRONIKA_TEST_REGISTRY_CA"]
    credentials = Credentials(user, password)
    # The digest the running registry holds for the test tag (a local image may carry older pushes').
    repository, tag = os.environ["KHRONIKA_TEST_IMAGE"].replace("registry.test:5000", LOCAL).rsplit(":", 1)
    path = repository.split("/", 1)[1]
    request = urllib.request.Request(
        f"https://{LOCAL}/v2/{path}/manifests/{tag}",
        headers={"Accept": MANIFEST_TYPES, "Authorization": credentials.basic()},
        method="HEAD",
    )
    with urllib.request.urlopen(request, context=ssl.create_default_context(cafile=ca), timeout=10) as answer:
        pinned = f"{repository}@{answer.headers['Docker-Content-Digest']}"
    return pinned, credentials, ca


def test_every_digest_is_asked_with_the_sites_credentials() -> None:
    pinned, credentials, ca = _registry()
    client = RegistryClient({LOCAL: credentials}, ca_file=ca)
    missing = pinned.rsplit("@", 1)[0] + "@sha256:" + "0" * 64
    results = {check.image: check for check in client.check_all([pinned, missing])}
    assert results[pinned].ok, results[pinned]
    assert not results[missing].ok and results[missing].reason.endswith(
        f"is not in {LOCAL}/khronika-test/busybox"
    )
    anonymous = RegistryClient(ca_file=ca).check(pinned)
    assert not anonymous.ok and "needs credentials (none given) (HTTP 401)" in anonymous.reason
    wrong = RegistryClient({LOCAL: Credentials(credentials.username, "wrong")}, ca_file=ca).check(pinned)
    assert not wrong.ok and "the credentials were refused (HTTP 401)" in wrong.reason


def test_a_registry_that_does_not_answer_and_unpinned_images() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    down = RegistryClient(timeout=2).check(f"127.0.0.1:{port}/x/y@sha256:{'1' * 64}")
    assert not down.ok and down.reason.startswith(f"registry 127.0.0.1:{port} does not answer")
    assert RegistryClient().check("x/y@sha256:" + "1" * 64).reason.startswith("no registry host")
    assert RegistryClient().check("127.0.0.1:5000/x/y:1.0").reason.startswith("no digest")
    assert RegistryClient().check("Not An Image").reason.startswith("not an image reference")
