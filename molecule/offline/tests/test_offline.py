"""Verify playbook install-offline.yml on a host that never had a route to any registry or mirror: the OS
packages and release 1.0.0 were installed by converge from the archive alone; here a tampered (images or a
package), a truncated, another release's archive and one whose apt repository lacks a package are refused
before the host changes, and the archive of 1.1.0, dropped in the release channel's folder, updates it
through the normal update path (`khronika update auto`). The tests run in this order and build on each
other."""

import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

testinfra_hosts = ["ansible://kh-offline-app1"]

PROJECT = Path(os.environ["MOLECULE_PROJECT_DIRECTORY"])
EPHEMERAL = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"])
INVENTORY = Path(os.environ["MOLECULE_INVENTORY_FILE"]).parent
ARCHIVES = EPHEMERAL / "archives"
APP = "kh-offline-app1"


KEY = EPHEMERAL / "archive-key.gpg"
GNUPGHOME = EPHEMERAL / "gnupg"


@pytest.fixture(scope="module", autouse=True)
def site_state_in_the_inventory():
    """Molecule writes its inventory folder again for verify, as an AWX job starts from a fresh checkout:
    the site state converge recorded is gone from it, and every path refuses the inventory as older than
    the site. The operator's step the refusal names: the host's copy into group_vars/all."""
    text = subprocess.run(
        ["docker", "exec", APP, "cat", "/etc/khronika/khronika_site_state.yml"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    folder = INVENTORY / "group_vars" / "all"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "khronika_site_state.yml").write_text(text)


def playbook(archive, *extra, key=KEY):
    """ansible-playbook install-offline.yml against the scenario's inventory, the archive checked against
    `key` (the scenario's signing key; None: no key given): (rc, output)."""
    env = {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        "ANSIBLE_CONFIG": str(PROJECT / "ansible.cfg"),
        "ANSIBLE_ROLES_PATH": str(PROJECT / "roles"),
        "ANSIBLE_COLLECTIONS_PATH": str(PROJECT / ".ansible" / "collections"),
        "ANSIBLE_FORCE_COLOR": "0",
        "ANSIBLE_STDOUT_CALLBACK": "default",
    }
    command = [
        "ansible-playbook",
        str(PROJECT / "playbooks" / "install-offline.yml"),
        "-i",
        str(INVENTORY),
        "-e",
        f"khronika_archive={archive}",
        "-e",
        f"khronika_update_report_dir={EPHEMERAL / 'reports'}",
        "-e",
        "@" + os.environ["KHRONIKA_TEST_REGISTRY_VAULT"],
        *extra,
    ]
    if key is not None:
        command += ["-e", f"khronika_archive_key={key}"]
    if os.environ.get("KHRONIKA_TEST_VAULT_PASSWORD_FILE"):
        command += ["--vault-password-file", os.environ["KHRONIKA_TEST_VAULT_PASSWORD_FILE"]]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900, check=False)
    return done.returncode, done.stdout + done.stderr


def sh(command):
    return subprocess.run(
        ["docker", "exec", APP, "sh", "-c", command], capture_output=True, text=True, check=True, timeout=120
    ).stdout


def http(method, path, body=None):
    """A request to a module's published port, from the host (which has no curl): (status, body)."""
    script = (
        "import sys, urllib.request, urllib.error\n"
        "data = sys.argv[3].encode() if sys.argv[3] else None\n"
        "req = urllib.request.Request(sys.argv[1], data=data, method=sys.argv[2],"
        " headers={'Content-Type': 'application/json'})\n"
        "try:\n resp = urllib.request.urlopen(req, timeout=10); print(resp.status); print(resp.read().decode())\n"
        "except urllib.error.HTTPError as e:\n print(e.code); print(e.read().decode())\n"
    )
    out = subprocess.run(
        ["docker", "exec", APP, "python3", "-c", script, f"http://127.0.0.1:18080{path}", method, body or ""],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    status, _, text = out.partition("\n")
    return int(status), text


def state():
    """What must not change when an archive is refused: the record, the containers and the images."""
    return {
        "record": sh("cat /etc/khronika/release.json"),
        "containers": sh(
            "docker ps -aq --no-trunc | xargs -r docker inspect --format "
            "'{{.Name}} {{.Config.Image}} {{.Image}} {{.State.StartedAt}} {{.RestartCount}}' | sort"
        ),
        "images": sh("docker images --no-trunc --format '{{.Repository}}:{{.Tag}} {{.ID}}' | sort"),
        "archive folder": sh("ls -A /var/lib/khronika/archive 2>/dev/null || true"),
        "apt sources": sh(
            "ls -l --time-style=+%s /etc/apt/sources.list.d /etc/apt/preferences.d; cat /etc/apt/sources.list.d/*"
        ),
        "apt repositories": sh("ls -A /var/lib/khronika/apt"),
        "packages": sh("dpkg-query -W -f '${Package} ${Version} ${Status}\\n' | sort"),
    }


def member_offset(archive, name):
    with tarfile.open(archive) as tar:
        member = tar.getmember(f"khronika-1.1.0/{name}")
        return member.offset_data, member.size


def flip_a_byte(path, offset, size):
    with path.open("r+b") as handle:
        handle.seek(offset + size // 2)
        byte = handle.read(1)
        handle.seek(offset + size // 2)
        handle.write(bytes([byte[0] ^ 0xFF]))


def docker_package(archive):
    with tarfile.open(archive) as tar:
        return next(
            name.split("/", 1)[1]
            for name in tar.getnames()
            if name.split("/", 1)[-1].startswith("os/pool/docker.io_")
        )


@pytest.fixture(scope="module")
def damaged(tmp_path_factory):
    """Copies of the 1.1.0 archive: one byte flipped inside the images, one inside Docker's package, and
    one cut short."""
    folder = tmp_path_factory.mktemp("damaged")
    source = ARCHIVES / "khronika-1.1.0.tar"
    tampered, package, truncated = folder / "tampered.tar", folder / "package.tar", folder / "truncated.tar"
    shutil.copy(source, tampered)
    offset, size = member_offset(source, "images/images.tar")
    flip_a_byte(tampered, offset, size)
    shutil.copy(source, package)
    flip_a_byte(package, *member_offset(source, docker_package(source)))
    with source.open("rb") as src, truncated.open("wb") as dst:
        dst.write(src.read(offset + size // 3))
    return {"tampered": tampered, "tampered package": package, "truncated": truncated}


def test_the_host_has_no_route_to_the_registry_nor_the_mirror(host):
    port = os.environ["KHRONIKA_TEST_REGISTRY"].split(":")[1]
    # The registry answers on this machine while the host cannot reach it, by name or by its gateway.
    assert (
        subprocess.run(["bash", "-c", f"</dev/tcp/127.0.0.1/{port}"], check=False, timeout=10).returncode == 0
    )
    assert host.run(f"timeout 5 bash -c '</dev/tcp/registry.test/{port}'").rc != 0
    assert host.run("ip -4 route show default").stdout.strip() == ""
    # The mirror the host's own sources name (debootstrap's) answers here, not there.
    mirror = re.search(r"https?://([^/:\s]+)(?::(\d+))?", host.file("/etc/apt/sources.list").content_string)
    assert mirror is not None
    name, mirror_port = mirror.group(1), mirror.group(2) or "80"
    assert (
        subprocess.run(["bash", "-c", f"</dev/tcp/{name}/{mirror_port}"], check=False, timeout=10).returncode
        == 0
    )
    assert host.run(f"timeout 5 bash -c '</dev/tcp/{name}/{mirror_port}'").rc != 0


def test_the_os_came_from_the_archive(host):
    """Docker and the base packages were installed from the archive's repository, checked by apt against
    the site's key, below the host's own sources (which are still there)."""
    source = host.file("/etc/apt/sources.list.d/khronika-archive.sources").content_string
    assert "Signed-By: /etc/apt/keyrings/khronika-archive.gpg" in source and "Trusted" not in source
    assert "Pin-Priority: 100" in host.file("/etc/apt/preferences.d/khronika-archive").content_string
    assert host.file("/etc/apt/sources.list").contains("^deb ")
    for package in ("docker.io", "containerd", "python3-requests", "jq", "systemd-timesyncd"):
        assert host.package(package).is_installed, package
    policy = host.run("LC_ALL=C apt-cache policy docker.io").stdout
    assert "file:/var/lib/khronika/apt/" in policy and "100 file:" in policy, policy
    assert host.service("docker").is_running


def test_release_1_0_0_runs_from_the_archive(host):
    record = json.loads(sh("cat /etc/khronika/release.json"))
    assert record["version"] == "1.0.0"
    images = sh("docker ps --filter label=khronika.managed=true --format '{{.Image}}'").split()
    assert len(images) == 2
    assert all(":sha256-" in image and "@" not in image for image in images)
    # Nothing was pulled: the images carry no repository digest, only the archive's tags.
    digests = sh("docker images --digests --format '{{.Repository}} {{.Digest}}' | grep khronika-samples")
    assert {line.split()[1] for line in digests.splitlines()} == {"<none>"}
    assert sh("ls -A /var/lib/khronika/archive").strip() == ""
    assert http("GET", "/health")[0] == 200


@pytest.mark.parametrize("kind", ["tampered", "tampered package", "truncated"])
def test_a_damaged_archive_is_refused_before_the_host_changes(host, damaged, kind):
    before = state()
    rc, out = playbook(damaged[kind], "-e", "khronika_release_version=1.1.0")
    assert rc != 0
    assert "the archive is refused before any host changes" in out
    if kind == "tampered":
        assert "images/images.tar: checksum mismatch" in out
    elif kind == "tampered package":
        assert f"{docker_package(damaged[kind])}: checksum mismatch" in out
    else:
        assert "truncated or not a tar archive" in out
    assert "kh-offline-app1" not in out.split("Verify every member", 1)[1].split("PLAY RECAP", 1)[0]
    assert state() == before


def test_an_archive_whose_signature_was_removed_is_refused(host, tmp_path):
    """Whoever can rewrite SHA256SUMS only has to delete its signature: with a key, that is refused; and
    with no key at all, so is the archive, unless the operator says khronika_archive_allow_unsigned."""
    source = ARCHIVES / "khronika-1.1.0.tar"
    stripped = tmp_path / "stripped.tar"
    with tarfile.open(source) as tar, tarfile.open(stripped, "w") as out:
        for member in tar:
            if not member.name.endswith("SHA256SUMS.asc"):
                out.addfile(member, tar.extractfile(member) if member.isfile() else None)
    before = state()
    rc, out = playbook(stripped, "-e", "khronika_release_version=1.1.0")
    assert rc != 0 and "SHA256SUMS: not signed, but a key was given" in out
    rc, out = playbook(source, "-e", "khronika_release_version=1.1.0", key=None)
    assert rc != 0 and "no key was given to check it with" in out
    assert state() == before


def without_a_package(source, package, target, work):
    """The vendor's mistake: the archive of `source`'s release rebuilt, signed with the vendor's key, with
    `package` left out of its debian-12 repository (its index, Release, InRelease, manifest and sums
    written again as the builder writes them)."""
    from datetime import UTC, datetime

    from khronika_ops.archive import build, layout, os_repo
    from khronika_ops.archive.signing import Signer

    with tarfile.open(source) as tar:
        tar.extractall(work, filter="data")
    (top,) = list(work.iterdir())
    manifest = json.loads((top / "archive.json").read_text())
    (repo,) = manifest["os_repositories"]
    lost = [name for name in repo["files"] if name.startswith(f"os/pool/{package}_")]
    assert len(lost) == 1
    (top / lost[0]).unlink()
    repo["files"].remove(lost[0])
    debs = [
        os_repo.index_deb(top / name, name[len("os/") :]) for name in repo["files"] if name.endswith(".deb")
    ]
    suite = top / os_repo.suite_dir("debian-12")
    index = os_repo.packages_index(debs).encode()
    (suite / "Packages").write_bytes(index)
    (suite / "Release").write_text(os_repo.release_file("debian-12", "bookworm", index, datetime.now(UTC)))
    os.environ["GNUPGHOME"] = str(GNUPGHOME)
    signer = Signer.parse("gpg:archive@khronika.test")
    signer.clear_sign(suite / "Release", suite / "InRelease")
    (top / "archive.json").write_text(json.dumps(manifest, indent=2) + "\n")
    for name in (layout.CHECKSUMS, layout.SIGNATURES["gpg"]):
        (top / name).unlink()
    build._write_checksums(top, lambda *_: None)
    signer.sign(top / layout.CHECKSUMS)
    build._write_tar(top, target, manifest["release"], datetime.now(UTC), lambda *_: None)
    return target


def test_an_archive_whose_repository_lacks_a_package_is_refused(host, tmp_path):
    """The gateway's nginx is missing from the archive (its dependency nginx-common is there): the pre-flight
    names it on the host, and neither the host's sources, its packages nor the platform change."""
    archive = without_a_package(
        ARCHIVES / "khronika-1.1.0.tar", "nginx", tmp_path / "no-nginx.tar", tmp_path / "unpacked"
    )
    before = state()
    rc, out = playbook(
        archive,
        "-e",
        "khronika_release_version=1.1.0",
        "-e",
        '{"khronika_archive_os_roles": ["common", "docker", "gateway"]}',
    )
    assert rc != 0
    assert (
        "kh-offline-app1 (debian-12): the archive cannot install nginx (not in its repository). Nothing was changed."
        in out
    ), out[-4000:]
    assert state() == before
    assert not host.package("nginx").is_installed


def test_another_releases_archive_is_refused(host):
    before = state()
    rc, out = playbook(ARCHIVES / "khronika-1.0.0.tar", "-e", "khronika_release_version=1.1.0")
    assert rc != 0
    assert "the archive holds release 1.0.0, not the release asked for (1.1.0)" in out
    assert state() == before


def follow_a_drop_folder(folder):
    """The site's release channel in its inventory: the drop folder, checked against the site's key, in an
    open window; one host, so the canary is the whole site (the update scenario runs the canary, then the
    rest, from a registry channel)."""
    import yaml

    now = datetime.now(UTC)
    policy = {
        "source": "folder",
        "folder": str(folder),
        "key": str(KEY),
        "window": {"start": (now - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ"), "duration": "4h"},
        "canary": {"count": 1},
        "soak": 3,
    }
    where = INVENTORY / "group_vars" / "all"
    shutil.copyfile(os.environ["KHRONIKA_TEST_REGISTRY_VAULT"], where / "test-vault.yml")
    (where / "khronika_update_channel.yml").write_text(yaml.safe_dump({"khronika_update_channel": policy}))


def khronika(*argv):
    env = {
        **os.environ,
        "ANSIBLE_CONFIG": str(PROJECT / "ansible.cfg"),
        "ANSIBLE_ROLES_PATH": str(PROJECT / "roles"),
        "ANSIBLE_COLLECTIONS_PATH": str(PROJECT / ".ansible" / "collections"),
        "ANSIBLE_FORCE_COLOR": "0",
    }
    vault = os.environ.get("KHRONIKA_TEST_VAULT_PASSWORD_FILE")
    return subprocess.run(
        [sys.executable, "-m", "khronika_ops", *argv, "-i", str(INVENTORY)]
        + (["--vault-password-file", vault] if vault else []),
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
        check=False,
    )


def test_the_archive_of_1_1_0_dropped_in_the_channels_folder_updates_the_host(host):
    """A closed site's channel: signed archives dropped in a folder. `khronika update auto` verifies each,
    names the ones it refuses, and runs the newest through install-offline.yml and the update path."""
    status, created = http("POST", "/appeals", json.dumps({"text": "kept across the update"}))
    assert status == 201, created
    stored = json.loads(created)["location"]
    drop = EPHEMERAL / "drop"
    shutil.rmtree(drop, ignore_errors=True)
    drop.mkdir()
    for version in ("1.0.0", "1.1.0"):
        os.link(ARCHIVES / f"khronika-{version}.tar", drop / f"khronika-{version}.tar")
    (drop / "khronika-1.2.0.tar").write_bytes(b"not an archive at all\n" * 10)
    follow_a_drop_folder(drop)
    check = khronika("update", "channel", "check")
    assert check.returncode == 0, check.stdout + check.stderr
    assert "1.1.0 applies now" in check.stdout and "khronika-1.2.0.tar" in check.stdout, check.stdout
    done = khronika("update", "auto")
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-3000:]
    assert f"refused by the channel: {drop / 'khronika-1.2.0.tar'}" in done.stdout, done.stdout
    assert "install-offline.yml" in done.stdout
    record = json.loads(sh("cat /etc/khronika/release.json"))
    assert record["version"] == "1.1.0"
    manifest = json.loads(
        subprocess.run(
            ["tar", "-xOf", str(ARCHIVES / "khronika-1.1.0.tar"), "khronika-1.1.0/archive.json"],
            capture_output=True,
            check=True,
            timeout=60,
        ).stdout
    )
    running = {
        line.split()[0]: line.split()[1]
        for line in sh(
            "docker ps --filter label=khronika.managed=true --format '{{.Names}} {{.Image}}'"
        ).splitlines()
    }
    wanted = {image["module"]: image["digest"].replace(":", "-") for image in manifest["images"]}
    assert {name: image.rsplit(":", 1)[1] for name, image in running.items()} == {
        f"{module}-1": tag for module, tag in wanted.items()
    }
    # The update path's own parts ran: the volume backed up before its module switched, the report written.
    channel = json.loads((INVENTORY / ".khronika" / "channel" / "state.json").read_text())
    [stage] = channel["last_rollout"]["stages"]
    assert stage["hosts"] == [APP] and stage["state"] == "soaked"
    assert channel["last_rollout"]["archive"] == str(drop / "khronika-1.1.0.tar")
    report = json.loads((Path(stage["run"]) / "update-report.json").read_text())
    assert report["result"] == "succeeded"
    assert [b["volume"] for h in report["hosts"] for b in h["backups"]] == ["khronika-appeals-api-data"]
    status, appeal = http("GET", stored)
    assert status == 200 and "kept across the update" in appeal
    assert sh("ls -A /var/lib/khronika/archive").strip() == ""
    again = khronika("update", "auto")
    assert again.returncode == 0 and "nothing: nothing newer than 1.1.0 to apply" in again.stdout, (
        again.stdout
    )


def test_a_second_run_loads_nothing(host):
    # The OS part was checked by the run before (and is Ansible's own idempotence): only the images here.
    rc, out = playbook(
        ARCHIVES / "khronika-1.1.0.tar",
        "-e",
        "khronika_release_version=1.1.0",
        "-e",
        "khronika_archive_os_packages=false",
    )
    assert rc == 0, out[-6000:]
    section = out.split("PLAY [Load the release's images on every host]", 1)[1].split("PLAY [", 1)[0]
    assert (
        "TASK [Copy the images' tar to the host]" not in section or "skipping: [kh-offline-app1]" in section
    )
    assert "changed: [kh-offline-app1]" not in section


def test_a_package_changed_on_the_host_is_refused_by_apt(host):
    """The index apt checked against the site's key names each file's SHA256: a package file changed in the
    host's copy of the repository is not installed."""
    (path,) = [line for line in sh("ls -d /var/lib/khronika/apt/*/pool/nginx_*.deb").split() if line]
    size = int(sh(f"stat -c %s {path}"))
    sh(f"printf KHRONIKA-TAMPERED | dd of={path} bs=1 seek={size // 2} conv=notrunc 2>/dev/null")
    # With the sources the install uses (the archive alone): the host's own mirror is unreachable here,
    # and apt would wait on it for minutes before it even tried the archive's file.
    done = host.run(
        "APT_CONFIG=/etc/khronika/apt-archive.conf LC_ALL=C DEBIAN_FRONTEND=noninteractive apt-get install -y nginx"
    )
    assert done.rc != 0
    assert (
        "Hash Sum mismatch" in done.stdout + done.stderr
        or "hash sum mismatch" in (done.stdout + done.stderr).lower()
    )
    assert not host.package("nginx").is_installed
