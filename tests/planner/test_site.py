"""The site as it is, from Ansible facts and the module catalog (what playbooks/plan.yml feeds the plan)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from khronika_ops.planner.catalog import load_catalog
from khronika_ops.planner.site import catalog_gpu_model, site_catalog_from_ansible

GIB = 1024**3


def _facts(**overrides: Any) -> dict[str, Any]:
    facts: dict[str, Any] = {
        "processor_vcpus": 32,
        "memtotal_mb": 128 * 1024,
        "mounts": [
            {"mount": "/", "device": "/dev/nvme0n1p2", "fstype": "ext4", "size_total": 100 * GIB},
            {
                "mount": "/var/lib/docker",
                "device": "/dev/nvme0n1p2",
                "fstype": "ext4",
                "size_total": 100 * GIB,
            },
            {"mount": "/srv", "device": "/dev/nvme1n1", "fstype": "xfs", "size_total": 2000 * GIB},
            {"mount": "/run", "device": "tmpfs", "fstype": "tmpfs", "size_total": 1 * GIB},
        ],
        "devices": {
            "nvme0n1": {"rotational": "0", "sectors": "1"},
            "loop0": {"rotational": "1", "sectors": "9"},
        },
        "default_ipv4": {"interface": "bond0"},
        "bond0": {"speed": 25000},
        "local": {"khronika_gpu": {"count": 2, "models": ["NVIDIA H100 80GB HBM3"]}},
    }
    facts.update(overrides)
    return {"ansible_facts": facts}


MODULES = [
    {
        "name": "api",
        "image": "khronika-samples/appeals-api",
        "placement": {"groups": ["khronika_platform"]},
        "resources": {"cpus": 2, "memory": "4g"},
    },
    {"name": "infer", "image": "khronika-samples/classifier", "placement": {"hosts": ["gpu-01"]}, "gpus": 1},
]
GROUPS = {
    "khronika": ["app-01", "app-02", "gpu-01", "down-01", "mon-01"],
    "khronika_platform": ["app-01", "app-02"],
    "khronika_monitoring": ["mon-01"],
    "khronika_gpu": ["gpu-01", "down-01"],
}


def test_hosts_from_facts_and_modules_from_the_catalog(tmp_path: Path) -> None:
    hostvars = {
        "app-01": _facts(local={}),
        "app-02": _facts(
            local={},
            devices={
                "sda": {"rotational": "1", "sectors": "9999"},
                "sdb": {"rotational": "0", "sectors": "1"},
            },
            bond0={"speed": -1},  # unknown (VMs, containers): the catalog default applies
        ),
        "gpu-01": {**_facts(), "khronika_gpu_count": 2},
        "down-01": {},  # unreachable: no facts
        "mon-01": _facts(),  # monitoring only: no module runs there, so it is no bin for the plan
    }
    site = site_catalog_from_ansible(hostvars, GROUPS, MODULES)
    hosts = {host["name"]: host for host in site["hosts"]}
    assert set(hosts) == {"app-01", "app-02", "gpu-01"}
    assert (
        site_catalog_from_ansible(hostvars, GROUPS, MODULES, hosts_group="khronika_monitoring")["hosts"][0][
            "name"
        ]
        == "mon-01"
    )
    assert site["notes"] == ["down-01: no facts (unreachable?): left out of the plan's current hosts"]
    app = hosts["app-01"]
    assert (app["cores"], app["memory_gib"], app["disk_class"], app["nic_gbps"]) == (
        32.0,
        128.0,
        "nvme",
        25.0,
    )
    assert app["mounts"] == {"/": 100.0, "/var/lib/docker": 100.0, "/srv": 2000.0}  # tmpfs left out
    assert app["disk_gib"] == 2100.0  # one device counted once
    assert hosts["app-02"]["disk_class"] == "hdd" and "nic_gbps" not in hosts["app-02"]
    assert (hosts["gpu-01"]["gpus"], hosts["gpu-01"]["gpu_model"]) == (2, "nvidia-h100-80gb")
    modules = {module["name"]: module for module in site["modules"]}
    assert modules["api"] == {
        "name": "api",
        "replicas": 2,
        "hosts": ["app-01", "app-02"],  # where each replica runs: the plan's starting point
        "min_cores": 2.0,
        "current_cores": 2.0,
        "min_memory_gib": 4.0,
        "current_memory_gib": 4.0,
    }
    assert modules["infer"]["hosts"] == ["gpu-01"]
    # The fragment is a valid catalog layer, and a site file can add planning fields by name.
    (tmp_path / "site.yml").write_text(yaml.safe_dump(site), encoding="utf-8")
    (tmp_path / "extra.yml").write_text(
        "modules:\n  - {name: infer, gpu_requests_per_second: 30, gpu_vram_gib: 20}\n"
        "hosts:\n  - {name: app-02, nic_gbps: 10}\n",
        encoding="utf-8",
    )
    catalog = load_catalog([tmp_path / "site.yml", tmp_path / "extra.yml"])
    infer = next(module for module in catalog.modules if module.name == "infer")
    assert (infer.current_hosts(), infer.gpu_requests_per_second) == (["gpu-01"], 30)  # merged field by field
    assert next(h for h in catalog.hosts if h.name == "app-02").disk_class == "hdd"
    assert catalog.notes == site["notes"]


def test_gpu_names_map_to_the_catalog() -> None:
    names = ["nvidia-l4", "nvidia-l40s", "nvidia-h100-80gb", "nvidia-a100-80gb"]
    assert catalog_gpu_model(["NVIDIA L40S"], names) == "nvidia-l40s"
    assert catalog_gpu_model(["NVIDIA L4"], names) == "nvidia-l4"
    assert catalog_gpu_model(["NVIDIA H200"], names) is None  # not in the catalog: the site adds it
    assert catalog_gpu_model(["NVIDIA L4", "NVIDIA H100 80GB HBM3"], names) is None  # mixed host


def test_a_difference_of_offset_or_coarser_grids_keeps_every_cell() -> None:
    """MemTotal every 60 s and MemAvailable offset by 30 s, or only every 120 s: used memory is known
    in every cell (the nearest sample within half the coarser step), not in half of them."""
    import numpy as np

    from khronika_ops.planner.models import CleanReport, CleanSeries, SeriesKey
    from khronika_ops.planner.vocabulary import to_collector_names

    def series(metric: str, start: float, step: float, count: int, value: float) -> CleanSeries:
        return CleanSeries(
            key=SeriesKey(metric=metric, labels=(("instance", "h1:9100"),)),
            unit="bytes",
            source="<test>",
            start=start,
            step=step,
            values=np.full(count, value),
            report=CleanReport(points_in=count, points_used=count, step_seconds=step),
        )

    total = series("node_memory_MemTotal_bytes", 0.0, 60.0, 100, 64.0)
    for available in (
        series("node_memory_MemAvailable_bytes", 30.0, 60.0, 100, 16.0),
        series("node_memory_MemAvailable_bytes", 0.0, 120.0, 50, 16.0),
    ):
        derived = {s.key.metric: s for s in to_collector_names([total, available])}
        used = derived["khronika_host_memory_used_bytes"]
        assert used.key.labels == (("host", "h1"),)
        assert np.count_nonzero(np.isfinite(used.values)) >= 99 and np.nanmax(used.values) == 48.0
