"""NVIDIA GPU detection: what a host has, from PCI (sysfs or `lspci`) and, where the driver works, `nvidia-smi`.

The same rules run on target hosts as the stand-alone facts.d script `roles/nvidia/files/khronika_gpu.fact`
(python3 stdlib only, since khronika_ops is not installed there); tests/test_gpu.py checks that both give
the same answer on the real H100 outputs in tests/data/gpu/.

- A GPU is a PCI function of vendor 0x10de whose class is a display controller: VGA (0x0300xx) or 3D
  (0x0302xx). NVSwitch and other NVIDIA bridges (0x0680xx) are not GPUs.
- The count is what `nvidia-smi` lists when it answers (the driver sees those GPUs), else the PCI count.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

NVIDIA_VENDOR = 0x10DE
GPU_CLASSES = (0x0300, 0x0302)  # class >> 8: VGA compatible, 3D controller
# The query the fact runs; the order is that of tests/data/gpu/h100-nvidia-smi-query.csv.
NVIDIA_SMI_FIELDS = (
    "index",
    "name",
    "uuid",
    "memory.total",
    "memory.used",
    "utilization.gpu",
    "temperature.gpu",
    "pci.bus_id",
    "driver_version",
    "mig.mode.current",
    "persistence_mode",
)
NVIDIA_SMI_ARGS = ("--query-gpu=" + ",".join(NVIDIA_SMI_FIELDS), "--format=csv,noheader,nounits")
_LSPCI_LINE = re.compile(
    r"^(?P<address>(?:[0-9a-fA-F]{4}:)?[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-7])\s+"
    r"(?P<class>[0-9a-fA-F]{4}):\s+(?P<vendor>[0-9a-fA-F]{4}):(?P<device>[0-9a-fA-F]{4})"
)


@dataclass(frozen=True)
class PciFunction:
    address: str  # domain:bus:device.function, e.g. 0000:00:06.0
    vendor: int
    pci_class: int  # 24 bits: class, subclass, prog-if


@dataclass
class Gpu:
    index: int
    pci_bus_id: str
    model: str = ""
    uuid: str = ""
    memory_total_mib: int = 0
    driver_version: str = ""
    mig_mode: str = ""
    persistence_mode: str = ""


@dataclass
class GpuFact:
    count: int
    pci_count: int
    source: str  # nvidia-smi, pci or none
    nvidia_smi: bool
    driver_version: str = ""
    models: list[str] = field(default_factory=list)
    memory_total_mib: int = 0
    gpus: list[Gpu] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def is_gpu(function: PciFunction) -> bool:
    return function.vendor == NVIDIA_VENDOR and (function.pci_class >> 8) in GPU_CLASSES


def normalise_address(address: str) -> str:
    """`00000000:00:06.0` (nvidia-smi) and `00:06.0` (lspci without -D) -> `0000:00:06.0`."""
    text = address.strip().lower()
    if text.count(":") == 1:
        text = "0000:" + text
    domain, rest = text.split(":", 1)
    return f"{int(domain, 16):04x}:{rest}"


def read_sysfs(root: Path) -> list[PciFunction]:
    """PCI functions from ROOT/bus/pci/devices/*/{vendor,class} (ROOT is /sys on a real host)."""
    functions = []
    devices = root / "bus" / "pci" / "devices"
    if not devices.is_dir():
        return []
    for device in sorted(devices.iterdir()):
        try:
            vendor = int((device / "vendor").read_text(encoding="ascii").strip(), 16)
            pci_class = int((device / "class").read_text(encoding="ascii").strip(), 16)
        except (OSError, ValueError):
            continue
        functions.append(PciFunction(normalise_address(device.name), vendor, pci_class))
    return functions


def parse_lspci(text: str) -> list[PciFunction]:
    """`lspci -Dn` lines such as `0000:00:06.0 0302: 10de:2330 (rev a1)` (prog-if is not printed: 00)."""
    functions = []
    for line in text.splitlines():
        match = _LSPCI_LINE.match(line.strip())
        if match:
            functions.append(
                PciFunction(
                    normalise_address(match["address"]),
                    int(match["vendor"], 16),
                    int(match["class"], 16) << 8,
                )
            )
    return functions


def _mib(text: str) -> int:
    try:
        return int(float(text))
    except ValueError:
        return 0  # [N/A] on some boards


def parse_nvidia_smi(text: str) -> list[Gpu]:
    """Rows of `nvidia-smi` with NVIDIA_SMI_ARGS."""
    gpus = []
    for row in csv.reader(io.StringIO(text), skipinitialspace=True):
        if len(row) != len(NVIDIA_SMI_FIELDS):
            continue
        value = dict(zip(NVIDIA_SMI_FIELDS, (cell.strip() for cell in row), strict=True))
        gpus.append(
            Gpu(
                index=int(value["index"]),
                pci_bus_id=normalise_address(value["pci.bus_id"]),
                model=value["name"],
                uuid=value["uuid"],
                memory_total_mib=_mib(value["memory.total"]),
                driver_version=value["driver_version"],
                mig_mode=value["mig.mode.current"],
                persistence_mode=value["persistence_mode"],
            )
        )
    return gpus


def detect(pci: list[PciFunction], nvidia_smi_output: str | None) -> GpuFact:
    """The fact from PCI functions and the output of `nvidia-smi` (None when absent or failing)."""
    pci_gpus = [function for function in pci if is_gpu(function)]
    smi_gpus = parse_nvidia_smi(nvidia_smi_output) if nvidia_smi_output is not None else []
    if smi_gpus:
        gpus, source = smi_gpus, "nvidia-smi"
    elif pci_gpus:
        gpus = [Gpu(index=i, pci_bus_id=function.address) for i, function in enumerate(pci_gpus)]
        source = "pci"
    else:
        gpus, source = [], "none"
    return GpuFact(
        count=len(gpus),
        pci_count=len(pci_gpus),
        source=source,
        nvidia_smi=bool(smi_gpus),
        driver_version=smi_gpus[0].driver_version if smi_gpus else "",
        models=sorted({gpu.model for gpu in gpus if gpu.model}),
        memory_total_mib=sum(gpu.memory_total_mib for gpu in gpus),
        gpus=gpus,
    )


def _model_tokens(name: str) -> list[str]:
    tokens = [token for token in re.split(r"[^a-z0-9]+", name.lower()) if token]
    return tokens[1:] if tokens[:1] == ["nvidia"] else tokens


def gpu_model_matches(required: str, present: str) -> bool:
    """Whether a GPU named `present` (nvidia-smi: "NVIDIA H100 80GB HBM3") is the model `required`
    names in a catalog or inventory ("nvidia-h100-80gb", "H100", "h100 80gb"): same chip (first word
    after the vendor), and every further word of `required` appears in `present`. "L4" is not "L40S"."""
    wanted, found = _model_tokens(required), _model_tokens(present)
    if not wanted or not found or wanted[0] != found[0]:
        return False
    return set(wanted[1:]) <= set(found[1:])


def compare_with_inventory(
    fact: dict[str, Any], expected_count: int | None, expected_model: str
) -> list[str]:
    """Mismatches between a host's fact and what the inventory expects (empty: all agree)."""
    problems = []
    count = int(fact.get("count", 0))
    if expected_count is not None and count != expected_count:
        problems.append(
            f"expected {expected_count} GPU(s), found {count} (source: {fact.get('source', 'none')})"
        )
    models = [str(model) for model in fact.get("models", [])]
    if expected_model and count and not all(gpu_model_matches(expected_model, model) for model in models):
        problems.append(f"expected model {expected_model!r}, found {', '.join(models) or 'unknown'}")
    return problems


def verification_problems(
    fact: dict[str, Any],
    expected_count: int | None,
    expected_model: str,
    *,
    nvidia_smi_answers: bool,
    container: dict[str, Any] | None = None,
) -> list[str]:
    """What `playbooks/verify-gpu.yml` reports: the inventory's expectations (count, model by
    `gpu_model_matches`), the driver answering, and a CUDA container seeing every GPU. `container` is
    None when no container ran, else {"gpus": N} after a run or {"error": text} after a failed one."""
    problems = compare_with_inventory(fact, expected_count, expected_model)
    count = int(fact.get("count", 0))
    if count and not nvidia_smi_answers:
        problems.append(
            "nvidia-smi does not answer (driver not installed or not loaded; reboot after installing it)"
        )
    if container is not None:
        if "error" in container:
            problems.append(f"docker run --gpus all failed: {str(container['error']).strip()}")
        elif int(container.get("gpus", 0)) != count:
            problems.append(
                f"the CUDA container sees {int(container.get('gpus', 0))} GPU(s), the host {count}"
            )
    return problems
