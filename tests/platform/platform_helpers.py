"""Builders shared by the tests/platform tests (a module, not a conftest: see tests/conftest.py)."""

from __future__ import annotations

import copy
import hashlib
from pathlib import Path
from typing import Any

from khronika_ops.platform.catalog import Inventory

REPO = Path(__file__).resolve().parents[2]
SAMPLE_CATALOG = REPO / "samples" / "catalog" / "khronika_modules.yml"
SAMPLE_INVENTORY = REPO / "samples" / "catalog" / "inventory.yml"
RELEASES = REPO / "releases"


def digest(seed: str) -> str:
    return "sha256:" + hashlib.sha256(seed.encode()).hexdigest()


def module(name: str, **fields: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {"name": name, "image": f"example/{name}", "placement": {"groups": ["app"]}}
    entry.update(copy.deepcopy(fields))
    return entry


def inventory(gpu_hosts: dict[str, int] | None = None, **resources: Any) -> Inventory:
    """app-01, app-02 in group app; gpu-01 in group gpu (2 GPUs unless told); bare-01 in group bare."""
    groups = {"app": ["app-01", "app-02"], "gpu": ["gpu-01"], "bare": ["bare-01"]}
    groups["all"] = [host for members in list(groups.values()) for host in members]
    return Inventory.from_groups(groups, gpu_hosts if gpu_hosts is not None else {"gpu-01": 2}, resources)


def release_data(version: str = "1.0.0", kind: str = "new-version", **modules: str) -> dict[str, Any]:
    return {
        "version": version,
        "kind": kind,
        "date": "2025-01-01",
        "modules": [{"name": name, "image": f"example/{name}@{image}"} for name, image in modules.items()],
    }
