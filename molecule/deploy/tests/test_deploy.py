"""Verify playbook deploy.yml: modules from the catalog at the release's digests, gateway, removal."""

import json
import os
from pathlib import Path

import pytest
import yaml

testinfra_hosts = ["ansible://khronika"]

RELEASE = yaml.safe_load(
    (Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "releases" / "1.1.0.yml").read_text(encoding="utf-8")
)
DIGESTS = {m["name"]: m["image"].split("@")[1] for m in RELEASE["modules"]}
EXPECTED = {
    "kh-deploy-app1": {"classifier-1", "appeals-api-1"},
    "kh-deploy-app2": {"classifier-1"},
}


def hostname(host):
    return host.check_output("hostname")


def inspect(host, name):
    return json.loads(host.check_output(f"docker inspect {name}"))[0]


def fetch(host, path, method="GET", body=None):
    """An HTTPS request to the gateway on kh-deploy-app1, made from the host under test."""
    script = (
        "import json, ssl, sys, urllib.request;"
        "ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE;"
        "data = sys.argv[3].encode() if sys.argv[3] else None;"
        "req = urllib.request.Request(sys.argv[1], data=data, method=sys.argv[2],"
        " headers={'Content-Type': 'application/json'});"
        "resp = urllib.request.urlopen(req, context=ctx, timeout=10);"
        "print(json.dumps({'status': resp.status, 'body': resp.read().decode()}))"
    )
    body_arg = json.dumps(body) if body is not None else ""
    out = host.check_output(f"python3 -c {script!r} https://kh-deploy-app1{path} {method} {body_arg!r}")
    return json.loads(out)


def test_modules_run_healthy_from_the_release_digests(host):
    names = EXPECTED[hostname(host)]
    running = set(
        host.check_output("docker ps --filter label=khronika.managed=true --format '{{.Names}}'").split()
    )
    assert running == names
    for name in names:
        info = inspect(host, name)
        assert info["State"]["Health"]["Status"] == "healthy", name
        module = info["Config"]["Labels"]["khronika.module"]
        assert info["Config"]["Image"].endswith("@" + DIGESTS[module]), info["Config"]["Image"]


def test_dependency_order_and_limits(host):
    if hostname(host) != "kh-deploy-app1":
        pytest.skip("appeals-api runs on app1 only")
    classifier = inspect(host, "classifier-1")
    appeals = inspect(host, "appeals-api-1")
    assert classifier["State"]["StartedAt"] < appeals["State"]["StartedAt"]
    assert appeals["HostConfig"]["Memory"] == 256 * 1024**2
    assert appeals["HostConfig"]["NanoCpus"] == 1_000_000_000
    assert any(e.startswith("APPEALS_API_TOKEN=") and len(e) > 30 for e in appeals["Config"]["Env"])


def test_release_recorded(host):
    record = json.loads(host.file("/etc/khronika/release.json").content_string)
    assert record["version"] == "1.1.0"
    assert record["kind"] == RELEASE["kind"]
    fact = json.loads(host.file("/etc/ansible/facts.d/khronika_release.fact").content_string)
    assert fact == record


def test_disabled_module_removed_volume_kept(host):
    if hostname(host) != "kh-deploy-app2":
        pytest.skip("notes ran on app2")
    assert host.run("docker inspect notes-1").rc != 0
    assert host.run("docker volume inspect khronika-notes-data").rc == 0


def test_appeal_through_the_gateway_is_stored_on_the_volume(host):
    health = fetch(host, "/api/appeals/health")
    assert health["status"] == 200
    created = fetch(host, "/api/appeals/appeals", "POST", {"subject": "test", "text": "Яма на дороге"})
    assert created["status"] in (200, 201)
    appeal_id = json.loads(created["body"])["id"]
    if hostname(host) == "kh-deploy-app1":
        files = host.check_output("docker exec appeals-api-1 ls /var/lib/appeals/appeals")
        assert appeal_id in files
        mountpoint = host.check_output(
            "docker volume inspect khronika-appeals-api-data --format '{{.Mountpoint}}'"
        )
        assert appeal_id in host.check_output(f"ls {mountpoint}/appeals")


def test_classifier_through_the_gateway(host):
    result = fetch(host, "/api/classify/classify", "POST", {"text": "Прошу отремонтировать дорогу"})
    assert result["status"] == 200


def test_maintenance_flag_gives_503_with_retry_after(host):
    if hostname(host) != "kh-deploy-app1":
        pytest.skip("the gateway runs on app1")
    host.check_output("touch /etc/khronika/gateway/maintenance.on")
    try:
        out = host.run(
            'python3 -c "import ssl, urllib.request, urllib.error;'
            "ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE\n"
            "try:\n urllib.request.urlopen('https://127.0.0.1/api/appeals/health', context=ctx)\n"
            "except urllib.error.HTTPError as e:\n print(e.code, e.headers['Retry-After'])\""
        )
        assert out.stdout.split() == ["503", "600"]
    finally:
        host.check_output("rm -f /etc/khronika/gateway/maintenance.on")
    assert fetch(host, "/api/appeals/health")["status"] == 200


def test_khronika_status_reads_every_host(host):
    import subprocess

    inventory = os.environ.get("MOLECULE_INVENTORY_FILE") or str(
        Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "inventory" / "ansible_inventory.yml"
    )
    khronika = (
        Path(os.environ.get("VIRTUAL_ENV", Path(__file__).resolve().parents[3] / ".venv"))
        / "bin"
        / "khronika"
    )
    proc = subprocess.run(
        [str(khronika), "status", "-i", inventory, "--json"], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr + proc.stdout
    records = json.loads(proc.stdout)
    assert set(records) == {"kh-deploy-app1", "kh-deploy-app2"}
    assert {r["version"] for r in records.values()} == {"1.1.0"}
