"""The README's first command, end to end: a shortened lab (2 hosts, 30 s of traffic), checked
from outside, brought up a second time with nothing to change, and taken down leaving nothing.

Runs only with KHRONIKA_LAB_E2E=1 (scripts/test.sh's `lab` stage): it takes minutes and owns the
machine's lab (it takes down any lab that exists before it starts).
"""

from __future__ import annotations

import base64
import json
import os
import re
import shlex
import ssl
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import yaml

# The lab's channel runs its playbooks as `khronika lab up` runs the lab's (Mitogen's strategy).
from khronika_ops.lab import STRATEGY as LAB_STRATEGY

REPO = Path(__file__).resolve().parents[2]
KHRONIKA = str(REPO / ".venv" / "bin" / "khronika")
HOSTS = int(os.environ.get("KHRONIKA_LAB_E2E_HOSTS", "2"))
TRAFFIC = os.environ.get("KHRONIKA_LAB_E2E_TRAFFIC_SECONDS", "30")

pytestmark = pytest.mark.skipif(
    os.environ.get("KHRONIKA_LAB_E2E") != "1", reason="the lab end to end: KHRONIKA_LAB_E2E=1"
)


def _run(argv: list[str], log: Path, timeout: int = 2400) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=timeout, check=False)
    log.write_text(done.stdout + done.stderr)
    print(done.stdout[-6000:])
    return done


def _summary() -> dict:
    newest = sorted((REPO / "lab" / "runs").glob("*/summary.json"))[-1]
    return json.loads(newest.read_text())


@pytest.fixture(scope="module")
def bystander():
    """A container that is not the lab's: `lab down` must leave it alone."""
    name = "kh-e2e-bystander"
    subprocess.run(["docker", "rm", "-f", name], capture_output=True, check=False)
    subprocess.run(
        [
            "docker",
            "run",
            "-d",
            "--name",
            name,
            "--label",
            "khronika.test=1",
            "khronika/debian-systemd:bookworm",
            "sleep",
            "3600",
        ],
        check=True,
        capture_output=True,
    )
    yield name
    subprocess.run(["docker", "rm", "-f", name], capture_output=True, check=False)


@pytest.fixture(scope="module")
def first_run(tmp_path_factory, bystander):
    subprocess.run([KHRONIKA, "lab", "down"], cwd=REPO, capture_output=True, check=False)
    log = tmp_path_factory.mktemp("lab") / "first.log"
    done = _run([str(REPO / "scripts" / "lab.sh"), "--hosts", str(HOSTS), "--traffic-seconds", TRAFFIC], log)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    return done.stdout, _summary()


def _ssh(host: str, *command: str) -> str:
    address = yaml.safe_load((REPO / "inventories" / "lab" / "hosts.yml").read_text())
    found = {}
    for group in address["all"]["children"]["khronika"]["children"].values():
        found.update(group.get("hosts") or {})
    ssh = REPO / "lab" / "state" / "ssh"
    return subprocess.run(
        [
            "ssh",
            "-i",
            str(ssh / "id_ed25519"),
            "-o",
            f"UserKnownHostsFile={ssh / 'known_hosts'}",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            "BatchMode=yes",
            f"deploy@{found[host]['ansible_host']}",
            shlex.join(command),  # ssh hands the remote shell one string
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout


def _call(url: str, auth: tuple[str, str] | None) -> tuple[int, str]:
    """A request from this machine as an operator would make it: TLS verified against the monitoring CA."""
    context = ssl.create_default_context(
        cafile=str(REPO / "inventories" / "lab" / "files" / "monitoring-tls" / "ca.crt")
    )
    context.check_hostname = False  # asked by address; the certificate carries it as an IP SAN
    request = urllib.request.Request(url)
    if auth:
        request.add_header(
            "Authorization", "Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        )
    try:
        with urllib.request.urlopen(request, context=context, timeout=20) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def _admin(summary: dict) -> tuple[str, str]:
    return "admin", yaml.safe_load(Path(summary["credentials"]).read_text())[
        "vault_monitoring_admin_password"
    ]


def _api(summary: dict, endpoint: str, path: str) -> dict:
    status, text = _call(summary["endpoints"][endpoint].split()[0] + path, _admin(summary))
    assert status == 200, (path, status, text[:300])
    return json.loads(text)


def _prometheus(summary: dict, query: str) -> list[dict]:
    return _api(summary, "prometheus", f"/api/v1/query?query={urllib.parse.quote(query)}")["data"]["result"]


def test_every_stage_ran_and_the_summary_says_where_things_are(first_run):
    stdout, summary = first_run
    assert summary["ok"] is True
    assert [s["name"] for s in summary["stages"]] == [
        "hosts",
        "registry",
        "site",
        "traffic",
        "update",
        "history",
        "plan",
    ]
    assert summary["playbooks"]["site"]["failed"] == 0 and summary["playbooks"]["site"]["changed"] > 0
    assert len(summary["hosts"]) == HOSTS
    for word in (
        "lab ready",
        "prometheus",
        "alertmanager",
        "gateway",
        "registry",
        "credentials",
        "capacity-plan.html",
    ):
        assert word in stdout, word
    assert "slowest:" in stdout and "log: " in stdout  # playbooks summarised, full logs kept


def test_the_hosts_are_real_ssh_hosts_running_the_updated_release(first_run):
    images = _ssh("lab-app1", "sudo", "docker", "ps", "--format", "{{.Image}} {{.Status}}")
    assert "classifier" in images and "appeals-api" in images
    assert "(healthy)" in images
    assert json.loads(_ssh("lab-app1", "cat", "/etc/khronika/release.json"))["version"] == "1.1.0"
    sshd = _ssh("lab-app1", "sudo", "sshd", "-T")
    assert "passwordauthentication no" in sshd and "permitrootlogin no" in sshd


def test_prometheus_holds_the_labs_real_load(first_run):
    _stdout, summary = first_run
    served = _prometheus(summary, "sum by (module) (increase(khronika_module_requests_total[1h]))")
    by_module = {r["metric"]["module"]: float(r["value"][1]) for r in served}
    assert by_module.get("appeals-api", 0) > 10 and by_module.get("classifier", 0) > 10, by_module
    # The lab's hosts only: Debian's package scrapes localhost:9100 until the role's config replaces it,
    # and that old series stays visible for Prometheus' 5-minute staleness window.
    up = _prometheus(summary, 'up{job="node",instance=~"lab-.+"}')
    assert len(up) == HOSTS and all(r["value"][1] == "1" for r in up)
    # Over the run, not at this instant: the update has just replaced the modules' containers, and a
    # new container's CPU series appears only from the collector's second reading of it (up to two
    # collector intervals and a scrape after its start), while the old one went stale when it stopped.
    containers = _prometheus(summary, "last_over_time(khronika_container_cpu_cores[15m])")
    # Containers are named <module>-<replica> by the platform role.
    modules = {re.sub(r"-[0-9]+$", "", r["metric"].get("container", "")) for r in containers}
    assert modules >= {"classifier", "appeals-api"}, modules


def test_the_monitoring_roles_targets_rules_and_exporters(first_run):
    """What the monitoring scenario checks, on the lab's real hosts (that scenario is not in the test
    command's default run: docs/testing.md)."""
    _stdout, summary = first_run
    targets = _api(summary, "prometheus", "/api/v1/targets")["data"]["activeTargets"]
    health = {(t["labels"]["job"], t["labels"]["instance"]): t["health"] for t in targets}
    jobs = {job for job, _ in health}
    assert {"prometheus", "alertmanager", "node", "khronika-modules"} <= jobs, health
    assert set(health.values()) == {"up"}, [t.get("lastError") for t in targets]
    groups = _api(summary, "prometheus", "/api/v1/rules")["data"]["groups"]
    assert {"khronika-recording", "khronika-hosts", "khronika-modules"} <= {g["name"] for g in groups}
    rules = {rule["name"]: rule for group in groups for rule in group["rules"]}
    assert rules["KhronikaSystemdUnitFailed"]["health"] in ("ok", "unknown")
    recorded = _prometheus(summary, "khronika_module_requests_per_second")
    assert {r["metric"]["module"] for r in recorded} == {"appeals-api", "classifier"}, recorded
    cpu = _prometheus(summary, "instance:khronika_node_cpu_utilisation:ratio")
    assert len(cpu) >= HOSTS, cpu
    # Exporters and the servers refuse anonymous or wrong credentials, and speak only TLS.
    node = summary["hosts"][-1]["address"]
    assert _call(f"https://{node}:9100/metrics", None)[0] == 401
    assert _call(f"https://{node}:9100/metrics", ("prometheus", "wrong"))[0] == 401
    prometheus = summary["endpoints"]["prometheus"].split()[0]
    assert _call(f"{prometheus}/api/v1/targets", None)[0] == 401
    with pytest.raises((urllib.error.URLError, ConnectionError, OSError)):
        urllib.request.urlopen(f"http://{node}:9100/metrics", timeout=5)
    # The update silenced its hosts in the lab's Alertmanager and lifted the silence at its end.
    silences = _api(summary, "alertmanager", "/api/v2/silences")
    assert silences and all(s["status"]["state"] == "expired" for s in silences), silences


def test_the_update_and_the_plan_reports_describe_the_lab(first_run):
    _stdout, summary = first_run
    update = [Path(r) for r in summary["reports"] if "/update-1.1.0-" in r]
    assert update and "1.0.0" in update[0].read_text() and "1.1.0" in update[0].read_text()
    plan = json.loads((REPO / "lab" / "reports" / "capacity-plan.json").read_text())
    text = json.dumps(plan)
    assert "lab-app1" in text and "appeals-api" in text
    # The lab runs as placed, with no pressure: the plan moves nothing (a move must buy something).
    assert not [change for change in plan["changes"] if ": move from " in change], plan["changes"]
    # Its disks are the hosts' filesystems, not the files the container runtime bind-mounts.
    mounts = {disk["extra"].get("mount") for host in plan["hosts"] for disk in host["disk"]}
    assert not mounts & {"/etc/hosts", "/etc/hostname", "/etc/resolv.conf"}, mounts


def test_the_plan_forecasts_two_weeks_of_replayed_history_and_a_browser_shows_it(first_run, tmp_path):
    """The history stage gave the lab's Prometheus two weeks of real traces: every series the plan reads
    is sized on them (none short of data), the report says which were replayed, and Chromium lays out
    one forecast plot per figure, each drawn, each inside the page."""
    _stdout, summary = first_run
    [history] = [s for s in summary["stages"] if s["name"] == "history"]
    assert "series replayed from NAB traces" in history["detail"], history
    plan = json.loads((REPO / "lab" / "reports" / "capacity-plan.json").read_text())
    replayed = plan["replayed_series"]
    assert len(replayed) >= 0.9 * plan["series_read"], (len(replayed), plan["series_read"])
    assert all(trace.startswith("nab/") or trace == "size" for trace in replayed.values())
    # Only what truly has no history is short of data: nothing the stage replayed.
    assert not set(plan["insufficient_series"]) & set(replayed), plan["insufficient_series"]
    figures = [f for m in plan["modules"] for f in m["figures"]]
    from khronika_ops.planner.plan import Plan
    from khronika_ops.planner.report import replayed_traces

    marked = Plan.model_construct(replayed_series=replayed)
    assert figures and all(
        f["recommended"] is not None and replayed_traces(marked, f["series"]) for f in figures
    )
    for figure in figures:  # two weeks read (at 5-minute steps), with the daily and weekly curves fitted
        spans = re.findall(r"(\d+) points over ([\d.]+) d", figure["reason"])
        assert spans and float(spans[0][1]) >= 13.5, figure["reason"]
    # Disks: each platform host's filesystem fills along its replayed writes, sized to the horizon.
    disks = [d for h in plan["hosts"] for d in h["disk"] if d["series"] in replayed]
    assert disks and all("trend: rising" in d["reason"] for d in disks), [d["reason"] for d in disks]
    report = (REPO / "lab" / "reports" / "capacity-plan.md").read_text()
    assert "## Replayed history" in report and f"- Replayed history: {len(replayed)} of the" in report
    page = REPO / "lab" / "reports" / "capacity-plan.html"
    html = page.read_text()
    from planner import browser

    probe = browser.probe(page, tmp_path)
    plots = [item for item in probe["seen"] if item["kind"] == "plot"]
    assert len(plots) == html.count("<figure>") >= len(figures)
    for item in probe["seen"]:
        assert item["shown"] and item["width"] > 50 and item["height"] > 20, item
        assert item["left"] >= 0 and item["right"] <= probe["width"], item
    assert all(item["marks"] > 10 for item in plots)
    assert sum("history replayed from nab/" in item["heading"] for item in plots) >= len(figures)


def test_a_support_bundle_of_the_lab_holds_none_of_its_secrets(first_run, tmp_path):
    """`khronika support bundle` on the lab: every generated secret (the vault's values) stays out, the
    firing alerts come from the lab's Alertmanager, the hosts run 1.1.0, the request draft is complete."""
    _stdout, summary = first_run
    secrets = [
        v for v in yaml.safe_load(Path(summary["credentials"]).read_text()).values() if isinstance(v, str)
    ]
    assert len(secrets) >= 3
    done = _run(
        [
            KHRONIKA,
            "support",
            "bundle",
            "-i",
            str(REPO / "inventories" / "lab"),
            "--vault-password-file",
            str(REPO / "lab" / "state" / "vault-pass"),
            "--category",
            "incident",
            "--describe",
            "lab check",
            "-o",
            str(tmp_path / "support"),
        ],
        tmp_path / "support.log",
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-4000:]
    [bundle] = (tmp_path / "support").glob("khronika-support-*.tar.gz")
    import tarfile

    with tarfile.open(bundle) as tar:
        members = {m.name.split("/", 1)[1]: tar.extractfile(m).read() for m in tar if m.isfile()}
    raw = b"\n".join(members.values())
    assert not [s for s in secrets if s.encode() in raw]
    assert b"PRIVATE KEY-----\n" not in raw.replace(b"-----<redacted> PRIVATE KEY-----", b"")
    text = members["summary.md"].decode()
    assert "| lab-app1 | 1.1.0 |" in text and "## Firing alerts" in text and "not read" not in text
    alerts = json.loads(members["controller/alerts.json"])
    assert alerts["source"].startswith("https://") and isinstance(alerts["alerts"], list)
    request = json.loads(members["request.json"])
    assert request["environment"]["releases"]["lab-app1"] == "1.1.0" and request["category"] == "incident"
    assert any(name.startswith("controller/reports/update-1.1.0-") for name in members)


def test_a_second_run_changes_nothing(first_run, tmp_path):
    done = _run(
        [str(REPO / "scripts" / "lab.sh"), "--hosts", str(HOSTS), "--traffic-seconds", "0", "--no-plan"],
        tmp_path / "second.log",
    )
    assert done.returncode == 0, done.stdout[-4000:]
    summary = _summary()
    assert summary["playbooks"]["site"]["changed"] == 0, summary["playbooks"]["site"]
    assert "already on 1.1.0" in next(s["detail"] for s in summary["stages"] if s["name"] == "update")
    assert "running" in next(s["detail"] for s in summary["stages"] if s["name"] == "hosts")


class Appeals:
    """Appeals sent through the lab's gateway in the background, each answer kept with its time."""

    def __init__(self, summary: dict) -> None:
        import threading

        self.url = summary["endpoints"]["gateway"].split()[0].rstrip("/") + "/api/appeals/appeals"
        self.context = ssl.create_default_context()
        self.context.check_hostname = False
        self.context.verify_mode = ssl.CERT_NONE  # the gateway's own certificate; its content is not the test
        self.answers: list[tuple[float, int, str]] = []  # (time, status, appeal id)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._send, daemon=True)
        self.thread.start()

    def _send(self) -> None:
        import time

        while not self.stop.is_set():
            request = urllib.request.Request(
                self.url,
                data=json.dumps({"text": "appeal sent during the channel's run"}).encode(),
                headers={"Content-Type": "application/json"},
                method="POST",
            )
            try:
                with urllib.request.urlopen(request, context=self.context, timeout=10) as answer:
                    status, body = answer.status, json.loads(answer.read() or b"{}")
            except urllib.error.HTTPError as error:
                status, body = error.code, {}
            except (OSError, ValueError):
                status, body = 0, {}
            self.answers.append((time.time(), status, str(body.get("id", ""))))
            time.sleep(0.15)

    def close(self) -> None:
        self.stop.set()
        self.thread.join(15)


def _channel(*argv: str, log: Path, timeout: int = 1200) -> subprocess.CompletedProcess[str]:
    return _run(
        [
            KHRONIKA,
            *argv,
            "-i",
            str(REPO / "inventories" / "lab"),
            "--vault-password-file",
            str(REPO / "lab" / "state" / "vault-pass"),
        ],
        log,
        timeout=timeout,
    )


def _publish(version: str, log: Path) -> float:
    import time

    done = subprocess.run(
        [
            KHRONIKA,
            "release",
            "publish",
            str(REPO / "inventories" / "lab" / "files" / "releases" / f"{version}.yml"),
            "--registry",
            "127.0.0.1:5050",
            "--registry-user",
            "khronika-lab",
            "--registry-ca",
            str(REPO / "inventories" / "lab" / "files" / "registry-ca.crt"),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
        env={
            **os.environ,
            "KHRONIKA_REGISTRY_PASSWORD": (REPO / "lab" / "state" / "registry" / "password")
            .read_text()
            .strip(),
        },
    )
    log.write_text(done.stdout + done.stderr)
    assert done.returncode == 0 and "published: registry://" in done.stdout, done.stdout + done.stderr
    return time.time()


def _halt_alerts(summary: dict) -> list[dict]:
    alerts = _api(summary, "alertmanager", "/api/v2/alerts?active=true")
    return [a for a in alerts if a["labels"].get("alertname") == "KhronikaUpdateChannelHalted"]


def test_the_release_channel_rolls_a_flaky_release_back_late_and_applies_the_fix(first_run, tmp_path):
    """The channel on the lab (issue: mass automatic update): 1.5.0 passes every gate at its switch, then
    answers 500 to every third appeal; the canary's soak sees it in the lab's Prometheus and rolls it back
    with the pre-update copy restored, the appeals accepted meanwhile kept aside; halted, the alert fires
    until resume; the fixed 1.5.1 is then applied."""
    import time

    _stdout, summary = first_run
    nothing = _channel("update", "channel", "check", log=tmp_path / "check.log")
    assert nothing.returncode == 0 and "decision: nothing" in nothing.stdout, nothing.stdout
    appeals = Appeals(summary)
    try:
        time.sleep(5)  # a few appeals accepted before the release is published
        published = _publish("1.5.0", tmp_path / "publish-1.5.0.log")
        flaky = _channel("update", "auto", "--strategy", LAB_STRATEGY, log=tmp_path / "auto-1.5.0.log")
        halted_at = time.time()
        assert flaky.returncode == 1, flaky.stdout[-4000:] + flaky.stderr[-2000:]
        state = json.loads(
            (REPO / "inventories" / "lab" / ".khronika" / "channel" / "state.json").read_text()
        )
        assert state["halted"]["release"] == "1.5.0"
        reason = state["halted"]["reason"]
        assert "appeals-api: " in reason and "answered 5xx since the switch" in reason, reason
        assert "Rolled back to 1.1.0" in reason and "set-aside" in reason, reason
        stage = state["last_rollout"]["stages"][0]
        assert stage["state"] == "rolled-back" and stage["hosts"] == ["lab-app1"]
        assert json.loads(_ssh("lab-app1", "cat", "/etc/khronika/release.json"))["version"] == "1.1.0"
        # The appeals accepted while 1.5.0 served: not in the restored volume, every one in the copy set aside.
        # The copy is named before the module stops, so an appeal answered before its stamp is in it.
        switched = dt_seconds(stage["switched_at"])
        aside = stage["note"].split("set aside: ", 1)[1].split(";")[0].split(":", 1)[1].strip()
        copied = dt_seconds(aside.rsplit("-set-aside-", 1)[1].removesuffix(".tar.gz"))
        assert switched < copied < halted_at, (stage, aside)
        accepted = [(t, i) for t, status, i in appeals.answers if status == 201 and i and t > switched + 2]
        during = [i for t, i in accepted if t < copied]
        assert during, appeals.answers[-20:]
        listing = _ssh("lab-app1", "sudo", "tar", "-tzf", aside)
        missing = [i for i in during if f"{i}.json" not in listing]
        assert not missing, (missing[:5], len(during), listing[:500])
        # Nothing accepted was lost: an appeal answered after the stamp is in the copy or served again.
        after = [i for t, i in accepted if t >= copied and f"{i}.json" not in listing]
        assert after, appeals.answers[-20:]  # the restored release accepted appeals before the halt
        lost = [i for i in after if _gateway_get(summary, i)[0] != 200]
        assert not lost, lost[:5]
        before = [i for t, status, i in appeals.answers if status == 201 and i and t < published]
        assert before
        status, _ = _gateway_get(summary, before[-1])
        assert status == 200
        assert _gateway_get(summary, during[-1])[0] == 404  # restored: kept aside, not served
        firing = _halt_alerts(summary)
        assert len(firing) == 1 and firing[0]["labels"]["release"] == "1.5.0", firing
        status_text = _channel("update", "channel", "status", log=tmp_path / "status.log").stdout
        assert "HALTED:" in status_text and "lab-app1" in status_text and "1.5.0: " in status_text
        # Halted: the next run does nothing; resume lifts it and resolves the alert.
        halted = _channel("update", "auto", "--strategy", LAB_STRATEGY, log=tmp_path / "auto-halted.log")
        assert halted.returncode == 0, halted.stdout[-2000:]
        assert _channel("update", "resume", log=tmp_path / "resume.log").returncode == 0
        assert _halt_alerts(summary) == []
        published = _publish("1.5.1", tmp_path / "publish-1.5.1.log")
        fixed = _channel("update", "auto", "--strategy", LAB_STRATEGY, log=tmp_path / "auto-1.5.1.log")
        applied = time.time()
        assert fixed.returncode == 0, fixed.stdout[-4000:] + fixed.stderr[-2000:]
        assert json.loads(_ssh("lab-app1", "cat", "/etc/khronika/release.json"))["version"] == "1.5.1"
        state = json.loads(
            (REPO / "inventories" / "lab" / ".khronika" / "channel" / "state.json").read_text()
        )
        assert state["runs"][-1]["result"] == "applied" and state["halted"] is None
        print(
            f"1.5.0 on the canary until rolled back: {halted_at - switched:.0f} s; "
            f"1.5.1 from publication to the whole site: {applied - published:.0f} s"
        )
    finally:
        appeals.close()


def dt_seconds(text: str) -> float:
    import datetime as dt

    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _gateway_get(summary: dict, appeal: str) -> tuple[int, str]:
    url = summary["endpoints"]["gateway"].split()[0].rstrip("/") + f"/api/appeals/appeals/{appeal}"
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        with urllib.request.urlopen(url, context=context, timeout=10) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, ""
    except OSError as error:  # no answer: the appeal reads as not served, with the reason
        return 0, str(error)


def test_status_then_down_leaves_nothing_but_what_was_not_the_labs(first_run, bystander):
    status = subprocess.run(
        [KHRONIKA, "lab", "status"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout
    # The release channel's test applied 1.5.1 last: the site state and the host's own record say so.
    assert "lab-mon1" in status and "release in the lab's inventory: 1.5.1" in status
    assert "lab-app1" in status and status.count("1.5.1") >= 2
    down = subprocess.run([KHRONIKA, "lab", "down"], cwd=REPO, capture_output=True, text=True, check=False)
    assert down.returncode == 0, down.stdout + down.stderr
    for kind in ("ps -a", "volume ls", "network ls"):
        left = subprocess.run(
            ["docker", *kind.split(), "-q", "--filter", "label=khronika.lab=1"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        assert left == [], kind
    assert not (REPO / "inventories" / "lab").exists() and not (REPO / "lab").exists()
    running = subprocess.run(
        ["docker", "inspect", "--format", "{{.State.Running}}", bystander],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert running == "true"
    assert (
        subprocess.run(
            ["curl", "-sk", "https://127.0.0.1:5050/v2/"], capture_output=True, check=False
        ).returncode
        != 0
    )
