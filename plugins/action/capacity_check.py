"""Action plugin khronika.platform.capacity_check: a thin wrapper around khronika_ops.planner.gate."""

from __future__ import annotations

from ansible.errors import AnsibleError
from ansible.plugins.action import ActionBase

try:
    from khronika_ops.planner import gate
    from khronika_ops.validation import readable
except ImportError:  # the controller lacks the package: say how to fix it when the task runs
    gate = None

DOCUMENTATION = r"""
---
module: capacity_check
short_description: Fail when hosts lack the disk, RAM, cores or GPUs a release needs
description:
  - Runs on the controller. Sums the per-module minimums of a release on each host it is placed on
    and compares them with the host's facts (C(ansible_processor_vcpus), C(ansible_memtotal_mb),
    C(ansible_mounts), and C(khronika_gpu_count)/C(khronika_gpu_model) or
    the nvidia role's local fact C(ansible_local.khronika_gpu) (count and models; a catalog name such as
    C(nvidia-h100-80gb) matches the driver's C(NVIDIA H100 80GB HBM3))).
  - Fails with a per-host table naming what is short. All logic lives in the C(khronika-ops) Python
    package (C(khronika_ops.planner.gate)); install it on the controller with C(pip install khronika-ops).
options:
  modules:
    description: Per-module minimums; keys C(name), C(cores), C(memory_mb), C(disk_mb), C(disk_path),
      C(gpus), C(gpu_model).
    type: list
    elements: dict
    required: true
  placement:
    description: Module name to the list of inventory hosts it runs on.
    type: dict
    required: true
  facts:
    description: Host name to facts (C(cores), C(memory_mb), C(disk_free_mb) per mount, C(gpus),
      C(gpu_model)). When omitted, facts come from C(hostvars) of the placed hosts, which must have
      gathered facts.
    type: dict
    required: false
  mounts:
    description: Host name to more free space per mount point (MB), merged over the facts; for mounts
      that Ansible's facts leave out, such as the overlay root of a container (C(df) of the paths).
    type: dict
    required: false
author: khronika-ops maintainers
"""

EXAMPLES = r"""
- name: Check capacity before the update window
  khronika.platform.capacity_check:
    modules:
      - {name: web, cores: 2, memory_mb: 4096, disk_mb: 20480, disk_path: /var/lib/docker}
      - {name: infer, cores: 4, memory_mb: 16384, gpus: 1, gpu_model: nvidia-l4}
    placement:
      web: "{{ groups['app'] }}"
      infer: ["gpu1"]
  run_once: true
  delegate_to: localhost
"""

RETURN = r"""
table:
  description: The per-host check as a text table.
  type: str
  returned: always
rows:
  description: One row per host and resource with needed, available and ok.
  type: list
  returned: always
"""


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(("modules", "placement", "facts", "mounts"))

    def run(self, tmp=None, task_vars=None):
        if gate is None:
            raise AnsibleError(
                "khronika.platform.capacity_check needs the khronika-ops Python package on the controller: "
                "pip install khronika-ops"
            )
        result = super().run(tmp, task_vars)
        task_vars = task_vars or {}
        args = self._task.args
        try:
            modules = [gate.ModuleMinimum(**item) for item in args["modules"]]
            placement = {name: list(hosts) for name, hosts in args["placement"].items()}
            placed_hosts = sorted({host for hosts in placement.values() for host in hosts})
            given = args.get("facts") or {}
            hostvars = task_vars.get("hostvars", {})
            hosts = [
                gate.HostFacts(name=name, **given[name])
                if name in given
                else gate.facts_from_ansible(name, hostvars.get(name, {}))
                for name in placed_hosts
            ]
            for host in hosts:
                host.disk_free_mb.update((args.get("mounts") or {}).get(host.name) or {})
            outcome = gate.check(hosts, modules, placement)
        except (KeyError, TypeError, ValueError) as exc:
            raise AnsibleError(f"capacity_check: invalid arguments: {readable(exc)}") from exc
        result.update(changed=False, table=outcome.table, rows=[row.model_dump() for row in outcome.rows])
        if not outcome.ok:
            result.update(failed=True, msg="capacity check failed: hosts are short\n" + outcome.table)
        else:
            result["msg"] = "capacity check passed\n" + outcome.table
        return result
