"""Monitoring configuration logic behind roles monitoring_server and monitoring_agent.

- Alertmanager receivers are written in the inventory as `{name, type, config}`; `type` picks the
  Alertmanager integration (`<type>_configs`), `null` is a receiver that drops what it gets.
- Web configurations (TLS + basic auth) of node_exporter, Prometheus and Alertmanager need bcrypt hashes.
  The salt is derived from the password and a per-host seed, so a role re-run writes the same file
  (idempotent) while a changed password gives a new hash.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

# Receiver type -> keys its config must have (Alertmanager 0.25 integrations).
RECEIVER_TYPES: dict[str, tuple[str, ...]] = {
    "null": (),
    "webhook": ("url",),
    "email": ("to",),
    "slack": (),
    "telegram": ("bot_token", "chat_id"),
    "pagerduty": (),
    "opsgenie": (),
    "pushover": ("user_key", "token"),
    "victorops": ("routing_key",),
    "wechat": (),
    "sns": (),
    "webex": ("room_id",),
}
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_BCRYPT_ALPHABET = "./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
_B64_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_BCRYPT_COST = 10


def receiver_errors(
    receivers: Any, route: Any, variable: str = "monitoring_server_alertmanager_receivers"
) -> list[str]:
    """What is wrong with the receivers and the route tree, each message naming the variable and the fix."""
    errors: list[str] = []
    if not isinstance(receivers, list) or not receivers:
        return [f"{variable}: must be a non-empty list of {{name, type, config}}"]
    names: list[str] = []
    for position, receiver in enumerate(receivers):
        where = f"{variable}[{position}]"
        if not isinstance(receiver, Mapping):
            errors.append(f"{where}: must be a mapping {{name, type, config}}")
            continue
        name = str(receiver.get("name", ""))
        kind = str(receiver.get("type", ""))
        config = receiver.get("config", {}) or {}
        if not _NAME.match(name):
            errors.append(f"{where}: name {name!r} must be letters, digits, '.', '_' or '-'")
        elif name in names:
            errors.append(f"{where}: receiver name {name!r} is used twice")
        names.append(name)
        if kind not in RECEIVER_TYPES:
            errors.append(
                f"{where} ({name}): unknown receiver type {kind!r}; use one of {', '.join(sorted(RECEIVER_TYPES))}"
            )
            continue
        if not isinstance(config, Mapping):
            errors.append(f"{where} ({name}): config must be a mapping of {kind}_configs settings")
            continue
        if kind == "null" and config:
            errors.append(f"{where} ({name}): a null receiver takes no config")
        missing = [key for key in RECEIVER_TYPES[kind] if not config.get(key)]
        if missing:
            errors.append(f"{where} ({name}): type {kind} needs {', '.join(missing)} in config")
    errors.extend(_route_errors(route, set(names), "monitoring_server_alertmanager_route", top=True))
    return errors


def _route_errors(route: Any, names: set[str], where: str, *, top: bool = False) -> list[str]:
    if not isinstance(route, Mapping):
        return [f"{where}: must be a mapping (receiver, group_by, routes, ...)"]
    errors = []
    receiver = route.get("receiver")
    if top and not receiver:
        errors.append(f"{where}: the top route needs a receiver (one of {', '.join(sorted(names))})")
    elif receiver is not None and receiver not in names:
        errors.append(
            f"{where}: receiver {receiver!r} is not defined in monitoring_server_alertmanager_receivers "
            f"(defined: {', '.join(sorted(names))})"
        )
    for position, child in enumerate(route.get("routes", []) or []):
        errors.extend(_route_errors(child, names, f"{where}.routes[{position}]"))
    return errors


def alertmanager_receivers(receivers: list[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Inventory receivers -> Alertmanager `receivers:` entries."""
    out = []
    for receiver in receivers:
        entry: dict[str, Any] = {"name": str(receiver["name"])}
        kind = str(receiver["type"])
        if kind != "null":
            entry[f"{kind}_configs"] = [dict(receiver.get("config") or {})]
        out.append(entry)
    return out


def _bcrypt_salt(password: str, seed: str) -> str:
    digest = hmac.new(password.encode(), f"khronika-web-config:{seed}".encode(), hashlib.sha256).digest()[:16]
    # bcrypt's base64 is the standard one with another alphabet; 16 bytes -> 22 characters.
    standard = base64.b64encode(digest).decode().rstrip("=")
    translated = standard.translate(str.maketrans(_B64_ALPHABET, _BCRYPT_ALPHABET))
    # The last character carries only 4 significant bits.
    return translated[:21] + _BCRYPT_ALPHABET[_BCRYPT_ALPHABET.index(translated[21]) & 0x30]


def bcrypt_hash(password: str, seed: str) -> str:
    """A bcrypt ($2b$) hash of `password` with a salt derived from (password, seed)."""
    salt = f"$2b${_BCRYPT_COST:02d}${_bcrypt_salt(password, seed)}"
    try:
        import bcrypt  # type: ignore[import-not-found,unused-ignore]

        return str(bcrypt.hashpw(password.encode(), salt.encode()).decode())
    except ImportError:
        pass
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            import crypt  # deprecated in 3.11-3.12, gone in 3.13: bcrypt above is the way there

        result = crypt.crypt(password, salt)
    except ImportError:
        result = None
    if not result or not result.startswith("$2b$"):
        raise RuntimeError(
            "bcrypt hashing needs the Python package bcrypt on the controller: pip install bcrypt"
        )
    return result


def web_config(users: Mapping[str, str], cert_file: str, key_file: str, seed: str) -> dict[str, Any]:
    """The exporter-toolkit web configuration: TLS with the host certificate and basic auth users."""
    return {
        "tls_server_config": {"cert_file": cert_file, "key_file": key_file, "min_version": "TLS12"},
        "basic_auth_users": {
            str(name): bcrypt_hash(str(pw), f"{seed}:{name}") for name, pw in sorted(users.items())
        },
    }


def scrape_configs(
    *,
    server: str,
    prometheus_port: int,
    alertmanager_port: int,
    https: Mapping[str, Any],
    node_hosts: Sequence[str] = (),
    node_exporter_port: int = 9100,
    module_targets: Sequence[Mapping[str, Any]] = (),
    gateway_hosts: Sequence[str] = (),
    gateway_metrics_port: int = 9113,
    gateway_metrics_path: str = "/metrics",
    gpu_hosts: Sequence[str] = (),
    dcgm_exporter_port: int = 9400,
    extra: Sequence[Mapping[str, Any]] = (),
) -> list[dict[str, Any]]:
    """Prometheus' `scrape_configs` for a site (role monitoring_server): Prometheus and Alertmanager
    themselves and every node_exporter over HTTPS with basic auth (`https`: scheme, basic_auth,
    tls_config); module endpoints as the inventory lists them (`{module, targets, metrics_path,
    scheme}`), the gateway's and dcgm-exporter's metrics over HTTP; then the site's extra jobs.
    Targets are `host:port` with inventory names; a job with no target is left out."""

    def https_job(name: str, targets: Sequence[str]) -> dict[str, Any]:
        return {**https, "job_name": name, "static_configs": [{"targets": list(targets)}]}

    jobs = [
        https_job("prometheus", [f"{server}:{prometheus_port}"]),
        https_job("alertmanager", [f"{server}:{alertmanager_port}"]),
    ]
    if node_hosts:
        jobs.append(https_job("node", [f"{host}:{node_exporter_port}" for host in sorted(set(node_hosts))]))
    if module_targets:
        statics = [
            {
                "targets": list(module["targets"]),
                "labels": {
                    "module": module["module"],
                    "__metrics_path__": module.get("metrics_path", "/metrics"),
                    "__scheme__": module.get("scheme", "http"),
                },
            }
            for module in module_targets
        ]
        jobs.append({"job_name": "khronika-modules", "static_configs": statics})
    if gateway_hosts:
        jobs.append(
            {
                "job_name": "khronika-gateway",
                "metrics_path": gateway_metrics_path,
                "static_configs": [
                    {"targets": [f"{host}:{gateway_metrics_port}" for host in sorted(gateway_hosts)]}
                ],
            }
        )
    if gpu_hosts:
        jobs.append(
            {
                "job_name": "dcgm",
                "static_configs": [
                    {"targets": [f"{host}:{dcgm_exporter_port}" for host in sorted(gpu_hosts)]}
                ],
            }
        )
    return jobs + [dict(job) for job in extra]
