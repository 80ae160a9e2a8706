"""Verify playbook update.yml on real hosts: refusals before any change, check mode; the release channel
(`khronika update auto`) updating the canary, soaking it, then the rest, each stage with its downtime
measured and a rolling module losing no request; the broken release failing on the canary, rolled back with
the appeals on its volume as they were, the channel halted; then releases that fail later gates, and
scale.yml. The tests run in this order and build on each other."""

import json
import os
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

testinfra_hosts = ["ansible://kh-update-app1"]

PROJECT = Path(os.environ["MOLECULE_PROJECT_DIRECTORY"])
EPHEMERAL = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"])
INVENTORY = Path(os.environ["MOLECULE_INVENTORY_FILE"]).parent
REPORTS = EPHEMERAL / "reports"
APPS = ("kh-update-app1", "kh-update-app2")
VOLUME = "khronika-appeals-api-data"
DATA_CHECK_TEXT = "khronika-ops data check"  # the catalog's data_check body (molecule.yml)


def update_command(*extra, playbook_name="update.yml"):
    """ansible-playbook update.yml (or scale.yml) against the scenario's inventory: (command, environment)."""
    env = {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        "ANSIBLE_CONFIG": str(PROJECT / "ansible.cfg"),
        "ANSIBLE_ROLES_PATH": str(PROJECT / "roles"),
        "ANSIBLE_COLLECTIONS_PATH": str(PROJECT / ".ansible" / "collections"),
        "ANSIBLE_FORCE_COLOR": "0",
        "ANSIBLE_STDOUT_CALLBACK": "default",
        # The play strategy is Molecule's environment's (.config/molecule/config.yml): Mitogen's under
        # scripts/test.sh, one Python per host kept over the run instead of a `docker exec` and an
        # interpreter start per task.
    }
    command = [
        "ansible-playbook",
        str(PROJECT / "playbooks" / playbook_name),
        "-i",
        str(INVENTORY),
        "-e",
        "@" + os.environ["KHRONIKA_TEST_REGISTRY_VAULT"],
        "-e",
        f"khronika_update_report_dir={REPORTS}",
        *extra,
    ]
    if os.environ.get("KHRONIKA_TEST_VAULT_PASSWORD_FILE"):
        command += ["--vault-password-file", os.environ["KHRONIKA_TEST_VAULT_PASSWORD_FILE"]]
    return command, env


def playbook(*extra, check=False, playbook_name="update.yml"):
    """Run update.yml (or scale.yml) to its end; returns (rc, output)."""
    command, env = update_command(*extra, *(["--check"] if check else []), playbook_name=playbook_name)
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900, check=False)
    return done.returncode, done.stdout + done.stderr


def sh(app, command):
    return subprocess.run(
        ["docker", "exec", app, "sh", "-c", command], capture_output=True, text=True, check=True, timeout=120
    ).stdout


STATE_FILE = INVENTORY / "group_vars" / "all" / "khronika_site_state.yml"


def site_state():
    import yaml

    return yaml.safe_load(STATE_FILE.read_text())["khronika_site_state"]


def record(app):
    return json.loads(sh(app, "cat /etc/khronika/release.json"))


def images(app):
    names = sh(app, "docker ps --filter label=khronika.managed=true --format '{{.Names}}'").split()
    return {
        name: sh(app, f"docker inspect --format '{{{{.Config.Image}}}}' {name}").strip()
        for name in sorted(names)
    }


def appeals_checksums():
    """sha256 of every stored appeal in the volume on app1 (the update's data-check records left out)."""
    return appeals_on(APPS[0])


def appeals_on(app):
    out = sh(
        app,
        f"cd $(docker volume inspect --format '{{{{.Mountpoint}}}}' {VOLUME})/appeals && "
        f'for f in *.json; do grep -q \'{DATA_CHECK_TEXT}\' "$f" || sha256sum "$f"; done',
    )
    return dict(reversed(line.split()) for line in out.splitlines())


def gateway(path, method="GET", body=None):
    script = (
        "import json, ssl, sys, urllib.request, urllib.error;"
        "ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE;"
        "data = sys.argv[3].encode() if sys.argv[3] else None;"
        "req = urllib.request.Request(sys.argv[1], data=data, method=sys.argv[2],"
        " headers={'Content-Type': 'application/json'});\n"
        "try:\n resp = urllib.request.urlopen(req, context=ctx, timeout=10); code = resp.status; text = resp.read().decode()\n"
        "except urllib.error.HTTPError as e:\n code = e.code; text = e.read().decode()\n"
        "print(json.dumps({'status': code, 'body': text}))"
    )
    out = subprocess.run(
        [
            "docker",
            "exec",
            APPS[0],
            "python3",
            "-c",
            script,
            f"https://127.0.0.1{path}",
            method,
            json.dumps(body) if body is not None else "",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    return json.loads(out)


def latest_report():
    reports = sorted(REPORTS.glob("update-*/update-report.json"), key=lambda p: p.stat().st_mtime)
    return json.loads(reports[-1].read_text()), reports[-1].parent


def active_silences():
    import urllib.request

    with urllib.request.urlopen("http://127.0.0.1:19093/api/v2/silences", timeout=5) as response:
        return [s for s in json.load(response) if s["status"]["state"] == "active"]


@pytest.fixture(scope="module")
def appeals_before():
    for number in range(3):
        answer = gateway("/api/appeals/appeals", "POST", {"text": f"appeal {number} before the update"})
        assert answer["status"] == 201, answer
    return appeals_checksums()


def test_check_mode_prints_the_plan_and_changes_nothing(host):
    before = {app: images(app) for app in APPS}
    rc, out = playbook("-e", "khronika_release_version=1.1.0", check=True)
    assert rc == 0, out
    assert "switch in order: classifier (rolling), appeals-api" in out
    assert "downtime full" in out
    assert {app: images(app) for app in APPS} == before
    assert record(APPS[0])["version"] == "1.0.0"


def test_outside_the_window_is_refused(host):
    start = (datetime.now(UTC) + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    rc, out = playbook(
        "-e",
        "khronika_release_version=1.1.0",
        "-e",
        f"khronika_update_window_start={start}",
        "-e",
        "khronika_update_window_duration=4h",
    )
    assert rc != 0
    assert f"outside the maintenance window: it opens at {start}" in out
    assert "-e khronika_update_force_window=true overrides" in out
    assert record(APPS[0])["version"] == "1.0.0"


def test_a_stopped_registry_is_refused_at_preflight(host):
    before = images(APPS[0])
    subprocess.run([str(PROJECT / "scripts" / "test-registry.sh"), "stop"], check=True, timeout=60)
    try:
        rc, out = playbook("-e", "khronika_release_version=1.1.0")
    finally:
        subprocess.run([str(PROJECT / "scripts" / "test-registry.sh"), "start"], check=True, timeout=120)
    assert rc != 0
    assert "cannot be pulled" in out
    assert images(APPS[0]) == before
    assert not active_silences()


# --- the release channel (khronika update auto): the canary first, soaked, then the rest --------------------

REGISTRY_LOCAL = "127.0.0.1:" + os.environ["KHRONIKA_TEST_REGISTRY"].rsplit(":", 1)[1]
# Its own repository each run: a test registry kept between runs holds other builds' manifests.
CHANNEL_REPOSITORY = f"khronika-update-{os.getpid()}-{int(time.time())}/releases"
CHANNEL_STATE = INVENTORY / ".khronika" / "channel" / "state.json"
HALT_ALERT = "KhronikaUpdateChannelHalted"


def write_channel_policy(window_open):
    """The site's policy in its inventory (the vault's registry password beside it, as a site keeps it):
    the canary is app1, then app2 alone; a 5 s soak with no Prometheus to watch (the lab stage's test
    watches one); the halt alert to this scenario's Alertmanager."""
    import yaml

    now = datetime.now(UTC)
    start = now - timedelta(hours=1) if window_open else now + timedelta(days=1)
    folder = INVENTORY / "group_vars" / "all"
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(os.environ["KHRONIKA_TEST_REGISTRY_VAULT"], folder / "test-registry-vault.yml")
    policy = {
        "source": "registry",
        "registry": REGISTRY_LOCAL,
        "repository": CHANNEL_REPOSITORY,
        "registry_user": os.environ["KHRONIKA_TEST_REGISTRY_USER"],
        "registry_password": "{{ vault_test_registry_password }}",
        "registry_ca": os.environ["KHRONIKA_TEST_REGISTRY_CA"],
        "window": {"start": start.strftime("%Y-%m-%dT%H:%M:%SZ"), "duration": "4h"},
        "canary": {"count": 1},
        "batch": {"hosts": 1},
        "soak": 5,
        "alertmanager": {"url": "http://127.0.0.1:19093"},
    }
    (folder / "khronika_update_channel.yml").write_text(yaml.safe_dump({"khronika_update_channel": policy}))


def khronika(*argv, password=None):
    """The khronika command (the site's commands against the scenario's inventory): the completed process."""
    _command, env = update_command()
    if argv[0] != "release":
        argv = (
            *argv,
            "-i",
            str(INVENTORY),
            "--vault-password-file",
            os.environ["KHRONIKA_TEST_VAULT_PASSWORD_FILE"],
        )
    if password is not None:
        env["KHRONIKA_REGISTRY_PASSWORD"] = password
    return subprocess.run(
        [sys.executable, "-m", "khronika_ops", *argv],
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
        check=False,
    )


def publish(version):
    """`khronika release publish` of the scenario's manifest (the digests its registry gave) to the channel."""
    done = khronika(
        "release",
        "publish",
        str(EPHEMERAL / "releases" / f"{version}.yml"),
        "--registry",
        REGISTRY_LOCAL,
        "--repository",
        CHANNEL_REPOSITORY,
        "--registry-user",
        os.environ["KHRONIKA_TEST_REGISTRY_USER"],
        "--registry-ca",
        os.environ["KHRONIKA_TEST_REGISTRY_CA"],
        password=(Path(os.environ["KHRONIKA_TEST_REGISTRY_DIR"]) / "password").read_text().strip(),
    )
    assert done.returncode == 0 and "published" in done.stdout, done.stdout + done.stderr


def channel_state():
    return json.loads(CHANNEL_STATE.read_text())


def stage_report(stage):
    return json.loads((Path(stage["run"]) / "update-report.json").read_text()), Path(stage["run"])


def halt_alerts():
    import urllib.request

    with urllib.request.urlopen("http://127.0.0.1:19093/api/v2/alerts?active=true", timeout=5) as response:
        return [a for a in json.load(response) if a["labels"].get("alertname") == HALT_ALERT]


def test_outside_its_window_the_channel_does_nothing_and_says_so(host):
    publish("1.1.0")
    write_channel_policy(window_open=False)
    done = khronika("update", "auto")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "wait: 1.1.0 applies in the window; the window is" in done.stdout, done.stdout
    assert all(record(app)["version"] == "1.0.0" for app in APPS)
    assert not CHANNEL_STATE.exists() or channel_state()["rollout"] is None


def test_the_channel_updates_the_canary_soaks_it_then_the_rest(host, appeals_before):
    """1.1.0 published to the channel, the window open: `khronika update auto` runs update.yml on the
    canary (app1), soaks it, then on app2; each stage is the whole update path with its downtime measured:
    the rolling module loses no request through the gateway, appeals-api's maintenance is short."""
    write_channel_policy(window_open=True)
    check = khronika("update", "channel", "check")
    assert check.returncode == 0 and "1.1.0 applies now" in check.stdout, check.stdout + check.stderr
    published = time.monotonic()
    done = khronika("update", "auto")
    took = time.monotonic() - published
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-3000:]
    assert appeals_checksums() == appeals_before
    assert all(record(app)["version"] == "1.1.0" for app in APPS)
    state = channel_state()
    assert state["rollout"] is None and state["runs"][-1]["result"] == "applied"
    canary, rest = state["last_rollout"]["stages"]
    assert (canary["name"], canary["hosts"], canary["state"]) == ("canary", [APPS[0]], "soaked")
    assert (rest["name"], rest["hosts"], rest["state"]) == ("batch 1", [APPS[1]], "soaked")
    assert canary["soaked_at"] <= rest["started_at"]  # the rest started only after the canary's soak
    report, folder = stage_report(canary)
    assert report["result"] == "succeeded"
    assert {h["host"]: h["result"] for h in report["hosts"]} == {APPS[0]: "updated"}
    probe = {m["module"]: m for m in report["probe"]}
    # The rolling module, drained out of the gateway on the canary while app2's replica serves, loses nothing.
    assert probe["classifier"]["requests"] > 10 and probe["classifier"]["failed"] == 0
    assert probe["classifier"]["planned"] == "none"
    # appeals-api is recreated behind its own maintenance page: its downtime is measured, and short.
    assert report["maintenance"]["site"] is False and report["maintenance"]["modules"] == ["appeals-api"]
    assert probe["appeals-api"]["planned"] == "maintenance"
    assert 0 < probe["appeals-api"]["down_seconds"] < 30
    backups = [b for h in report["hosts"] for b in h["backups"]]
    assert [b["volume"] for b in backups] == [VOLUME]
    assert sh(APPS[0], f"sha256sum {backups[0]['path']}").split()[0] == backups[0]["sha256"]
    assert report["silence"]
    assert (
        "## Downtime through the gateway: planned and measured" in (folder / "update-report.md").read_text()
    )
    report, _ = stage_report(rest)
    assert report["result"] == "succeeded"
    assert {h["host"]: h["result"] for h in report["hosts"]} == {APPS[1]: "updated"}
    probe = {m["module"]: m for m in report["probe"]}
    assert probe["classifier"]["failed"] == 0
    assert not active_silences()
    assert sh(APPS[0], "ls /etc/khronika/gateway | grep -c '^maintenance' || true").strip() == "0"
    audit = [json.loads(line) for line in sh(APPS[0], "cat /var/log/khronika/audit.log").splitlines()]
    assert audit[-1]["to_version"] == "1.1.0" and audit[-1]["result"] == "updated"
    assert "appeals-api" in audit[-1]["hosts"][APPS[0]]["switch_seconds"]
    # The site state: written into the inventory and on both hosts, the release the next deploy runs.
    state = site_state()
    assert state["release"] == "1.1.0" and state["written_by"]["kind"] == "update"
    assert state["volumes"] == {VOLUME: {APPS[0]: 1}}
    for app in APPS:
        assert sh(app, "cat /etc/khronika/khronika_site_state.yml") == STATE_FILE.read_text()
    print(f"1.1.0 from the channel's run to the whole site updated: {took:.0f} s")
    # Nothing newer: the next run exits quietly.
    again = khronika("update", "auto")
    assert again.returncode == 0 and "nothing: nothing newer than 1.1.0 to apply" in again.stdout, (
        again.stdout
    )


def test_a_downgrade_without_the_flag_is_refused(host):
    rc, out = playbook("-e", "khronika_release_version=1.0.0")
    assert rc != 0
    assert "newer than 1.0.0: a downgrade needs -e khronika_update_allow_downgrade=true" in out
    assert record(APPS[0])["version"] == "1.1.0"


def test_the_broken_release_fails_on_the_canary_and_halts_the_channel(host, appeals_before):
    """The broken 1.2.0 published: the canary fails its health gate and is rolled back with its volume
    restored; the channel halts, its alert fires until `resume`, and app2 is never touched."""
    on_1_1_0 = {app: images(app) for app in APPS}
    publish("1.2.0")
    done = khronika("update", "auto")
    assert done.returncode == 1, done.stdout[-6000:] + done.stderr[-3000:]
    state = channel_state()
    assert state["halted"]["release"] == "1.2.0" and "1.2.0" in state["failed"]
    assert "the canary (kh-update-app1) failed its update" in state["halted"]["reason"], state["halted"]
    assert state["rollout"] is None  # this rollout is over: status shows it as the last one
    canary, rest = state["last_rollout"]["stages"]
    assert canary["state"] == "failed" and rest["state"] == "pending"
    report, folder = stage_report(canary)
    assert report["result"] != "succeeded"
    [app1] = report["hosts"]
    assert app1["host"] == APPS[0]
    assert app1["result"] == "rolled-back" and app1["on_version"] == "1.1.0"
    assert "unhealthy" in app1["failure"]
    assert app1["restored"] == [VOLUME]
    assert {app: images(app) for app in APPS} == on_1_1_0
    assert record(APPS[0])["version"] == "1.1.0" and record(APPS[1])["version"] == "1.1.0"
    assert appeals_checksums() == appeals_before
    assert gateway("/api/appeals/health")["status"] == 200
    assert report["maintenance"]["modules"] == ["appeals-api"]
    assert sh(APPS[0], "ls /etc/khronika/gateway | grep -c '^maintenance' || true").strip() == "0"
    assert not active_silences()
    assert "## What failed" in (folder / "update-report.md").read_text()
    [alert] = halt_alerts()
    assert alert["labels"]["release"] == "1.2.0"
    status = khronika("update", "channel", "status")
    assert "HALTED:" in status.stdout and "1.2.0" in status.stdout, status.stdout
    # Halted, the next run changes nothing; resume lifts the halt and the alert, and 1.2.0 stays failed.
    again = khronika("update", "auto")
    assert again.returncode == 0 and "halted since" in again.stdout, again.stdout
    assert khronika("update", "resume").returncode == 0
    assert halt_alerts() == []
    after = khronika("update", "auto")
    assert after.returncode == 0 and "nothing" in after.stdout, after.stdout
    assert {app: images(app) for app in APPS} == on_1_1_0


def test_a_release_that_crashes_once_then_serves_is_rolled_back(host, appeals_before):
    """1.3.0's appeals-api migrates its data on start: the first start moves three appeals aside and
    exits 3, Docker restarts it and it serves, healthy, without them. Healthy at the end is not a
    success: the gate fails it on the restart, the volume is restored and every appeal answers again.
    Both hosts in one batch: app2, whose own switch passed, rolls back with it (rollback scope batch)."""
    on_1_1_0 = {app: images(app) for app in APPS}
    rc, out = playbook("-e", "khronika_release_version=1.3.0")
    assert rc != 0, out[-4000:]
    report, _folder = latest_report()
    app2 = next(h for h in report["hosts"] if h["host"] == APPS[1])
    assert app2["result"] == "rolled-back" and app2["on_version"] == "1.1.0", app2
    assert "rolled back with its batch" in app2["failure"] and APPS[0] in app2["failure"]
    assert {app: images(app) for app in APPS} == on_1_1_0
    app1 = next(h for h in report["hosts"] if h["host"] == APPS[0])
    assert app1["result"] == "rolled-back" and app1["on_version"] == "1.1.0", app1
    assert "was restarted" in app1["failure"] and "by Docker after this run started it" in app1["failure"]
    assert app1["restored"] == [VOLUME]
    # What the failed container said, read before the rollback replaced it: its exit, its log.
    [evidence] = [e for e in app1["evidence"] if e["container"] == "appeals-api-1"]
    assert 3 in evidence["exit_codes"] and evidence["restarts"] >= 1, evidence
    assert any("migration failed after 3 appeals (exit 3)" in line for line in evidence["log_tail"])
    assert "migration failed after 3 appeals" in (_folder / "update-report.md").read_text()
    assert record(APPS[0])["version"] == "1.1.0" and record(APPS[1])["version"] == "1.1.0"
    assert appeals_checksums() == appeals_before
    for name in appeals_before:
        assert gateway(f"/api/appeals/appeals/{name.removesuffix('.json')}")["status"] == 200, name
    assert not active_silences()


def test_a_release_that_loses_the_data_but_stays_healthy_fails_its_data_check(host, appeals_before):
    """1.4.0's appeals-api moves every appeal aside on its first start and serves healthy, never restarted:
    only the catalog's data check (an appeal written before the switch, read back after it) sees it."""
    rc, out = playbook("-e", "khronika_release_version=1.4.0")
    assert rc != 0, out[-4000:]
    report, folder = latest_report()
    app1 = next(h for h in report["hosts"] if h["host"] == APPS[0])
    assert app1["result"] == "rolled-back" and app1["on_version"] == "1.1.0", app1
    assert (
        "data check of appeals-api" in app1["failure"] and "answered 404 after the switch" in app1["failure"]
    )
    assert app1["restored"] == [VOLUME]
    assert record(APPS[0])["version"] == "1.1.0" and record(APPS[1])["version"] == "1.1.0"
    for name in appeals_before:
        assert gateway(f"/api/appeals/appeals/{name.removesuffix('.json')}")["status"] == 200, name
    assert "data check of appeals-api" in (folder / "update-report.md").read_text()


# --- scale.yml: a capacity plan applied to the same two hosts (on 1.1.0 now) ------------------------------


def scale(*extra, check=False):
    return playbook("-e", "khronika_release_version=1.1.0", *extra, check=check, playbook_name="scale.yml")


def host_size(app):
    cores = int(sh(app, "nproc").strip())
    memory_kib = int(sh(app, "awk '/^MemTotal/ {print $2}' /proc/meminfo").strip())
    return cores, memory_kib / 1024 / 1024


def plan_file(name, assignment, **modules):
    """A capacity plan as `khronika plan --format json` writes it (the parts scale.yml reads)."""
    sized = {"classifier": (0.5, 384 / 1024), "appeals-api": (1.0, 0.25)} | modules
    hosts = []
    for app in APPS:
        cores, memory_gib = host_size(app)
        hosts.append({"name": app, "cores": cores, "memory_gib": round(memory_gib, 3), "gpus": 0})
    plan = {
        "modules": [
            {"name": module, "replicas": 0, "cores_per_replica": cores, "memory_gib_per_replica": memory}
            for module, (cores, memory) in sized.items()
        ],
        "hosts": hosts,
        "placement": {"solver": "test", "status": "OPTIMAL", "cost": 0, "assignment": assignment},
    }
    path = EPHEMERAL / name
    path.write_text(json.dumps(plan))
    return path


MOVED = {"classifier#1": APPS[0], "classifier#2": APPS[1], "appeals-api#1": APPS[1]}


def inspect(app, name, template):
    return sh(app, f"docker inspect --format '{template}' {name}").strip()


def latest_scale_report():
    reports = sorted(REPORTS.glob("scale-*/scale-report.json"), key=lambda p: p.stat().st_mtime)
    return json.loads(reports[-1].read_text()), reports[-1].parent


def test_scale_check_mode_prints_the_plan_and_refusals_change_nothing(host):
    (INVENTORY / "host_vars").mkdir(exist_ok=True)
    (INVENTORY / "host_vars" / f"{APPS[1]}.yml").write_text("docker_data_root: /srv/docker\n")
    before = {app: images(app) for app in APPS}
    rc, out = scale("-e", f"khronika_scale_plan={plan_file('plan-move.json', MOVED)}", check=True)
    assert rc == 0, out[-4000:]
    assert f"appeals-api: moves with its data ({VOLUME}) from {APPS[0]} to {APPS[1]}" in out
    assert "classifier: CPU limit 1.0 -> 0.5; memory limit 256 MiB -> 384 MiB (no downtime)" in out
    assert f"{APPS[1]}: Docker's data root /var/lib/docker -> /srv/docker" in out
    # A host the plan buys must be in the inventory.
    bought = plan_file("plan-buy.json", MOVED | {"classifier#2": "new-small-1"})
    bought_plan = json.loads(bought.read_text())  # the planner lists the hosts it buys beside the others
    bought_plan["hosts"].append({"name": "new-small-1", "cores": 2, "memory_gib": 4, "gpus": 0})
    bought.write_text(json.dumps(bought_plan))
    rc, out = scale("-e", f"khronika_scale_plan={bought}")
    assert rc != 0 and "the plan places it on new-small-1, which the inventory does not have" in out
    assert {app: images(app) for app in APPS} == before
    assert not active_silences()


def test_scale_moves_data_and_a_data_root_and_resizes_in_place(host, appeals_before):
    started = {app: inspect(app, "classifier-1", "{{.State.StartedAt}}") for app in APPS}
    rc, out = scale("-e", f"khronika_scale_plan={plan_file('plan-move.json', MOVED)}")
    assert rc == 0, out[-6000:]
    report, folder = latest_scale_report()
    assert report["result"] == "succeeded"
    # Limits changed in place: the same containers, never restarted on app1 (app2's Docker moved).
    assert inspect(APPS[0], "classifier-1", "{{.State.StartedAt}}") == started[APPS[0]]
    for app in APPS:
        assert inspect(app, "classifier-1", "{{.HostConfig.NanoCpus}}") == str(500_000_000)
        assert inspect(app, "classifier-1", "{{.HostConfig.Memory}}") == str(384 * 1024 * 1024)
    # app2's Docker runs from the new root, with everything it had.
    assert sh(APPS[1], "docker info --format '{{.DockerRootDir}}'").strip() == "/srv/docker"
    assert report["seconds"][f"data root {APPS[1]}"] > 0
    # appeals-api moved to app2 with every appeal; the gateway sends it there; app1 keeps its old volume.
    moves = report["volume_moves"]
    assert [(m["volume"], m["from_host"], m["to_host"]) for m in moves] == [(VOLUME, APPS[0], APPS[1])]
    assert sh(APPS[1], f"sha256sum {moves[0]['path']}").split()[0] == moves[0]["sha256"]
    assert appeals_on(APPS[1]) == appeals_before
    assert "appeals-api-1" not in sh(APPS[0], "docker ps -a --format '{{.Names}}'").split()
    assert VOLUME in sh(APPS[0], "docker volume ls --format '{{.Name}}'").split()
    assert gateway("/api/appeals/health")["status"] == 200
    assert "kh-update-app2:18080" in sh(APPS[0], "cat /etc/nginx/nginx.conf")
    # The downtime: appeals-api behind its maintenance page while it moved; classifier lost no request.
    probe = report["probe"]["modules"]
    assert probe["classifier"]["failed"] == 0 and probe["classifier"]["requests"] > 10
    assert not active_silences()
    assert sh(APPS[0], "ls /etc/khronika/gateway | grep -c '^maintenance' || true").strip() == "0"
    audit = [json.loads(line) for line in sh(APPS[1], "cat /var/log/khronika/audit.log").splitlines()]
    assert audit[-1]["kind"] == "scale" and audit[-1]["result"] == "succeeded"
    assert "## Data moved" in (folder / "scale-report.md").read_text()
    # The site state records the new placement and where the newest copy of the data is; app1's is stale.
    state = site_state()
    assert state["written_by"]["kind"] == "scale" and state["modules"]["appeals-api"]["placement"] == {
        "hosts": [APPS[1]]
    }
    marks = json.loads(sh(APPS[0], "cat /etc/khronika/volumes.json"))
    assert marks[VOLUME]["state"] == "stale" and marks[VOLUME]["newest_on"] == APPS[1]
    # Each rollback's restore counted a generation up on app1; the copy on app2 is one above its source.
    assert state["volumes"] == {VOLUME: {APPS[1]: marks[VOLUME]["generation"] + 1}}
    assert "## Site state" in (folder / "scale-report.md").read_text()


def containers_started():
    """Every module container and the time it started, on both hosts."""
    return {
        app: sh(
            app,
            "docker ps -q --filter label=khronika.managed=true | xargs docker inspect --format "
            "'{{.Name}} {{.State.StartedAt}}'",
        )
        for app in APPS
    }


def test_after_the_scale_a_converge_changes_nothing_and_keeps_every_appeal(host):
    """Appeals written after the scale (on app2), then the routine deploy: 0 changed, every appeal there."""
    written = []
    for number in range(3):
        answer = gateway("/api/appeals/appeals", "POST", {"text": f"appeal {number} after the scale"})
        assert answer["status"] == 201, answer
        written.append(json.loads(answer["body"])["id"])
    started = containers_started()
    rc, out = playbook(playbook_name="deploy.yml")
    assert rc == 0, out[-6000:]
    recap = [line for line in out.splitlines() if line.startswith(APPS)]
    assert recap and all("changed=0 " in line for line in recap), recap
    assert containers_started() == started
    for appeal in written:
        answer = gateway(f"/api/appeals/appeals/{appeal}")
        assert answer["status"] == 200 and "after the scale" in answer["body"], answer


def test_a_placement_edited_back_by_hand_is_refused_before_anything_stops(host):
    """The site state edited to put appeals-api back on app1, onto its stale copy: refused, nothing stopped."""
    import yaml

    kept = STATE_FILE.read_text()
    edited = yaml.safe_load(kept)
    edited["khronika_site_state"]["modules"]["appeals-api"]["placement"] = {"hosts": [APPS[0]]}
    STATE_FILE.write_text(yaml.safe_dump(edited))
    started = containers_started()
    try:
        rc, out = playbook(playbook_name="deploy.yml")
    finally:
        STATE_FILE.write_text(kept)
    assert rc != 0
    assert f"{VOLUME} on {APPS[0]} is a stale copy" in out and f"the newest is on {APPS[1]}" in out
    assert containers_started() == started
    assert gateway("/api/appeals/health")["status"] == 200
    # The inventory without the state file (a fresh checkout, a lost AWX workspace): the hosts' copy is newer.
    STATE_FILE.unlink()
    try:
        rc, out = playbook(playbook_name="deploy.yml")
    finally:
        STATE_FILE.write_text(kept)
    assert rc != 0 and "this inventory is older than what the site runs" in out
    assert containers_started() == started


def test_a_scale_that_starves_a_module_is_rolled_back(host):
    """A plan that gives classifier 6 MiB, less than it uses: the switch fails, and the limits, the
    containers and the gateway go back to what they were."""
    before = {app: images(app) for app in APPS}
    rc, _out = scale(
        "-e", f"khronika_scale_plan={plan_file('plan-starve.json', MOVED, classifier=(0.5, 6 / 1024))}"
    )
    assert rc != 0
    report, _ = latest_scale_report()
    assert report["result"] == "rolled-back", report
    # Docker refuses a limit below what the process already uses; either way both hosts are named.
    assert all(app in report["failure"] for app in APPS), report["failure"]
    for app in APPS:
        assert inspect(app, "classifier-1", "{{.HostConfig.Memory}}") == str(384 * 1024 * 1024)
        assert inspect(app, "classifier-1", "{{.State.Health.Status}}") == "healthy"
    assert {app: images(app) for app in APPS} == before
    assert gateway("/api/classify/health")["status"] == 200
    assert gateway("/api/appeals/health")["status"] == 200
    assert not active_silences()


def khronika_status():
    """`khronika status --json` of the scenario's inventory: host -> record with its state."""
    done = subprocess.run(
        [
            str(PROJECT / ".venv" / "bin" / "khronika"),
            "status",
            "-i",
            str(INVENTORY),
            "--json",
            "-l",
            "khronika_platform",
        ],
        env=update_command()[1],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    return json.loads(done.stdout)


def test_a_controller_killed_mid_switch_leaves_a_lapsing_silence_and_a_rerun_finishes(host):
    """The controller dies in the middle of the switch (SIGKILL of ansible-playbook and its workers): the
    silence, held by a 30 s lease, lapses by itself; `khronika status` says the hosts were switching and
    what runs; the same update run again finishes it."""
    extra = ("-e", "khronika_release_version=1.0.0", "-e", "khronika_update_allow_downgrade=true")
    rc, out = playbook_killing(
        None, "Begin step classifier (rolling, step 0)", *extra, "-e", "khronika_update_silence_lease=30s"
    )
    assert rc != 0
    assert active_silences(), "the run's silence should be active right after the controller died"
    deadline = time.monotonic() + 120
    while active_silences() and time.monotonic() < deadline:
        time.sleep(3)
    assert not active_silences()
    status = khronika_status()
    assert {status[app]["state"] for app in APPS} <= {"switching", "drifted"}, status
    assert any(
        status[app]["state"] == "switching" and "has not finished" in status[app]["why"][0] for app in APPS
    )
    assert not subprocess.run(
        ["pgrep", "-f", "khronika_ops update (probe|lease)"], capture_output=True, check=False
    ).stdout
    rc, out = playbook(*extra)
    assert rc == 0, out[-6000:]
    assert all(record(app)["version"] == "1.0.0" and "switching" not in record(app) for app in APPS)
    status = khronika_status()
    assert {status[app]["state"] for app in APPS} == {"ok"}, status
    assert (
        gateway("/api/appeals/health")["status"] == 200 and gateway("/api/classify/health")["status"] == 200
    )


def test_a_host_lost_in_the_middle_of_a_batch_is_named_and_its_batch_rolls_back(host):
    """app2 is killed while the batch switches: the run ends with the report naming it, app1 back on
    the release it ran (its batch failed), and the play failing."""
    rc, out = playbook_killing(
        APPS[1], "Begin step classifier (rolling, step 0)", "-e", "khronika_release_version=1.1.0"
    )
    assert rc != 0
    report, _ = latest_report()
    hosts = {h["host"]: h for h in report["hosts"]}
    assert hosts[APPS[1]]["result"] == "unreachable" and hosts[APPS[1]]["on_version"] is None
    # app1's own switch passed; its batch lost app2, so it goes back to 1.0.0 (rollback scope batch).
    assert hosts[APPS[0]]["result"] == "rolled-back" and record(APPS[0])["version"] == "1.0.0"
    assert "rolled back with its batch" in hosts[APPS[0]]["failure"] and APPS[1] in hosts[APPS[0]]["failure"]
    assert report["result"] == "failed"
    assert f"{APPS[1]} unreachable" in out
    assert gateway("/api/classify/health")["status"] == 200
    assert not active_silences()


def playbook_killing(victim, marker, *extra):
    """Like playbook(), but kills the container `victim` as soon as `marker` appears in the output; no
    victim: the controller itself (ansible-playbook and its workers, SIGKILL)."""
    import signal
    import threading

    command, env = update_command(*extra)
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    timer = threading.Timer(900, process.kill)
    timer.start()
    lines = []
    killed = False
    try:
        for line in process.stdout:
            lines.append(line)
            if not killed and marker in line:
                if victim is None:
                    os.killpg(process.pid, signal.SIGKILL)
                else:
                    subprocess.run(["docker", "kill", victim], check=True, capture_output=True, timeout=60)
                killed = True
        process.wait()
    finally:
        timer.cancel()
    assert killed, "the marker never appeared: " + "".join(lines)[-3000:]
    return process.returncode, "".join(lines)
