"""Action plugin khronika.platform.support_bundle: a thin wrapper around khronika_ops.support.bundle."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ansible.errors import AnsibleActionFail
from ansible.module_utils.parsing.convert_bool import boolean
from ansible.plugins.action import ActionBase

try:
    from khronika_ops.support.bundle import BundleError, HostResult, write_bundle
    from khronika_ops.support.redact import secret_leaves
    from khronika_ops.validation import readable
except ImportError:  # the controller lacks the package: say how to fix it when the task runs
    write_bundle = None

DOCUMENTATION = r"""
---
module: support_bundle
short_description: Write a redacted support bundle with a request draft from what the hosts gave
description:
  - Runs on the controller (playbooks/support-bundle.yml). Reads each host's collection
    (O(collected)/hosts/<host>.tar.gz), redacts it and writes one timestamped tar.gz into O(dest) with
    summary.md, request.json and request.schema.json. The logic is C(khronika_ops.support) (docs/support.md).
  - The secrets kept out of the bundle are the string values, on every host of the inventory, of the
    variables whose name says secret (C(vault_*), C(*password*), C(*passwd*), C(*token*), C(*secret*),
    C(*_key), C(*private*), C(*credential*)), including such keys inside lists and mappings (a registry
    login's password), plus O(extra_secrets). The finished archive is scanned for every one of them; a
    leak removes it and fails the task.
options:
  collected: {description: Folder holding hosts/<host>.tar.gz., type: path, required: true}
  hosts: {description: "Host -> {reachable, error}.", type: dict, required: true}
  dest: {description: Folder for the bundle., type: path, required: true}
  organisation: {description: "{name, address, contact_person}.", type: dict, required: true}
  contact: {description: "{phone, email}.", type: dict, required: true}
  category: {description: incident, problem, service-request or development-request., type: str, required: true}
  description: {description: What happened., type: str, required: true}
  subject: {description: "The request's subject (one line); default: the description's first line.", type: str, default: ""}
  attachments:
    description: Files on the controller to attach (screenshots, text); checked and capped like the CLI's --attach.
    type: list
    elements: path
    default: []
  pseudonymize: {description: Stand-ins for host names and IPv4 addresses., type: bool, default: false}
  alerts: {description: "{source, alerts} read from Alertmanager, or {error}.", type: dict}
  reports_dir: {description: The update reports folder., type: path}
  extra_secrets: {description: More values to keep out., type: list, elements: str, default: []}
author: khronika-ops maintainers
"""

_OPTIONS = {
    "collected",
    "hosts",
    "dest",
    "organisation",
    "contact",
    "category",
    "description",
    "subject",
    "attachments",
    "pseudonymize",
    "alerts",
    "reports_dir",
    "extra_secrets",
}


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False

    def _secrets(self, task_vars: dict[str, Any]) -> set[str]:
        """Every host's raw variables (HostVars.raw_get: nothing rendered), walked for secret leaves,
        each leaf rendered on its own with that host's variables: a lookup elsewhere in the inventory
        (a CA file read with `lookup('file', ...)`) is never evaluated, so it cannot fail the bundle."""
        found: set[str] = set()
        hostvars = task_vars.get("hostvars") or {}
        for host in list(hostvars):
            try:
                variables = hostvars.raw_get(host) if hasattr(hostvars, "raw_get") else dict(hostvars[host])
            except Exception:  # a host whose variables cannot be read holds nothing we could hide
                continue
            if not isinstance(variables, dict):
                continue
            try:
                templar = self._templar.copy_with_new_env(available_variables=variables)
            except Exception:  # older templars: the task's own
                templar = self._templar
            for leaf in secret_leaves(variables):
                try:
                    value = templar.template(leaf)
                    if isinstance(value, str):
                        found.add(str(value))
                except Exception:  # a value that does not render holds nothing to hide
                    continue
        return found

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        result = super().run(tmp, task_vars)
        if write_bundle is None:
            raise AnsibleActionFail(
                "support_bundle needs the Python package khronika-ops on the controller: pip install khronika-ops"
            )
        args = self._task.args
        unknown = set(args) - _OPTIONS
        if unknown:
            raise AnsibleActionFail(f"support_bundle: unknown options {', '.join(sorted(unknown))}")
        secrets = self._secrets(task_vars or {}) | {str(s) for s in args.get("extra_secrets") or []}
        hosts = {
            str(host): HostResult(bool(state.get("reachable")), str(state.get("error") or ""))
            for host, state in (args.get("hosts") or {}).items()
        }
        try:
            written = write_bundle(
                collected=Path(str(args["collected"])),
                hosts=hosts,
                dest=Path(str(args["dest"])).expanduser(),
                organisation=args.get("organisation") or {},
                contact=args.get("contact") or {},
                category=str(args.get("category") or ""),
                description=str(args.get("description") or ""),
                subject=str(args.get("subject") or ""),
                attachments=[Path(str(item)) for item in args.get("attachments") or []],
                secrets=sorted(secrets),
                pseudonymize=boolean(args.get("pseudonymize", False), strict=True),
                alerts=args.get("alerts"),
                reports_dir=Path(str(args["reports_dir"])).expanduser() if args.get("reports_dir") else None,
            )
        except (BundleError, ValueError, KeyError) as exc:
            raise AnsibleActionFail(f"support bundle: {readable(exc)}") from exc
        except OSError as exc:
            raise AnsibleActionFail(
                f"support bundle: cannot write {exc.filename or 'it'}: {exc.strerror}"
            ) from exc
        result.update(
            changed=True,
            path=str(written.path),
            bytes=written.bytes,
            members=written.members,
            redactions=written.redactions,
            unreachable_hosts=written.unreachable,  # not `unreachable`: Ansible reads that key as the task's own
            secrets_known=len(secrets),
        )
        return result
