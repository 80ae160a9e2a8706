"""A bad module catalog is refused by the platform role before any change, naming module and field.

Same harness as test_role_inputs.py: a throwaway Debian container, check mode as a second guard.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import REPO, TargetHost, run_playbook
from test_role_inputs import assert_refused

PLAYBOOK = REPO / "tests" / "playbooks" / "role.yml"

pytestmark = pytest.mark.docker


def module(name: str, target: TargetHost, **extra: object) -> dict[str, object]:
    base: dict[str, object] = {
        "name": name,
        "image": f"khronika-samples/{name}",
        "placement": {"hosts": [target.name]},
        "ports": [{"container": 8080, "host": 18080 if name == "appeals-api" else 18081}],
    }
    base.update(extra)
    return base


def deploy(target: TargetHost, tmp_path: Path, modules: list[dict[str, object]]):
    vars_file = tmp_path / "vars.json"
    vars_file.write_text(
        json.dumps(
            {
                "test_role": "platform",
                "khronika_modules": modules,
                "khronika_release_version": "1.1.0",
                "khronika_releases_dir": str(REPO / "releases"),
                "khronika_registry": "registry.example.org:5000",
            }
        ),
        encoding="utf-8",
    )
    return run_playbook(PLAYBOOK, target.inventory, "--check", "-e", f"@{vars_file}")


def test_a_valid_catalog_passes_the_preflight(target_host, tmp_path):
    run = deploy(
        target_host, tmp_path, [module("classifier", target_host), module("appeals-api", target_host)]
    )
    # Docker is not installed in the target: the preflight passes, the rest is skipped in check mode.
    assert run.rc == 0, run.output
    assert run.recap_changed() == 0


def test_unknown_key(target_host, tmp_path):
    run = deploy(target_host, tmp_path, [module("classifier", target_host, replica=2)])
    assert_refused(run, "module 'classifier'", "replica")


def test_bad_image_reference(target_host, tmp_path):
    run = deploy(
        target_host, tmp_path, [module("classifier", target_host, image="khronika samples/Classifier")]
    )
    assert_refused(run, "module 'classifier', field 'image'")


def test_port_clash_on_a_host(target_host, tmp_path):
    clash = [{"container": 8080, "host": 18081}]
    modules = [module("classifier", target_host), module("appeals-api", target_host, ports=clash)]
    run = deploy(target_host, tmp_path, modules)
    assert_refused(run, "18081")


def test_gpu_module_on_a_host_without_gpus(target_host, tmp_path):
    run = deploy(target_host, tmp_path, [module("classifier", target_host, gpus=1)])
    assert_refused(run, "module 'classifier'", "GPU")


def test_dependency_cycle(target_host, tmp_path):
    modules = [
        module("classifier", target_host, depends_on=["appeals-api"]),
        module("appeals-api", target_host, depends_on=["classifier"]),
    ]
    run = deploy(target_host, tmp_path, modules)
    assert_refused(run, "dependency cycle")


def test_missing_release_manifest(target_host, tmp_path):
    vars_file = tmp_path / "vars.json"
    vars_file.write_text(
        json.dumps(
            {
                "test_role": "platform",
                "khronika_modules": [],
                "khronika_release_version": "9.9.9",
                "khronika_releases_dir": str(REPO / "releases"),
            }
        ),
        encoding="utf-8",
    )
    run = run_playbook(PLAYBOOK, target_host.inventory, "--check", "-e", f"@{vars_file}")
    assert_refused(run, "Release 9.9.9 has no manifest")


def test_khronika_status_reads_the_record_over_ansible(target_host):
    import subprocess

    from conftest import ansible_env, tool

    record = {
        "version": "1.1.0",
        "kind": "change-release",
        "date": "2025-04-14",
        "deployed_at": "x",
        "modules": [],
    }
    target_host.exec(
        "sh", "-c", f"mkdir -p /etc/khronika && echo '{json.dumps(record)}' > /etc/khronika/release.json"
    )
    try:
        proc = subprocess.run(
            [tool("khronika"), "status", "-i", str(target_host.inventory), "--json"],
            capture_output=True,
            text=True,
            env=ansible_env(),
            cwd=REPO,
            check=False,
        )
        assert proc.returncode == 0, proc.stderr + proc.stdout
        shown = json.loads(proc.stdout)
        # Beside the record: what the containers run and the verdict (khronika status' drift check).
        assert list(shown) == [target_host.name]
        assert {
            k: v for k, v in shown[target_host.name].items() if k not in {"running", "state", "why"}
        } == record
    finally:
        target_host.exec("rm", "-f", "/etc/khronika/release.json")
    proc = subprocess.run(
        [tool("khronika"), "status", "-i", str(target_host.inventory)],
        capture_output=True,
        text=True,
        env=ansible_env(COLUMNS="200"),  # the table's width: a narrow one folds the reason
        cwd=REPO,
        check=False,
    )
    assert proc.returncode == 1
    assert "no release recorded" in proc.stdout
