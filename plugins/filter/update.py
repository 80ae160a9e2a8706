"""Filters of khronika.platform for `playbooks/update.yml`: thin adapters over khronika_ops.platform.update
(the pre-flight) and khronika_ops.platform.update_run (steps, batches, silence, report).

khronika_update_preflight(version, releases_dir, catalog, groups, hostvars, records, ...)
    -> the pre-flight (UpdatePreflight as JSON), or AnsibleFilterError with every refusal at once.
khronika_update_capacity(preflight, releases_dir, sizes) -> capacity_check's modules + placement.
khronika_manifest_bytes(text)                 -> an image's download size from `docker manifest inspect -v`.
khronika_df_free_mb(text)                     -> {mount: free MB} from `df -P -B1M`.
khronika_update_image_check(result)           -> {image, ok, reason} from a looped `docker manifest inspect`.
khronika_update_steps(plan, hosts)            -> the batch's switch steps (lockstep over its hosts).
khronika_update_gateway_checks(plan)          -> [{module, path}] asked through the gateway.
khronika_update_verdict(batch, outcomes, pct) -> whether the next batch may start, and why not.
khronika_update_lease_problem(lease)          -> '' when khronika_update_silence_lease is 30s..1h, else why not.
khronika_strategy_problem(strategy)           -> '' when this controller runs playbooks with that strategy, else why not.
khronika_failure(ansible_failed_result, ansible_failed_task.name) -> what failed, in one line (every rescue).
khronika_update_data_writes(containers, modules) -> the data checks' records to write before a host's switch.
khronika_update_data_reads(written_results)   -> where to read them back after it.
khronika_update_data_problems(read_results)   -> why the data did not hold (empty: it did).
khronika_update_silence_until(preflight) -> the latest the silence may be renewed to (the window's end).
khronika_update_rollback_scope(asked, preflight) -> host, batch or site (auto: site across a new version).
khronika_update_rollback_peers(verdicts, outcomes, scope) -> {host: why it rolls back with a failed host}.
khronika_update_silence(hosts, preflight, comment, created_by) -> the Alertmanager v2 silence body.
khronika_update_maintenance_scope(preflight, policy) -> {site, modules, reasons}: where the maintenance page goes.
khronika_update_report(preflight, outcomes, probe, ...) -> {report, markdown, audit: {host: line}}.
khronika_update_evidence(infos, logs, exits)  -> what each failed container said before the rollback.
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
update = lazy("khronika_ops.platform.update")
update_run = lazy("khronika_ops.platform.update_run")
runner = lazy("khronika_ops.runner")
platform_catalog = lazy("khronika_ops.platform.catalog")
inventory_file = lazy("khronika_ops.platform.inventory_file")
platform_registry = lazy("khronika_ops.platform.registry")
platform_release = lazy("khronika_ops.platform.release")
validation = lazy("khronika_ops.validation")
lease_module = lazy("khronika_ops.platform.lease")


def khronika_update_preflight(  # noqa: PLR0917 - a Jinja filter takes its arguments by position
    version: str,
    releases_dir: str,
    catalog: Any,
    groups: Any,
    hostvars: Any,
    records: Any,
    window: Any = None,
    force_window: bool = False,
    allow_downgrade: bool = False,
    image_checks: Any = None,
    registry: str | None = None,
    now: str | None = None,
    image_source: str | None = None,
) -> dict[str, Any]:
    """`records`: host -> its release record, {"missing": true} or {"error": "..."};
    `window`: {start, duration[, every]} or None; `image_checks`: [{image, ok, reason}] from the hosts."""
    try:
        target = platform_release.find_release(releases_dir, str(version))
        catalog_data = plain(catalog)
        deployment = platform_catalog.resolve_deployment(
            catalog_data,
            inventory_file.inventory_from_ansible(groups, hostvars),
            release=target,
            default_registry=registry or None,
            image_source=image_source or "registry",
        )
        result = update.preflight(
            target=target,
            releases=platform_release.list_releases(releases_dir),
            deployment=deployment,
            states=update.states_from_records(plain(records)),
            strategies=platform_catalog.update_strategies(catalog_data),
            now=datetime.fromisoformat(now.replace("Z", "+00:00")) if now else datetime.now(UTC),
            window=update.MaintenanceWindow.model_validate(plain(window)) if window else None,
            force_window=bool(force_window),
            allow_downgrade=bool(allow_downgrade),
            image_checks=[
                platform_registry.ImageCheck(str(c["image"]), bool(c["ok"]), str(c["reason"]))
                for c in plain(image_checks or [])
            ],
        )
    except validation.ProblemsError as exc:
        raise AnsibleFilterError(str(exc)) from exc
    except (TypeError, ValueError) as exc:
        raise AnsibleFilterError(f"update pre-flight: {exc}") from exc
    data = result.model_dump(mode="json", by_alias=True)
    data["text"] = update.render_text(result)
    return data


def khronika_update_capacity(
    preflight: Any,
    releases_dir: str,
    sizes: Any,
    docker_root: str = "/var/lib/docker",
    backup_dir: str = "/var/backups",
) -> dict[str, Any]:
    try:
        target = platform_release.find_release(releases_dir, str(plain(preflight)["to_version"]))
    except validation.ProblemsError as exc:
        raise AnsibleFilterError(str(exc)) from exc
    return update_run.capacity_request(plain(preflight), target, plain(sizes) or {}, docker_root, backup_dir)


def khronika_manifest_bytes(text: Any) -> int:
    return update_run.manifest_bytes(str(text or ""))


def khronika_update_image_check(result: Any) -> dict[str, Any]:
    """One looped `docker manifest inspect` result as an image check for the pre-flight."""
    data = plain(result) or {}
    ok = data.get("rc") == 0
    reason = "present" if ok else (str(data.get("stderr") or data.get("msg") or "").strip() or "no answer")
    return {"image": str(data.get("item", "")), "ok": ok, "reason": reason}


def khronika_df_free_mb(text: Any) -> dict[str, float]:
    return update_run.df_free_mb(str(text or ""))


def _plan(plan: Any) -> platform_catalog.DeployPlan:
    try:
        return platform_catalog.DeployPlan.model_validate(plain(plan))
    except ValueError as exc:
        raise AnsibleFilterError(f"not a deployment plan (khronika_catalog_plan): {exc}") from exc


def khronika_update_steps(plan: Any, hosts: Any) -> list[dict[str, Any]]:
    return [step.model_dump(mode="json") for step in update_run.switch_steps(_plan(plan), list(plain(hosts)))]


def khronika_update_gateway_checks(plan: Any) -> list[dict[str, Any]]:
    return [check.model_dump(mode="json") for check in update_run.gateway_checks(_plan(plan))]


def khronika_update_verdict(batch: Any, outcomes: Any, max_fail_percentage: Any = 0) -> dict[str, Any]:
    results = {host: str(outcome.get("result")) for host, outcome in (plain(outcomes) or {}).items()}
    return update_run.batch_verdict(list(plain(batch)), results, float(max_fail_percentage)).model_dump(
        mode="json"
    )


def khronika_failure(result: Any, task: Any = None) -> str:
    return update_run.failure_text(str(task) if task else None, plain(result) or {})


def khronika_strategy_problem(strategy: Any) -> str:
    """'' when `khronika update auto --strategy` (or `khronika run`'s) takes `strategy` here, else why not."""
    return runner.strategy_problem(str(strategy) if strategy else None)


def khronika_update_lease_problem(lease: Any) -> str:
    """'' when the silence's lease is one the lease keeper takes (30s to 1h), else why not."""
    try:
        lease_module.lease_seconds(str(lease))
    except ValueError as exc:
        return str(exc)
    return ""


def khronika_update_data_writes(containers: Any, modules: Any) -> list[dict[str, Any]]:
    return update_run.data_check_writes(plain(containers) or [], list(plain(modules) or []))


def khronika_update_data_reads(written: Any) -> list[dict[str, Any]]:
    try:
        return update_run.data_check_reads(plain(written) or [])
    except ValueError as exc:
        raise AnsibleFilterError(str(exc)) from exc


def khronika_update_data_problems(read: Any) -> list[str]:
    return update_run.data_check_problems(plain(read) or [])


def khronika_update_silence_until(preflight: Any, fallback: str = "4h") -> str:
    try:
        return update_run.iso(
            update_run.silence_until(plain(preflight) or {}, datetime.now(UTC), str(fallback))
        )
    except ValueError as exc:
        raise AnsibleFilterError(f"khronika_update_silence_until: {exc}") from exc


def khronika_update_rollback_scope(asked: Any, preflight: Any) -> str:
    try:
        return update_run.rollback_scope(str(asked), plain(preflight) or {})
    except ValueError as exc:
        raise AnsibleFilterError(str(exc)) from exc


def khronika_update_rollback_peers(verdicts: Any, outcomes: Any, scope: Any) -> dict[str, str]:
    return update_run.rollback_peers(str(scope), plain(verdicts) or [], plain(outcomes) or {})  # type: ignore[arg-type]


def khronika_update_silence(  # noqa: PLR0917 - a Jinja filter takes its arguments by position
    hosts: Any, preflight: Any, comment: str, created_by: str, fallback: str = "4h", lease: str = ""
) -> dict[str, Any]:
    """From now to the end of the open window (or `fallback` from now when no window was set); with a
    lease, one lease from now (the lease keeper renews it)."""
    try:
        return update_run.silence_for(
            list(plain(hosts)),
            plain(preflight),
            comment=str(comment),
            created_by=str(created_by),
            now=datetime.now(UTC),
            fallback=str(fallback),
            lease=str(lease) or None,
        )
    except ValueError as exc:
        raise AnsibleFilterError(f"khronika_update_silence: {exc}") from exc


def khronika_update_maintenance_scope(preflight: Any, policy: str = "auto") -> dict[str, Any]:
    try:
        return update_run.maintenance_scope(plain(preflight), str(policy)).model_dump(mode="json")
    except (KeyError, ValueError) as exc:
        raise AnsibleFilterError(f"khronika_update_maintenance_scope: {exc}") from exc


def khronika_update_report(  # noqa: PLR0917 - a Jinja filter takes its arguments by position
    preflight: Any,
    outcomes: Any,
    probe: Any = None,
    started_at: str = "",
    operator: str = "",
    controller: str = "",
    maintenance: Any = None,
    silence_id: str | None = None,
    stopped: str | None = None,
    warnings: Any = None,
) -> dict[str, Any]:
    try:
        report = update_run.build_report(
            preflight=plain(preflight),
            outcomes=plain(outcomes) or {},
            probe=plain(probe) if probe else None,
            started_at=str(started_at),
            finished_at=update.iso(datetime.now(UTC)),
            operator=str(operator),
            controller=str(controller),
            maintenance=plain(maintenance) or {"site": False, "modules": [], "reasons": []},
            silence_id=str(silence_id) if silence_id else None,
            stopped=str(stopped) if stopped else None,
            warnings=[str(w) for w in plain(warnings or [])],
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise AnsibleFilterError(f"khronika_update_report: {exc}") from exc
    audit = {host.host: update_run.audit_entry(report, host.host) for host in report.hosts}
    return {
        "report": report.model_dump(mode="json"),
        "markdown": update_run.render_markdown(report),
        "audit": audit,
        "controller_audit": update_run.audit_entry(report),
    }


def khronika_update_evidence(infos: Any, logs: Any, exits: Any) -> list[dict[str, Any]]:
    return [
        evidence.model_dump(mode="json")
        for evidence in update_run.evidence_from_results(
            plain(infos) or [], plain(logs) or [], plain(exits) or []
        )
    ]


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {
            "khronika_update_preflight": khronika_update_preflight,
            "khronika_strategy_problem": khronika_strategy_problem,
            "khronika_update_steps": khronika_update_steps,
            "khronika_update_capacity": khronika_update_capacity,
            "khronika_manifest_bytes": khronika_manifest_bytes,
            "khronika_df_free_mb": khronika_df_free_mb,
            "khronika_update_image_check": khronika_update_image_check,
            "khronika_update_gateway_checks": khronika_update_gateway_checks,
            "khronika_update_verdict": khronika_update_verdict,
            "khronika_update_silence": khronika_update_silence,
            "khronika_update_rollback_scope": khronika_update_rollback_scope,
            "khronika_update_silence_until": khronika_update_silence_until,
            "khronika_update_data_writes": khronika_update_data_writes,
            "khronika_failure": khronika_failure,
            "khronika_update_lease_problem": khronika_update_lease_problem,
            "khronika_update_data_reads": khronika_update_data_reads,
            "khronika_update_data_problems": khronika_update_data_problems,
            "khronika_update_rollback_peers": khronika_update_rollback_peers,
            "khronika_update_report": khronika_update_report,
            "khronika_update_maintenance_scope": khronika_update_maintenance_scope,
            "khronika_update_evidence": khronika_update_evidence,
        }
