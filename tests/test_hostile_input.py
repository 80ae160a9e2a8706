"""Careless and hostile input to the catalog, release and planner commands: every YAML the package reads
is bounded (an alias bomb is refused at once, naming the file), every number is finite and in range
(a usage error naming the option or line), no output is invalid JSON, and no refusal shows pydantic's
raw text, a traceback or markup."""

from __future__ import annotations

import itertools
import json
import math
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from khronika_ops import safe_yaml
from khronika_ops.ansible_data import TooLargeError, plain
from khronika_ops.cli import app

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "samples" / "catalog"
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def khronika(*args: str) -> tuple[int, str]:
    """The installed command (its last line of defence included): exit code and all it printed."""
    done = subprocess.run(
        [str(Path(sys.executable).with_name("khronika")), *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        env={"PATH": str(Path(sys.executable).parent), "NO_COLOR": "1", "HOME": str(Path.home())},
    )
    return done.returncode, _ANSI.sub("", done.stdout + done.stderr)


def assert_plain(output: str) -> None:
    """No traceback, no pydantic text or link, no rich panel: what an operator should see."""
    for marker in ("Traceback", "pydantic", "errors.pydantic.dev", "validation error for", "╭", "│"):
        assert marker not in output, output


def bomb(levels: int = 9, width: int = 10) -> str:
    names = [f"l{n}" for n in range(levels)]
    lines = [f"{names[0]}: &{names[0]} [{', '.join(['lol'] * width)}]"]
    lines += [
        f"{name}: &{name} [{', '.join([f'*{prev}'] * width)}]" for prev, name in itertools.pairwise(names)
    ]
    return "\n".join(lines) + "\n"


def test_the_loader_refuses_alias_bombs_recursion_depth_and_size(tmp_path: Path) -> None:
    path = tmp_path / "bomb.yml"
    path.write_text(bomb())
    started = time.monotonic()
    with pytest.raises(safe_yaml.YamlError, match=rf"^{re.escape(str(path))}, line \d+: refused: it expands"):
        safe_yaml.load_file(path)
    assert time.monotonic() - started < 1
    with pytest.raises(safe_yaml.YamlError, match="aliases stand for"):
        safe_yaml.load_text(bomb(levels=4, width=30), "small-bomb.yml")  # 27,000 copies: under the total
    with pytest.raises(safe_yaml.YamlError, match="recursive alias"):
        safe_yaml.load_text("a: &a [1, *a]\n", "loop.yml")
    with pytest.raises(safe_yaml.YamlError, match="nested"):
        safe_yaml.load_text("a: " + "[" * 150 + "]" * 150 + "\n", "deep.yml")
    with pytest.raises(safe_yaml.YamlError, match="larger than 16 MiB"):
        safe_yaml.load_text("a: " + "x" * (safe_yaml.MAX_BYTES + 1), "big.yml")
    # Anchors used the ordinary way (shared settings, merge keys) load as before.
    data = safe_yaml.load_text("base: &b {cpu: 1, mem: 2g}\nm1: {<<: *b, cpu: 2}\nm2: *b\n", "ok.yml")
    assert data == {
        "base": {"cpu": 1, "mem": "2g"},
        "m1": {"cpu": 2, "mem": "2g"},
        "m2": {"cpu": 1, "mem": "2g"},
    }


def test_an_alias_bomb_in_any_file_the_commands_read_is_refused_naming_it(tmp_path: Path) -> None:
    body = bomb()
    catalog = tmp_path / "khronika_modules.yml"
    catalog.write_text(
        body
        + "khronika_modules:\n  - name: api\n    placement: {group: khronika_platform}\n    depends_on: *l8\n"
    )
    releases = tmp_path / "releases"
    releases.mkdir()
    (releases / "9.9.9.yml").write_text(body + "version: 9.9.9\n")
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(body + "hosts: *l8\n")
    site = tmp_path / "site.yml"
    site.write_text(body + "hosts: *l8\n")
    series = tmp_path / "cpu.csv"
    series.write_text("timestamp,value\n" + "".join(f"{1700000000 + 300 * n},{n % 7}\n" for n in range(600)))
    for args, named in (
        (["catalog", "validate", str(catalog), "--inventory", str(SAMPLES / "inventory.yml")], catalog),
        (
            ["catalog", "validate", str(SAMPLES / "khronika_modules.yml"), "--inventory", str(inventory)],
            inventory,
        ),
        (["release", "list", "--dir", str(releases)], releases / "9.9.9.yml"),
        (["plan", "--csv", str(series), "--catalog", str(site), "--format", "json"], site),
    ):
        started = time.monotonic()
        code, output = khronika(*args)
        assert time.monotonic() - started < 20, args
        assert code != 0 and str(named) in output and "refused: it expands" in output, (args, output)
        assert_plain(output)


def test_plain_copies_at_most_a_bounded_number_of_values() -> None:
    """Ansible's own loader shares aliased values too: the filters' converter refuses to expand a bomb."""
    level: list[object] = ["lol"] * 10
    for _ in range(8):
        level = [level] * 10
    with pytest.raises(TooLargeError, match="alias bomb"):
        plain({"khronika_modules": level})
    assert plain({"a": [1, "x", {"b": None}]}) == {"a": [1, "x", {"b": None}]}


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("--load-factor", "0"),
        ("--load-factor", "nan"),
        ("--load-factor", "inf"),
        ("--load-factor", "-1"),
        ("--growth", "-200"),
        ("--growth", "-100"),
        ("--growth", "nan"),
        ("--growth", "1e308"),
        ("--growth", "-inf"),
        ("--reserve", "-5"),
        ("--reserve", "nan"),
        ("--capacity", "-1"),
        ("--capacity", "0"),
        ("--capacity", "inf"),
        ("--target-under", "nan"),
        ("--target-under", "-1%"),
        ("--horizon", "0"),
        ("--horizon", "999999999999"),
        ("--horizon", "nan"),
        ("--window", "9999-12-31T00:00"),
    ],
)
def test_every_number_of_plan_size_is_checked(tmp_path: Path, option: str, value: str) -> None:
    series = tmp_path / "cpu.csv"
    series.write_text("timestamp,value\n" + "".join(f"{1700000000 + 300 * n},{n % 7}\n" for n in range(600)))
    resource = "disk" if option in ("--reserve", "--capacity") else "cpu"
    code, output = khronika(
        "plan", "size", "--csv", str(series), "--resource", resource, "--json", option, value
    )
    assert code == 2, output
    assert option in output and "Invalid value" in output
    assert_plain(output)


def test_the_full_plan_checks_its_what_ifs(tmp_path: Path) -> None:
    series = tmp_path / "cpu.csv"
    series.write_text("timestamp,value\n1700000000,1\n")
    for option, value in (
        ("--load-factor", "nan"),
        ("--growth", "1e308"),
        ("--step", "1ms"),
        ("--history", "10000d"),
        ("--horizon", "inf"),
    ):
        code, output = khronika("plan", "--csv", str(series), option, value)
        assert code == 2 and option in output, output
        assert_plain(output)


@pytest.mark.parametrize("cell", ["inf", "-inf", "Infinity", "1e999", "-1e999"])
def test_an_infinite_cell_is_refused_naming_its_line(tmp_path: Path, cell: str) -> None:
    series = tmp_path / "cpu.csv"
    rows = [f"{1700000000 + 300 * n},{n % 7}" for n in range(600)]
    rows[41] = f"{1700000000 + 300 * 41},{cell}"
    series.write_text("timestamp,value\n" + "\n".join(rows) + "\n")
    code, output = khronika("plan", "size", "--csv", str(series), "--resource", "cpu", "--json")
    assert code == 2 and "line 43" in output and "not a finite number" in output, output


def test_the_json_of_plan_size_is_always_json(tmp_path: Path) -> None:
    """Extreme but finite what-ifs still print a document json.loads reads strictly."""
    series = tmp_path / "cpu.csv"
    series.write_text(
        "timestamp,value\n" + "".join(f"{1700000000 + 300 * n},{n % 7 + 1}\n" for n in range(2000))
    )
    result = CliRunner().invoke(
        app,
        [
            "plan",
            "size",
            "--csv",
            str(series),
            "--resource",
            "cpu",
            "--json",
            "--load-factor",
            "1000",
            "--growth",
            "1000",
        ],
    )
    assert result.exit_code == 0, result.output

    def refuse(constant: str) -> float:
        raise ValueError(constant)

    document = json.loads(result.stdout, parse_constant=refuse)
    assert math.isfinite(document["recommended"])


@pytest.mark.parametrize("prefix", ["/api/../admin", "/api/./x", "/..", "/api//x"])
def test_a_route_prefix_with_dot_segments_is_refused(tmp_path: Path, prefix: str) -> None:
    catalog = tmp_path / "khronika_modules.yml"
    catalog.write_text(
        "khronika_modules:\n  - name: api\n    image: registry.test/api\n    placement: {group: khronika_platform}\n"
        "    ports: [{container: 80, host: 8080}]\n"
        f"    http: {{path_prefix: '{prefix}', upstream_port: 80}}\n"
    )
    code, output = khronika(
        "catalog", "validate", str(catalog), "--inventory", str(SAMPLES / "inventory.yml")
    )
    assert code == 1 and "http.path_prefix" in output and ("segment" in output), output
    assert_plain(output)


def test_a_bad_window_is_named_without_pydantic_text(tmp_path: Path) -> None:
    code, output = khronika(
        "update",
        "check",
        "--release",
        "1.1.0",
        "--catalog",
        str(SAMPLES / "khronika_modules.yml"),
        "-i",
        str(SAMPLES / "inventory.yml"),
        "--dir",
        str(REPO / "releases"),
        "--window-start",
        "2026-12-06T02:00",
        "--window-duration",
        "-4h",
    )
    assert code == 2 and "--window" in output, output
    assert_plain(output)


def test_a_device_or_a_folder_given_as_a_file_is_refused_at_once(tmp_path: Path) -> None:
    for args, said in (
        (
            ["plan", "size", "--csv", "/dev/zero", "--resource", "cpu"],
            "/dev/zero: is a device, not a history file",
        ),
        (["plan", "size", "--csv", str(tmp_path), "--resource", "cpu"], "Is a directory"),
        (["archive", "verify", str(tmp_path), "--allow-unsigned"], "is a folder, not an archive file"),
        (["archive", "verify", "/dev/null", "--allow-unsigned"], "is not a regular file"),
        (["catalog", "validate", "/dev/zero", "--inventory", str(SAMPLES / "inventory.yml")], "/dev/zero"),
    ):
        started = time.monotonic()
        code, output = khronika(*args)
        assert time.monotonic() - started < 20
        assert code != 0 and said in output, (args, output)
        assert_plain(output)
