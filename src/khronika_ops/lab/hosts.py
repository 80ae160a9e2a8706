"""The lab's hosts: systemd containers on a private Docker network, each with sshd, the `deploy`
user and its own host key, reached from this machine over real SSH.

Everything here goes through the `docker` command line (the one every operator can rerun by hand),
and every object it makes carries the label `khronika.lab=1` so that `down` removes exactly those.
A host that exists is reused (started if stopped), so a second `lab up` changes nothing here.
"""

from __future__ import annotations

import hashlib
import io
import ipaddress
import json
import shlex
import subprocess
import tarfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from khronika_ops.lab import BASE_IMAGE, HOST_IMAGE, LABEL, NETWORK, STATE_DIR

SSH_USER = "deploy"
MONITORING_HOST = "lab-mon1"
#: Capabilities a systemd host running Docker needs here (no --privileged: see docs/testing.md).
_CAPABILITIES = ("SYS_ADMIN", "NET_ADMIN", "SYS_PTRACE")


class LabError(RuntimeError):
    """Something the lab needs is missing or refused; the message says what to do."""


@dataclass(frozen=True)
class LabHost:
    name: str
    address: str
    groups: tuple[str, ...]

    @property
    def container(self) -> str:
        return f"khronika-{self.name}"

    @property
    def volume(self) -> str:
        return f"khronika-{self.name}-docker"


def host_names(count: int) -> list[str]:
    """`lab-mon1` (monitoring + gateway) and `count - 1` platform nodes `lab-app1`...; at least 2 hosts."""
    if count < 2:
        raise LabError(
            f"the lab needs at least 2 hosts (monitoring + gateway, one platform node), not {count}"
        )
    return [MONITORING_HOST] + [f"lab-app{index}" for index in range(1, count)]


def groups_of(name: str) -> tuple[str, ...]:
    if name == MONITORING_HOST:
        return ("khronika_monitoring", "khronika_gateway")
    return ("khronika_platform",)


def docker(*args: str, check: bool = True, stdin: bytes | None = None) -> str:
    try:
        done = subprocess.run(["docker", *args], input=stdin, capture_output=True, check=False)
    except FileNotFoundError:
        raise LabError("docker is not installed: run scripts/setup.sh first") from None
    if check and done.returncode != 0:
        error = done.stderr.decode(errors="replace").strip() or done.stdout.decode(errors="replace").strip()
        raise LabError(f"docker {' '.join(args[:2])}: {error}")
    return done.stdout.decode(errors="replace").strip()


def _recipe() -> tuple[Path, str]:
    folder = Path(str(resources.files("khronika_ops") / "data" / "lab"))
    digest = hashlib.sha256()
    for name in ("Dockerfile", "sshd.conf"):
        digest.update((folder / name).read_bytes())
    return folder, digest.hexdigest()[:16]


def ensure_image(say: Callable[[str], None]) -> str:
    """The lab host image, rebuilt only when its recipe changed. Returns what was done."""
    folder, recipe = _recipe()
    current = docker(
        "image",
        "inspect",
        "--format",
        '{{index .Config.Labels "khronika.lab.recipe"}}',
        HOST_IMAGE,
        check=False,
    )
    if current == recipe:
        return f"{HOST_IMAGE}: present"
    if not docker("image", "inspect", "--format", "{{.Id}}", BASE_IMAGE, check=False):
        raise LabError(f"base image {BASE_IMAGE} is missing: run scripts/setup.sh (it builds it)")
    say(f"  building {HOST_IMAGE} (sshd, user {SSH_USER}) from {BASE_IMAGE}")
    docker(
        "build",
        "--quiet",
        "--pull=false",
        "--build-arg",
        f"BASE_IMAGE={BASE_IMAGE}",
        "--label",
        f"khronika.lab.recipe={recipe}",
        "--tag",
        HOST_IMAGE,
        str(folder),
    )
    return f"{HOST_IMAGE}: built"


#: Where the lab's /24 is chosen: clear of Docker's default pools (172.17-31, 192.168) and of the
#: nested engines' 10.200.9.0/24 and 10.201.0.0/16 (the inventory's docker settings).
_CANDIDATE_SUPERNET = ipaddress.ip_network("10.210.0.0/16")


def _taken_networks() -> list[ipaddress.IPv4Network]:
    taken = []
    routes = subprocess.run(["ip", "-4", "route", "show"], capture_output=True, text=True, check=False).stdout
    for line in routes.splitlines():
        first = line.split()[0] if line.split() else ""
        if "/" in first:
            taken.append(ipaddress.IPv4Network(first, strict=False))
    for network_id in docker("network", "ls", "-q").split():
        for value in docker(
            "network", "inspect", "--format", "{{range .IPAM.Config}}{{.Subnet}} {{end}}", network_id
        ).split():
            parsed = ipaddress.ip_network(value, strict=False)
            if isinstance(parsed, ipaddress.IPv4Network):
                taken.append(parsed)
    return taken


def ensure_network() -> ipaddress.IPv4Network:
    """The lab's network, with a subnet of its own (fixed host addresses need one), made once."""
    if not docker("network", "inspect", "--format", "{{.Name}}", NETWORK, check=False):
        taken = _taken_networks()
        free = next(
            (n for n in _CANDIDATE_SUPERNET.subnets(new_prefix=24) if not any(n.overlaps(t) for t in taken)),
            None,
        )
        if free is None:
            raise LabError(f"no free /24 for the lab network in {_CANDIDATE_SUPERNET}")
        docker("network", "create", "--label", f"{LABEL}=1", "--subnet", str(free), NETWORK)
    subnet = docker("network", "inspect", "--format", "{{range .IPAM.Config}}{{.Subnet}} {{end}}", NETWORK)
    for value in subnet.split():
        network = ipaddress.ip_network(value, strict=False)
        if isinstance(network, ipaddress.IPv4Network):
            return network
    raise LabError(f"network {NETWORK} has no IPv4 subnet ({subnet!r})")


def gateway_address(network: ipaddress.IPv4Network) -> str:
    """This machine's address on the lab network (Docker gives the bridge the first address)."""
    configured = docker(
        "network", "inspect", "--format", "{{range .IPAM.Config}}{{.Gateway}} {{end}}", NETWORK
    )
    for value in configured.split():
        return value
    return str(network.network_address + 1)


def plan_hosts(count: int, network: ipaddress.IPv4Network) -> list[LabHost]:
    """Fixed addresses (.11, .12, ...) so that a host keeps its address across restarts."""
    if network.num_addresses < 16 + count:
        raise LabError(f"network {NETWORK} ({network}) is too small for {count} hosts")
    return [
        LabHost(name, str(network.network_address + 11 + index), groups_of(name))
        for index, name in enumerate(host_names(count))
    ]


def ensure_keys(hosts: Sequence[LabHost]) -> Path:
    """The lab's SSH key and one host key per host, made here (owner-only); returns the ssh folder."""
    folder = STATE_DIR / "ssh"
    (folder / "hosts").mkdir(parents=True, exist_ok=True)
    folder.chmod(0o700)
    _keygen(folder / "id_ed25519", "khronika-lab controller")
    for host in hosts:
        _keygen(folder / "hosts" / f"{host.name}_ed25519", f"khronika-lab {host.name}")
    return folder


def _keygen(path: Path, comment: str) -> None:
    if path.is_file() and path.with_suffix(".pub").is_file():
        return
    path.unlink(missing_ok=True)
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
        check=True,
        capture_output=True,
    )


def write_known_hosts(hosts: Sequence[LabHost], ssh_dir: Path) -> Path:
    """Each host's name and address pinned to the key the lab made for it."""
    lines = []
    for host in hosts:
        kind, key = (ssh_dir / "hosts" / f"{host.name}_ed25519.pub").read_text().split()[:2]
        lines.append(f"{host.name},{host.address} {kind} {key}")
    path = ssh_dir / "known_hosts"
    path.write_text("\n".join(lines) + "\n")
    return path


def _seed_archive(host: LabHost, ssh_dir: Path) -> bytes:
    """A tar of the files a host needs before its first boot: its host key and the lab's public key."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        files = [
            ("etc/ssh/ssh_host_ed25519_key", ssh_dir / "hosts" / f"{host.name}_ed25519", 0o600),
            ("etc/ssh/ssh_host_ed25519_key.pub", ssh_dir / "hosts" / f"{host.name}_ed25519.pub", 0o644),
            (f"etc/ssh/authorized_keys/{SSH_USER}", ssh_dir / "id_ed25519.pub", 0o644),
        ]
        for name, source, mode in files:
            data = source.read_bytes()
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.uid, info.gid, info.mtime = len(data), mode, 0, 0, int(time.time())
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def container_state(host: LabHost) -> str:
    """'running', 'exited', ... or '' when the container does not exist."""
    return docker("container", "inspect", "--format", "{{.State.Status}}", host.container, check=False)


def ensure_host(host: LabHost, ssh_dir: Path) -> str:
    """Create (or start) one host; returns 'created', 'started' or 'running'."""
    state = container_state(host)
    if state == "running":
        return "running"
    if state:
        docker("start", host.container)
        return "started"
    docker("volume", "create", "--label", f"{LABEL}=1", host.volume)
    args = [
        "create",
        "--name",
        host.container,
        "--hostname",
        host.name,
        "--label",
        f"{LABEL}=1",
        "--label",
        f"{LABEL}.host={host.name}",
        "--network",
        NETWORK,
        "--ip",
        host.address,
        "--cgroupns",
        "host",
        "--volume",
        "/sys/fs/cgroup:/sys/fs/cgroup:rw",
        "--tmpfs",
        "/run",
        "--tmpfs",
        "/run/lock",
        "--tmpfs",
        "/tmp",
        # overlay2 cannot nest on overlay: the host's Docker keeps its data on a volume.
        "--volume",
        f"{host.volume}:/var/lib/docker",
        "--security-opt",
        "seccomp=unconfined",
        "--security-opt",
        "apparmor=unconfined",
        "--stop-signal",
        "SIGRTMIN+3",
        "--env",
        "container=docker",
    ]
    for capability in _CAPABILITIES:
        args += ["--cap-add", capability]
    docker(*args, HOST_IMAGE, "/lib/systemd/systemd")
    docker("cp", "-", f"{host.container}:/", stdin=_seed_archive(host, ssh_dir))
    docker("start", host.container)
    return "created"


def ssh_command(host: LabHost, ssh_dir: Path, *command: str) -> list[str]:
    return [
        "ssh",
        "-i",
        str(ssh_dir / "id_ed25519"),
        "-o",
        f"UserKnownHostsFile={ssh_dir / 'known_hosts'}",
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        "BatchMode=yes",
        "-o",
        "ConnectTimeout=3",
        f"{SSH_USER}@{host.address}",
        shlex.join(command),  # ssh hands the remote shell one string
    ]


def wait_ready(hosts: Sequence[LabHost], ssh_dir: Path, timeout: float = 120.0) -> None:
    """Until every host answers over SSH and systemd says running (or degraded)."""
    deadline = time.monotonic() + timeout
    waiting = list(hosts)
    last: dict[str, str] = {}
    while waiting and time.monotonic() < deadline:
        for host in list(waiting):
            done = subprocess.run(
                ssh_command(host, ssh_dir, "sudo", "systemctl", "is-system-running", "--wait"),
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            state = done.stdout.strip()
            if state in ("running", "degraded"):
                waiting.remove(host)
            else:
                last[host.name] = (state or done.stderr.strip())[-200:]
        if waiting:
            time.sleep(1)
    if waiting:
        detail = "; ".join(f"{host.name}: {last.get(host.name, 'no answer')}" for host in waiting)
        raise LabError(f"hosts not ready over SSH within {timeout:.0f}s: {detail}")


def lab_containers() -> list[dict[str, str]]:
    """Every container with the lab's label: name, host, state, address."""
    names = docker("ps", "-a", "--filter", f"label={LABEL}=1", "--format", "{{.Names}}").split()
    found = []
    for name in sorted(names):
        data = json.loads(docker("container", "inspect", name))[0]
        networks = data["NetworkSettings"]["Networks"] or {}
        found.append(
            {
                "container": name,
                "host": data["Config"]["Labels"].get(f"{LABEL}.host", ""),
                "state": data["State"]["Status"],
                "address": (networks.get(NETWORK) or {}).get("IPAddress", ""),
            }
        )
    return found


def remove_all() -> list[str]:
    """Every container, volume and network with the lab's label, and the lab host image."""
    removed = []
    containers = docker("ps", "-aq", "--filter", f"label={LABEL}=1").split()
    if containers:
        docker("rm", "-f", "-v", *containers)
        removed.append(f"{len(containers)} containers")
    volumes = docker("volume", "ls", "-q", "--filter", f"label={LABEL}=1").split()
    if volumes:
        docker("volume", "rm", "-f", *volumes)
        removed.append(f"{len(volumes)} volumes")
    networks = docker("network", "ls", "-q", "--filter", f"label={LABEL}=1").split()
    if networks:
        docker("network", "rm", *networks)
        removed.append(f"{len(networks)} networks")
    if docker("image", "inspect", "--format", "{{.Id}}", HOST_IMAGE, check=False):
        docker("image", "rm", HOST_IMAGE)
        removed.append(f"image {HOST_IMAGE}")
    return removed
