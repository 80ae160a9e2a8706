"""The one facts adapter: the gate, the planner's site and the catalog's inventory read hosts alike."""

from __future__ import annotations

import pytest

from khronika_ops import facts
from khronika_ops.planner.gate import facts_from_ansible
from khronika_ops.planner.site import host_entry
from khronika_ops.platform.catalog import CatalogError
from khronika_ops.platform.inventory_file import inventory_from_ansible

GIB = 1024**3


def _hostvars(**inventory: object) -> dict[str, object]:
    return {
        "ansible_facts": {
            "processor_vcpus": 8,
            "memtotal_mb": 32768,
            "mounts": [
                {
                    "mount": "/",
                    "device": "/dev/vda1",
                    "fstype": "ext4",
                    "size_total": 100 * GIB,
                    "size_available": 60 * GIB,
                },
                {
                    "mount": "/run",
                    "device": "tmpfs",
                    "fstype": "tmpfs",
                    "size_total": GIB,
                    "size_available": GIB,
                },
                {
                    # A file Docker bind-mounts into a host that is a container: the outer disk.
                    "mount": "/etc/hosts",
                    "device": "/dev/vda1",
                    "fstype": "ext4",
                    "size_total": 100 * GIB,
                    "size_available": 60 * GIB,
                },
                {
                    "mount": "/snap/x",
                    "device": "/dev/loop0",
                    "fstype": "squashfs",
                    "size_total": GIB,
                    "size_available": 0,
                },
            ],
            "devices": {
                "zram0": {"rotational": "0", "sectors": 10**9},
                "sda": {"rotational": "1", "sectors": 10**8},
            },
            "local": {"khronika_gpu": {"count": 2, "models": ["NVIDIA L40S"]}},
        },
        **inventory,
    }


def test_one_gpu_rule_for_every_reader() -> None:
    """The detection fact counts unless the inventory says otherwise; all three readers agree."""
    for inventory, expected in (
        ({}, 2),
        ({"khronika_gpu_count": 4}, 4),
        ({"khronika_gpu_expected_count": 1}, 2),
    ):
        hostvars = _hostvars(**inventory)
        assert facts.gpu_count(hostvars) == expected
        assert facts_from_ansible("h", hostvars).gpus == expected
        assert host_entry(facts.host_resources("h", hostvars), [])["gpus"] == expected
        assert inventory_from_ansible({"all": ["h"]}, {"h": hostvars}).hosts["h"].gpus == expected
    # Without facts (offline validation) the expected count is what the inventory knows.
    assert facts.gpu_count({"khronika_gpu_expected_count": 3}) == 3
    assert facts.gpu_count({"khronika_gpu_expected_count": -1}) == 0  # the nvidia role's "do not check"


def test_filesystems_disk_class_and_memory() -> None:
    host = facts.host_resources("h", _hostvars())
    assert (host.cores, host.memory_mb, host.facts_gathered) == (8.0, 32768.0, True)
    assert [fs.mount for fs in host.filesystems] == ["/", "/run", "/etc/hosts", "/snap/x"]
    # tmpfs is memory, squashfs no storage, /etc/hosts a file the container runtime mounted
    assert [fs.mount for fs in host.disk_filesystems] == ["/"]
    # zram0 is the largest device but virtual: the rotational sda decides.
    assert host.disk_class == "hdd"
    assert facts.host_resources("h", _hostvars(khronika_disk_class="nvme")).disk_class == "nvme"
    assert not facts.host_resources("h", {}).facts_gathered


def test_a_gpu_count_that_is_no_number_is_named() -> None:
    with pytest.raises(facts.FactsError, match="khronika_gpu_count must be a whole number"):
        facts.gpu_count({"khronika_gpu_count": "eight"})
    with pytest.raises(CatalogError, match="khronika_gpu_count must be a whole number"):
        inventory_from_ansible({"all": ["h"]}, {"h": {"khronika_gpu_count": "eight"}})


def test_nic_from_the_default_route() -> None:
    hostvars = {"ansible_facts": {"default_ipv4": {"interface": "eth-0"}, "eth_0": {"speed": 25000}}}
    assert facts.nic_gbps(hostvars) == 25.0
    assert facts.nic_gbps({"khronika_nic_gbps": 100, **hostvars}) == 100.0
    assert (
        facts.nic_gbps({"ansible_facts": {"default_ipv4": {"interface": "eth0"}, "eth0": {"speed": -1}}})
        is None
    )


def test_the_gate_reads_every_mount_and_only_gpu_evidence() -> None:
    """In a container `/` is an overlay: its free room still counts for the gate. An expected GPU
    count is not evidence for the gate, only for what the inventory plans."""
    hostvars = {
        "ansible_facts": {
            "processor_vcpus": 2,
            "memtotal_mb": 2048,
            "mounts": [
                {"mount": "/", "fstype": "overlay", "size_total": 10 * GIB, "size_available": 4 * GIB}
            ],
        },
        "khronika_gpu_expected_count": 2,
    }
    gate = facts_from_ansible("c", hostvars)
    assert gate.disk_free_mb == {"/": 4096.0}
    assert gate.gpus == 0
    assert facts.gpu_count(hostvars) == 2
    assert (
        host_entry(facts.host_resources("c", hostvars), [])["mounts"] == {}
    )  # an overlay is no disk to plan
