"""`khronika run`: a playbook through ansible-runner (the library AWX and Automation Platform run
playbooks with), with a short progress view instead of hundreds of raw lines.

While it runs, one line per play (with the elapsed time) and one per failed or unreachable host;
at the end a summary: tasks, hosts, ok / changed / failed / unreachable, and the slowest tasks.
Everything ansible-runner keeps is kept per run under the artifacts folder: `stdout` (the full log),
`job_events/` (one JSON file per event), `rc`, `status`, `command`.
"""

from __future__ import annotations

import os
import re
import shlex
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

REPO_ROOT = Path(__file__).resolve().parents[2]
#: Events whose duration is a task's time on one host.
_RESULT_EVENTS = {"runner_on_ok", "runner_on_failed", "runner_on_skipped", "runner_on_unreachable"}


class RunError(RuntimeError):
    """The playbook could not be started (missing file, bad arguments); nothing ran."""


def unsafe_extravars_yaml(extravars: Mapping[str, Any]) -> str:
    """Extra variables as an Ansible vars file whose top mapping is tagged `!unsafe`: Ansible marks every
    string inside it as data, so a description holding `{{ lookup('pipe', ...) }}`, a path with `{%`, a
    value from a file reach the play literally (Ansible renders templates in extra variables passed any
    other way, as the user running it). The tag is on the mapping, not on each string: ansible-core 2.19
    re-resolves a tagged scalar's type as if it were unquoted ("1" would become 1, a date a datetime),
    while the strings inside a tagged mapping keep the types their quoting gives them."""
    import yaml

    from khronika_ops.ansible_data import plain

    return "--- !unsafe\n" + yaml.safe_dump(
        plain(dict(extravars)), allow_unicode=True, sort_keys=False, default_flow_style=False
    )


#: Ansible's own strategies, and Mitogen's (a persistent Python on each host instead of one module
#: upload and interpreter start per task; `mitogen` on the controller, nothing on the hosts).
ANSIBLE_STRATEGIES = ("linear", "free", "host_pinned")
MITOGEN_STRATEGIES = ("mitogen_linear", "mitogen_free", "mitogen_host_pinned")
STRATEGIES = ANSIBLE_STRATEGIES + MITOGEN_STRATEGIES


# The help of every command that runs playbooks with a chosen strategy (`khronika run`, `khronika update auto`).
STRATEGY_HELP = (
    f"Play strategy ({', '.join(STRATEGIES)}); ansible.cfg's (linear) when unset. The mitogen_*"
    " ones keep a Python on each host: idempotent runs take about 2-3x less time, an update about a third less."
)


def strategy_problem(strategy: str | None) -> str:
    """Why `strategy` cannot run on this controller ('' when it can): the check a command or a role
    makes before it changes anything."""
    try:
        strategy_env(strategy)
    except RunError as exc:
        return str(exc)
    return ""


def strategy_env(strategy: str | None) -> dict[str, str]:
    """The environment that selects `strategy` (none: ansible.cfg's)."""
    if strategy is None:
        return {}
    if strategy not in STRATEGIES:
        raise RunError(f"unknown strategy {strategy!r} (known: {', '.join(STRATEGIES)})")
    env = {"ANSIBLE_STRATEGY": strategy}
    if strategy in MITOGEN_STRATEGIES:
        try:
            import ansible_mitogen
        except ImportError:
            raise RunError(
                f"strategy {strategy} needs the Python package mitogen on the controller (pip install mitogen)"
            ) from None
        env["ANSIBLE_STRATEGY_PLUGINS"] = str(Path(ansible_mitogen.__file__).parent / "plugins" / "strategy")
    return env


@dataclass(frozen=True)
class TaskTime:
    task: str
    host: str
    seconds: float


@dataclass
class RunSummary:
    playbook: str
    artifacts: Path
    rc: int = -1
    status: str = "unstarted"
    seconds: float = 0.0
    plays: int = 0
    tasks: int = 0
    hosts: list[str] = field(default_factory=list)
    ok: int = 0
    changed: int = 0
    failed: int = 0
    unreachable: int = 0
    skipped: int = 0
    failures: list[str] = field(default_factory=list)
    slowest: list[TaskTime] = field(default_factory=list)
    #: Ansible's own error text when it stopped before (or outside) any task: a bad inventory, a missing
    #: file, a --limit that matches nothing. ansible-runner keeps it only in the run's stdout.
    errors: list[str] = field(default_factory=list)

    @property
    def succeeded(self) -> bool:
        return self.rc == 0 and self.status == "successful"

    def lines(self, slowest: int = 5) -> list[str]:
        """The summary as plain lines (printed literally: task names and messages may hold brackets)."""
        verdict = "ok" if self.succeeded else f"FAILED (rc {self.rc}, {self.status})"
        out = [
            f"{self.playbook}: {verdict} in {format_seconds(self.seconds)}: {self.plays} plays, {self.tasks} tasks "
            f"on {len(self.hosts)} hosts; ok {self.ok}, changed {self.changed}, failed {self.failed}, "
            f"unreachable {self.unreachable}, skipped {self.skipped}"
        ]
        if self.slowest:
            out.append(
                "  slowest: "
                + "; ".join(f"{t.task} ({t.host}) {t.seconds:.1f}s" for t in self.slowest[:slowest])
            )
        out += [f"  {failure}" for failure in self.failures]
        out += [f"  {line}" for line in self.errors]
        out.append(f"  log: {self.artifacts / 'stdout'}")
        return out

    def as_dict(self) -> dict[str, Any]:
        return {
            "playbook": self.playbook,
            "rc": self.rc,
            "status": self.status,
            "seconds": round(self.seconds, 1),
            "plays": self.plays,
            "tasks": self.tasks,
            "hosts": self.hosts,
            "ok": self.ok,
            "changed": self.changed,
            "failed": self.failed,
            "unreachable": self.unreachable,
            "skipped": self.skipped,
            "failures": self.failures,
            "errors": self.errors,
            "slowest": [
                {"task": t.task, "host": t.host, "seconds": round(t.seconds, 1)} for t in self.slowest
            ],
            "artifacts": str(self.artifacts),
        }


def format_seconds(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes}m{rest:02d}s"


class _Progress:
    """Turns ansible-runner events into the summary and the progress lines."""

    def __init__(self, summary: RunSummary, say: Callable[[str], None], started: float) -> None:
        self.summary = summary
        self.say = say
        self.started = started
        self.tasks: set[str] = set()
        self.times: list[TaskTime] = []

    def __call__(self, event: Mapping[str, Any]) -> bool:
        kind = event.get("event", "")
        data = event.get("event_data") or {}
        elapsed = format_seconds(time.monotonic() - self.started)
        if kind == "playbook_on_play_start":
            self.summary.plays += 1
            self.say(f"  [{elapsed:>6}] play: {data.get('play', '')}")
        elif kind == "playbook_on_task_start":
            self.tasks.add(str(data.get("task_uuid") or data.get("task", "")))
        elif kind in _RESULT_EVENTS:
            host = str(data.get("host", ""))
            task = str(data.get("task", ""))
            duration = data.get("duration")
            if isinstance(duration, int | float):
                self.times.append(TaskTime(task, host, float(duration)))
            if kind == "runner_on_unreachable" or (
                kind == "runner_on_failed" and not data.get("ignore_errors")
            ):
                message = _message(data.get("res") or {})
                word = "UNREACHABLE" if kind == "runner_on_unreachable" else "FAILED"
                line = f"{word} {host}: {task}: {message}"
                self.summary.failures.append(line)
                self.say(f"  [{elapsed:>6}] {line}")
        elif kind == "playbook_on_stats":
            counts = {key: data.get(key) or {} for key in ("ok", "changed", "failures", "dark", "skipped")}
            self.summary.hosts = sorted({host for values in counts.values() for host in values})
            self.summary.ok = sum(counts["ok"].values())
            self.summary.changed = sum(counts["changed"].values())
            self.summary.failed = sum(counts["failures"].values())
            self.summary.unreachable = sum(counts["dark"].values())
            self.summary.skipped = sum(counts["skipped"].values())
        return True  # keep every event in the artifacts


#: Lines that open one of Ansible's messages in its plain output (2.19: `[ERROR]: ...`; before: `ERROR! ...`).
_MESSAGE_START = ("[ERROR]", "ERROR!", "[WARNING]", "[DEPRECATION WARNING]", "[DEPRECATION]")
#: Warnings that say why nothing or not everything was targeted; shown beside the errors.
_TELLING_WARNINGS = (
    "Could not match supplied host pattern",
    "Unable to parse",
    "Failed to parse inventory with 'yaml' plugin",
    "Failed to parse inventory with 'ini' plugin",
    "provided hosts list is empty",
    "No inventory was parsed",
)
MAX_ERROR_LINES = 24


def ansible_errors(output: str, limit: int = MAX_ERROR_LINES) -> list[str]:
    """Ansible's error messages in its plain output (each with its continuation lines), and the warnings
    that explain them (an inventory that did not parse, a host pattern that matched nothing); at most
    `limit` lines, the last ones kept. Empty when Ansible said nothing of the kind."""
    messages: list[list[str]] = []
    keep = False
    for raw in output.splitlines()[-2000:]:
        line = raw.rstrip()
        if line.startswith(_MESSAGE_START):
            keep = line.startswith(("[ERROR]", "ERROR!")) or any(w in line for w in _TELLING_WARNINGS)
            if keep:
                messages.append([line[:400]])
            continue
        if keep and messages and line.strip() and not line.startswith(("PLAY ", "TASK ", "<<<", "Origin:")):
            messages[-1].append(line[:400])
    if not any(message[0].startswith(("[ERROR]", "ERROR!")) for message in messages):
        return []
    seen: set[str] = set()
    lines: list[str] = []
    for message in messages:
        head = message[0]
        if head in seen:
            continue
        seen.add(head)
        # A warning says enough in its first line; an error keeps what follows it.
        lines += message if head.startswith(("[ERROR]", "ERROR!")) else [head]
    return lines[-limit:]


def _message(result: Mapping[str, Any]) -> str:
    for key in ("msg", "stderr", "reason"):
        value = result.get(key)
        if value:
            text = str(value).strip().splitlines()
            return " / ".join(text[-3:])[:400]
    return "(no message; see the log)"


def run_playbook(
    playbook: Path | str,
    inventory: Path | str,
    *,
    extravars: Mapping[str, Any] | None = None,
    limit: str | None = None,
    check: bool = False,
    diff: bool = False,
    vault_password_file: Path | None = None,
    forks: int | None = None,
    strategy: str | None = None,
    artifacts_root: Path | None = None,
    ident: str | None = None,
    envvars: Mapping[str, str] | None = None,
    extra_args: Sequence[str] = (),
    say: Callable[[str], None] = print,
) -> RunSummary:
    """Run one playbook with ansible-runner and return its summary; progress goes through `say`."""
    import ansible_runner  # imported here: `khronika --help` must not pay for it

    playbook_path = _resolve_playbook(playbook)
    inventory_path = Path(inventory).resolve()
    if not inventory_path.exists():
        raise RunError(f"inventory {inventory} does not exist")
    if vault_password_file is not None and not Path(vault_password_file).is_file():
        raise RunError(f"vault password file {vault_password_file} does not exist")
    chosen_strategy = strategy_env(strategy)
    root = (artifacts_root or REPO_ROOT / ".cache" / "runs").resolve()
    base = ident or time.strftime("%Y%m%dT%H%M%S") + "-" + playbook_path.stem
    ident, number = base, 1
    while (root / ident).exists():  # a run never writes over another's artifacts
        number += 1
        ident = f"{base}-{number}"
    try:
        root.mkdir(parents=True, exist_ok=True)
        if not os.access(root, os.W_OK | os.X_OK):
            raise PermissionError(13, "Permission denied")
    except OSError as exc:
        raise RunError(f"cannot keep the run's artifacts in {root}: {exc.strerror}") from None
    summary = RunSummary(playbook=playbook_path.name, artifacts=root / ident)

    env = {
        "ANSIBLE_CONFIG": str(REPO_ROOT / "ansible.cfg"),
        "ANSIBLE_FORCE_COLOR": "0",
        "ANSIBLE_NOCOLOR": "1",
        # An inventory that does not parse is an error, not a warning followed by a run on no hosts.
        "ANSIBLE_INVENTORY_UNPARSED_FAILED": "1",
        # The virtual environment's tools (khronika, ansible-playbook) first, whoever called us.
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
    }
    env.update(chosen_strategy)
    env.update(envvars or {})
    cmdline = list(extra_args)
    if vault_password_file is not None:
        cmdline += ["--vault-password-file", str(Path(vault_password_file).resolve())]
    if check:
        cmdline.append("--check")
    if diff:
        cmdline.append("--diff")

    started = time.monotonic()
    progress = _Progress(summary, say, started)
    # A private data folder of the run's own, removed after it: ansible-runner writes the command line,
    # extra variables and environment it is given into env/ there, and reads those it is not given
    # from the files left by an earlier run (a lab's vault password file reached the next playbook).
    with tempfile.TemporaryDirectory(prefix=f".{ident}-", dir=root) as private:
        if extravars:
            # ansible-runner passes env/extravars with -e @file; written here, every string is `!unsafe`.
            (Path(private) / "env").mkdir()
            variables = Path(private) / "env" / "extravars"
            variables.write_text(unsafe_extravars_yaml(extravars), encoding="utf-8")
            variables.chmod(0o600)
        result = ansible_runner.run(
            private_data_dir=private,
            artifact_dir=str(root),
            ident=ident,
            playbook=str(playbook_path),
            inventory=str(inventory_path),
            limit=limit,
            forks=forks,
            envvars=env,
            cmdline=shlex.join(cmdline) or None,
            quiet=True,
            event_handler=progress,
            # The artifacts are the run's record; an old run is never rotated away under the user.
            rotate_artifacts=0,
        )
    summary.seconds = time.monotonic() - started
    summary.rc = int(result.rc if result.rc is not None else -1)
    summary.status = str(result.status)
    summary.tasks = len(progress.tasks)
    summary.slowest = sorted(progress.times, key=lambda t: t.seconds, reverse=True)[:10]
    if not summary.succeeded and not summary.failures:
        summary.errors = _stdout_errors(summary.artifacts) or [
            f"ansible-playbook stopped (rc {summary.rc}) before any task; see the log"
        ]
    elif summary.succeeded and not summary.hosts:
        # Every play was skipped: "no hosts matched". Nothing was done, which the caller did not ask for.
        summary.rc, summary.status = 1, "no hosts"
        where = f" with --limit {limit}" if limit else ""
        summary.errors = [
            f"no host of {inventory} matched any play of {playbook_path.name}{where}: nothing was done"
        ]
    return summary


def _stdout_errors(artifacts: Path) -> list[str]:
    try:
        with (artifacts / "stdout").open("rb") as handle:
            handle.seek(max(0, handle.seek(0, os.SEEK_END) - (256 << 10)))
            return ansible_errors(handle.read().decode("utf-8", errors="replace"))
    except OSError:
        return []


def _resolve_playbook(playbook: Path | str) -> Path:
    """A path, or a name of the collection's playbooks (`site` or `site.yml` = playbooks/site.yml)."""
    path = Path(playbook)
    if path.is_file():
        return path.resolve()
    name = path.name if path.suffix in (".yml", ".yaml") else f"{path.name}.yml"
    candidate = REPO_ROOT / "playbooks" / name
    if len(path.parts) == 1 and candidate.is_file():
        return candidate
    raise RunError(f"playbook {playbook} not found (a path, or one of playbooks/*.yml by name)")


_VARIABLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_VAULTED = ("$ANSIBLE_VAULT", "!vault")


def parse_extra_vars(items: Sequence[str]) -> tuple[dict[str, Any], list[str]]:
    """`-e key=value` and `-e @file` as `khronika run` takes them: (variables passed as unsafe text, the
    command-line arguments left for Ansible). A file is read here, relative to where khronika runs, with
    the bounded loader, and its values are data like any other; a vaulted file is left to Ansible (which
    decrypts it). Later items win, as with ansible-playbook."""
    from khronika_ops import safe_yaml

    extravars: dict[str, Any] = {}
    args: list[str] = []
    for item in items:
        if item.startswith("@"):
            path = Path(item[1:]).expanduser()
            try:
                head = path.read_bytes()[: safe_yaml.MAX_BYTES + 1]
            except OSError as exc:
                raise RunError(f"-e {item}: cannot read {path}: {exc.strerror}") from None
            if any(mark.encode() in head for mark in _VAULTED):
                args += ["-e", f"@{path.resolve()}"]
                continue
            try:
                data = safe_yaml.load_text(head.decode("utf-8"), str(path))
            except UnicodeDecodeError:
                raise RunError(f"-e {item}: {path} is not UTF-8 text") from None
            except safe_yaml.YamlError as exc:
                raise RunError(f"-e {item}: {exc}") from None
            if data is None:
                continue
            if not isinstance(data, Mapping):
                raise RunError(f"-e {item}: {path} must hold a mapping of variable names to values")
            pairs = list(data.items())
        elif "=" in item:
            key, _, value = item.partition("=")
            pairs = [(key.strip(), value)]
        else:
            raise RunError(f"-e {item}: expected key=value or @file")
        for key, value in pairs:
            if not isinstance(key, str) or not _VARIABLE_NAME.match(key):
                raise RunError(f"-e {item}: {key!r} is not a variable name")
            extravars[key] = value
    return extravars, args


def run_command(
    playbook: Annotated[
        str, typer.Argument(help="A playbook path, or a name from playbooks/ (site, update...).")
    ],
    *,
    inventory: Annotated[Path, typer.Option("-i", "--inventory", help="Inventory file or folder.")],
    extra_vars: Annotated[
        list[str] | None,
        typer.Option("-e", "--extra-vars", help="key=value, or @file.yml / @file.json (repeatable)."),
    ] = None,
    limit: Annotated[
        str | None, typer.Option("-l", "--limit", help="Host pattern to limit the run to.")
    ] = None,
    check: Annotated[bool, typer.Option("--check", help="Check mode: change nothing.")] = False,
    diff: Annotated[
        bool, typer.Option("--diff", help="Show the changes made (or, with --check, that would be).")
    ] = False,
    vault_password_file: Annotated[Path | None, typer.Option(help="Vault password file.")] = None,
    forks: Annotated[
        int | None, typer.Option(help="Parallel hosts (ansible.cfg's value when unset).")
    ] = None,
    strategy: Annotated[
        str | None,
        typer.Option(help=STRATEGY_HELP),
    ] = None,
    artifacts: Annotated[Path, typer.Option(help="Folder for the runs' artifacts.")] = REPO_ROOT
    / ".cache"
    / "runs",
) -> None:
    """Run a playbook through ansible-runner: one line per play, failures as they happen, a summary,
    and the run's artifacts (full log, events, rc) kept under --artifacts."""
    from khronika_ops.console import error_text, make_console

    console = make_console()
    if forks is not None:
        from khronika_ops.options import number

        number(forks, "--forks", at_least=1, at_most=500)
    try:
        extravars, args = parse_extra_vars(extra_vars or [])
    except RunError as exc:
        console.print(error_text(exc))
        raise typer.Exit(2) from None
    run_and_exit(
        console,
        playbook,
        inventory,
        extravars=extravars,
        limit=limit,
        check=check,
        diff=diff,
        vault_password_file=vault_password_file,
        forks=forks,
        strategy=strategy,
        artifacts_root=artifacts,
        extra_args=args,
    )


def run_and_exit(console: Any, playbook: Path | str, inventory: Path | str, **options: Any) -> NoReturn:
    """A command's playbook run (`khronika run`, `khronika support bundle`): progress and summary on
    `console`, then the exit status: 0, the playbook's rc, or 2 when it could not start."""
    from khronika_ops.console import error_text

    try:
        summary = run_playbook(playbook, inventory, say=console.print, **options)
    except RunError as exc:
        console.print(error_text(exc))
        raise typer.Exit(2) from None
    for line in summary.lines():
        console.print(line)
    raise typer.Exit(0 if summary.succeeded else (summary.rc if summary.rc > 0 else 1))
