"""`khronika run` / khronika_ops.runner: real playbooks through ansible-runner on a local connection."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from khronika_ops.runner import RunError, run_playbook

PLAYBOOK = """
- name: Two tasks that change and one that does not
  hosts: local
  gather_facts: false
  tasks:
    - name: Write a file
      ansible.builtin.copy: {dest: "{{ out }}/a.txt", content: "a\\n", mode: "0644"}
    - name: Read it back
      ansible.builtin.command: cat {{ out }}/a.txt
      changed_when: false
    - name: Sleep a little
      ansible.builtin.command: sleep 0.6
- name: A play that fails when asked to
  hosts: local
  gather_facts: false
  tasks:
    - name: Fail on request
      ansible.builtin.fail: {msg: "asked to fail [literally]"}
      when: fail | default(false) | bool
"""


@pytest.fixture
def project(tmp_path: Path) -> tuple[Path, Path]:
    playbook = tmp_path / "two.yml"
    playbook.write_text(PLAYBOOK)
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(
        "all:\n  hosts:\n    local:\n      ansible_connection: local\n"
        f"      ansible_python_interpreter: {sys.executable}\n"
    )
    return playbook, inventory


def test_a_run_is_summarised_and_its_artifacts_kept(project, tmp_path):
    playbook, inventory = project
    lines: list[str] = []
    summary = run_playbook(
        playbook,
        inventory,
        extravars={"out": str(tmp_path)},
        artifacts_root=tmp_path / "runs",
        ident="first",
        say=lines.append,
    )
    assert summary.succeeded, summary.lines()
    assert (summary.plays, summary.tasks, summary.hosts) == (2, 4, ["local"])
    assert (summary.changed, summary.failed, summary.unreachable) == (2, 0, 0)
    seconds = [t.seconds for t in summary.slowest]
    assert seconds == sorted(seconds, reverse=True)
    sleep = next(t for t in summary.slowest if t.task == "Sleep a little")
    assert sleep.seconds >= 0.5 and sleep.host == "local"
    assert sum("play:" in line for line in lines) == 2
    artifacts = tmp_path / "runs" / "first"
    assert (artifacts / "rc").read_text().strip() == "0"
    assert "Write a file" in (artifacts / "stdout").read_text()
    assert list((artifacts / "job_events").glob("*.json"))

    again = run_playbook(
        playbook,
        inventory,
        extravars={"out": str(tmp_path)},
        artifacts_root=tmp_path / "runs",
        ident="second",
        say=lines.append,
    )
    assert again.succeeded and again.changed == 1  # only the sleep (a command) reports a change


def test_a_run_takes_nothing_from_the_run_before(project, tmp_path):
    """ansible-runner reads the command line, extra variables and environment it is not given from
    its private data folder: one run's vault password file or variables must not reach the next."""
    playbook, inventory = project
    password = tmp_path / "vault-pass"
    password.write_text("secret\n")
    password.chmod(0o600)
    first = run_playbook(
        playbook,
        inventory,
        vault_password_file=password,
        extravars={"out": str(tmp_path), "fail": True},
        envvars={"KHRONIKA_FIRST_RUN": "1"},
        artifacts_root=tmp_path / "runs",
        ident="with-vault",
        say=lambda _line: None,
    )
    assert first.failed == 1
    password.unlink()  # as after `khronika lab down`: the next run must not ask for it
    second = run_playbook(
        playbook,
        inventory,
        extravars={"out": str(tmp_path)},
        artifacts_root=tmp_path / "runs",
        ident="without",
        say=lambda _line: None,
    )
    assert second.succeeded, second.lines()
    command = json.loads((tmp_path / "runs" / "without" / "command").read_text())
    assert "--vault-password-file" not in command["command"]
    assert "KHRONIKA_FIRST_RUN" not in command["env"]
    assert not list((tmp_path / "runs").glob("*private*"))  # nothing of a run's inputs is left behind


def test_a_failure_is_named_as_it_happens(project, tmp_path):
    playbook, inventory = project
    lines: list[str] = []
    summary = run_playbook(
        playbook,
        inventory,
        extravars={"out": str(tmp_path), "fail": True},
        artifacts_root=tmp_path / "runs",
        say=lines.append,
    )
    assert not summary.succeeded and summary.rc == 2 and summary.failed == 1
    assert summary.failures == ["FAILED local: Fail on request: asked to fail [literally]"]
    assert any("FAILED local: Fail on request" in line for line in lines)
    assert any("asked to fail [literally]" in line for line in summary.lines())


def test_bad_input_is_refused_before_anything_runs(project, tmp_path):
    playbook, inventory = project
    with pytest.raises(RunError, match="inventory"):
        run_playbook(playbook, tmp_path / "nowhere.yml", artifacts_root=tmp_path / "runs")
    with pytest.raises(RunError, match="playbook no-such"):
        run_playbook("no-such", inventory, artifacts_root=tmp_path / "runs")
    assert not (tmp_path / "runs").exists() or not list((tmp_path / "runs").glob("*/stdout"))


def test_khronika_run_command(project, tmp_path):
    playbook, inventory = project
    khronika = Path(sys.executable).with_name("khronika")
    done = subprocess.run(
        [
            str(khronika),
            "run",
            str(playbook),
            "-i",
            str(inventory),
            "-e",
            f"out={tmp_path}",
            "--artifacts",
            str(tmp_path / "runs"),
        ],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "NO_COLOR": "1"},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "two.yml: ok" in done.stdout and "changed 2" in done.stdout
    failed = subprocess.run(
        [
            str(khronika),
            "run",
            str(playbook),
            "-i",
            str(inventory),
            "-e",
            f"out={tmp_path}",
            "-e",
            "fail=true",
            "--artifacts",
            str(tmp_path / "runs"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert failed.returncode == 2 and "asked to fail [literally]" in failed.stdout
    statuses = sorted((run / "status").read_text() for run in (tmp_path / "runs").iterdir())
    assert statuses == ["failed", "successful"]


@pytest.mark.parametrize("strategy", ["free", "mitogen_linear"])
def test_a_strategy_is_chosen_per_run(project, tmp_path, strategy):
    playbook, inventory = project
    summary = run_playbook(
        playbook,
        inventory,
        extravars={"out": str(tmp_path)},
        strategy=strategy,
        artifacts_root=tmp_path / "runs",
        say=lambda _line: None,
    )
    assert summary.succeeded, summary.lines()
    assert (summary.tasks, summary.changed) == (4, 2)
    # the run's own record names the strategy it ran with (an unknown one would have failed the play)
    env = json.loads((summary.artifacts / "command").read_text())["env"]
    assert env["ANSIBLE_STRATEGY"] == strategy


def test_strategy_problem_is_the_one_check_of_a_strategy(monkeypatch):
    from khronika_ops.runner import strategy_problem

    assert strategy_problem(None) == "" and strategy_problem("linear") == ""
    assert strategy_problem("mitogen_linear") == ""
    assert strategy_problem("fast").startswith("unknown strategy 'fast' (known: linear, free")
    monkeypatch.setitem(sys.modules, "ansible_mitogen", None)  # a controller without Mitogen
    assert "needs the Python package mitogen" in strategy_problem("mitogen_linear")
    assert strategy_problem("linear") == ""


def test_an_unknown_strategy_is_refused_before_anything_runs(project, tmp_path):
    playbook, inventory = project
    with pytest.raises(RunError, match="unknown strategy 'fast' \\(known: linear, free"):
        run_playbook(playbook, inventory, strategy="fast", artifacts_root=tmp_path / "runs")
    assert not (tmp_path / "runs").exists()


CANARY_PLAYBOOK = """
- name: Write what it was given
  hosts: local
  gather_facts: false
  tasks:
    - name: Write it
      ansible.builtin.copy:
        dest: "{{ out }}/given.json"
        content: "{{ {'text': text, 'nested': nested | default({}), 'kept': [number, moment, flag]} | to_json }}"
        mode: "0644"
"""


def _khronika(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None):
    return subprocess.run(
        [str(Path(sys.executable).with_name("khronika")), *args],
        capture_output=True,
        text=True,
        check=False,
        cwd=cwd,
        env={**os.environ, "NO_COLOR": "1", **(env or {})},
        timeout=300,
    )


def test_text_from_the_command_line_or_a_file_is_never_rendered(project, tmp_path):
    """`-e key=value` and `-e @file` reach the play as data: a planted lookup never runs, `{% raw %}`
    and `{{ ... }}` arrive as typed (ansible-playbook would run the command as the user running it)."""
    _, inventory = project
    playbook = tmp_path / "canary.yml"
    playbook.write_text(CANARY_PLAYBOOK)
    canary = tmp_path / "CANARY"
    planted = "{{ lookup('pipe', 'touch $KHRONIKA_CANARY') }}"
    text = f"the page shows {planted} {{% raw %}} {{{{ appeal_id }}}}"
    (tmp_path / "vars.yml").write_text(
        yaml.safe_dump({"nested": {"path": f"/srv/{planted}", "list": [planted, 3, True]}}), encoding="utf-8"
    )
    done = _khronika(
        "run",
        str(playbook),
        "-i",
        str(inventory),
        "-e",
        f"out={tmp_path}",
        "-e",
        f"text={text}",
        "-e",
        "@vars.yml",
        # Strings stay strings, whatever they look like (Ansible re-types a scalar tagged !unsafe).
        "-e",
        "number=0010",
        "-e",
        "moment=2026-12-06T07:57:30+00:00",
        "-e",
        "flag=true",
        "--artifacts",
        str(tmp_path / "runs"),
        cwd=tmp_path,  # a relative @file is read from where khronika runs
        env={"KHRONIKA_CANARY": str(canary)},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert not canary.exists()
    given = json.loads((tmp_path / "given.json").read_text())
    assert given == {
        "text": text,
        "nested": {"path": f"/srv/{planted}", "list": [planted, 3, True]},
        "kept": ["0010", "2026-12-06T07:57:30+00:00", "true"],
    }


def test_ansibles_own_errors_reach_the_operator(project, tmp_path):
    """A missing -e file, an inventory that is not one, a --limit matching no host, plays matching no
    host: an error with Ansible's reason, never "ok ... 0 tasks on 0 hosts"."""
    playbook, inventory = project
    runs = ["--artifacts", str(tmp_path / "runs")]
    missing = _khronika("run", str(playbook), "-i", str(inventory), "-e", "@missing.yml", *runs, cwd=tmp_path)
    assert (
        missing.returncode == 2 and "-e @missing.yml: cannot read missing.yml: No such file" in missing.stdout
    )

    bomb = tmp_path / "bomb.yml"
    bomb.write_text(
        "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
        + "".join(
            f"{n}: &{n} [{', '.join([f'*{p}'] * 10)}]\n" for p, n in zip("abcdefgh", "bcdefghi", strict=True)
        )
    )
    refused = _khronika("run", str(playbook), "-i", str(inventory), "-e", f"@{bomb}", *runs)
    assert refused.returncode == 2 and "refused: it expands to more than" in refused.stdout

    not_yaml = tmp_path / "broken.yml"
    not_yaml.write_text("all: [\n  hosts")
    broken = _khronika("run", str(playbook), "-i", str(not_yaml), "-e", f"out={tmp_path}", *runs)
    assert broken.returncode != 0, broken.stdout
    assert "No inventory was parsed" in broken.stdout and "YAML parsing failed" in broken.stdout

    nowhere = _khronika(
        "run", str(playbook), "-i", str(inventory), "-l", "no-such-host", "-e", f"out={tmp_path}", *runs
    )
    assert nowhere.returncode != 0
    assert "Could not match supplied host pattern, ignoring: no-such-host" in nowhere.stdout
    assert "no hosts to target" in nowhere.stdout

    elsewhere = tmp_path / "elsewhere.yml"
    elsewhere.write_text("- name: A group the inventory lacks\n  hosts: khronika_gpu\n  tasks: []\n")
    idle = _khronika("run", str(elsewhere), "-i", str(inventory), *runs)
    assert idle.returncode == 1 and "matched any play of elsewhere.yml: nothing was done" in idle.stdout
