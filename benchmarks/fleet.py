"""Fleet benchmark: how site.yml scales over lab hosts, and what Ansible's speed settings buy.

On this machine's lab (`khronika lab`, hosts as systemd containers over real SSH), in one run:

  idempotent   a second site.yml on the small lab ÷ its first run (0 changed asked). Goal <= 0.35.
  fleet        the first site.yml on the large lab ÷ on the small lab, forks = hosts (capped at
               --max-forks). Goal <= 2.5 on 2 cores.
  settings     the idempotent site.yml on the small lab again with one setting changed at a time,
               ÷ the default (pipelining on, no fact cache, strategy linear): pipelining off,
               a jsonfile fact cache (gathering smart, second run of the pair measured), strategy free.
               (Measured before the large lab, so that a run cut short still has them.)

Each lab is built from nothing (`khronika lab down` first) without traffic, update or plan, and taken
down at the end. It prints every time and the ratios; --json writes them too. Takes long: the large
lab installs Docker, node_exporter and the platform on every host.

Run: .venv/bin/python benchmarks/fleet.py [--small 5] [--large 25] [--max-forks 25] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from khronika_ops.lab import INVENTORY_DIR, RUNS_DIR  # noqa: E402
from khronika_ops.lab import inventory as lab_inventory  # noqa: E402
from khronika_ops.lab.up import Options, up  # noqa: E402
from khronika_ops.runner import RunSummary, run_playbook  # noqa: E402

KHRONIKA = str(REPO / ".venv" / "bin" / "khronika")


def say(line: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {line}", flush=True)


def down() -> None:
    subprocess.run([KHRONIKA, "lab", "down"], cwd=REPO, check=True, capture_output=True)


def fresh_lab(hosts: int, forks: int) -> RunSummary:
    """A lab of `hosts` from nothing; returns its first site.yml run."""
    down()
    run = up(
        Options(hosts=hosts, traffic_seconds=0, update=False, plan=False, forks=forks), say=lambda _l: None
    )
    if not run.ok:
        raise SystemExit(f"lab of {hosts} hosts failed: {[s.detail for s in run.stages if not s.ok]}")
    return run.playbooks["site"]


def site(forks: int, label: str, env: dict[str, str] | None = None) -> RunSummary:
    summary = run_playbook(
        "site.yml",
        INVENTORY_DIR / "hosts.yml",
        vault_password_file=lab_inventory.vault_password_file(),
        forks=forks,
        artifacts_root=RUNS_DIR / "fleet",
        ident=label,
        envvars=env or {},
        say=lambda _l: None,
    )
    if not summary.succeeded:
        raise SystemExit(
            f"site.yml ({label}) failed: {summary.failures[:3]} (log {summary.artifacts / 'stdout'})"
        )
    say(f"{label:<34} {summary.seconds:7.1f}s  changed {summary.changed}")
    return summary


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--small", type=int, default=5)
    parser.add_argument("--large", type=int, default=25)
    parser.add_argument("--max-forks", type=int, default=25)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--keep", action="store_true", help="leave the large lab up at the end")
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    results: dict[str, Any] = {"cores": cores, "small": args.small, "large": args.large}

    small_forks = min(args.small, args.max_forks)
    first_small = fresh_lab(args.small, small_forks)
    say(
        f"{'site.yml, first, ' + str(args.small) + ' hosts':<34} {first_small.seconds:7.1f}s  changed {first_small.changed}"
    )
    second_small = site(small_forks, f"site.yml, second, {args.small} hosts")
    results["small_first_s"], results["small_second_s"] = first_small.seconds, second_small.seconds
    results["second_changed"] = second_small.changed

    cache = str(RUNS_DIR / "fleet" / "facts")
    variants = {
        "default (pipelining, linear)": {},
        "pipelining off": {"ANSIBLE_PIPELINING": "False"},
        "strategy free": {"ANSIBLE_STRATEGY": "free"},
        "fact cache (jsonfile, smart)": {
            "ANSIBLE_GATHERING": "smart",
            "ANSIBLE_CACHE_PLUGIN": "jsonfile",
            "ANSIBLE_CACHE_PLUGIN_CONNECTION": cache,
            "ANSIBLE_CACHE_PLUGIN_TIMEOUT": "3600",
        },
    }
    timings: dict[str, float] = {}
    for name, env in variants.items():
        if "fact cache" in name:
            site(small_forks, f"{name}, filling the cache", env)  # the pair's first run fills it
        timings[name] = site(small_forks, f"{name}, {args.small} hosts", env).seconds
    results["settings_s"] = timings

    large_forks = min(args.large, args.max_forks)
    first_large = fresh_lab(args.large, large_forks)
    say(
        f"{'site.yml, first, ' + str(args.large) + ' hosts':<34} {first_large.seconds:7.1f}s  changed {first_large.changed}"
    )
    results["large_first_s"] = first_large.seconds

    idempotent = second_small.seconds / first_small.seconds
    fleet = first_large.seconds / first_small.seconds
    results["ratios"] = {
        "idempotent_second_over_first": round(idempotent, 3),
        "large_over_small": round(fleet, 3),
        **{
            f"{name} / default": round(value / timings["default (pipelining, linear)"], 3)
            for name, value in timings.items()
        },
    }
    print()
    print(f"cores {cores}; forks {small_forks} (small), {large_forks} (large)")
    print(
        f"idempotent second / first ({args.small} hosts): {idempotent:.3f} (goal <= 0.35; changed {second_small.changed})"
    )
    print(f"first site.yml {args.large} / {args.small} hosts: {fleet:.3f} (goal <= 2.5)")
    for name, value in timings.items():
        print(
            f"  {name:<32} {value:7.1f}s  ratio to default {value / timings['default (pipelining, linear)']:.3f}"
        )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    if not args.keep:
        down()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
