"""GPU detection on the real H100 outputs of tests/data/gpu/: khronika_ops.gpu and the facts.d script agree."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from conftest import REPO
from khronika_ops import gpu

DATA = REPO / "tests" / "data" / "gpu"
FACT_SCRIPT = REPO / "roles" / "nvidia" / "files" / "khronika_gpu.fact"
H100_SMI = DATA / "h100-nvidia-smi-query.csv"
NVSWITCH = ("/sys/bus/pci/devices/0000:00:07.0", "0x10de", "0x068000")
H100_MODEL = "NVIDIA H100 80GB HBM3"


def fake_sysfs(
    root: Path,
    extra: tuple[tuple[str, str, str], ...] = (),
    drop_nvidia: bool = False,
    listing: str = "h100-sys-bus-pci.txt",
) -> Path:
    """A captured `/sys/bus/pci/devices/* vendor class` listing as a tree under ROOT."""
    lines = [line.split() for line in (DATA / listing).read_text(encoding="utf-8").splitlines()]
    for path, vendor, pci_class in [tuple(line) for line in lines if line] + list(extra):
        if drop_nvidia and vendor == "0x10de":
            continue
        device = root / path.removeprefix("/sys/")
        device.mkdir(parents=True)
        (device / "vendor").write_text(vendor + "\n", encoding="ascii")
        (device / "class").write_text(pci_class + "\n", encoding="ascii")
    return root


def fake_tool(bin_dir: Path, name: str, output: Path | None, rc: int = 0) -> None:
    bin_dir.mkdir(exist_ok=True)
    script = bin_dir / name
    body = f"exec /bin/cat {output}\n" if output else ""
    script.write_text(f"#!/bin/sh\n{body}exit {rc}\n", encoding="utf-8")
    script.chmod(0o755)


def run_fact(sysfs: Path, bin_dir: Path) -> dict[str, object]:
    bin_dir.mkdir(exist_ok=True)
    env = {"PATH": str(bin_dir), "KHRONIKA_GPU_SYSFS_ROOT": str(sysfs), "LANG": "C.UTF-8"}
    out = subprocess.run([str(FACT_SCRIPT)], capture_output=True, text=True, env=env, check=True).stdout
    result: dict[str, object] = json.loads(out)
    return result


def python_fact(sysfs: Path, smi: Path | None) -> dict[str, object]:
    text = smi.read_text(encoding="utf-8") if smi else None
    return gpu.detect(gpu.read_sysfs(sysfs), text).as_dict()


def test_h100_with_nvidia_smi(tmp_path):
    sysfs = fake_sysfs(tmp_path / "sys")
    fake_tool(tmp_path / "bin", "nvidia-smi", H100_SMI)
    fact = run_fact(sysfs, tmp_path / "bin")
    assert fact == python_fact(sysfs, H100_SMI)
    assert fact["count"] == 1
    assert fact["pci_count"] == 1
    assert fact["source"] == "nvidia-smi"
    assert fact["models"] == [H100_MODEL]
    assert fact["memory_total_mib"] == 81559
    assert fact["driver_version"] == "580.159.04"
    (only,) = fact["gpus"]  # type: ignore[misc]
    assert only["pci_bus_id"] == "0000:00:06.0"
    assert only["mig_mode"] == "Disabled"
    assert only["persistence_mode"] == "Enabled"


def test_h200_with_nvidia_smi(tmp_path):
    smi = DATA / "h200-nvidia-smi-query.csv"
    sysfs = fake_sysfs(tmp_path / "sys", listing="h200-sys-bus-pci.txt")
    fake_tool(tmp_path / "bin", "nvidia-smi", smi)
    fact = run_fact(sysfs, tmp_path / "bin")
    assert fact == python_fact(sysfs, smi)
    assert (fact["count"], fact["models"], fact["memory_total_mib"]) == (1, ["NVIDIA H200"], 143771)


def test_h100_without_driver_counts_from_sysfs(tmp_path):
    # As on a fresh host before the driver: no lspci (like the H100 host), no nvidia-smi.
    sysfs = fake_sysfs(tmp_path / "sys")
    fact = run_fact(sysfs, tmp_path / "bin")
    assert fact == python_fact(sysfs, None)
    assert (fact["count"], fact["source"], fact["models"], fact["nvidia_smi"]) == (1, "pci", [], False)


def test_failing_nvidia_smi_falls_back_to_pci(tmp_path):
    # nvidia-smi installed but the module not loaded (e.g. before the reboot): rc 9, no rows.
    sysfs = fake_sysfs(tmp_path / "sys")
    fake_tool(tmp_path / "bin", "nvidia-smi", None, rc=9)
    fact = run_fact(sysfs, tmp_path / "bin")
    assert (fact["count"], fact["source"]) == (1, "pci")


def test_host_without_gpu_says_zero(tmp_path):
    sysfs = fake_sysfs(tmp_path / "sys", drop_nvidia=True)
    fact = run_fact(sysfs, tmp_path / "bin")
    assert fact == python_fact(sysfs, None)
    assert (fact["count"], fact["pci_count"], fact["source"], fact["gpus"]) == (0, 0, "none", [])


def test_nvswitch_is_not_a_gpu(tmp_path):
    sysfs = fake_sysfs(tmp_path / "sys", extra=(NVSWITCH,))
    fact = run_fact(sysfs, tmp_path / "bin")
    assert fact == python_fact(sysfs, None)
    assert fact["pci_count"] == 1


def test_missing_sysfs_is_no_gpu(tmp_path):
    fact = run_fact(tmp_path / "nothing", tmp_path / "bin")
    assert fact["count"] == 0


LSPCI_OUTPUT = """\
0000:00:00.0 0600: 8086:1237 (rev 02)
0000:00:06.0 0302: 10de:2330 (rev a1)
0000:01:00.0 0300: 10de:2684 (rev a1)
0000:02:00.0 0680: 10de:22a3 (rev a1)
0000:02:00.1 0403: 10de:22ba (rev a1)
"""


def test_lspci_is_used_when_present(tmp_path):
    listing = tmp_path / "lspci.txt"
    listing.write_text(LSPCI_OUTPUT, encoding="utf-8")
    fake_tool(tmp_path / "bin", "lspci", listing)
    # The sysfs tree says no GPU: the answer must come from lspci (two GPUs; NVSwitch and audio excluded).
    sysfs = fake_sysfs(tmp_path / "sys", drop_nvidia=True)
    fact = run_fact(sysfs, tmp_path / "bin")
    python = gpu.detect(gpu.parse_lspci(LSPCI_OUTPUT), None).as_dict()
    assert fact == python
    assert fact["count"] == 2
    assert [g["pci_bus_id"] for g in fact["gpus"]] == ["0000:00:06.0", "0000:01:00.0"]  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("text", "expected"),
    [("00000000:00:06.0", "0000:00:06.0"), ("00:06.0", "0000:00:06.0"), ("0001:3B:00.0", "0001:3b:00.0")],
)
def test_bus_ids_are_normalised(text, expected):
    assert gpu.normalise_address(text) == expected


def test_nvidia_smi_query_matches_the_captured_columns():
    readme = (DATA / "README.md").read_text(encoding="utf-8")
    assert " ".join(gpu.NVIDIA_SMI_ARGS) in readme
    script = FACT_SCRIPT.read_text(encoding="utf-8")
    for name in gpu.NVIDIA_SMI_FIELDS:
        assert f'"{name}"' in script


def test_compare_with_inventory():
    fact = gpu.detect([], H100_SMI.read_text(encoding="utf-8")).as_dict()
    assert gpu.compare_with_inventory(fact, 1, "H100") == []
    assert gpu.compare_with_inventory(fact, 2, "L40S") == [
        "expected 2 GPU(s), found 1 (source: nvidia-smi)",
        f"expected model 'L40S', found {H100_MODEL}",
    ]
    none = gpu.detect([], None).as_dict()
    assert gpu.compare_with_inventory(none, 1, "") == ["expected 1 GPU(s), found 0 (source: none)"]


def test_fact_script_runs_on_this_host():
    out = subprocess.run([str(FACT_SCRIPT)], capture_output=True, text=True, check=True, env=dict(os.environ))
    assert json.loads(out.stdout)["count"] >= 0


def test_verification_problems_cover_driver_and_container():
    fact = {"count": 2, "source": "pci", "models": ["NVIDIA H100 80GB HBM3"]}
    assert (
        gpu.verification_problems(fact, 2, "nvidia-h100-80gb", nvidia_smi_answers=True, container={"gpus": 2})
        == []
    )
    problems = gpu.verification_problems(fact, None, "", nvidia_smi_answers=False, container={"gpus": 1})
    assert problems == [
        "nvidia-smi does not answer (driver not installed or not loaded; reboot after installing it)",
        "the CUDA container sees 1 GPU(s), the host 2",
    ]
    failed = gpu.verification_problems(
        fact, None, "", nvidia_smi_answers=True, container={"error": " no runtime\n"}
    )
    assert failed == ["docker run --gpus all failed: no runtime"]
