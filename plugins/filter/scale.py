"""Filters of khronika.platform for `playbooks/scale.yml`: thin adapters over khronika_ops.platform.scale.

khronika_scale_preflight(plan, catalog, groups, hostvars, records, docker_roots, version, releases_dir, ...)
    -> the scale (ScalePlan as JSON, with `text`), or AnsibleFilterError with every refusal at once.
khronika_scale_report(scale, started_at, result, failure, copies, seconds, probe, operator, controller)
    -> {report, markdown, audit}.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from ansible.errors import AnsibleFilterError

try:
    from khronika_ops.ansible_data import plain
    from khronika_ops.lazy import lazy
except ImportError as exc:  # pragma: no cover - depends on the controller's environment
    raise AnsibleFilterError(
        "khronika.platform needs the Python package khronika-ops on the controller: pip install khronika-ops"
    ) from exc

# Imported when a filter first needs them (khronika_ops.lazy says why).
scale = lazy("khronika_ops.platform.scale")
platform_release = lazy("khronika_ops.platform.release")
platform_update = lazy("khronika_ops.platform.update")
validation = lazy("khronika_ops.validation")


def khronika_scale_preflight(  # noqa: PLR0917 - a Jinja filter takes its arguments by position
    plan: Any,
    catalog: Any,
    groups: Any,
    hostvars: Any,
    records: Any,
    docker_roots: Any,
    version: str,
    releases_dir: str,
    window: Any = None,
    force_window: bool = False,
    host_map: Any = None,
    registry: str | None = None,
    now: str | None = None,
    image_source: str | None = None,
) -> dict[str, Any]:
    try:
        data = plain(plan)
        if not isinstance(data, dict) or "placement" not in data or "modules" not in data:
            raise AnsibleFilterError(
                "khronika_scale_plan is not a capacity plan: give the JSON of `khronika plan --format json` "
                "(playbooks/plan.yml writes it as reports/capacity-plan.json)"
            )
        result = scale.preflight(
            catalog=plain(catalog) or [],
            plan=data,
            groups=plain(groups),
            hostvars=plain(hostvars),
            records=plain(records) or {},
            docker_roots=plain(docker_roots) or {},
            release=platform_release.find_release(releases_dir, str(version)),
            now=datetime.fromisoformat(now.replace("Z", "+00:00")) if now else datetime.now(UTC),
            window=platform_update.MaintenanceWindow.model_validate(plain(window)) if window else None,
            force_window=bool(force_window),
            host_map=plain(host_map) or {},
            registry=registry or None,
            image_source=image_source or "registry",
        )
    except validation.ProblemsError as exc:
        raise AnsibleFilterError(str(exc)) from exc
    except (KeyError, TypeError, ValueError) as exc:
        raise AnsibleFilterError(f"scale pre-flight: {validation.readable(exc)}") from exc
    out = result.model_dump(mode="json")
    out["text"] = scale.render_text(result)
    out["changed"] = result.changed
    return out


def khronika_scale_report(  # noqa: PLR0917
    plan: Any,
    started_at: str,
    result: str,
    failure: Any = None,
    copies: Any = None,
    seconds: Any = None,
    probe: Any = None,
    operator: str = "",
    controller: str = "",
) -> dict[str, Any]:
    try:
        report = scale.build_report(
            plain(plan),
            started_at=str(started_at),
            result=str(result),
            failure=str(failure) if failure else None,
            copies=plain(copies) or [],
            seconds=plain(seconds) or {},
            probe=plain(probe) if probe else None,
            operator=str(operator),
            controller=str(controller),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise AnsibleFilterError(f"khronika_scale_report: {validation.readable(exc)}") from exc
    return {
        "report": report.model_dump(mode="json"),
        "markdown": scale.render_markdown(report),
        "audit": scale.audit_entry(report),
    }


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {
            "khronika_scale_preflight": khronika_scale_preflight,
            "khronika_scale_report": khronika_scale_report,
        }
