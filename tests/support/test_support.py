"""The support bundle from a host's real collection (roles/support/files/collect.sh run in a systemd
container with secrets planted in a container's environment, a config file and a log), redacted,
with request.json valid against its schema; pseudonyms; an unreachable host; a leak refused."""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import tarfile
from datetime import UTC, datetime
from pathlib import Path

import jsonschema
import pytest

from conftest import REPO, TargetHost, ansible_env, tool
from khronika_ops.support.bundle import BundleError, HostResult, write_bundle
from khronika_ops.support.redact import MARK, Redactor
from khronika_ops.support.request import ATTACHMENT_MAX_BYTES, check_fields

TOKEN = "tok-3f9a1c2e8b7d4f60a1b2"
PASSWORD = "Pa55-w0rd-planted-91x"
ORG = {"name": "Городская администрация", "address": "ул. Ленина, 1", "contact_person": "И. Иванов"}
CONTACT = {"email": "ops@example.org", "phone": "+7 495 000-00-00"}
PRIVATE_KEY = (
    "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----\n"
)


def _host_collection(tmp_path: Path, host: str) -> Path:
    """What collect.sh writes for a host whose module has the token in its environment and logs."""
    files = {
        "release.json": json.dumps({"version": "1.1.0", "kind": "change-release"}),
        "containers.jsonl": "\n".join(
            json.dumps(row)
            for row in (
                {"Names": "appeals-api-1", "State": "running", "Status": "Up 3 minutes (healthy)"},
                {"Names": "classifier-1", "State": "exited", "Status": "Exited (1) 2 minutes ago"},
            )
        ),
        "inspect.json": json.dumps(
            [
                {
                    "Name": "/appeals-api-1",
                    "Config": {
                        "Env": [f"APPEALS_API_TOKEN={TOKEN}", "APPEALS_DATA_DIR=/var/lib/appeals", "EMPTY="]
                    },
                }
            ]
        ),
        "logs/appeals-api-1.log": f"2026-12-03T10:00:00Z start with token={TOKEN} on {host} 10.20.30.40\n"
        f"pulling from https://ci:{PASSWORD}@registry.example.org/v2/\nAuthorization: Bearer abcdef123456\n",
        "systemd-failed.txt": "docker.service loaded failed failed Docker Application Container Engine\n",
        "gpu.txt": "nvidia-smi: not present\n",
        "etc-khronika.conf": f"db_password = {PASSWORD}\n{PRIVATE_KEY}",
    }
    target = tmp_path / "collected" / "hosts" / f"{host}.tar.gz"
    target.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(target, "w:gz") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(f"./{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return target.parent.parent


def _read(bundle: Path) -> dict[str, str]:
    with tarfile.open(bundle) as tar:
        return {
            member.name.split("/", 1)[1]: tar.extractfile(member).read().decode(errors="replace")  # type: ignore[union-attr]
            for member in tar
            if member.isfile()
        }


def _bundle(tmp_path: Path, **kwargs: object):
    collected = _host_collection(tmp_path, "app-01.site.example")
    values: dict[str, object] = {
        "collected": collected,
        "hosts": {
            "app-01.site.example": HostResult(True),
            "app-02.site.example": HostResult(False, "ssh: connect to host app-02 port 22: No route to host"),
        },
        "dest": tmp_path / "out",
        "organisation": ORG,
        "contact": CONTACT,
        "category": "problem",
        "description": "The classifier stopped after the update; appeals are not classified.",
        "secrets": [TOKEN, PASSWORD],
        "alerts": {
            "source": "https://mon:9093",
            "alerts": [
                {
                    "labels": {
                        "alertname": "KhronikaModuleDown",
                        "severity": "critical",
                        "instance": "app-01.site.example",
                    },
                    "startsAt": "2026-12-03T10:01:00Z",
                }
            ],
        },
        "now": datetime(2026, 12, 3, 10, 5, tzinfo=UTC),
    }
    values.update(kwargs)
    return write_bundle(**values)  # type: ignore[arg-type]


def test_the_bundle_holds_no_secret_and_says_what_was_redacted(tmp_path: Path) -> None:
    result = _bundle(tmp_path)
    assert result.path.name == "khronika-support-20261203T100500Z.tar.gz"
    assert oct(result.path.stat().st_mode & 0o777) == "0o600"
    members = _read(result.path)
    everything = "\n".join(members.values())
    for secret in (TOKEN, PASSWORD, "abcdef123456", "b3BlbnNzaC1rZXktdjEAAAAA"):
        assert secret not in everything
    inspect = json.loads(members["hosts/app-01.site.example/inspect.json"])
    assert inspect[0]["Config"]["Env"] == [f"APPEALS_API_TOKEN={MARK}", f"APPEALS_DATA_DIR={MARK}", "EMPTY="]
    assert (
        f"https://ci:{MARK}@registry.example.org"
        in members["hosts/app-01.site.example/logs/appeals-api-1.log"]
    )
    summary = members["summary.md"]
    assert "| app-01.site.example | 1.1.0 | 1 of 2 running | docker.service | no |" in summary
    assert (
        "| app-02.site.example | UNREACHABLE: ssh: connect to host app-02 port 22: No route to host |"
        in summary
    )
    assert "KhronikaModuleDown (critical) on app-01.site.example" in summary
    assert "- inventory secrets: 3" in summary and "- private keys: 1" in summary
    assert "- container environment values: 2" in summary and "- credentials in URLs: 1" in summary
    assert "app-02.site.example: not collected" in members["hosts/app-02.site.example/UNREACHABLE.txt"]
    assert result.unreachable == ["app-02.site.example"]


def test_request_json_validates_against_its_schema(tmp_path: Path) -> None:
    members = _read(_bundle(tmp_path).path)
    request, schema = json.loads(members["request.json"]), json.loads(members["request.schema.json"])
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.validate(request, schema)
    assert request["category"] == "problem" and request["organisation"] == ORG
    assert request["environment"]["releases"] == {"app-01.site.example": "1.1.0", "app-02.site.example": None}
    paths = {a["path"] for a in request["attachments"]}
    assert {"summary.md", "hosts/app-01.site.example/inspect.json", "controller/alerts.json"} <= paths
    assert paths - {"summary.md"} <= set(members)
    # The schema refuses what support cannot work with.
    for broken in (
        {**request, "category": "bug"},
        {**request, "contact": {}},
        {**request, "organisation": {"name": "x"}},
    ):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(broken, schema)


def test_pseudonyms_are_consistent(tmp_path: Path) -> None:
    members = _read(_bundle(tmp_path, pseudonymize=True).path)
    everything = "\n".join(members.values()) + "\n".join(members)
    assert "app-01.site.example" not in everything and "10.20.30.40" not in everything
    assert "hosts/host-01/inspect.json" in members and "hosts/host-02/UNREACHABLE.txt" in members
    assert (
        "start with token=<redacted> on host-01 10.255.0.2" in members["hosts/host-01/logs/appeals-api-1.log"]
    )
    assert "KhronikaModuleDown (critical) on host-01" in members["summary.md"]
    assert "127.0.0.1" in Redactor(pseudonymize=True).text("bind 127.0.0.1")


def test_a_leak_stops_the_bundle(tmp_path: Path) -> None:
    # A secret that only the final scan can see (split across the redaction rules' reach is not
    # possible here, so the scan is given one more secret than the redaction knew of).
    class Blind(Redactor):
        def text(self, content: str) -> str:
            return content

    import khronika_ops.support.bundle as bundle_module

    original = bundle_module.Redactor
    bundle_module.Redactor = Blind  # type: ignore[misc]
    try:
        with pytest.raises(BundleError, match="still holds secrets") as caught:
            _bundle(tmp_path)
    finally:
        bundle_module.Redactor = original  # type: ignore[misc]
    assert TOKEN not in str(caught.value)
    assert not list((tmp_path / "out").iterdir())


def test_request_fields_are_checked_first(tmp_path: Path) -> None:
    """Each problem a sentence naming what to fix (never pydantic's raw text or its links)."""
    problems = check_fields({"name": "x"}, {"email": "not-an-address"}, "bug")
    assert "khronika_support_organisation.address is required" in problems
    assert "khronika_support_organisation.contact_person is required" in problems
    assert any(
        "category must be one of incident, problem, service-request, development-request" in p
        for p in problems
    )
    assert any("is not an address" in p for p in problems)
    assert not any("pydantic" in p or "Field required" in p or "http" in p for p in problems)
    assert check_fields(ORG, {"phone": "+7 495 000-00-00"}, "service-request") == []
    # The request itself: a description, a one-line subject, files that are images or text; and hosts.
    binary = tmp_path / "core.bin"
    binary.write_bytes(b"\x7fELF\x00\x01")
    big = tmp_path / "big.log"
    big.write_bytes(b"x" * (ATTACHMENT_MAX_BYTES + 1))
    problems = check_fields(
        ORG,
        CONTACT,
        "incident",
        description="  ",
        subject="one\ntwo",
        attachments=[str(binary), str(big), str(tmp_path / "none.png")],
        hosts=[],
        hosts_pattern="khronika",
    )
    assert problems == [
        "the request has no description: say what happened, when, and what was expected "
        "(--describe, khronika_support_description)",
        "the subject must be one line (--subject, khronika_support_subject)",
        f"--attach {binary}: {binary} is neither an image (PNG, JPEG, GIF, WebP) nor UTF-8 text",
        f"--attach {big}: {big} is {ATTACHMENT_MAX_BYTES + 1:,} bytes; an attachment may hold {ATTACHMENT_MAX_BYTES:,}",
        f"--attach {tmp_path / 'none.png'}: {tmp_path / 'none.png'} does not exist",
        "no host of the inventory matches 'khronika': there is nothing to collect from "
        "(the inventory's group khronika, or --limit)",
    ]
    assert check_fields({}, None, "incident") == [
        "khronika_support_organisation is not set: the inventory needs it (docs/support.md shows the fields)",
        "khronika_support_contact is not set: the inventory needs it (docs/support.md shows the fields)",
    ]


def test_subject_and_attachments_reach_the_request(tmp_path: Path) -> None:
    """A screenshot goes in as it is (listed with its type, size and sha256); a text file is redacted."""
    screenshot = tmp_path / "screen shot.png"
    screenshot.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)
    log = tmp_path / "browser.log"
    log.write_text(f"GET /api/appeals 500 token={TOKEN}\n", encoding="utf-8")
    result = _bundle(tmp_path, subject="Классификатор не отвечает", attachments=[screenshot, log])
    members = _read(result.path)
    request = json.loads(members["request.json"])
    assert request["subject"] == "Классификатор не отвечает"
    attached = {item["path"]: item for item in request["attachments"] if item.get("media_type")}
    png = attached["attachments/01-screen_shot.png"]
    assert png["media_type"] == "image/png" and png["bytes"] == screenshot.stat().st_size
    with tarfile.open(result.path) as tar:
        member = next(m for m in tar if m.name.endswith("attachments/01-screen_shot.png"))
        data = tar.extractfile(member).read()  # type: ignore[union-attr]
    assert data == screenshot.read_bytes() and hashlib.sha256(data).hexdigest() == png["sha256"]
    assert attached["attachments/02-browser.log"]["media_type"] == "text/plain"
    assert (
        TOKEN not in members["attachments/02-browser.log"] and MARK in members["attachments/02-browser.log"]
    )
    assert "Images are not redacted" in members["summary.md"]
    assert "## Subject: Классификатор не отвечает" in members["summary.md"]
    # No subject given: the description's first line.
    again = _bundle(tmp_path / "again")
    assert json.loads(_read(again.path)["request.json"])["subject"].startswith("The classifier stopped")


def test_the_collector_runs_on_a_real_host(target_host: TargetHost, tmp_path: Path) -> None:
    """collect.sh on a Debian container (no Docker there: said so), its tar.gz read by the bundle."""
    script = (REPO / "roles" / "support" / "files" / "collect.sh").read_text()
    subprocess.run(
        ["docker", "exec", "-i", target_host.name, "bash", "-c", "cat > /tmp/collect.sh"],
        input=script,
        text=True,
        check=True,
    )
    subprocess.run(
        [
            "docker",
            "exec",
            target_host.name,
            "bash",
            "-c",
            f"mkdir -p /etc/khronika && echo 'password={PASSWORD}' > /etc/khronika/site.conf && bash /tmp/collect.sh /tmp/out.tar.gz 4096 1h",
        ],
        check=True,
    )
    target = tmp_path / "collected" / "hosts"
    target.mkdir(parents=True)
    subprocess.run(
        ["docker", "cp", f"{target_host.name}:/tmp/out.tar.gz", str(target / "deb.tar.gz")], check=True
    )
    result = write_bundle(
        collected=tmp_path / "collected",
        hosts={"deb": HostResult(True)},
        dest=tmp_path / "out",
        organisation=ORG,
        contact=CONTACT,
        category="incident",
        description="collector check",
        secrets=[PASSWORD],
    )
    members = _read(result.path)
    assert members["hosts/deb/docker-info.txt"].strip() == "docker: not installed"
    assert "NAME=" in members["hosts/deb/versions.txt"] and "cores:" in members["hosts/deb/memory.txt"]
    assert json.loads(members["hosts/deb/release.json"]) == {"missing": True}
    assert PASSWORD not in "\n".join(members.values())


def test_the_playbook_on_a_host_and_one_that_is_gone(target_host: TargetHost, tmp_path: Path) -> None:
    """`khronika support bundle` (playbooks/support-bundle.yml): secrets from the inventory planted in a
    config file on the host stay out; the host that is gone is recorded; the run still succeeds."""
    inventory = tmp_path / "inventory"
    (inventory / "group_vars" / "all").mkdir(parents=True)
    (inventory / "hosts.yml").write_text(
        "all:\n  children:\n    khronika:\n      hosts:\n"
        f"        {target_host.name}: {{ansible_connection: community.docker.docker}}\n"
        "        kh-pytest-gone: {ansible_connection: community.docker.docker}\n",
        encoding="utf-8",
    )
    (inventory / "group_vars" / "all" / "site.yml").write_text(
        json.dumps(
            {
                "khronika_support_organisation": ORG,
                "khronika_support_contact": {"phone": "+7 495 000-00-00"},
                "vault_db_password": PASSWORD,
                "docker_registry_logins": [{"registry": "r.test", "username": "u", "password": TOKEN}],
                # A lookup that fails where it is rendered must not stop the bundle (it is never rendered).
                "docker_registry_ca_certs": [
                    {
                        "registry": "r.test",
                        "ca": "{{ lookup('ansible.builtin.file', inventory_dir ~ '/files/none.crt') }}",
                    }
                ],
                # Names a secret, holds none: MODULE_DB_PASSWORD must stay readable.
                "khronika_modules": [
                    {
                        "name": "x",
                        "secrets": [{"env": "MODULE_DB_PASSWORD", "vault_variable": "vault_db_password"}],
                    }
                ],
            }
        ),
        encoding="utf-8",
    )
    target_host.exec(
        "sh",
        "-c",
        f"mkdir -p /etc/khronika && echo 'db={PASSWORD} login={TOKEN} MODULE_DB_PASSWORD' > /etc/khronika/site.conf",
    )
    # Text a person typed, and paths, with templates in them: they must arrive literally, and the command
    # in them must never run (it would, as the user running khronika, if Ansible rendered them).
    canary = tmp_path / "CANARY"
    planted = "{{ lookup('pipe', 'touch $KHRONIKA_CANARY') }}"
    description = (
        f"How do I rotate the registry password? The page shows {planted} and {{% raw %}}{{{{ appeal_id }}}}"
    )
    subject = f"Rotation {planted}"
    screenshot = tmp_path / f"shot {planted}.png"
    screenshot.write_bytes(b"\x89PNG\r\n\x1a\n0000")
    out = tmp_path / f"out {planted}"
    env = {**ansible_env(), "KHRONIKA_CANARY": str(canary)}
    done = subprocess.run(
        [
            tool("khronika"),
            "support",
            "bundle",
            "-i",
            str(inventory),
            "-o",
            str(out),
            "--category",
            "service-request",
            "--describe",
            description,
            "--subject",
            subject,
            "--attach",
            str(screenshot),
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-4000:]
    assert not canary.exists()
    bundles = list(out.glob("khronika-support-*.tar.gz"))
    assert len(bundles) == 1
    members = _read(bundles[0])
    everything = "\n".join(members.values())
    assert PASSWORD not in everything and TOKEN not in everything
    assert (
        members[f"hosts/{target_host.name}/etc/khronika/site.conf"].strip()
        == f"db={MARK} login={MARK} MODULE_DB_PASSWORD"
    )
    assert "| kh-pytest-gone | UNREACHABLE:" in members["summary.md"]
    assert f"| {target_host.name} | none recorded | 0 of 0 running | none | no |" in members["summary.md"]
    request = json.loads(members["request.json"])
    assert request["category"] == "service-request"
    assert request["description"] == description and request["subject"] == subject
    assert any(item.get("media_type") == "image/png" for item in request["attachments"])
    # A request support cannot work with is refused before anything is collected.
    refused = subprocess.run(
        [tool("khronika"), "support", "bundle", "-i", str(inventory), "-o", str(out), "--category", "bug"],
        capture_output=True,
        text=True,
        env=ansible_env(),
        cwd=REPO,
        timeout=120,
        check=False,
    )
    assert refused.returncode == 2 and "--category must be one of incident, problem" in refused.stdout
    # No description, or no host to collect from: refused with a sentence before anything is collected.
    for extra, said in (
        ([], "the request has no description"),
        (
            ["--describe", "x", "--limit", "kh-no-such-host"],
            "no host of the inventory matches 'kh-no-such-host'",
        ),
        (["--describe", "x", "--limit", planted], "no host of the inventory matches"),
    ):
        refused = subprocess.run(
            [
                tool("khronika"),
                "support",
                "bundle",
                "-i",
                str(inventory),
                "-o",
                str(tmp_path / "none"),
                *extra,
            ],
            capture_output=True,
            text=True,
            env=env,
            cwd=REPO,
            timeout=120,
            check=False,
        )
        assert refused.returncode != 0 and said in refused.stdout, refused.stdout
        assert "Nothing was collected" in refused.stdout and "validation error" not in refused.stdout
    assert not (tmp_path / "none").exists() and not canary.exists()


def test_secret_leaves_are_the_values_under_secret_names() -> None:
    from khronika_ops.support.redact import secret_leaves

    variables = {
        "vault_db": {"user": "u1", "nested": ["n1"]},
        "db_password": "{{ vault_pw }}",
        "docker_registry_logins": [{"registry": "r", "username": "u2", "password": "p2"}],
        "khronika_modules": [{"name": "m", "secrets": [{"env": "M_TOKEN", "vault_variable": "vault_x"}]}],
        "ansible_host": "10.0.0.1",
        "ansible_become_password": "p3",
        "plain": "nothing",
    }
    assert sorted(secret_leaves(variables)) == sorted(["u1", "n1", "{{ vault_pw }}", "p2", "p3"])
