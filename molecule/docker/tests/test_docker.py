"""Verify role docker: the engine, the merged daemon.json as dockerd sees it, registry login and pulls."""

import json
import os

testinfra_hosts = ["ansible://khronika"]

IMAGE = os.environ.get("KHRONIKA_TEST_IMAGE", "registry.test:5000/khronika-test/busybox:1.0")
REGISTRY = IMAGE.split("/", 1)[0]


def docker_info(host):
    return json.loads(host.check_output("docker info --format '{{json .}}'"))


def test_engine_running_and_held(host):
    assert host.package("docker.io").is_installed
    assert host.service("docker").is_running
    assert host.service("docker").is_enabled
    assert "docker.io" in host.check_output("apt-mark showhold")


def test_daemon_json_merges_all_layers(host):
    config = json.loads(host.file("/etc/docker/daemon.json").content_string)
    hostname = host.check_output("hostname")
    # role settings
    assert config["log-driver"] == "json-file"
    assert config["log-opts"]["max-size"] == "20m"
    assert config["live-restore"] is True
    # the contribution left on the host by another role
    assert config["runtimes"] == {"khronika-verify": {"path": "runc"}}
    # group layer (the khronika_gpu group wins for deb13 by Ansible's group precedence)
    pool = "10.202.0.0/16" if hostname.endswith("deb13") else "10.201.0.0/16"
    assert config["default-address-pools"] == [{"base": pool, "size": 24}]
    assert config["bip"] == ("10.200.2.1/24" if hostname.endswith("deb13") else "10.200.1.1/24")
    # host layer
    assert config["log-opts"]["max-file"] == ("3" if hostname.endswith("deb13") else "5")
    # contribution file is kept for later runs
    assert host.file("/etc/khronika/docker-daemon.d/verify-runtime.json").exists


def test_dockerd_runs_with_the_merged_config(host):
    info = docker_info(host)
    assert "khronika-verify" in info["Runtimes"]
    assert info["LiveRestoreEnabled"] is True
    assert info["LoggingDriver"] == "json-file"
    assert "khronika.site=molecule" in info["Labels"]
    bridge = host.check_output("docker network inspect bridge --format '{{(index .IPAM.Config 0).Subnet}}'")
    assert bridge.startswith("10.200.")
    # a new network is carved out of the merged address pool
    host.run("docker network rm kh-verify-net")
    host.check_output("docker network create kh-verify-net")
    subnet = host.check_output(
        "docker network inspect kh-verify-net --format '{{(index .IPAM.Config 0).Subnet}}'"
    )
    host.run("docker network rm kh-verify-net")
    hostname = host.check_output("hostname")
    assert subnet.startswith("10.202." if hostname.endswith("deb13") else "10.201.")


def test_registry_ca_trusted_and_logged_in(host):
    assert host.file(f"/etc/docker/certs.d/{REGISTRY}/ca.crt").contains("BEGIN CERTIFICATE")
    auths = json.loads(host.file("/root/.docker/config.json").content_string)["auths"]
    assert REGISTRY in auths


def test_image_pulled_and_nested_container_serves(host):
    assert host.run(f"docker image inspect {IMAGE}").rc == 0
    state = host.check_output("docker inspect -f '{{.State.Running}} {{.Config.Image}}' khronika-web")
    assert state == f"true {IMAGE}"
    page = host.check_output(
        "python3 -c \"import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:8080/').read().decode())\""
    )
    assert "khronika test image" in page
    assert host.check_output(f"docker run --rm {IMAGE} echo nested-ok") == "nested-ok"


def test_log_rotation_applies_to_containers(host):
    log_config = json.loads(
        host.check_output("docker inspect -f '{{json .HostConfig.LogConfig}}' khronika-web")
    )
    assert log_config["Type"] == "json-file"


def test_operator_in_docker_group(host):
    assert "docker" in host.user("khronika-operator").groups


def test_service_environment_drop_in(host):
    dropin = host.file("/etc/systemd/system/docker.service.d/khronika-environment.conf")
    assert dropin.contains('^Environment="DOCKER_ALLOW_IPV6_ON_IPV4_INTERFACE=1"$')
    env = host.check_output("systemctl show docker --property Environment")
    assert "DOCKER_ALLOW_IPV6_ON_IPV4_INTERFACE=1" in env
