"""`khronika release list|show|diff` and `khronika catalog validate` through the real CLI app."""

from __future__ import annotations

import json
import subprocess

import yaml
from platform_helpers import RELEASES, REPO, SAMPLE_CATALOG, SAMPLE_INVENTORY
from typer.testing import CliRunner

from conftest import tool
from khronika_ops.cli import app

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, list(args))


def test_release_list_and_show():
    result = invoke("release", "list", "--dir", str(RELEASES))
    assert result.exit_code == 0, result.output
    assert "1.0.0" in result.output and "new-version" in result.output
    listed = json.loads(invoke("release", "list", "--dir", str(RELEASES), "--json").output)
    assert [row["version"] for row in listed] == [
        "1.0.0",
        "1.1.0",
        "1.2.0",
        "1.3.0",
        "1.4.0",
        "1.5.0",
        "1.5.1",
    ]
    shown = invoke("release", "show", "1.1.0", "--dir", str(RELEASES))
    assert shown.exit_code == 0 and "APPEALS_MAX_BYTES" in shown.output
    data = json.loads(invoke("release", "show", "1.1.0", "--dir", str(RELEASES), "--json").output)
    assert data["config_changes"][0]["to"] == 65536


def test_release_diff_table_and_json():
    table = invoke("release", "diff", "1.0.0", "1.1.0", "--dir", str(RELEASES))
    assert table.exit_code == 0, table.output
    assert "downtime: full" in table.output
    result = invoke(
        "release",
        "diff",
        "1.1.0",
        "1.2.0",
        "--dir",
        str(RELEASES),
        "--catalog",
        str(SAMPLE_CATALOG),
        "--json",
    )
    data = json.loads(result.output)
    assert data["downtime"] == "partial"  # appeals-api rolls in the sample catalog; classifier is unchanged
    assert [change["module"] for change in data["image_changes"]] == ["appeals-api"]


def test_release_unknown_version_fails():
    result = invoke("release", "show", "9.9.9", "--dir", str(RELEASES))
    assert result.exit_code == 1 and "no release '9.9.9'" in result.output


def test_catalog_validate_ok_and_json_plan():
    result = invoke("catalog", "validate", str(SAMPLE_CATALOG), "--inventory", str(SAMPLE_INVENTORY))
    assert result.exit_code == 0, result.output
    assert "app-01: classifier-1, appeals-api-1" in result.output
    args = ["--release", str(RELEASES / "1.0.0.yml"), "--registry", "registry.test:5000", "--json"]
    plan = json.loads(
        invoke("catalog", "validate", str(SAMPLE_CATALOG), "--inventory", str(SAMPLE_INVENTORY), *args).output
    )
    assert plan["hosts"]["app-01"]["containers"][0]["image"].startswith(
        "registry.test:5000/khronika-samples/classifier@sha256:"
    )


def test_catalog_validate_prints_every_error_and_fails(tmp_path):
    bad = tmp_path / "khronika_modules.yml"
    bad.write_text(
        "---\nkhronika_modules:\n"
        "  - {name: a, image: x/a:1.0, placement: {groups: [khronika_platform]}, depends_on: [b]}\n"
        "  - {name: b, image: x/b, placement: {groups: [khronika_platform]}, depends_on: [a], gpus: 1}\n"
    )
    result = invoke("catalog", "validate", str(bad), "--inventory", str(SAMPLE_INVENTORY))
    assert result.exit_code == 1
    assert "module 'a', field 'image'" in result.output and "must not carry a tag" in result.output
    assert "dependency cycle: a -> b -> a" in result.output
    assert "placed on app-01, which has none" in result.output


def test_catalog_validate_against_the_example_ansible_inventory():
    result = invoke(
        "catalog", "validate", str(SAMPLE_CATALOG), "--inventory", str(REPO / "inventories/example/hosts.yml")
    )
    assert result.exit_code == 0, result.output


def test_console_script_offers_the_groups():
    out = subprocess.run(
        [tool("khronika"), "release", "--help"], capture_output=True, text=True, check=True
    ).stdout
    assert "diff" in out and "list" in out


def test_errors_and_data_are_printed_literally(tmp_path):
    """Square brackets in a validation message or in user data are text, not markup."""
    catalog = tmp_path / "catalog.yml"
    catalog.write_text(
        "khronika_modules:\n  - {name: Bad_Name, image: x/y, placement: {hosts: [h1]}}\n", encoding="utf-8"
    )
    inventory = tmp_path / "hosts.yml"
    inventory.write_text("hosts:\n  h1: {groups: [app]}\n", encoding="utf-8")
    result = invoke("catalog", "validate", str(catalog), "--inventory", str(inventory))
    assert result.exit_code == 1
    assert "String should match pattern '^[a-z0-9][a-z0-9-]{0,62}$'" in result.stderr
    releases = tmp_path / "releases"
    releases.mkdir()
    manifest = yaml.safe_load((RELEASES / "1.0.0.yml").read_text(encoding="utf-8"))
    manifest["notes"] = "Fixes [bold]everything[/] :smile:"
    (releases / "1.0.0.yml").write_text(yaml.safe_dump(manifest), encoding="utf-8")
    shown = invoke("release", "show", "1.0.0", "--dir", str(releases))
    assert shown.exit_code == 0, shown.output
    assert "Fixes [bold]everything[/] :smile:" in shown.stdout


def test_an_empty_catalog_file_is_refused(tmp_path):
    inventory = tmp_path / "hosts.yml"
    inventory.write_text("hosts:\n  h1: {groups: [app]}\n", encoding="utf-8")
    for name, text, message in (
        ("empty.yml", "", "the catalog is empty"),
        ("comments.yml", "# nothing yet\n", "the catalog is empty"),
        ("null.yml", "khronika_modules:\n", "khronika_modules: has no value"),
    ):
        catalog = tmp_path / name
        catalog.write_text(text, encoding="utf-8")
        result = invoke("catalog", "validate", str(catalog), "--inventory", str(inventory))
        assert result.exit_code == 1, (name, result.output)
        assert message in result.stderr and "khronika_modules: []" in result.stderr
        assert "0 enabled module(s)" not in result.stdout
    explicit = tmp_path / "none.yml"
    explicit.write_text("khronika_modules: []\n", encoding="utf-8")
    result = invoke("catalog", "validate", str(explicit), "--inventory", str(inventory))
    assert result.exit_code == 0 and "ok: 0 enabled module(s)" in result.stdout
