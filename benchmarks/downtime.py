"""Downtime benchmark: one module's measured downtime under our update, against the same container's
stop + start + healthy time alone, and against a naive "stop, pull, start" update.

On this machine's Docker engine (the test registry must run: scripts/test-registry.sh start, and the
sample images be pushed: scripts/build-sample-images.sh --push 127.0.0.1:5000). Three measurements
of module appeals-api 1.0.0 -> 1.1.0 on a published loopback port, each watched by the downtime probe
(khronika_ops.platform.probe, loopback only, bounded) at --rate requests per second:

  alone  the container's own floor: `docker stop` of 1.0.0, `docker run` of the already pulled 1.1.0,
         until /health answers (timed directly, and seen by the probe);
  ours   playbooks/update.yml on an inventory of this machine (connection local): pre-flight,
         pre-pull, recreate, health gate, report; the probe's outage is the downtime;
  naive  stop 1.0.0, pull 1.1.0 (removed first, so the pull is real), run it, wait for health.

It prints the three downtimes and two ratios from this one run: ours / alone (goal <= 1.2) and
naive / alone. Every container, network and image it made is removed at the end.

Run: .venv/bin/python benchmarks/downtime.py [--rate 20] [--registry 127.0.0.1:5000]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from khronika_ops.platform.probe import Prober  # noqa: E402

PORT = 28080
MODULE = "appeals-api"
NAME = "bench-downtime"
LABEL = "khronika.test=1"


def docker(*args: str, check: bool = True) -> str:
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=check, timeout=300).stdout


def wait_healthy(url: str, limit: float = 60.0) -> float:
    started = time.monotonic()
    while time.monotonic() - started < limit:
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return time.monotonic()
        except OSError:
            pass
        time.sleep(0.02)
    raise RuntimeError(f"{url} did not answer within {limit:.0f} s")


def remove_bench_containers() -> None:
    ids = docker("ps", "-aq", "--filter", f"label={LABEL}", "--filter", f"name={NAME}", check=False).split()
    ids += docker(
        "ps", "-aq", "--filter", "label=khronika.managed=true", "--filter", f"name={MODULE}-1", check=False
    ).split()
    if ids:
        docker("rm", "-f", *ids, check=False)


class Probe:
    """The update's probe on the loopback port, for the length of a `with` block."""

    def __init__(self, rate: float) -> None:
        self.prober = Prober(
            {MODULE: f"http://127.0.0.1:{PORT}/health"}, rate=rate, max_seconds=600, timeout=0.5
        )

    def __enter__(self) -> Probe:
        self.prober.start()
        time.sleep(0.5)
        return self

    def __exit__(self, *_: object) -> None:
        time.sleep(0.5)
        self.report = self.prober.stop()[MODULE]


def run_container(image: str, name: str) -> None:
    docker(
        "run",
        "-d",
        "--name",
        name,
        "--label",
        LABEL,
        "--stop-timeout",
        "10",
        "-p",
        f"127.0.0.1:{PORT}:8080",
        image,
    )


def measure_alone(old: str, new: str, rate: float) -> tuple[float, float]:
    remove_bench_containers()
    docker("pull", "-q", new)
    run_container(old, NAME)
    wait_healthy(f"http://127.0.0.1:{PORT}/health")
    with Probe(rate) as probe:
        began = time.monotonic()
        docker("stop", NAME)
        docker("rm", NAME)
        run_container(new, NAME)
        ended = wait_healthy(f"http://127.0.0.1:{PORT}/health")
    remove_bench_containers()
    return ended - began, probe.report.down_seconds


def measure_naive(old: str, new: str, rate: float) -> float:
    remove_bench_containers()
    run_container(old, NAME)
    wait_healthy(f"http://127.0.0.1:{PORT}/health")
    docker("rmi", new, check=False)
    with Probe(rate) as probe:
        docker("stop", NAME)
        docker("rm", NAME)
        docker("pull", "-q", new)
        run_container(new, NAME)
        wait_healthy(f"http://127.0.0.1:{PORT}/health")
    remove_bench_containers()
    return probe.report.down_seconds


def write_site(folder: Path, registry: str, releases: Path) -> Path:
    inventory = folder / "inventory"
    (inventory / "group_vars").mkdir(parents=True)
    (inventory / "hosts.yml").write_text(
        "all:\n  children:\n    khronika:\n      children:\n        khronika_platform:\n"
        "          hosts:\n            localhost:\n              ansible_connection: local\n"
        f"              ansible_python_interpreter: {sys.executable}\n              ansible_become: false\n",
        encoding="utf-8",
    )
    site = {
        "khronika_registry": registry,
        "khronika_releases_dir": str(releases),
        "khronika_release_version": "1.0.0",
        "khronika_update_probe": False,  # the benchmark runs its own probe on the loopback port
        "platform_record_dir": str(folder / "record"),
        "platform_backup_dir": str(folder / "backups"),
        "update_host_audit_log": str(folder / "audit.log"),
        "khronika_modules": [
            {
                "name": MODULE,
                "image": "khronika-samples/appeals-api",
                "placement": {"groups": ["khronika_platform"]},
                "ports": [{"container": 8080, "host": PORT, "bind": "127.0.0.1"}],
                "healthcheck": {
                    "http": "/health",
                    "interval": "1s",
                    "timeout": "2s",
                    "retries": 3,
                    "start_period": "1s",
                },
                "environment": {"APPEALS_DATA_DIR": "/tmp/appeals"},
            }
        ],
    }
    (inventory / "group_vars" / "all.yml").write_text(json.dumps(site), encoding="utf-8")
    return inventory


def playbook(name: str, inventory: Path, env: dict[str, str], *extra: str) -> None:
    done = subprocess.run(
        [
            str(Path(sys.executable).with_name("ansible-playbook")),
            str(REPO / "playbooks" / name),
            "-i",
            str(inventory),
            *extra,
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{name} failed:\n{done.stdout[-4000:]}\n{done.stderr[-2000:]}")


def measure_ours(folder: Path, registry: str, releases: Path, rate: float) -> float:
    remove_bench_containers()
    inventory = write_site(folder, registry, releases)
    env = {
        **os.environ,
        "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
        "ANSIBLE_FORCE_COLOR": "0",
        "ANSIBLE_ROLES_PATH": str(REPO / "roles"),
        "ANSIBLE_COLLECTIONS_PATH": str(REPO / ".ansible" / "collections"),
    }
    report_dir = folder / "reports"
    playbook("deploy.yml", inventory, env)
    wait_healthy(f"http://127.0.0.1:{PORT}/health")
    with Probe(rate) as probe:
        playbook(
            "update.yml",
            inventory,
            env,
            "-e",
            "khronika_release_version=1.1.0",
            "-e",
            f"khronika_update_report_dir={report_dir}",
        )
    remove_bench_containers()
    docker("network", "rm", "khronika", check=False)
    return probe.report.down_seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=20.0, help="probe requests per second (at most 50)")
    parser.add_argument("--registry", default="127.0.0.1:5000")
    args = parser.parse_args()
    state = REPO / ".cache" / "test-registry"
    os.environ.setdefault("DOCKER_CONFIG", str(state / "docker-config"))
    releases = REPO / ".cache" / "bench-releases"
    releases.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [
            str(REPO / "scripts" / "build-sample-images.sh"),
            "--push",
            args.registry,
            "--releases-dir",
            str(releases),
        ],
        check=True,
        capture_output=True,
        timeout=900,
    )
    manifests = {v: (releases / f"{v}.yml").read_text(encoding="utf-8") for v in ("1.0.0", "1.1.0")}
    old, new = (
        f"{args.registry}/khronika-samples/appeals-api@" + text.split("appeals-api@")[1].split()[0]
        for text in manifests.values()
    )
    folder = Path(tempfile.mkdtemp(prefix="khronika-downtime-"))
    try:
        alone_timed, alone_probed = measure_alone(old, new, args.rate)
        naive = measure_naive(old, new, args.rate)
        docker("rmi", new, check=False)  # ours pre-pulls it itself, before the downtime
        ours = measure_ours(folder, args.registry, releases, args.rate)
    finally:
        remove_bench_containers()
        shutil.rmtree(folder, ignore_errors=True)
    alone = max(alone_timed, alone_probed)
    print(f"module {MODULE} 1.0.0 -> 1.1.0, probe at {args.rate:g} requests/s on 127.0.0.1:{PORT}")
    print(
        f"alone (stop + start + healthy): {alone_timed:.2f} s timed, {alone_probed:.2f} s seen by the probe"
    )
    print(f"ours  (update.yml, pre-pulled, recreate): {ours:.2f} s down")
    print(f"naive (stop, pull, start): {naive:.2f} s down")
    print(f"ratio ours / alone: {ours / alone:.2f} (goal <= 1.2)")
    print(f"ratio naive / alone: {naive / alone:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
