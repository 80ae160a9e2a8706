"""The plan's models: what `khronika plan` is asked (PlanRequest) and what it answers (Plan).

The reports (`report/`) read these and nothing else of the pipeline; `plan.py` imports no stage.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from khronika_ops.planner.document import PLAN_SCHEMA_VERSION
from khronika_ops.planner.models import ForecastSettings, SizeResult
from khronika_ops.planner.place import Placement
from khronika_ops.planner.size import SizingPolicy
from khronika_ops.planner.verdict import Bottleneck, Severity


class PlanRequest(BaseModel):
    model_config = ConfigDict(frozen=True)

    prometheus_url: str | None = None
    prometheus_ca: str | None = None
    prometheus_user: str | None = None
    # Never dumped or printed; from KHRONIKA_PROMETHEUS_PASSWORD / _TOKEN, not from the command line.
    prometheus_password: SecretStr | None = None
    prometheus_token: SecretStr | None = None
    csv_files: list[str] = Field(default_factory=list)
    catalog_files: list[str] = Field(default_factory=list)
    history_days: float = 14.0
    step_seconds: float = 300.0
    settings: ForecastSettings = ForecastSettings()
    policy: SizingPolicy = SizingPolicy()
    # Fixed "now" for Prometheus queries (epoch s); tests and reproducible runs set it.
    end_time: float | None = None


class ModulePlan(BaseModel):
    name: str
    replicas: int
    cores_per_replica: float
    memory_gib_per_replica: float
    gpus_per_replica: int = 0
    gpu_model: str | None = None
    bottleneck: Bottleneck
    severity: Severity
    severity_reason: str = ""
    reasons: dict[str, str] = Field(default_factory=dict)
    figures: list[SizeResult] = Field(default_factory=list)
    current_hosts: list[str] = Field(default_factory=list)  # where its replicas run now


class HostPlan(BaseModel):
    name: str
    new: bool
    shape: str
    cores: float
    memory_gib: float
    disk_gib: float
    disk_class: str  # the class the plan asks for
    disk_class_now: str = ""  # the class the host has (existing hosts)
    gpus: int = 0
    gpu_model: str | None = None
    modules: list[str] = Field(default_factory=list)
    cores_used: float = 0.0
    memory_gib_used: float = 0.0
    bottleneck: Bottleneck = Bottleneck.CPU
    severity: Severity = Severity.GOOD
    severity_reason: str = ""
    disk: list[SizeResult] = Field(default_factory=list)
    disk_io: list[SizeResult] = Field(default_factory=list)
    disk_class_reason: str = ""
    nic_gbps: float = 10.0
    network: SizeResult | None = None
    network_reason: str = ""
    network_over_limit: bool = False
    gpu_observed: dict[str, float] = Field(default_factory=dict)
    gpu_reason: str = ""
    changes: list[str] = Field(default_factory=list)
    downtime: str = "none"
    n_minus_1_holds: bool = True


class Plan(BaseModel):
    # The plan's schema (planner/document.py: what scale.yml reads of it, and checks).
    schema_version: int = PLAN_SCHEMA_VERSION
    horizon_days: float
    # The sizing rule and its under-provisioning target (SizingPolicy.description / target_under).
    sizing: str = ""
    target_under: float | None = None
    history_source: str
    series_read: int
    insufficient_series: list[str] = Field(default_factory=list)
    # Series whose history was replayed from a trace, not measured (a lab: khronika_ops/lab/history.py).
    replayed_series: dict[str, str] = Field(default_factory=dict)
    modules: list[ModulePlan] = Field(default_factory=list)
    hosts: list[HostPlan] = Field(default_factory=list)
    placement: Placement
    n_minus_1: dict[str, bool] = Field(default_factory=dict)
    total_new_cost: float = 0.0
    changes: list[str] = Field(default_factory=list)
    host_vars: dict[str, dict[str, object]] = Field(default_factory=dict)
    warnings: list[str] = Field(default_factory=list)
