"""The site as the release channel sees it, read from the inventory through Ansible itself.

The channel's policy, the site state, the release and the hosts are inventory variables (templated,
vault values decrypted as every playbook sees them). They are read with one ad-hoc `debug` on the
platform hosts: debug is an action that runs on the controller, so nothing connects to a host.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from khronika_ops.platform import site_state
from khronika_ops.platform.channel import POLICY_VARIABLE, ChannelError, ChannelPolicy, parse_policy
from khronika_ops.platform.status import StatusError, adhoc_document, check_inventory, host_results
from khronika_ops.validation import Problem

PLATFORM_PATTERN = "khronika_platform:khronika_gpu"
# Our own template, not a person's text: the variables the channel needs, defaults where a site has none.
_SITE_VARIABLES = (
    "{{ {"
    f"'channel': {POLICY_VARIABLE} | default(None), "
    "'registry': khronika_registry | default(None), "
    "'state': khronika_site_state | default(None), "
    "'release': khronika_release_version | default(None), "
    "'alertmanager': khronika_update_alertmanager_url | default(None), "
    "'alertmanager_user': khronika_update_alertmanager_user | default(''), "
    "'alertmanager_password': khronika_update_alertmanager_password | default(''), "
    "'alertmanager_ca': khronika_update_alertmanager_ca | default(''), "
    "'releases_dir': khronika_releases_dir | default(None), "
    "'modules': khronika_modules | default([]), "
    "'site': khronika_site_name | default(inventory_dir | basename), "
    "'groups': groups"
    "} | to_json }}"
)


@dataclass(frozen=True)
class Site:
    inventory: str
    policy: ChannelPolicy
    release: str | None  # what the site should run: the site state's release, else the inventory's
    hosts: list[str]  # platform and GPU hosts, inventory order
    groups: dict[str, list[str]]
    alertmanager: dict[str, str] = field(default_factory=dict)  # url, user, password, ca
    releases_dir: str | None = None
    modules: list[dict[str, Any]] = field(default_factory=list)
    name: str = "site"


def read_site(inventory: str, vault_password_file: Path | None = None, timeout: int = 120) -> Site:
    check_inventory(inventory)
    # Every host of the pattern answers (debug is local and quick); the first one's values are taken.
    document, _warnings = adhoc_document(
        inventory,
        PLATFORM_PATTERN,
        ["-m", "ansible.builtin.debug", "-a", f"msg={_SITE_VARIABLES}"],
        timeout,
        vault_password_file,
    )
    results = [result for _host, result in host_results(document)]
    if not results:
        raise StatusError(f"{inventory} has no host in {PLATFORM_PATTERN}")
    result = results[0]
    if result.get("failed"):
        raise StatusError(f"ansible could not template the channel's variables: {result.get('msg', '')}")
    import json

    values: dict[str, Any] = (
        json.loads(result["msg"]) if isinstance(result.get("msg"), str) else result["msg"]
    )
    raw = values.get("channel")
    if raw is None:
        raise ChannelError(
            [
                Problem(
                    None,
                    "",
                    f"the inventory sets no {POLICY_VARIABLE} (docs/updates.md, 'The release channel')",
                )
            ],
            inventory,
        )
    if isinstance(raw, dict) and raw.get("source") == "registry" and not raw.get("registry"):
        raw = {**raw, "registry": values.get("registry")}
    policy = parse_policy(raw, f"{inventory}: {POLICY_VARIABLE}")
    state = site_state.parse(values.get("state"))
    groups = {
        str(name): [str(host) for host in members] for name, members in (values.get("groups") or {}).items()
    }
    hosts: list[str] = []
    for group in ("khronika_platform", "khronika_gpu"):
        hosts += [host for host in groups.get(group, []) if host not in hosts]
    release = site_state.release(values.get("release"), state) or None
    alertmanager = {
        key: str(values.get(f"alertmanager{suffix}") or "")
        for key, suffix in (("url", ""), ("user", "_user"), ("password", "_password"), ("ca", "_ca"))
    }
    if policy.alertmanager is not None:
        access = policy.alertmanager
        alertmanager = {
            "url": access.url,
            "user": access.user,
            "password": access.password,
            "ca": access.ca_file or "",
        }
    modules = [dict(module) for module in values.get("modules") or [] if isinstance(module, dict)]
    return Site(
        inventory,
        policy,
        release,
        hosts,
        groups,
        alertmanager=alertmanager,
        releases_dir=values.get("releases_dir") or None,
        modules=modules,
        name=str(values.get("site") or "site"),
    )
