"""Filter of khronika.platform for playbooks/plan.yml: a thin adapter over khronika_ops.planner.site.

khronika_capacity_site(hostvars, groups, khronika_modules=None, hosts_group=None)
    -> the planner catalog fragment for the site as it is (hosts from gathered facts, modules resolved
       from the module catalog), to be written as YAML and passed to `khronika plan --catalog`.
       The hosts are those that run modules (khronika_platform, khronika_gpu) unless a group is named.
"""

from __future__ import annotations

from collections.abc import Mapping
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
facts = lazy("khronika_ops.facts")
site = lazy("khronika_ops.planner.site")
validation = lazy("khronika_ops.validation")


def khronika_capacity_site(
    hostvars: Any, groups: Any, modules: Any = None, hosts_group: str | None = None
) -> dict[str, Any]:
    if not isinstance(groups, Mapping):
        raise AnsibleFilterError("khronika_capacity_site: the second argument must be `groups`")
    members = (
        [str(host) for host in groups.get(hosts_group, [])]
        if hosts_group
        else site.module_hosts(plain(groups))
    )
    # Only the variables the planner reads, so that nothing else (vault secrets included) is resolved.
    wanted = {host: plain(facts.wanted_variables(hostvars[host])) for host in members}
    try:
        return site.site_catalog_from_ansible(wanted, plain(groups), plain(modules) or None, hosts_group)
    except validation.ProblemsError as exc:
        raise AnsibleFilterError(f"khronika_capacity_site: {exc}") from exc


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"khronika_capacity_site": khronika_capacity_site}
