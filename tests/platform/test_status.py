"""`khronika status` parsing of Ansible's JSON output (the live path runs in the deploy scenario)."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from conftest import REPO, ansible_env
from khronika_ops.cli import app
from khronika_ops.platform import status
from khronika_ops.platform.status import DEFAULT_RECORD_DIR, parse_ansible_json, parse_stdout


def _content(record: dict[str, object]) -> str:
    return base64.b64encode(json.dumps(record).encode()).decode()


def test_records_errors_and_unreachable_hosts():
    record = {
        "version": "1.1.0",
        "kind": "change-release",
        "deployed_at": "2026-11-25T00:00:00Z",
        "modules": [],
    }
    document = {
        "plays": [
            {
                "tasks": [
                    {
                        "hosts": {
                            "b": {"content": _content(record), "encoding": "base64"},
                            "a": {"failed": True, "msg": "file not found: /etc/khronika/release.json"},
                            "c": {"unreachable": True, "msg": "ssh: connect to host c port 22"},
                        }
                    }
                ]
            }
        ]
    }
    records = parse_ansible_json(document)
    assert list(records) == ["a", "b", "c"]
    assert records["a"] == {
        "error": "no release recorded (/etc/khronika/release.json missing)",
        "missing": True,
    }
    assert records["b"] == record
    assert records["c"]["error"].startswith("unreachable: ssh")


def test_other_callbacks_around_the_json_document():
    stdout = 'Thursday 26 November 2026\n{"plays": [], "stats": {}}\nansible.builtin.slurp ----- 0.52s\n'
    assert parse_stdout(stdout) == {"plays": [], "stats": {}}


def _local_inventory(tmp_path: Path, **hosts: Path) -> Path:
    lines = ["[khronika]"]
    for name, record_dir in hosts.items():
        lines.append(
            f"{name} ansible_connection=local ansible_python_interpreter={sys.executable} "
            f"platform_record_dir={record_dir}"
        )
    inventory = tmp_path / "hosts.ini"
    inventory.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return inventory


@pytest.fixture
def no_local_modules(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, object]]:
    """The hosts of these tests are this machine, whose Docker other test files share (the downtime
    benchmark deploys a module on it): what its containers run is read as nothing, so the verdict
    depends on the record alone (the containers' part: test_status_compares_the_record_with_what_the_containers_run).
    Returns the keyword arguments of each read."""
    reads: list[dict[str, object]] = []

    def read_nothing(*_args: object, **kwargs: object) -> dict[str, object]:
        reads.append(kwargs)
        return {}

    monkeypatch.setattr(status, "read_containers", read_nothing)
    return reads


def test_status_reads_each_hosts_record_dir(
    tmp_path: Path, no_local_modules: list[dict[str, object]]
) -> None:
    """The folder is the host's platform_record_dir, as the role writes it; a host without a record
    says which file it lacks."""
    recorded = tmp_path / "a"
    recorded.mkdir()
    record = {
        "version": "1.1.0",
        "kind": "change-release",
        "deployed_at": "2026-12-01T00:00:00Z",
        "modules": [],
    }
    (recorded / "release.json").write_text(json.dumps(record), encoding="utf-8")
    inventory = _local_inventory(tmp_path, alpha=recorded, beta=tmp_path / "b")
    result = CliRunner().invoke(app, ["status", "-i", str(inventory), "--json"], env=ansible_env())
    records = json.loads(result.stdout)
    # Beside each record: what the host's containers run (no answer: see the fixture) and the verdict.
    assert {k: v for k, v in records["alpha"].items() if k not in {"running", "state", "why"}} == record
    assert records["alpha"]["state"] == "unknown"
    assert {k: v for k, v in records["beta"].items() if k not in {"running", "state", "why"}} == {
        "error": f"no release recorded ({tmp_path / 'b' / 'release.json'} missing)",
        "missing": True,
    }
    assert result.exit_code == 1


def test_status_names_a_missing_inventory(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-inventory.yml"
    result = CliRunner().invoke(app, ["status", "-i", str(missing)])
    assert result.exit_code == 2
    assert f"inventory {missing} does not exist" in result.stderr
    assert "Khronika release per host" not in result.stdout  # no empty table


def test_the_default_record_dir_is_the_roles() -> None:
    defaults = yaml.safe_load(
        (REPO / "roles" / "platform" / "defaults" / "main.yml").read_text(encoding="utf-8")
    )
    assert defaults["platform_record_dir"] == DEFAULT_RECORD_DIR


def test_the_update_role_falls_back_to_the_platform_roles_folders() -> None:
    """The update role reads the platform role's folders on hosts where the inventory sets nothing:
    its fallbacks must be the platform role's defaults."""
    defaults = yaml.safe_load(
        (REPO / "roles" / "platform" / "defaults" / "main.yml").read_text(encoding="utf-8")
    )
    update_vars = (REPO / "roles" / "update" / "vars" / "main.yml").read_text(encoding="utf-8")
    assert f"platform_record_dir | default('{defaults['platform_record_dir']}')" in update_vars
    assert f"platform_backup_dir | default('{defaults['platform_backup_dir']}')" in update_vars


def test_status_reads_a_vaulted_inventory_and_names_what_ansible_cannot(
    tmp_path: Path, no_local_modules: list[dict[str, object]]
) -> None:
    """A real site's inventory is vaulted: --vault-password-file as with every other command. An
    inventory Ansible cannot parse, or a pattern matching no host, is an error with Ansible's reason."""
    recorded = tmp_path / "a"
    recorded.mkdir()
    (recorded / "release.json").write_text(
        json.dumps({"version": "1.1.0", "kind": "change-release", "modules": []}), encoding="utf-8"
    )
    site = tmp_path / "site"
    (site / "group_vars" / "khronika").mkdir(parents=True)
    (site / "hosts.ini").write_text(
        f"[khronika]\nalpha ansible_connection=local ansible_python_interpreter={sys.executable}\n",
        encoding="utf-8",
    )
    secret = site / "group_vars" / "khronika" / "vault.yml"
    secret.write_text(f"platform_record_dir: {recorded}\n", encoding="utf-8")
    password = tmp_path / "vault-pass"
    password.write_text("s3cret\n", encoding="utf-8")
    subprocess.run(
        [
            str(Path(sys.executable).with_name("ansible-vault")),
            "encrypt",
            "--vault-password-file",
            str(password),
            str(secret),
        ],
        check=True,
        capture_output=True,
        env=ansible_env(),
    )
    runner = CliRunner()
    locked = runner.invoke(app, ["status", "-i", str(site)], env=ansible_env())
    assert locked.exit_code == 2 and "vault" in locked.stderr.lower(), locked.stderr
    opened = runner.invoke(
        app, ["status", "-i", str(site), "--vault-password-file", str(password), "--json"], env=ansible_env()
    )
    assert opened.exit_code == 0, opened.stderr
    assert json.loads(opened.stdout)["alpha"]["version"] == "1.1.0"
    assert no_local_modules[-1]["vault_password_file"] == password  # the containers read with the vault too

    nobody = runner.invoke(app, ["status", "-i", str(site), "-l", "no-such-host"], env=ansible_env())
    assert nobody.exit_code == 2 and "no host of" in nobody.stderr and "no-such-host" in nobody.stderr
    broken = tmp_path / "broken.yml"
    broken.write_text("all: [\n  hosts", encoding="utf-8")
    unparsed = runner.invoke(app, ["status", "-i", str(broken)], env=ansible_env())
    assert unparsed.exit_code == 2 and "No inventory was parsed" in unparsed.stderr, unparsed.stderr


def _update_check(inventory: Path, limit: str, env: dict[str, str]):
    """`khronika update check` of 1.1.0 with the sample catalog on `inventory`, limited to `limit`."""
    catalog = REPO / "samples" / "catalog" / "khronika_modules.yml"
    command = ["update", "check", "--release", "1.1.0", "--catalog", str(catalog), "-i", str(inventory)]
    return CliRunner().invoke(app, [*command, "--dir", str(REPO / "releases"), "--limit", limit], env=env)


def test_update_check_refuses_a_limit_that_matches_no_host() -> None:
    """It said "every targeted host already runs 1.1.0" when no host was targeted at all."""
    result = _update_check(REPO / "samples" / "catalog" / "inventory.yml", "nosuchhost", ansible_env())
    assert result.exit_code == 2, result.output
    assert "no host of" in result.stderr and "nosuchhost" in result.stderr
    assert "already runs" not in result.output


def test_a_pattern_is_never_rendered(tmp_path: Path) -> None:
    """`ansible PATTERN` renders the pattern as a play's hosts: one holding a template is refused, and
    the command in it never runs."""
    inventory = _local_inventory(tmp_path, alpha=tmp_path / "a")
    canary = tmp_path / "CANARY"
    planted = "{{ lookup('pipe', 'touch $KHRONIKA_CANARY') }}"
    env = {**ansible_env(), "KHRONIKA_CANARY": str(canary)}
    status = CliRunner().invoke(app, ["status", "-i", str(inventory), "-l", planted], env=env)
    assert status.exit_code == 2 and "is not a host pattern" in status.stderr
    check = _update_check(inventory, f"alpha:{planted}", env)
    assert check.exit_code == 2 and "is not a host pattern" in check.stderr, check.output
    assert not canary.exists()


def test_status_compares_the_record_with_what_the_containers_run():
    from khronika_ops.platform.status import host_state, running_modules

    image = "registry.test/khronika-samples/classifier@sha256:" + "a" * 64
    other = "registry.test/khronika-samples/classifier@sha256:" + "b" * 64
    record = {
        "version": "1.0.0",
        "kind": "change-release",
        "modules": [{"name": "classifier", "image": image}],
    }
    inspect = [{"Config": {"Image": image, "Labels": {"khronika.module": "classifier"}}}]
    running = running_modules({"stdout": json.dumps(inspect)})
    assert running == {"classifier": [image]}
    assert host_state(record, running) == ("ok", [])
    drifted = running_modules(
        {"stdout": json.dumps([{"Config": {"Image": other, "Labels": {"khronika.module": "classifier"}}}])}
    )
    state, why = host_state(record, drifted)
    assert state == "drifted" and why == [f"classifier: runs {other}, the record says {image}"]
    assert host_state(record, {})[1] == [f"classifier: no container runs (the record says {image})"]
    # An update that marked the record and died: switching, with what runs already.
    marked = record | {"switching": {"to": "1.1.0", "run": "update-1.1.0-x", "started_at": "t"}}
    state, why = host_state(marked, drifted)
    assert state == "switching" and "has not finished" in why[0] and "runs" in why[1]
    assert running_modules({"failed": True, "msg": "docker: not found"}) == {"error": "docker: not found"}
    assert running_modules({"stdout": ""}) == {}
    assert host_state({"error": "unreachable"}, None) == ("unknown", ["unreachable"])
