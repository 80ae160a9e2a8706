"""Fleet benchmark: how site.yml scales over lab hosts, and what Ansible's speed settings buy.

On this machine's lab (`khronika lab`, hosts as systemd containers over real SSH), in one run:

  idempotent   a second site.yml on the small lab ÷ its first run (0 changed asked), for the lab's
               strategy (mitogen_linear) and for Ansible's own (linear, pipelining on). Goal <= 0.35.
  settings     the idempotent site.yml on the small lab again with one setting changed at a time,
               ÷ plain Ansible (linear, pipelining on, facts once per run from ansible.cfg's
               gathering = smart): pipelining off, a jsonfile fact cache across runs, strategy free,
               mitogen_linear, mitogen_free. (Measured before the large lab, so that a run cut short
               still has them.)
  fleet        the first site.yml on the large lab ÷ on the small lab, the lab's strategy, forks = hosts
               (capped at --max-forks). Goal <= 2.5 on 2 cores.

Each lab is built from nothing (`khronika lab down` first) without traffic, update or plan, and taken
down at the end. It prints every time and the ratios; --json writes them too. Takes long: the large
lab installs Docker, node_exporter and the platform on every host.

Run: .venv/bin/python benchmarks/fleet.py [--small 5] [--large 25] [--max-forks 25] [--json out.json]
     [--skip-large]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from khronika_ops.lab import INVENTORY_DIR, RUNS_DIR, STRATEGY  # noqa: E402
from khronika_ops.lab import inventory as lab_inventory  # noqa: E402
from khronika_ops.lab.up import Options, up  # noqa: E402
from khronika_ops.runner import RunSummary, run_playbook  # noqa: E402

KHRONIKA = str(REPO / ".venv" / "bin" / "khronika")


def cpu_times() -> list[int]:
    return [int(field) for field in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]


def steal_share(before: list[int], after: list[int]) -> float:
    """The share of CPU time the hypervisor took (the `st` of top) between two readings."""
    delta = [b - a for a, b in zip(before, after, strict=False)]
    return delta[7] / sum(delta) if len(delta) > 7 and sum(delta) else 0.0


def say(line: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {line}", flush=True)


def down() -> None:
    subprocess.run([KHRONIKA, "lab", "down"], cwd=REPO, check=True, capture_output=True)


LAB_STRATEGY = STRATEGY


def fresh_lab(hosts: int, forks: int, strategy: str | None = LAB_STRATEGY) -> RunSummary:
    """A lab of `hosts` from nothing; returns its first site.yml run."""
    down()
    run = up(
        Options(hosts=hosts, traffic_seconds=0, update=False, plan=False, forks=forks, strategy=strategy),
        say=lambda _l: None,
    )
    if not run.ok:
        raise SystemExit(f"lab of {hosts} hosts failed: {[s.detail for s in run.stages if not s.ok]}")
    return run.playbooks["site"]


def site(forks: int, label: str, strategy: str | None, env: dict[str, str] | None = None) -> RunSummary:
    before = cpu_times()
    summary = run_playbook(
        "site.yml",
        INVENTORY_DIR / "hosts.yml",
        vault_password_file=lab_inventory.vault_password_file(),
        forks=forks,
        strategy=strategy,
        artifacts_root=RUNS_DIR / "fleet",
        ident=label,
        envvars=env or {},
        say=lambda _l: None,
    )
    if not summary.succeeded:
        raise SystemExit(
            f"site.yml ({label}) failed: {summary.failures[:3]} (log {summary.artifacts / 'stdout'})"
        )
    say(
        f"{label:<44} {summary.seconds:7.1f}s  changed {summary.changed}"
        f"  (steal {steal_share(before, cpu_times()):.0%})"
    )
    return summary


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--small", type=int, default=5)
    parser.add_argument("--large", type=int, default=25)
    parser.add_argument("--max-forks", type=int, default=25)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--keep", action="store_true", help="leave the last lab up at the end")
    parser.add_argument("--skip-large", action="store_true", help="only the small lab's measurements")
    parser.add_argument("--repeats", type=int, default=3, help="rounds of the settings (median reported)")
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    results: dict[str, Any] = {"cores": cores, "small": args.small, "large": args.large}

    small_forks = min(args.small, args.max_forks)
    pairs: dict[str, tuple[float, float, int]] = {}
    for strategy in ("linear", LAB_STRATEGY):
        first = fresh_lab(args.small, small_forks, strategy)
        say(
            f"{'site.yml, first, ' + str(args.small) + ' hosts, ' + str(strategy):<44} {first.seconds:7.1f}s  changed {first.changed}"
        )
        second = site(small_forks, f"site.yml, second, {args.small} hosts, {strategy}", strategy)
        pairs[str(strategy)] = (first.seconds, second.seconds, second.changed)
    results["idempotent"] = {
        name: {"first_s": a, "second_s": b, "second_changed": c, "ratio": round(b / a, 3)}
        for name, (a, b, c) in pairs.items()
    }

    cache = str(RUNS_DIR / "fleet" / "facts")
    variants: dict[str, tuple[str, dict[str, str]]] = {
        "linear (plain Ansible)": ("linear", {}),
        "linear, pipelining off": ("linear", {"ANSIBLE_PIPELINING": "False"}),
        "linear, jsonfile fact cache": (
            "linear",
            {
                "ANSIBLE_CACHE_PLUGIN": "jsonfile",
                "ANSIBLE_CACHE_PLUGIN_CONNECTION": cache,
                "ANSIBLE_CACHE_PLUGIN_TIMEOUT": "3600",
            },
        ),
        "free": ("free", {}),
        "mitogen_linear": ("mitogen_linear", {}),
        "mitogen_free": ("mitogen_free", {}),
    }
    # Rounds, each in another order, and the median per setting: this machine's load and the hosts'
    # own timers drift over minutes, and a single pass in one order measures the drift as well.
    runs: dict[str, list[float]] = {name: [] for name in variants}
    names = list(variants)
    site(small_forks, "filling the fact cache", "linear", variants["linear, jsonfile fact cache"][1])
    for round_ in range(args.repeats):
        shift = round_ % len(names)
        for name in names[shift:] + names[:shift]:
            strategy, env = variants[name]
            runs[name].append(site(small_forks, f"{name}, {args.small} hosts", strategy, env).seconds)
    timings = {name: float(statistics.median(values)) for name, values in runs.items()}
    results["settings_s"] = timings
    results["settings_runs_s"] = runs
    base = timings["linear (plain Ansible)"]

    print()
    print(f"cores {cores}; forks {small_forks} (small)")
    for name, (a, b, c) in pairs.items():
        print(
            f"idempotent second / first ({args.small} hosts, {name}): {b:.1f} / {a:.1f} = {b / a:.3f} (goal <= 0.35; changed {c})"
        )
    for name, value in timings.items():
        print(
            f"  {name:<32} {value:7.1f}s  ratio to plain Ansible {value / base:.3f}"
            f"  (runs {', '.join(f'{v:.0f}' for v in runs[name])})"
        )
    results["ratios"] = {f"{name} / linear": round(value / base, 3) for name, value in timings.items()}

    if not args.skip_large:
        large_forks = min(args.large, args.max_forks)
        small_first = pairs[str(LAB_STRATEGY)][0]
        begun = time.monotonic()
        try:
            first_large = fresh_lab(args.large, large_forks)
        except SystemExit as exc:  # the time to the failure is still a lower bound
            took = time.monotonic() - begun
            print(f"the {args.large}-host lab failed after {took:.0f}s (hosts + registry + site.yml): {exc}")
            results["large_failed"] = {"seconds": took, "error": str(exc)}
        else:
            say(
                f"{'site.yml, first, ' + str(args.large) + ' hosts':<44} {first_large.seconds:7.1f}s"
                f"  changed {first_large.changed}"
            )
            fleet = first_large.seconds / small_first
            results["large_first_s"] = first_large.seconds
            results["ratios"]["large_over_small"] = round(fleet, 3)
            print(
                f"first site.yml {args.large} / {args.small} hosts ({LAB_STRATEGY}, forks {large_forks}): "
                f"{first_large.seconds:.1f} / {small_first:.1f} = {fleet:.3f} (goal <= 2.5)"
            )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    if not args.keep:
        down()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
