"""The seam between the planner and `scale.yml`: the part of a plan (`khronika plan --format json`,
`reports/capacity-plan.json`) that scaling applies, typed and versioned.

The planner writes `schema_version` into every plan (`planner/plan.py`); `platform/scale.py` reads a
plan only through `read_plan`, which refuses a plan of another schema, a missing or non-finite size,
and a placement naming a module or host the plan does not size, each with its place in the file.
Standard library and pydantic only: the scale's filter imports it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from khronika_ops.planner.replicas import replica_module
from khronika_ops.validation import Problem, ProblemsError, problems_from_validation

PLAN_SCHEMA_VERSION = 1


class PlanDocumentError(ProblemsError):
    what = "capacity plan"


class _Part(BaseModel):
    # The plan carries much more (figures, reasons, reports' data): scaling reads these fields only.
    model_config = ConfigDict(extra="ignore", frozen=True, allow_inf_nan=False)


class PlannedModule(_Part):
    name: str = Field(min_length=1)
    cores_per_replica: float = Field(gt=0, le=1024)
    memory_gib_per_replica: float = Field(gt=0, le=16384)
    gpus_per_replica: int = Field(0, ge=0, le=64)


class PlannedHost(_Part):
    name: str = Field(min_length=1)
    cores: float = Field(ge=0, le=4096)
    memory_gib: float = Field(ge=0, le=65536)
    gpus: int = Field(0, ge=0, le=64)


class PlannedPlacement(_Part):
    assignment: dict[str, str] = Field(default_factory=dict)  # replica (module#n) -> host


class PlanDocument(_Part):
    # Plans written before the field existed are of the first schema.
    schema_version: Literal[1] = 1
    modules: list[PlannedModule] = Field(default_factory=list)
    hosts: list[PlannedHost] = Field(default_factory=list)
    placement: PlannedPlacement

    @model_validator(mode="after")
    def _placed_is_sized(self) -> PlanDocument:
        sized = {module.name for module in self.modules}
        hosts = {host.name for host in self.hosts}
        for replica, host in self.placement.assignment.items():
            if replica_module(replica) not in sized:
                raise ValueError(f"placement.assignment: {replica} belongs to no module the plan sizes")
            if host not in hosts:
                raise ValueError(
                    f"placement.assignment: {replica} is placed on {host}, which the plan does not size"
                )
        return self

    def module(self, name: str) -> PlannedModule | None:
        return next((module for module in self.modules if module.name == name), None)


def read_plan(data: Any, source: str = "capacity plan") -> PlanDocument:
    """The plan as scaling reads it, or PlanDocumentError with every problem and its place."""
    if not isinstance(data, Mapping):
        raise PlanDocumentError(
            [
                Problem(
                    None,
                    "",
                    f"is {type(data).__name__}, not a plan (the JSON of khronika plan --format json)",
                )
            ],
            source,
        )
    version = data.get("schema_version", PLAN_SCHEMA_VERSION)
    if version != PLAN_SCHEMA_VERSION:
        raise PlanDocumentError(
            [
                Problem(
                    None,
                    "schema_version",
                    f"is {version!r}; this khronika-ops reads plans of schema {PLAN_SCHEMA_VERSION}: plan again "
                    "with it (playbooks/plan.yml)",
                )
            ],
            source,
        )
    try:
        return PlanDocument.model_validate(dict(data))
    except ValidationError as exc:
        raise PlanDocumentError(problems_from_validation(exc, None), source) from None
