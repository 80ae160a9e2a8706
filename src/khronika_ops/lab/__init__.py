"""The lab: a whole Khronika site on one machine, built with the same playbooks a site runs.

Hosts are systemd containers on a private Docker network, reached over real SSH (`hosts`); the
inventory in `inventories/lab/` has the shape of `inventories/example/` (`inventory`); `up` runs
the stages (site.yml, traffic, a planned update, the capacity plan) and `down` removes everything
the lab made. Every Docker object the lab makes carries the label `khronika.lab=1`.
"""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[3]
LAB_DIR = REPO_ROOT / "lab"
STATE_DIR = LAB_DIR / "state"
RUNS_DIR = LAB_DIR / "runs"
REPORTS_DIR = LAB_DIR / "reports"
INVENTORY_DIR = REPO_ROOT / "inventories" / "lab"

LABEL = "khronika.lab"
NETWORK = "khronika-lab"
HOST_IMAGE = "khronika/lab-host:bookworm"
BASE_IMAGE = "khronika/debian-systemd:bookworm"
REGISTRY_NAME = "registry.lab"
REGISTRY_PORT = 5050
#: The strategy the lab runs its playbooks with (khronika run --strategy; "linear" is plain Ansible).
STRATEGY = "mitogen_linear"
