"""The health gate's verdict on a started container (khronika_ops.platform.health); the real crash-once
container is in test_platform_samples.py."""

from __future__ import annotations

from khronika_ops.platform.health import container_problems, gate


def _info(*, running=True, health="healthy", restarts=0, oom=False, status="running", code=0, output="ok"):
    state = {"Running": running, "Status": status, "ExitCode": code, "OOMKilled": oom}
    if health is not None:
        state["Health"] = {"Status": health, "Log": [{"Output": output}]}
    return {"State": state, "RestartCount": restarts}


def test_healthy_and_never_restarted_passes():
    assert container_problems(_info(), name="api-1", host="h1", started_here=True) == []
    assert container_problems(_info(health=None), name="api-1", host="h1", started_here=True) == []


def test_unhealthy_not_running_and_missing_are_named():
    [unhealthy] = container_problems(
        _info(health="unhealthy", output="HTTP 503"), name="api-1", host="h1", started_here=True
    )
    assert (
        unhealthy
        == "api-1 on h1 is unhealthy; last health check (its end): HTTP 503. See docker logs api-1 on h1."
    )
    stopped, killed = container_problems(
        _info(running=False, status="exited", code=3, oom=True), name="api-1", host="h1", started_here=True
    )
    assert stopped == "api-1 on h1 is not running (exited, exit code 3, OOM-killed)"
    assert killed.startswith("api-1 on h1 was OOM-killed after this run started it")
    # Docker is restarting it right now: both what it is and why that fails the start.
    restarting, restarted = container_problems(
        _info(running=False, status="restarting", code=3, restarts=1),
        name="api-1",
        host="h1",
        started_here=True,
    )
    assert restarting.startswith("api-1 on h1 is not running (restarting, exit code 3)")
    assert restarted.startswith("api-1 on h1 was restarted 1 time(s)")
    [starting] = container_problems(_info(health="starting"), name="api-1", host="h1", started_here=False)
    assert starting.startswith("api-1 on h1 is still starting (no health verdict yet)")
    assert container_problems(None, name="api-1", host="h1", started_here=True)[0].startswith(
        "api-1 on h1 does not exist"
    )


def test_a_restart_fails_a_container_started_here_only():
    problems = container_problems(_info(restarts=2), name="api-1", host="h1", started_here=True)
    assert len(problems) == 1 and "restarted 2 time(s) by Docker after this run started it" in problems[0]
    assert container_problems(_info(restarts=2), name="api-1", host="h1", started_here=False) == []
    [both] = container_problems(_info(oom=True, restarts=1), name="api-1", host="h1", started_here=True)
    assert both.startswith("api-1 on h1 was restarted 1 time(s) by Docker and was OOM-killed after this run")
    long = "x" * 1000
    [message] = container_problems(
        _info(health="unhealthy", output=long), name="a", host="h", started_here=False
    )
    assert "..." + "x" * 400 + ". See" in message


def test_gate_reads_what_ansible_registered():
    infos = [
        {"item": {"name": "api-1"}, "exists": True, "container": _info(restarts=1)},
        {"item": {"name": "cls-1"}, "exists": True, "container": _info()},
    ]
    started = [{"item": {"name": "api-1"}, "changed": True}, {"item": {"name": "cls-1"}, "changed": True}]
    [problem] = gate(infos, started, "h1")
    assert problem.startswith("api-1 on h1 was restarted 1 time(s)")
    assert gate(infos, [{"item": {"name": "api-1"}, "changed": False}], "h1") == []
