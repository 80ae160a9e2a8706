"""Catalog: disk classes, GPU models and host shapes one can buy, plus the site's hosts and modules.

The package default (`khronika_ops/data/catalog.yaml`) is merged with a site file; entries with the
same name in the site file replace the defaults.
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError

from khronika_ops import safe_yaml
from khronika_ops.planner.errors import InputError, PlannerError
from khronika_ops.validation import ProblemsError, StrictModel, problems_from_validation


class SiteCatalogError(ProblemsError, PlannerError):
    """Every problem of a site catalog at once, each located by entry and field."""

    what = "site catalog"


class DiskClass(StrictModel):
    name: str
    max_iops: float = Field(gt=0)
    max_mb_per_s: float = Field(gt=0)
    cost_per_tb: float = Field(ge=0)


class GpuModel(StrictModel):
    name: str
    vram_gib: float = Field(gt=0)
    throughput: float = Field(gt=0)
    cost: float = Field(ge=0)


class HostShape(StrictModel):
    name: str
    cores: float = Field(gt=0)
    memory_gib: float = Field(gt=0)
    disk_gib: float = Field(ge=0)
    disk_class: str = "sata_ssd"
    gpus: int = Field(0, ge=0)
    gpu_model: str | None = None
    # Network: the NIC speed a host is planned for, in Gbit/s (sum of its bonded links).
    nic_gbps: float = Field(10.0, gt=0)
    cost: float = Field(0.0, ge=0)


class ExistingHost(HostShape):
    """A host the site already has (cost 0: using it is free)."""

    mounts: dict[str, float] = Field(default_factory=dict)  # mount -> size GiB, for days until full


class ModuleSpec(StrictModel):
    """A Khronika module (container) to place. Sizes come from metrics; these are minimums and knobs."""

    name: str
    replicas: int = Field(1, ge=1)
    anti_affinity: bool = True
    min_cores: float = Field(0.25, ge=0)
    min_memory_gib: float = Field(0.25, ge=0)
    # Request serving: CPU seconds per request and a queueing-delay target give an Erlang-C size.
    cpu_seconds_per_request: float | None = Field(None, gt=0)
    latency_target_seconds: float = Field(0.1, gt=0)
    # GPU serving: requests/s one reference GPU (throughput 1.0) sustains at the latency target.
    gpu_requests_per_second: float | None = Field(None, gt=0)
    gpu_vram_gib: float = Field(0.0, ge=0)
    gpu_target_utilisation: float = Field(0.7, gt=0, le=1)
    gpu_spare: int = Field(1, ge=0)
    # Where it runs now: `hosts` names the host of each replica; `host` says every replica runs there.
    # The plan starts from it and moves a replica only for a reason it names.
    host: str | None = None
    hosts: list[str] = Field(default_factory=list)
    # Its limits now, per replica (Docker's): what the severity compares the need with.
    current_cores: float | None = Field(None, gt=0)
    current_memory_gib: float | None = Field(None, gt=0)
    # It keeps data in volumes: a move stops it behind its maintenance page and copies `data_gib`.
    stateful: bool = False
    data_gib: float = Field(0.0, ge=0)

    def current_hosts(self) -> list[str]:
        """The host of each replica now, in replica order (empty: unknown)."""
        if self.hosts:
            return list(self.hosts)
        return [self.host] * self.replicas if self.host else []


class Catalog(StrictModel):
    disk_classes: list[DiskClass] = Field(default_factory=list)
    gpu_models: list[GpuModel] = Field(default_factory=list)
    host_shapes: list[HostShape] = Field(default_factory=list)
    hosts: list[ExistingHost] = Field(default_factory=list)
    modules: list[ModuleSpec] = Field(default_factory=list)
    next_release_images_gib: float = Field(10.0, ge=0)
    backup_gib: float = Field(0.0, ge=0)
    vram_headroom: float = Field(1.2, ge=1)
    # A NIC is planned to carry at most this share of its speed at the p99 rate (bursts, retransmits).
    nic_max_utilisation: float = Field(0.7, gt=0, le=1)
    max_new_hosts_per_shape: int = Field(8, ge=0)
    # Said by whoever wrote the catalog (e.g. hosts left out for lack of facts); repeated in the plan.
    notes: list[str] = Field(default_factory=list)

    def disk_class(self, name: str) -> DiskClass:
        return next(item for item in self.disk_classes if item.name == name)

    def gpu_model(self, name: str) -> GpuModel:
        return next(item for item in self.gpu_models if item.name == name)


_LIST_KEYS = ("disk_classes", "gpu_models", "host_shapes", "hosts", "modules")


def _load_yaml(text: str, source: str) -> dict[str, Any]:
    try:
        data = safe_yaml.load_text(text, source) or {}
    except safe_yaml.YamlError as exc:
        raise InputError(exc.reason, source=source, line=exc.line) from None
    if not isinstance(data, dict):
        raise InputError("a catalog must be a mapping", source=source, line=1)
    return data


def default_catalog_data() -> dict[str, Any]:
    text = resources.files("khronika_ops").joinpath("data/catalog.yaml").read_text(encoding="utf-8")
    return _load_yaml(text, "khronika_ops/data/catalog.yaml")


def load_catalog(paths: str | Path | Sequence[str | Path] | None = None) -> Catalog:
    """The package defaults, then each site file in turn. List entries (hosts, modules, shapes, disk
    classes, GPU models) merge by name, field by field, so a later file can change one field of an
    entry an earlier one made; other keys are replaced (`notes` add up)."""
    if paths is None:
        files: list[str | Path] = []
    elif isinstance(paths, str | Path):
        files = [paths]
    else:
        files = list(paths)
    data = default_catalog_data()
    source = "khronika_ops/data/catalog.yaml"
    for path in files:
        source = str(path)
        try:
            site = _load_yaml(Path(path).read_text(encoding="utf-8"), source)
        except OSError as exc:
            raise InputError(f"cannot read catalog: {exc.strerror}", source=source) from exc
        for key, value in site.items():
            if key in _LIST_KEYS and isinstance(value, list):
                data[key] = _merge_by_name(data.get(key, []), value)
            elif key == "notes" and isinstance(value, list):
                data[key] = [*data.get(key, []), *value]
            else:
                data[key] = value
    try:
        return Catalog.model_validate(data)
    except ValidationError as exc:
        problems = problems_from_validation(exc, None)
        # "hosts[1].cores" says more as "hosts[1] (app-02).cores": name the entry where it has a name.
        for position, item in enumerate(exc.errors()):
            loc = item["loc"]
            if len(loc) >= 2 and loc[0] in _LIST_KEYS and isinstance(loc[1], int):
                entries = data.get(str(loc[0]))
                entry = entries[loc[1]] if isinstance(entries, list) and loc[1] < len(entries) else None
                if isinstance(entry, dict) and entry.get("name"):
                    problem = problems[position]
                    named = problem.field.replace(f"[{loc[1]}]", f"[{loc[1]}] ({entry['name']})", 1)
                    problems[position] = type(problem)(None, named, problem.message)
        raise SiteCatalogError(problems, ", ".join(str(path) for path in files) or source) from exc


def _merge_by_name(base: list[Any], layer: list[Any]) -> list[Any]:
    merged = [dict(item) if isinstance(item, dict) else item for item in base]
    positions = {item.get("name"): index for index, item in enumerate(merged) if isinstance(item, dict)}
    for item in layer:
        name = item.get("name") if isinstance(item, dict) else None
        if name is not None and name in positions:
            merged[positions[name]] = {**merged[positions[name]], **item}
        else:
            merged.append(item)
    return merged
