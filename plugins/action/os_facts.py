"""Action plugin khronika.platform.os_facts: a thin adapter over khronika_ops.host_support."""

from __future__ import annotations

import base64

from ansible.errors import AnsibleError
from ansible.plugins.action import ActionBase

try:
    from khronika_ops import host_support
except ImportError:  # the controller lacks the package: say how to fix it when the task runs
    host_support = None

DOCUMENTATION = r"""
---
module: os_facts
short_description: Set the fact khronika_os, the host's OS profile read from /etc/os-release
description:
  - "Reads C(/etc/os-release) (else C(/usr/lib/os-release)) on the host and sets the fact C(khronika_os) from
    C(ID), C(ID_LIKE) and C(VERSION_ID), in one place for every role (C(khronika_ops.host_support)) - the
    C(profile) (C(debian-12), C(astra-1.7), ...), C(family), C(os_family) (the roles' vars file), C(supported),
    C(tested) and a C(message)."
  - "On Astra Linux it also reads whether the closed software environment (ZPS, signature checking of ELF
    files) and mandatory integrity control are on, into C(khronika_os.astra), with what that means for the
    platform. It only reads; nothing on the host changes."
options: {}
author: khronika-ops maintainers
"""

EXAMPLES = r"""
- name: Read the host's OS profile
  khronika.platform.os_facts:
  when: khronika_os is not defined
"""

RETURN = r"""
ansible_facts:
  description: C(khronika_os), the profile (see description).
  type: dict
  returned: always
"""

_OS_RELEASE = ("/etc/os-release", "/usr/lib/os-release")


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset()

    def _read(self, path: str, task_vars: dict) -> str | None:
        """The file's text, or None when it cannot be read (absent); bounded by the parser's limit."""
        done = self._execute_module("ansible.builtin.slurp", module_args={"src": path}, task_vars=task_vars)
        if done.get("failed"):
            return None
        content = str(done.get("content", ""))
        if len(content) > 4 * host_support.OS_RELEASE_MAX_BYTES:
            raise AnsibleError(f"{path} is larger than {host_support.OS_RELEASE_MAX_BYTES} bytes: not read")
        return base64.b64decode(content).decode("utf-8", "replace")

    def run(self, tmp=None, task_vars=None):
        if host_support is None:
            raise AnsibleError(
                "khronika.platform.os_facts needs the khronika-ops Python package on the controller: "
                "pip install khronika-ops"
            )
        result = super().run(tmp, task_vars)
        task_vars = task_vars or {}
        text = None
        for path in _OS_RELEASE:
            text = self._read(path, task_vars)
            if text is not None:
                break
        try:
            if text is None:  # no os-release at all: what Ansible's own facts say
                profile = host_support.profile_from_facts(task_vars.get("ansible_facts", {})).as_dict()
            else:
                profile = host_support.profile_from_os_release(host_support.parse_os_release(text)).as_dict()
        except host_support.OsReleaseError as exc:
            result.update(failed=True, msg=f"{task_vars.get('inventory_hostname')}: {exc}")
            return result
        if profile["id"] == "astra":
            files = {path: self._read(path, task_vars) for path in host_support.ASTRA_PROTECTION_FILES}
            profile["astra"] = host_support.astra_protection(files)
        result.update(changed=False, ansible_facts={"khronika_os": profile})
        return result
