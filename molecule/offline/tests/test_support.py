"""Verify playbook support-bundle.yml (through `khronika support bundle`) on the scenario's host after
the offline install: secrets planted in a container's environment (the vaulted module token), a config
file and a log never reach the bundle; a host that does not answer is recorded and the bundle is still
written; request.json validates against the schema written beside it."""

import json
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import jsonschema
import pytest

testinfra_hosts = ["ansible://kh-offline-app1"]

PROJECT = Path(os.environ["MOLECULE_PROJECT_DIRECTORY"])
INVENTORY = Path(os.environ["MOLECULE_INVENTORY_FILE"]).parent
VAULT = Path(os.environ["KHRONIKA_TEST_REGISTRY_VAULT"])
PASSWORD_FILE = os.environ.get("KHRONIKA_TEST_VAULT_PASSWORD_FILE", "")
APP = "kh-offline-app1"


def vault_value(name):
    """The plaintext of one vaulted variable, as Ansible reads it."""
    out = subprocess.run(
        [
            "ansible",
            "localhost",
            "-m",
            "ansible.builtin.debug",
            "-a",
            f"var={name}",
            "-e",
            f"@{VAULT}",
            "--vault-password-file",
            PASSWORD_FILE,
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
        env={**os.environ, "ANSIBLE_CONFIG": str(PROJECT / "ansible.cfg")},
    ).stdout
    return json.loads(out.split("=>", 1)[1])[name]  # localhost | SUCCESS => {"name": "value"}


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    """Plant the secrets, write the site's inventory (the scenario's, its vault, one host that is gone),
    run `khronika support bundle`, and unpack what it wrote."""
    token, registry_password = (
        vault_value("vault_appeals_api_token"),
        vault_value("vault_test_registry_password"),
    )
    assert len(token) >= 8 and len(registry_password) >= 8
    subprocess.run(
        [
            "docker",
            "exec",
            APP,
            "sh",
            "-c",
            f"printf 'registry_url=https://ci:{registry_password}@registry.test:5000\\n' > /etc/khronika/site.conf && "
            "docker exec appeals-api-1 sh -c 'echo \"started with APPEALS_API_TOKEN=$APPEALS_API_TOKEN\" > /proc/1/fd/1'",
        ],
        check=True,
        timeout=60,
    )
    site = tmp_path_factory.mktemp("site") / "inventory"
    shutil.copytree(INVENTORY, site)
    (site / "group_vars" / "all").mkdir(parents=True, exist_ok=True)
    shutil.copy(VAULT, site / "group_vars" / "all" / "vault.yml")
    (site / "gone.yml").write_text(
        "khronika:\n  hosts:\n    kh-offline-gone:\n      ansible_connection: community.docker.docker\n",
        encoding="utf-8",
    )
    out = tmp_path_factory.mktemp("support")
    done = subprocess.run(
        [
            str(Path(os.environ.get("VIRTUAL_ENV", PROJECT / ".venv")) / "bin" / "khronika"),
            "support",
            "bundle",
            "-i",
            str(site),
            "--vault-password-file",
            PASSWORD_FILE,
            "--category",
            "problem",
            "--describe",
            "The classifier stopped answering after the update to 1.1.0.",
            "-o",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
        env={**os.environ, "ANSIBLE_CONFIG": str(PROJECT / "ansible.cfg")},
    )
    assert done.returncode == 0, done.stdout[-5000:] + done.stderr[-3000:]
    archives = list(out.glob("khronika-support-*.tar.gz"))
    assert len(archives) == 1, done.stdout[-3000:]
    with tarfile.open(archives[0]) as tar:
        members = {m.name.split("/", 1)[1]: tar.extractfile(m).read().decode() for m in tar if m.isfile()}
    return {
        "members": members,
        "secrets": [token, registry_password],
        "output": done.stdout,
        "archive": archives[0],
    }


def test_no_secret_reaches_the_bundle(host, bundle):
    everything = "\n".join(bundle["members"].values())
    for secret in bundle["secrets"]:
        assert secret not in everything
    with tarfile.open(bundle["archive"]) as tar:  # nor a member's name, nor the raw bytes
        raw = b"".join(tar.extractfile(m).read() for m in tar if m.isfile())
    assert all(secret.encode() not in raw for secret in bundle["secrets"])
    members = bundle["members"]
    inspect = json.loads(members[f"hosts/{APP}/inspect.json"])
    env = next(c for c in inspect if c["Name"] == "/appeals-api-1")["Config"]["Env"]
    assert "APPEALS_API_TOKEN=<redacted>" in env
    assert "APPEALS_API_TOKEN=<redacted>" in members[f"hosts/{APP}/logs/appeals-api-1.log"]
    summary = members["summary.md"]
    assert "- inventory secrets:" in summary and "- container environment values:" in summary


def test_the_bundle_says_what_the_host_runs_and_who_did_not_answer(host, bundle):
    members = bundle["members"]
    summary = members["summary.md"]
    assert f"| {APP} | 1.1.0 | 2 of 2 running |" in summary
    assert "| kh-offline-gone | UNREACHABLE:" in summary
    assert "hosts/kh-offline-gone/UNREACHABLE.txt" in members
    assert json.loads(members[f"hosts/{APP}/release.json"])["version"] == "1.1.0"
    for name in (
        "containers.jsonl",
        "docker-info.txt",
        "docker-events.jsonl",
        "systemd-failed.txt",
        "disk.txt",
        "memory.txt",
        "gpu.txt",
        "audit.log",
        "logs/classifier-1.log",
    ):
        assert f"hosts/{APP}/{name}" in members, name
    assert "not read: no monitoring host in the inventory" in summary


def test_request_json_validates_against_its_schema(host, bundle):
    members = bundle["members"]
    request, schema = json.loads(members["request.json"]), json.loads(members["request.schema.json"])
    jsonschema.validate(request, schema)
    assert request["category"] == "problem"
    assert request["organisation"]["name"] == "Test city administration"
    assert request["contact"] == {"email": "ops@example.org", "phone": None}
    assert request["environment"]["hosts_unreachable"] == ["kh-offline-gone"]
    assert {a["path"] for a in request["attachments"]} - {"summary.md"} <= set(members)
