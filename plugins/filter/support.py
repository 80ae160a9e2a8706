"""Filters of khronika.platform for playbooks/support-bundle.yml: thin adapters over khronika_ops.support.

khronika_support_check(organisation, contact, category, description=, subject=, attachments=, hosts=, hosts_pattern=)
    -> [problem, ...]: what the support request lacks, each a sentence (empty when it can be written).
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


def khronika_support_check(  # noqa: PLR0917 - a filter's arguments are positional in Jinja
    organisation: Any,
    contact: Any,
    category: Any,
    description: Any = None,
    subject: Any = None,
    attachments: Any = (),
    hosts: Any = None,
    hosts_pattern: Any = "khronika",
) -> list[str]:
    return list(
        request.check_fields(
            plain(organisation),
            plain(contact),
            plain(category),
            description=plain(description),
            subject=plain(subject),
            attachments=plain(attachments) or [],
            hosts=plain(hosts),
            hosts_pattern=str(hosts_pattern),
        )
    )


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"khronika_support_check": khronika_support_check}
