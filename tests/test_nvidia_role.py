"""Role nvidia without GPU hardware: a host without GPUs skips every GPU task (check mode), the toolkit
repository in check mode, and the nvidia runtime contributed to the docker role's daemon.json layers."""

from __future__ import annotations

import json
import os
import sys

import pytest

from conftest import REPO, ansible_env, run_playbook
from khronika_ops import docker_config
from test_role_inputs import PLAYBOOK, run_role

pytestmark = pytest.mark.docker

# As a site without NVIDIA's repository (this machine) runs the toolkit part: no driver, no packages.
ASSUMED_GPU = {
    "nvidia_assume_gpu": True,
    "nvidia_driver_enabled": False,
    "nvidia_toolkit_install": False,
}


def test_host_without_gpu_skips_every_gpu_task(target_host, tmp_path):
    run = run_role(target_host, "nvidia", tmp_path, {})
    assert run.rc == 0, run.output
    flat = " ".join(run.output.split())
    assert "counts no NVIDIA GPU (source none); every GPU task is skipped" in flat
    for task in (
        "Install the driver",
        "Add NVIDIA's Container Toolkit repository",
        "Contribute the nvidia runtime",
    ):
        assert f"TASK [khronika.platform.nvidia : {task}" not in flat, task


def test_toolkit_repository_and_runtime_in_check_mode(target_host, tmp_path):
    # A GPU host is provisioned (roles common and docker) first: python3-debian, which the repository
    # module needs, is there already.
    target_host.exec("sh", "-c", "apt-get install -y -qq --no-install-recommends python3-debian >/dev/null")
    # NVIDIA's key URL is unreachable here (and fetched even in check mode): a keyring path on the host
    # stands in, as on an air-gapped site.
    keyring = {"nvidia_toolkit_gpg_key": "/usr/share/keyrings/debian-archive-keyring.gpg"}
    run = run_role(target_host, "nvidia", tmp_path, {**ASSUMED_GPU, **keyring})
    assert run.rc == 0, run.output
    flat = " ".join(run.output.split())
    assert "Add NVIDIA's Container Toolkit repository (Debian family)" in flat
    assert "Pin the Container Toolkit packages to one version" in flat
    assert "Save the contribution" in flat
    # Check mode: nothing was written.
    assert (
        target_host.exec("sh", "-c", "ls /etc/apt/sources.list.d /etc/khronika 2>&1; true").count("nvidia")
        == 0
    )


def test_runtime_contribution_merges_into_daemon_json(target_host, tmp_path):
    vars_file = tmp_path / "vars.json"
    vars_file.write_text(
        json.dumps({"test_role": "nvidia", **ASSUMED_GPU, "nvidia_toolkit_repo_enabled": False}),
        encoding="utf-8",
    )
    first = run_playbook(PLAYBOOK, target_host.inventory, "-e", f"@{vars_file}")
    assert first.rc == 0, first.output
    contribution = json.loads(target_host.exec("cat", "/etc/khronika/docker-daemon.d/nvidia.json"))
    assert contribution == {
        "runtimes": {"nvidia": {"path": "/usr/bin/nvidia-container-runtime", "runtimeArgs": []}}
    }
    fact = json.loads(target_host.exec("/etc/ansible/facts.d/khronika_gpu.fact"))
    assert fact["count"] >= 0
    # What the docker role does with it: role settings, then contributions, then group and host layers.
    merged = docker_config.merge_layers(
        [
            ("role settings", {"log-driver": "json-file", "runtimes": {"runc-debug": {"path": "runc"}}}),
            ("contribution nvidia.json", contribution),
            ("docker_daemon_json_group", {"default-runtime": "nvidia"}),
        ]
    )
    assert docker_config.explain_errors(merged) == []
    assert set(merged.config["runtimes"]) == {"runc-debug", "nvidia"}
    again = run_playbook(PLAYBOOK, target_host.inventory, "-e", f"@{vars_file}")
    assert again.rc == 0 and again.recap_changed() == 0, again.output


@pytest.mark.parametrize(("expected", "rc"), [(0, 0), (1, 2)])
def test_verify_gpu_runs_locally_and_reports_mismatches(tmp_path, expected, rc):
    """What a GPU host owner runs: connection local, no collection, no reboot; here a host without GPUs."""
    local = tmp_path / "hosts.ini"
    local.write_text(
        f"localhost ansible_connection=local ansible_python_interpreter={sys.executable}\n", encoding="utf-8"
    )
    extra = [
        "-e",
        "verify_gpu_hosts=localhost",
        "-e",
        f"khronika_gpu_expected_count={expected}",
        "-e",
        "verify_gpu_docker=false",
    ]
    run = run_playbook(REPO / "playbooks" / "verify-gpu.yml", local, *extra)
    assert run.rc == rc, run.output
    flat = " ".join(run.output.split())
    assert "CUDA container: skipped (verify_gpu_docker=false)" in flat
    if expected:
        assert "GPU verification failed on localhost: expected 1 GPU(s), found 0 (source: none)" in flat


@pytest.mark.parametrize(
    ("driver_name", "expected_model", "passes"),
    [
        ("NVIDIA H100 80GB HBM3", "nvidia-h100-80gb", True),  # the catalog's name, as the preflight reads it
        ("NVIDIA H100 80GB HBM3", "H100", True),
        ("NVIDIA L40S", "L4", False),  # a substring is not a model
        ("NVIDIA L4", "L4", True),
    ],
)
def test_verify_gpu_matches_models_as_the_preflight_does(tmp_path, driver_name, expected_model, passes):
    """verify-gpu.yml and the nvidia role's preflight share khronika_ops.gpu's model rule: a stand-in
    nvidia-smi on PATH answers with the real H100 host's query output, renamed to each model."""
    real = (REPO / "tests" / "data" / "gpu" / "h100-nvidia-smi-query.csv").read_text(encoding="utf-8")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    answer = bin_dir / "answer.csv"
    answer.write_text(real.replace("NVIDIA H100 80GB HBM3", driver_name), encoding="utf-8")
    fake = bin_dir / "nvidia-smi"
    fake.write_text(f"#!/bin/sh\ncat {answer}\n", encoding="utf-8")
    fake.chmod(0o755)
    local = tmp_path / "hosts.ini"
    local.write_text(
        f"localhost ansible_connection=local ansible_python_interpreter={sys.executable}\n", encoding="utf-8"
    )
    env = ansible_env(PATH=f"{bin_dir}:{os.environ['PATH']}")
    extra = ["-e", "verify_gpu_hosts=localhost", "-e", "verify_gpu_docker=false"]
    extra += ["-e", "khronika_gpu_expected_count=1", "-e", f"khronika_gpu_expected_model={expected_model}"]
    run = run_playbook(REPO / "playbooks" / "verify-gpu.yml", local, *extra, env=env)
    flat = " ".join(run.output.split())
    assert f"models {driver_name}" in flat, run.output
    if passes:
        assert run.rc == 0, run.output
        assert "Mismatches: none" in flat
    else:
        assert run.rc == 2, run.output
        assert f"expected model '{expected_model}', found {driver_name}" in flat
