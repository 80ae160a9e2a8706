"""The lab's inventory has the example's shape, a real vault, and what Ansible reads back from it;
the lab's host plan and seed files."""

from __future__ import annotations

import io
import ipaddress
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import yaml

from khronika_ops.lab import hosts as lab_hosts
from khronika_ops.lab import inventory
from khronika_ops.lab.hosts import LabError

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def lab(tmp_path, monkeypatch):
    state, inventory_dir = tmp_path / "state", tmp_path / "inventories" / "lab"
    monkeypatch.setattr(inventory, "STATE_DIR", state)
    monkeypatch.setattr(inventory, "INVENTORY_DIR", inventory_dir)
    monkeypatch.setattr(lab_hosts, "STATE_DIR", state)
    (state / "registry").mkdir(parents=True)
    (state / "registry" / "password").write_text("registry-secret-123\n")
    hosts = lab_hosts.plan_hosts(4, ipaddress.IPv4Network("10.210.7.0/24"))
    ssh_dir = lab_hosts.ensure_keys(hosts)
    path = inventory.write(hosts, gateway="10.210.7.1", ssh_dir=ssh_dir, release="1.0.0")
    return path, hosts, ssh_dir, state


def _ansible_inventory(path: Path, state: Path) -> dict:
    done = subprocess.run(
        [
            str(Path(sys.executable).with_name("ansible-inventory")),
            "-i",
            str(path),
            "--list",
            "--vault-password-file",
            str(state / "vault-pass"),
        ],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg")},
    )
    return json.loads(done.stdout)


def test_the_host_plan():
    assert lab_hosts.host_names(3) == ["lab-mon1", "lab-app1", "lab-app2"]
    hosts = lab_hosts.plan_hosts(3, ipaddress.IPv4Network("10.210.3.0/24"))
    assert [(h.name, h.address, h.groups) for h in hosts] == [
        ("lab-mon1", "10.210.3.11", ("khronika_monitoring", "khronika_gateway")),
        ("lab-app1", "10.210.3.12", ("khronika_platform",)),
        ("lab-app2", "10.210.3.13", ("khronika_platform",)),
    ]
    assert hosts[0].container == "khronika-lab-mon1" and hosts[0].volume == "khronika-lab-mon1-docker"
    with pytest.raises(LabError, match="at least 2 hosts"):
        lab_hosts.host_names(1)


def test_the_inventory_has_the_examples_shape_and_ansible_reads_it(lab):
    path, _hosts, _ssh_dir, state = lab
    example = yaml.safe_load((REPO / "inventories" / "example" / "hosts.yml").read_text())
    written = yaml.safe_load(path.read_text())
    assert set(written["all"]["children"]["khronika"]["children"]) == set(
        example["all"]["children"]["khronika"]["children"]
    )
    assert written["all"]["hosts"] == example["all"]["hosts"]  # the controller, never sudo
    main = yaml.safe_load((path.parent / "group_vars" / "all" / "main.yml").read_text())
    example_main = yaml.safe_load(
        (REPO / "inventories" / "example" / "group_vars" / "all" / "main.yml").read_text()
    )
    # Only values differ: every section the example has a key in, the lab sets too.
    for prefix in ("common_", "docker_", "monitoring_server_", "monitoring_agent_", "khronika_support_"):
        assert any(key.startswith(prefix) for key in main), prefix
    assert main["ansible_user"] == example_main["ansible_user"]

    data = _ansible_inventory(path, state)
    assert sorted(data["khronika_platform"]["hosts"]) == ["lab-app1", "lab-app2", "lab-app3"]
    assert data["khronika_monitoring"]["hosts"] == data["khronika_gateway"]["hosts"] == ["lab-mon1"]
    variables = data["_meta"]["hostvars"]["lab-app1"]
    assert variables["ansible_host"] == variables["khronika_address"] == "10.210.7.12"
    assert variables["khronika_release_version"] == "1.0.0"
    assert [m["name"] for m in variables["khronika_modules"]] == ["classifier", "appeals-api"]
    targets = {t["module"]: t["targets"] for t in variables["monitoring_server_module_targets"]}
    assert targets == {
        "classifier": ["lab-app1:18081", "lab-app2:18081", "lab-app3:18081"],
        "appeals-api": ["lab-app1:18080"],
    }
    assert "StrictHostKeyChecking=yes" in variables["ansible_ssh_common_args"]
    controller = data["_meta"]["hostvars"]["localhost"]
    assert controller["ansible_become"] is False and controller["ansible_connection"] == "local"


def test_the_vault_is_encrypted_owner_only_and_holds_the_generated_secrets(lab):
    path, _hosts, _ssh, state = lab
    vault = path.parent / "group_vars" / "all" / "vault.yml"
    assert vault.read_text().startswith("$ANSIBLE_VAULT;")
    for private in (vault, state / "vault-pass", state / "credentials.yml"):
        assert private.stat().st_mode & 0o077 == 0, private
    secrets = yaml.safe_load((state / "credentials.yml").read_text())
    assert "registry-secret-123" not in vault.read_text()
    assert all(value not in vault.read_text() for value in secrets.values())
    decrypted = subprocess.run(
        [
            str(Path(sys.executable).with_name("ansible-vault")),
            "view",
            "--vault-password-file",
            str(state / "vault-pass"),
            str(vault),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    values = yaml.safe_load(decrypted)
    assert values["vault_khronika_registry_password"] == "registry-secret-123"
    assert values["vault_monitoring_admin_password"] == secrets["vault_monitoring_admin_password"]


def test_a_second_write_changes_nothing(lab):
    path, hosts, ssh_dir, _state = lab
    files = sorted(p for p in path.parent.rglob("*") if p.is_file())
    before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in files}
    inventory.write(hosts, gateway="10.210.7.1", ssh_dir=ssh_dir, release="1.0.0")
    assert {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in files} == before


def test_known_hosts_and_seed_files_pin_each_hosts_own_key(lab):
    _path, hosts, ssh_dir, _state = lab
    known = lab_hosts.write_known_hosts(hosts, ssh_dir).read_text().splitlines()
    assert len(known) == len(hosts) and len({line.split()[2] for line in known}) == len(hosts)
    assert known[1].startswith("lab-app1,10.210.7.12 ssh-ed25519 ")
    with tarfile.open(fileobj=io.BytesIO(lab_hosts._seed_archive(hosts[1], ssh_dir))) as tar:
        members = {m.name: m for m in tar.getmembers()}
        key = members["etc/ssh/ssh_host_ed25519_key"]
        assert (key.mode, key.uid) == (0o600, 0)
        public = tar.extractfile("etc/ssh/ssh_host_ed25519_key.pub").read().decode()
        assert public.split()[1] == known[1].split()[2]
        assert (
            tar.extractfile("etc/ssh/authorized_keys/deploy").read()
            == (ssh_dir / "id_ed25519.pub").read_bytes()
        )
    assert (ssh_dir / "id_ed25519").stat().st_mode & 0o077 == 0
