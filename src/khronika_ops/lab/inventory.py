"""`inventories/lab/`: the lab's inventory, in the shape of `inventories/example/` (hosts.yml with the
`khronika` group and its children, `group_vars/all/main.yml`, a vault-encrypted
`group_vars/all/vault.yml`, `files/`). The roles see nothing lab-specific: only values differ
(Debian's docker.io instead of docker-ce, the lab's registry, short scrape intervals).

The secrets are generated once (`lab/state/credentials.yml`, owner-only) and the vault is encrypted
with a generated password file (`lab/state/vault-pass`, owner-only).
"""

from __future__ import annotations

import hashlib
import os
import secrets
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from khronika_ops import safe_yaml
from khronika_ops.lab import INVENTORY_DIR, REGISTRY_NAME, REGISTRY_PORT, REPO_ROOT, REPORTS_DIR, STATE_DIR
from khronika_ops.lab.hosts import SSH_USER, LabHost

FIRST_RELEASE = "1.0.0"
_HEADER = (
    "---\n# Written by `khronika lab up` (khronika_ops.lab.inventory); `khronika lab down` removes it.\n"
)
#: The secrets a site keeps in its vault, with the lab's generated values.
_VAULT_KEYS = (
    "vault_monitoring_scrape_password",
    "vault_monitoring_admin_password",
    "vault_appeals_api_token",
)


def credentials() -> dict[str, str]:
    """The lab's secrets, generated on first use and kept owner-only."""
    path = STATE_DIR / "credentials.yml"
    if path.is_file():
        loaded = safe_yaml.load_file(path) or {}
        if all(key in loaded for key in _VAULT_KEYS):
            return {str(k): str(v) for k, v in loaded.items()}
    values = {key: secrets.token_hex(16) for key in _VAULT_KEYS}
    _write_private(path, yaml.safe_dump(values, sort_keys=True))
    return values


def vault_password_file() -> Path:
    path = STATE_DIR / "vault-pass"
    if not path.is_file():
        _write_private(path, secrets.token_hex(24) + "\n")
    return path


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(text)
    path.chmod(0o600)


#: Both sample modules answer /health at once; short intervals keep the lab's switches short. The
#: timeout and retries leave room for a machine where many lab hosts share two cores (25 hosts starting
#: their modules at once timed 2 s checks out).
_HEALTHCHECK = {"http": "/health", "interval": "2s", "timeout": "5s", "retries": 5, "start_period": "1s"}


# appeals-api's data check: an appeal written before an update's switch must read back after it.
DATA_CHECK = {"create": "/appeals", "body": {"text": "khronika-ops data check"}, "location_field": "location"}


def catalog(platform_hosts: Sequence[str]) -> list[dict[str, Any]]:
    """The lab's module catalog: classifier rolling on every platform node, appeals-api with its data
    volume on the first one (the shape of docs/modules.md)."""
    return [
        {
            "name": "classifier",
            "image": "khronika-samples/classifier",
            "placement": {"groups": ["khronika_platform"]},
            "ports": [{"container": 8081, "host": 18081}],
            "resources": {"cpus": 1, "memory": "256m"},
            "healthcheck": dict(_HEALTHCHECK),
            "update": "rolling" if len(platform_hosts) > 1 else "recreate",
            "stop_timeout": "5s",
            "http": {"path_prefix": "/api/classify", "upstream_port": 8081},
        },
        {
            "name": "appeals-api",
            "image": "khronika-samples/appeals-api",
            "placement": {"hosts": [platform_hosts[0]]},
            "ports": [{"container": 8080, "host": 18080}],
            "environment": {"APPEALS_DATA_DIR": "/var/lib/appeals"},
            "secrets": [{"env": "APPEALS_API_TOKEN", "vault_variable": "vault_appeals_api_token"}],
            "volumes": [
                {"name": "data", "mount": "/var/lib/appeals", "backup": "before-update", "retention": 2}
            ],
            "resources": {"cpus": 1, "memory": "256m"},
            "healthcheck": dict(_HEALTHCHECK),
            "depends_on": ["classifier"],
            "stop_timeout": "5s",
            "http": {"path_prefix": "/api/appeals", "upstream_port": 8080},
            "data_check": dict(DATA_CHECK),
        },
    ]


def module_targets(modules: Sequence[dict[str, Any]], platform_hosts: Sequence[str]) -> list[dict[str, Any]]:
    """Prometheus targets of every module port, from the catalog's own placement."""
    targets = []
    for module in modules:
        placement = module["placement"]
        hosts = placement.get("hosts") or list(platform_hosts)
        port = module["ports"][0]["host"]
        targets.append({"module": module["name"], "targets": [f"{host}:{port}" for host in hosts]})
    return targets


def channel_policy(monitoring: str | None) -> dict[str, Any]:
    """The lab's release channel: the lab registry's khronika/releases as this machine reaches it, a
    window that is open but for a moment each month (a lab has no maintenance window), the first platform
    host as the canary, a 30-second soak watching the lab's Prometheus, late rollbacks restoring."""
    tls = "{{ inventory_dir }}/files/monitoring-tls/ca.crt"
    policy: dict[str, Any] = {
        "source": "registry",
        "registry": f"127.0.0.1:{REGISTRY_PORT}",
        "registry_user": "khronika-lab",
        "registry_password": "{{ vault_khronika_registry_password }}",
        "registry_ca": "{{ inventory_dir }}/files/registry-ca.crt",
        "window": {"start": "2026-01-01T00:00:00Z", "duration": "31d", "every": "31d"},
        "canary": {"count": 1},
        "soak": "30s",
        "batch": {"percent": 100},
        "late_rollback_restore": True,
    }
    if monitoring:
        access = {"user": "admin", "password": "{{ vault_monitoring_admin_password }}", "ca_file": tls}
        policy["watch"] = {
            "prometheus": f"https://{monitoring}:{role_default('monitoring_server', 'monitoring_server_prometheus_port')}",
            **access,
            "interval": "5s",
            "baseline": "5m",
            "min_requests": 10,
        }
        policy["alertmanager"] = {
            "url": f"https://{monitoring}:{role_default('monitoring_server', 'monitoring_server_alertmanager_port')}",
            **access,
        }
    return policy


def role_default(role: str, name: str) -> Any:
    """A role's default, read from the role itself, so the lab's URLs follow the roles."""
    return safe_yaml.load_file(REPO_ROOT / "roles" / role / "defaults" / "main.yml")[name]


def write(hosts: Sequence[LabHost], *, gateway: str, ssh_dir: Path, release: str) -> Path:
    """Write (or rewrite, with the same content) the inventory; returns hosts.yml's path."""
    files = INVENTORY_DIR / "files"
    (INVENTORY_DIR / "group_vars" / "all").mkdir(parents=True, exist_ok=True)
    files.mkdir(parents=True, exist_ok=True)
    platform = [host.name for host in hosts if "khronika_platform" in host.groups]

    children: dict[str, Any] = {
        "khronika_platform": {"hosts": {}},
        "khronika_gpu": {"hosts": {}},
        "khronika_monitoring": {"hosts": {}},
        "khronika_gateway": {"hosts": {}},
    }
    for host in hosts:
        for group in host.groups:
            children[group]["hosts"][host.name] = {
                "ansible_host": host.address,
                "khronika_address": host.address,
            }
    _write(
        INVENTORY_DIR / "hosts.yml",
        {
            "all": {
                # As in the example: the controller named, so that its tasks never sudo.
                "hosts": {
                    "localhost": {
                        "ansible_connection": "local",
                        "ansible_become": False,
                        "ansible_python_interpreter": "{{ ansible_playbook_python }}",
                    }
                },
                "children": {"khronika": {"children": children}},
            }
        },
        "# The lab's hosts: systemd containers on the Docker network khronika-lab, reached over SSH.\n",
    )

    modules = catalog(platform)
    registry = f"{REGISTRY_NAME}:{REGISTRY_PORT}"
    monitoring = next((host.address for host in hosts if "khronika_monitoring" in host.groups), None)
    main: dict[str, Any] = {
        # --- connection: real SSH with the lab's key, host keys pinned ------------------------------
        "ansible_user": SSH_USER,
        "ansible_become": True,
        "ansible_ssh_private_key_file": str(ssh_dir / "id_ed25519"),
        "ansible_ssh_common_args": f"-o UserKnownHostsFile={ssh_dir / 'known_hosts'} -o StrictHostKeyChecking=yes",
        "ansible_python_interpreter": "/usr/bin/python3",
        # --- common -----------------------------------------------------------------------------------
        "common_timesync_servers": [gateway],
        "common_etc_hosts_groups": ["khronika"],
        "common_etc_hosts": [{"address": gateway, "names": [REGISTRY_NAME]}],
        "common_journald_system_max_use": "256M",
        "common_journald_max_retention": "1week",
        # --- docker -----------------------------------------------------------------------------------
        "docker_package_source": "distribution",
        "docker_log_driver": "json-file",
        "docker_log_max_size": "10m",
        "docker_log_max_file": 3,
        # The nested engines must not take the lab network's addresses nor the machine's docker0.
        "docker_daemon_json_group": {"bip": "10.200.9.1/24"},
        "docker_default_address_pools": [{"base": "10.201.0.0/16", "size": 24}],
        "docker_users": [SSH_USER],
        "docker_registry_ca_certs": [
            {
                "registry": registry,
                "ca": "{{ lookup('ansible.builtin.file', inventory_dir ~ '/files/registry-ca.crt') }}",
            }
        ],
        "docker_registry_logins": [
            {
                "registry": registry,
                "username": "khronika-lab",
                "password": "{{ vault_khronika_registry_password }}",
            }
        ],
        # --- monitoring -------------------------------------------------------------------------------
        "monitoring_agent_web_users": {"prometheus": "{{ vault_monitoring_scrape_password }}"},
        "monitoring_agent_collector_interval": "5s",
        "monitoring_server_scrape_password": "{{ vault_monitoring_scrape_password }}",
        "monitoring_server_web_users": {"admin": "{{ vault_monitoring_admin_password }}"},
        "monitoring_server_scrape_interval": "10s",
        "monitoring_server_evaluation_interval": "10s",
        # Room for the two replayed weeks (lab/history.py) the plan reads.
        "monitoring_server_retention_time": "15d",
        "monitoring_server_retention_size": "2GB",
        "monitoring_server_external_labels": {"site": "lab"},
        "monitoring_server_module_targets": module_targets(modules, platform),
        "monitoring_server_alertmanager_receivers": [{"name": "lab-null", "type": "null"}],
        "monitoring_server_alertmanager_route": {
            "receiver": "lab-null",
            "group_by": ["alertname", "instance"],
        },
        # --- platform ---------------------------------------------------------------------------------
        "khronika_registry": registry,
        "khronika_release_version": release,
        "khronika_releases_dir": "{{ inventory_dir }}/files/releases",
        "khronika_modules": modules,
        # Where the update reports go (the lab's update stage writes there; the support bundle reads them).
        "khronika_update_report_dir": str(REPORTS_DIR),
        # --- the release channel (docs/updates.md): `khronika update channel check -i inventories/lab` -----
        "khronika_update_channel": channel_policy(monitoring),
        # --- support ----------------------------------------------------------------------------------
        "khronika_support_organisation": {
            "name": "khronika-ops lab",
            "address": "this machine",
            "contact_person": "the person who ran scripts/lab.sh",
        },
        "khronika_support_contact": {"email": "root@localhost.localdomain"},
    }
    _write(
        INVENTORY_DIR / "group_vars" / "all" / "main.yml",
        main,
        "# The lab's settings: the sections of inventories/example/group_vars/all/main.yml.\n",
    )
    _write_vault(INVENTORY_DIR / "group_vars" / "all" / "vault.yml")
    return INVENTORY_DIR / "hosts.yml"


class _IndentedDumper(yaml.SafeDumper):
    """Lists indented under their key, as the hand-written inventories (and yamllint) have them."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)


def _write(path: Path, data: Any, comment: str) -> None:
    text = (
        _HEADER
        + comment
        + yaml.dump(data, Dumper=_IndentedDumper, sort_keys=False, width=120, allow_unicode=True)
    )
    if not path.is_file() or path.read_text() != text:
        path.write_text(text)


def _write_vault(path: Path) -> None:
    """The vault, encrypted; rewritten only when a value changed (encryption is salted)."""
    values = dict(credentials())
    registry_password = STATE_DIR / "registry" / "password"
    values["vault_khronika_registry_password"] = registry_password.read_text().strip()
    plain = yaml.safe_dump(values, sort_keys=True)
    stamp = STATE_DIR / "vault.sha256"
    digest = hashlib.sha256(plain.encode()).hexdigest()
    if path.is_file() and stamp.is_file() and stamp.read_text().strip() == digest:
        return
    tool = Path(sys.executable).parent / "ansible-vault"
    subprocess.run(
        [
            str(tool),
            "encrypt",
            "--vault-password-file",
            str(vault_password_file()),
            "--output",
            str(path),
            "-",
        ],
        input="---\n" + plain,
        text=True,
        check=True,
        capture_output=True,
    )
    path.chmod(0o600)
    stamp.write_text(digest + "\n")
