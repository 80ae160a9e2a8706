"""Monitoring filters of khronika.platform: thin adapters over khronika_ops.monitoring and khronika_ops.gpu."""

from __future__ import annotations

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
gpu = lazy("khronika_ops.gpu")
metrics = lazy("khronika_ops.metrics")
monitoring = lazy("khronika_ops.monitoring")


def alertmanager_receiver_errors(receivers: Any, route: Any) -> list[str]:
    return monitoring.receiver_errors(receivers, route)


def alertmanager_receivers(receivers: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return monitoring.alertmanager_receivers(receivers)


def web_config(users: dict[str, str], cert_file: str, key_file: str, seed: str) -> dict[str, Any]:
    """Exporter-toolkit web config (TLS + bcrypt basic auth); the same input gives the same file."""
    try:
        return monitoring.web_config(users, cert_file, key_file, seed)
    except RuntimeError as exc:
        raise AnsibleFilterError(str(exc)) from exc


def gpu_mismatches(fact: dict[str, Any], expected_count: Any = None, expected_model: str = "") -> list[str]:
    count = None if expected_count in (None, "") else int(expected_count)
    return gpu.compare_with_inventory(fact or {}, count, expected_model or "")


def gpu_verification(
    fact: dict[str, Any],
    expected_count: Any = None,
    expected_model: str = "",
    nvidia_smi_answers: bool = False,
    container: dict[str, Any] | None = None,
) -> list[str]:
    """Problems `playbooks/verify-gpu.yml` reports (khronika_ops.gpu.verification_problems)."""
    count = None if expected_count in (None, "") or int(expected_count) < 0 else int(expected_count)
    return gpu.verification_problems(
        fact or {},
        count,
        expected_model or "",
        nvidia_smi_answers=bool(nvidia_smi_answers),
        container=container or None,
    )


def prometheus_scrape_configs(settings: dict[str, Any]) -> list[dict[str, Any]]:
    """The site's scrape jobs (khronika_ops.monitoring.scrape_configs) from the role's settings."""
    try:
        return monitoring.scrape_configs(**plain(settings))
    except (TypeError, KeyError) as exc:
        raise AnsibleFilterError(f"prometheus_scrape_configs: {exc}") from exc


def metric_vocabulary(form: str = "prometheus") -> dict[str, Any]:
    """The vocabulary's exclusion matchers, as the Prometheus rule templates interpolate them."""
    if form != "prometheus":
        raise AnsibleFilterError(f"metric_vocabulary: unknown form {form!r} (known: prometheus)")
    return metrics.prometheus_matchers()


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {
            "alertmanager_receiver_errors": alertmanager_receiver_errors,
            "alertmanager_receivers": alertmanager_receivers,
            "web_config": web_config,
            "gpu_mismatches": gpu_mismatches,
            "gpu_verification": gpu_verification,
            "metric_vocabulary": metric_vocabulary,
            "prometheus_scrape_configs": prometheus_scrape_configs,
        }
