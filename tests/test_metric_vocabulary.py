"""One metric vocabulary: the collector, the planner and the Prometheus rules read the same lists."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from conftest import REPO, require_service, run_playbook
from khronika_ops import metrics

ROLE = REPO / "roles" / "monitoring_server"


def test_exclusions_agree() -> None:
    assert (
        metrics.is_virtual_disk("zram0")
        and metrics.is_virtual_disk("dm-3")
        and not metrics.is_virtual_disk("nvme0n1")
    )
    assert metrics.is_virtual_interface("veth12ab") and not metrics.is_virtual_interface("eth0")
    assert not metrics.is_disk_filesystem("tmpfs") and metrics.is_disk_filesystem("xfs")
    matchers = metrics.prometheus_matchers()
    assert set(matchers["disk_fstype_exclude"].split("|")) == metrics.NON_DISK_FILESYSTEMS
    assert set(matchers["pseudo_fstype_exclude"].split("|")) == metrics.PSEUDO_FILESYSTEMS
    assert re.fullmatch(matchers["virtual_disk_exclude"], "loop7")


def test_every_metric_has_labels_and_is_documented() -> None:
    documented = (REPO / "docs" / "metrics.md").read_text(encoding="utf-8")
    for name, info in metrics.KNOWN_METRICS.items():
        assert info.scope in metrics.SCOPE_LABELS, name
        if name.startswith("khronika_"):
            assert f"`{name}`" in documented or name in documented, f"{name} missing from docs/metrics.md"


def _render_rules(tmp_path: Path) -> dict[str, str]:
    playbook = tmp_path / "render.yml"
    out = tmp_path / "rules"
    out.mkdir()
    tasks = [
        {
            "name": f"Render {name}",
            "ansible.builtin.template": {
                "src": str(ROLE / "templates" / f"{name}.yml.j2"),
                "dest": str(out / f"{name}.yml"),
                "mode": "0644",
                "variable_start_string": "[[",
                "variable_end_string": "]]",
                "block_start_string": "[%",
                "block_end_string": "%]",
            },
        }
        for name in ("recording", "alerts")
    ]
    play = {
        "hosts": "localhost",
        "connection": "local",
        "gather_facts": False,
        "vars_files": [str(ROLE / "defaults" / "main.yml"), str(ROLE / "vars" / "main.yml")],
        "tasks": tasks,
    }
    playbook.write_text(yaml.safe_dump([play], sort_keys=False), encoding="utf-8")
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(
        "all:\n  hosts:\n    localhost:\n      ansible_python_interpreter: " + sys.executable + "\n"
    )
    run = run_playbook(playbook, inventory)
    assert run.rc == 0, run.output
    return {name: (out / f"{name}.yml").read_text(encoding="utf-8") for name in ("recording", "alerts")}


def test_rule_templates_read_the_vocabulary(tmp_path: Path) -> None:
    """The rendered rules exclude exactly the vocabulary's filesystems, and promtool accepts them."""
    rules = _render_rules(tmp_path)
    matchers = metrics.prometheus_matchers()
    fstype_matchers = set(re.findall(r'fstype!~"([^"]*)"', rules["alerts"] + rules["recording"]))
    assert fstype_matchers == {matchers["disk_fstype_exclude"], matchers["pseudo_fstype_exclude"]}
    assert f'fstype!~"{matchers["disk_fstype_exclude"]}"' in rules["recording"]
    promtool = shutil.which("promtool")
    require_service(promtool is not None, "promtool (apt-get install prometheus)")
    assert promtool is not None
    for name in rules:
        check = subprocess.run(
            [promtool, "check", "rules", str(tmp_path / "rules" / f"{name}.yml")],
            capture_output=True,
            text=True,
            check=False,
        )
        assert check.returncode == 0, check.stdout + check.stderr
