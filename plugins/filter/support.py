"""Filters of khronika.platform for playbooks/support-bundle.yml: thin adapters over khronika_ops.support.

khronika_support_check(organisation, contact, category)
    -> [problem, ...]: what the support request draft lacks (empty when it can be written).
"""

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

request = lazy("khronika_ops.support.request")


def khronika_support_check(organisation: Any, contact: Any, category: Any) -> list[str]:
    return list(request.check_fields(plain(organisation), plain(contact), plain(category)))


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"khronika_support_check": khronika_support_check}
