"""Verify playbook install-offline.yml on a host with no route to any registry: the archive of 1.0.0 was
installed by converge; here a tampered, a truncated and another release's archive are refused before the
host changes, and the archive of 1.1.0 updates it through the normal update path. The tests run in this
order and build on each other."""

import json
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

testinfra_hosts = ["ansible://kh-offline-app1"]

PROJECT = Path(os.environ["MOLECULE_PROJECT_DIRECTORY"])
EPHEMERAL = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"])
INVENTORY = Path(os.environ["MOLECULE_INVENTORY_FILE"]).parent
ARCHIVES = EPHEMERAL / "archives"
APP = "kh-offline-app1"


KEY = EPHEMERAL / "archive-key.pub"


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
    }


def member_offset(archive, name):
    with tarfile.open(archive) as tar:
        member = tar.getmember(f"khronika-1.1.0/{name}")
        return member.offset_data, member.size


@pytest.fixture(scope="module")
def damaged(tmp_path_factory):
    """Copies of the 1.1.0 archive: one byte flipped inside the images, and one cut short."""
    folder = tmp_path_factory.mktemp("damaged")
    source = ARCHIVES / "khronika-1.1.0.tar"
    tampered, truncated = folder / "tampered.tar", folder / "truncated.tar"
    shutil.copy(source, tampered)
    offset, size = member_offset(source, "images/images.tar")
    with tampered.open("r+b") as handle:
        handle.seek(offset + size // 2)
        byte = handle.read(1)
        handle.seek(offset + size // 2)
        handle.write(bytes([byte[0] ^ 0xFF]))
    with source.open("rb") as src, truncated.open("wb") as dst:
        dst.write(src.read(offset + size // 3))
    return {"tampered": tampered, "truncated": truncated}


def test_the_host_has_no_route_to_the_registry(host):
    port = os.environ["KHRONIKA_TEST_REGISTRY"].split(":")[1]
    # The registry answers on this machine while the host cannot reach it, by name or by its gateway.
    assert (
        subprocess.run(["bash", "-c", f"</dev/tcp/127.0.0.1/{port}"], check=False, timeout=10).returncode == 0
    )
    assert host.run(f"timeout 5 bash -c '</dev/tcp/registry.test/{port}'").rc != 0
    assert host.run("ip -4 route show default").stdout.strip() == ""


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


@pytest.mark.parametrize("kind", ["tampered", "truncated"])
def test_a_damaged_archive_is_refused_before_the_host_changes(host, damaged, kind):
    before = state()
    rc, out = playbook(damaged[kind], "-e", "khronika_release_version=1.1.0")
    assert rc != 0
    assert "the archive is refused before any host changes" in out
    if kind == "tampered":
        assert "images/images.tar: checksum mismatch" in out
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
            if not member.name.endswith("SHA256SUMS.minisig"):
                out.addfile(member, tar.extractfile(member) if member.isfile() else None)
    before = state()
    rc, out = playbook(stripped, "-e", "khronika_release_version=1.1.0")
    assert rc != 0 and "SHA256SUMS: not signed, but a key was given" in out
    rc, out = playbook(source, "-e", "khronika_release_version=1.1.0", key=None)
    assert rc != 0 and "no key was given to check it with" in out
    assert state() == before


def test_another_releases_archive_is_refused(host):
    before = state()
    rc, out = playbook(ARCHIVES / "khronika-1.0.0.tar", "-e", "khronika_release_version=1.1.0")
    assert rc != 0
    assert "the archive holds release 1.0.0, not the release asked for (1.1.0)" in out
    assert state() == before


def test_the_archive_of_1_1_0_updates_the_host(host):
    status, created = http("POST", "/appeals", json.dumps({"text": "kept across the update"}))
    assert status == 201, created
    stored = json.loads(created)["location"]
    rc, out = playbook(ARCHIVES / "khronika-1.1.0.tar", "-e", "khronika_release_version=1.1.0")
    assert rc == 0, out[-6000:]
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
    reports = sorted(
        (EPHEMERAL / "reports").glob("update-*/update-report.json"), key=lambda p: p.stat().st_mtime
    )
    report = json.loads(reports[-1].read_text())
    assert report["result"] == "succeeded"
    assert [b["volume"] for h in report["hosts"] for b in h["backups"]] == ["khronika-appeals-api-data"]
    status, appeal = http("GET", stored)
    assert status == 200 and "kept across the update" in appeal
    assert sh("ls -A /var/lib/khronika/archive").strip() == ""


def test_a_second_run_loads_nothing(host):
    rc, out = playbook(ARCHIVES / "khronika-1.1.0.tar", "-e", "khronika_release_version=1.1.0")
    assert rc == 0, out[-6000:]
    section = out.split("PLAY [Load the release's images on every host]", 1)[1].split("PLAY [", 1)[0]
    assert (
        "TASK [Copy the images' tar to the host]" not in section or "skipping: [kh-offline-app1]" in section
    )
    assert "changed: [kh-offline-app1]" not in section
