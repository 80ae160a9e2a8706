"""Capacity gate: the Python logic and the Ansible action plugin that wraps it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from khronika_ops.gpu import gpu_model_matches
from khronika_ops.planner.gate import HostFacts, ModuleMinimum, check, facts_from_ansible, mount_for

from .helpers import DATA

REPO = Path(__file__).resolve().parents[2]
ANSIBLE_PLAYBOOK = Path(sys.executable).parent / "ansible-playbook"


def _hosts() -> list[HostFacts]:
    return [
        HostFacts(name="a", cores=8, memory_mb=16384, disk_free_mb={"/": 50_000, "/var/lib/docker": 5_000}),
        HostFacts(
            name="b", cores=4, memory_mb=8192, disk_free_mb={"/": 100_000}, gpus=1, gpu_model="nvidia-l4"
        ),
    ]


def test_passes_when_everything_fits() -> None:
    modules = [
        ModuleMinimum(name="web", cores=2, memory_mb=2048, disk_mb=1000, disk_path="/var/lib/docker/x")
    ]
    result = check(_hosts(), modules, {"web": ["a", "b"]})
    assert result.ok
    assert "disk_mb /var/lib/docker" in result.table and "disk_mb /" in result.table


def test_fails_with_a_per_host_table() -> None:
    modules = [
        ModuleMinimum(name="web", cores=3, memory_mb=6000, disk_mb=6000, disk_path="/var/lib/docker"),
        ModuleMinimum(name="db", cores=2, memory_mb=4000),
        ModuleMinimum(name="infer", gpus=2, gpu_model="nvidia-l4"),
    ]
    result = check(_hosts(), modules, {"web": ["a", "b"], "db": ["b"], "infer": ["b"]})
    assert not result.ok
    short = {(row.host, row.resource) for row in result.rows if not row.ok}
    assert short == {("a", "disk_mb /var/lib/docker"), ("b", "cores"), ("b", "memory_mb"), ("b", "gpus")}
    assert result.table.splitlines()[0].split() == [
        "HOST",
        "RESOURCE",
        "NEEDED",
        "AVAILABLE",
        "STATUS",
        "MODULES",
    ]
    assert "SHORT" in result.table


def test_wrong_gpu_model_is_short() -> None:
    result = check(
        _hosts(), [ModuleMinimum(name="infer", gpus=1, gpu_model="nvidia-h100-80gb")], {"infer": ["b"]}
    )
    assert not result.ok


def test_unknown_module_in_placement() -> None:
    with pytest.raises(ValueError, match="ghost"):
        check(_hosts(), [], {"ghost": ["a"]})


def test_mount_for_longest_prefix() -> None:
    mounts = {"/": 1.0, "/var": 1.0, "/var/lib/docker": 1.0}
    assert mount_for("/var/lib/docker/volumes", mounts) == "/var/lib/docker"
    assert mount_for("/var/log", mounts) == "/var"
    assert mount_for("/srv", mounts) == "/"


def test_facts_from_ansible_setup_output() -> None:
    hostvars = {
        "ansible_facts": {
            "processor_vcpus": 16,
            "memtotal_mb": 64000,
            "mounts": [{"mount": "/", "size_available": 10 * 1024**3}],
            "local": {"khronika_gpu": {"count": 2, "models": ["NVIDIA L4"]}},
        }
    }
    facts = facts_from_ansible("h", hostvars)
    assert (facts.cores, facts.memory_mb, facts.disk_free_mb, facts.gpus) == (16, 64000, {"/": 10240.0}, 2)
    assert facts.gpu_model == "NVIDIA L4"


def _run_playbook(tmp_path: Path, tasks: list[dict[str, object]]) -> subprocess.CompletedProcess[str]:
    collections = tmp_path / "collections" / "ansible_collections" / "khronika"
    collections.mkdir(parents=True)
    (collections / "platform").symlink_to(REPO)
    playbook = tmp_path / "check.yml"
    play = {"hosts": "localhost", "connection": "local", "gather_facts": True, "gather_subset": ["hardware"]}
    playbook.write_text(yaml.safe_dump([{**play, "tasks": tasks}]), encoding="utf-8")
    env = {
        **os.environ,
        "ANSIBLE_COLLECTIONS_PATH": str(tmp_path / "collections"),
        "ANSIBLE_CONFIG": str(tmp_path / "none.cfg"),  # a plain run, whatever the checkout's ansible.cfg says
        "ANSIBLE_LOCALHOST_WARNING": "false",
        "ANSIBLE_INVENTORY_UNPARSED_WARNING": "false",
        "ANSIBLE_STDOUT_CALLBACK": "default",
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_PYTHON_INTERPRETER": sys.executable,
    }
    return subprocess.run(
        [str(ANSIBLE_PLAYBOOK), "-v", "-i", "localhost,", str(playbook)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


@pytest.mark.slow
@pytest.mark.skipif(
    not ANSIBLE_PLAYBOOK.exists(), reason="ansible-playbook not installed next to this Python"
)
def test_action_plugin_in_a_playbook(tmp_path: Path) -> None:
    task = {
        "name": "capacity",
        "khronika.platform.capacity_check": {
            "modules": [{"name": "tiny", "cores": 0.1, "memory_mb": 16, "disk_mb": 1, "disk_path": "/"}],
            "placement": {"tiny": ["localhost"]},
        },
    }
    passed = _run_playbook(tmp_path / "pass", [task])
    assert passed.returncode == 0, passed.stdout[-3000:] + passed.stderr[-2000:]
    assert "capacity check passed" in passed.stdout

    huge = {"name": "huge", "cores": 4096, "memory_mb": 1e9, "gpus": 8}
    task["khronika.platform.capacity_check"] = {"modules": [huge], "placement": {"huge": ["localhost"]}}
    failed = _run_playbook(tmp_path / "fail", [task])
    assert failed.returncode != 0
    assert "capacity check failed" in failed.stdout
    assert "SHORT" in failed.stdout and "memory_mb" in failed.stdout

    # A mount the facts do not show (the overlay root of a container) is given by `mounts`.
    hidden = {"name": "data", "disk_mb": 50, "disk_path": "/srv/khronika-not-a-mount/backups"}
    task["khronika.platform.capacity_check"] = {
        "modules": [hidden],
        "placement": {"data": ["localhost"]},
        "mounts": {"localhost": {"/srv/khronika-not-a-mount": 40}},
    }
    short = _run_playbook(tmp_path / "mounts-short", [task])
    assert short.returncode != 0 and "disk_mb /srv/khronika-not-a-mount" in short.stdout
    task["khronika.platform.capacity_check"]["mounts"] = {"localhost": {"/srv/khronika-not-a-mount": 60}}
    roomy = _run_playbook(tmp_path / "mounts-ok", [task])
    assert roomy.returncode == 0, roomy.stdout[-3000:]


def test_the_nvidia_roles_fact_and_driver_model_names() -> None:
    """The nvidia role's ansible_local.khronika_gpu (real H200 answer: count 1, "NVIDIA H200") is what the
    gate reads; catalog names match the driver's names by chip and the words they give."""
    fact = json.loads((DATA / "gpu" / "h200-khronika_gpu.fact.json").read_text())  # real H200 host
    hostvars = {
        "ansible_facts": {
            "processor_vcpus": 16,
            "memtotal_mb": 128000,
            "mounts": [],
            "local": {"khronika_gpu": fact},
        }
    }
    facts = facts_from_ansible("gpu-01", hostvars)
    assert (facts.gpus, facts.gpu_model) == (1, "NVIDIA H200")
    fits = check(
        [facts], [ModuleMinimum(name="infer", gpus=1, gpu_model="nvidia-h200")], {"infer": ["gpu-01"]}
    )
    assert fits.ok, fits.table
    wrong = check(
        [facts], [ModuleMinimum(name="infer", gpus=1, gpu_model="nvidia-h100-80gb")], {"infer": ["gpu-01"]}
    )
    assert not wrong.ok and "NVIDIA H200 present" in wrong.table


@pytest.mark.parametrize(
    ("required", "present", "matches"),
    [
        ("nvidia-h100-80gb", "NVIDIA H100 80GB HBM3", True),
        ("H100", "NVIDIA H100 80GB HBM3", True),
        ("nvidia-a100-80gb", "NVIDIA A100-SXM4-80GB", True),
        ("nvidia-l4", "NVIDIA L4", True),
        ("nvidia-l4", "NVIDIA L40S", False),
        ("nvidia-h100-80gb", "NVIDIA H200", False),
        ("nvidia-a100-80gb", "NVIDIA A100-SXM4-40GB", False),
    ],
)
def test_gpu_model_names(required: str, present: str, matches: bool) -> None:
    assert gpu_model_matches(required, present) is matches
