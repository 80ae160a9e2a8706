"""`khronika --version` and `khronika doctor`."""

from __future__ import annotations

import json
import socket
import subprocess
import threading
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import REPO, ansible_env, tool
from khronika_ops import __version__, doctor
from khronika_ops.cli import app

runner = CliRunner()


def test_version():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"khronika-ops {__version__}"


def test_console_script_is_installed():
    out = subprocess.run([tool("khronika"), "--version"], capture_output=True, text=True, check=True).stdout
    assert __version__ in out


@pytest.mark.parametrize(
    ("text", "parsed"),
    [("2.19.14", (2, 19, 14)), ("2.20.0rc1", (2, 20, 0)), ("26.1.5+dfsg1", (26, 1, 5)), ("x", ())],
)
def test_parse_version(text, parsed):
    assert doctor.parse_version(text) == parsed


def write_collection(base: Path, fqcn: str, version: str) -> None:
    namespace, name = fqcn.split(".")
    root = base / "ansible_collections" / namespace / name
    root.mkdir(parents=True)
    (root / "MANIFEST.json").write_text(
        json.dumps({"collection_info": {"version": version}}), encoding="utf-8"
    )


def test_collections_too_old_or_missing_fail(tmp_path):
    write_collection(tmp_path, "community.docker", "3.4.0")
    results = {r.name: r for r in doctor.check_collections([tmp_path])}
    assert not results["community.docker"].ok
    assert results["community.docker"].detail == "3.4.0"
    assert not results["ansible.posix"].ok
    assert results["ansible.posix"].detail == "not found"


def test_collections_from_the_checkout_pass():
    results = doctor.check_collections([REPO / ".ansible" / "collections"])
    assert all(r.ok for r in results), results


def test_docker_check_reads_the_engine_api(tmp_path):
    sock_path = tmp_path / "docker.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(sock_path))
    server.listen(1)

    def answer() -> None:
        conn, _ = server.accept()
        conn.recv(4096)
        body = json.dumps({"Version": "99.0.1", "ApiVersion": "1.99"}).encode()
        conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n" + body)
        conn.close()

    thread = threading.Thread(target=answer)
    thread.start()
    result = doctor.check_docker(required=True, socket_path=sock_path)
    thread.join()
    server.close()
    assert result.ok
    assert result.detail == "99.0.1 (API 1.99)"


def test_docker_check_without_socket(tmp_path):
    result = doctor.check_docker(required=False, socket_path=tmp_path / "missing.sock")
    assert not result.ok
    assert not result.required


def test_doctor_json_on_this_controller():
    proc = subprocess.run(
        [tool("khronika"), "doctor", "--json"],
        capture_output=True,
        text=True,
        env=ansible_env(),
        cwd=REPO,
        check=False,
    )
    results = {r["name"]: r for r in json.loads(proc.stdout)}
    assert {
        "python",
        "ansible-core",
        "community.docker",
        "ansible.posix",
        "ssh client",
        "docker engine",
    } <= set(results)
    assert results["python"]["ok"]
    assert results["community.docker"]["ok"], results["community.docker"]
    assert proc.returncode == (0 if all(r["ok"] for r in results.values() if r["required"]) else 1)


def test_doctor_table_says_ready_or_not():
    proc = subprocess.run(
        [tool("khronika"), "doctor"], capture_output=True, text=True, env=ansible_env(), cwd=REPO, check=False
    )
    assert "khronika doctor" in proc.stdout
    assert ("controller ready" in proc.stdout) == (proc.returncode == 0)
