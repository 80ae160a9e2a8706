"""The repository as an Ansible collection: build, offline install, role docs, collection sources."""

from __future__ import annotations

import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import yaml

from conftest import REPO, ansible_env, tool

ROLES = sorted(p.name for p in (REPO / "roles").iterdir() if (p / "meta" / "argument_specs.yml").is_file())
BUNDLE_WHEEL = "ansible-12.3.0-py3-none-any.whl"


@pytest.fixture(scope="module")
def tarball(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("build")
    subprocess.run(
        [tool("ansible-galaxy"), "collection", "build", "--output-path", str(out), str(REPO)],
        check=True,
        capture_output=True,
        env=ansible_env(),
    )
    version = yaml.safe_load((REPO / "galaxy.yml").read_text(encoding="utf-8"))["version"]
    path = out / f"khronika-platform-{version}.tar.gz"
    assert path.is_file()
    return path


def test_tarball_holds_the_collection_and_nothing_of_the_lab(tarball):
    with tarfile.open(tarball) as archive:
        names = set(archive.getnames())
    for wanted in [
        "MANIFEST.json",
        "roles/common/meta/argument_specs.yml",
        "roles/docker/tasks/main.yml",
        "plugins/filter/khronika.py",
        "playbooks/site.yml",
        "meta/runtime.yml",
        "README.md",
    ]:
        assert wanted in names, wanted
    for unwanted in ["tests", "molecule", "src", ".venv", ".ansible", "scripts", ".cache", "benchmarks"]:
        assert not any(n == unwanted or n.startswith(unwanted + "/") for n in names), unwanted


@pytest.fixture(scope="module")
def installed(tarball, tmp_path_factory: pytest.TempPathFactory) -> Path:
    dest = tmp_path_factory.mktemp("collections")
    # Outside the checkout's ansible.cfg, or ansible-galaxy sees the linked checkout and installs nothing.
    env = ansible_env(ANSIBLE_COLLECTIONS_PATH=str(dest))
    env.pop("ANSIBLE_CONFIG")
    cmd = [
        tool("ansible-galaxy"),
        "collection",
        "install",
        "--offline",
        "--no-deps",
        "-p",
        str(dest),
        str(tarball),
    ]
    subprocess.run(cmd, check=True, capture_output=True, env=env, cwd=dest)
    assert (dest / "ansible_collections" / "khronika" / "platform" / "MANIFEST.json").is_file()
    return dest


@pytest.mark.parametrize("role", ROLES)
def test_ansible_doc_documents_each_role_from_the_installed_tarball(installed, role):
    specs = yaml.safe_load(
        (REPO / "roles" / role / "meta" / "argument_specs.yml").read_text(encoding="utf-8")
    )
    options = specs["argument_specs"]["main"]["options"]
    env = ansible_env(ANSIBLE_COLLECTIONS_PATH=f"{installed}:{REPO / '.ansible' / 'collections'}")
    env.pop("ANSIBLE_CONFIG")
    out = subprocess.run(
        [tool("ansible-doc"), "-t", "role", f"khronika.platform.{role}"],
        check=True,
        capture_output=True,
        text=True,
        env=env,
        cwd=installed,
    ).stdout
    assert str(installed) in out  # documented from the installed copy, not the checkout
    for option in options:
        assert option in out, option


@pytest.mark.parametrize("role", ROLES)
def test_argument_specs_match_defaults(role):
    specs = yaml.safe_load(
        (REPO / "roles" / role / "meta" / "argument_specs.yml").read_text(encoding="utf-8")
    )
    defaults = (
        yaml.safe_load((REPO / "roles" / role / "defaults" / "main.yml").read_text(encoding="utf-8")) or {}
    )
    options = specs["argument_specs"]["main"]["options"]
    # A default of a tasks_from entry point (common's archive_packages) is documented under that entry point.
    anywhere = {
        name: spec
        for entry in specs["argument_specs"].values()
        for name, spec in (entry.get("options") or {}).items()
    }
    assert set(options) <= set(defaults), set(options) - set(defaults)
    assert set(defaults) <= set(anywhere), set(defaults) - set(anywhere)
    for name, value in defaults.items():
        documented = anywhere[name].get("default")
        if isinstance(value, str) and "{{" in value:
            continue  # computed defaults are described in words
        assert documented == value, (
            f"{role}: {name} default {documented!r} in argument_specs, {value!r} in defaults"
        )


def _bundle_wheelhouse(tmp_path: Path) -> Path:
    cached = REPO / ".cache" / "wheelhouse"
    if (cached / BUNDLE_WHEEL).is_file():
        return cached
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", str(tmp_path), "ansible==12.3.0"],
        check=True,
    )
    return tmp_path


def test_air_gapped_install_from_a_wheelhouse(tmp_path):
    wheelhouse = _bundle_wheelhouse(tmp_path / "wheels")
    dest = tmp_path / "collections"
    proc = subprocess.run(
        [
            sys.executable,
            str(REPO / "scripts" / "install_collections.py"),
            "--source",
            "bundle",
            "--requirements",
            str(REPO / "requirements.yml"),
            "--dest",
            str(dest),
            "--cache",
            str(tmp_path / "cache"),
        ],
        capture_output=True,
        text=True,
        env={
            **ansible_env(),
            "KHRONIKA_WHEELHOUSE": str(wheelhouse),
            "PIP_INDEX_URL": "http://127.0.0.1:9/none",
        },
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    wanted = yaml.safe_load((REPO / "requirements.yml").read_text(encoding="utf-8"))["collections"]
    for entry in wanted:
        namespace, name = entry["name"].split(".")
        manifest = dest / "ansible_collections" / namespace / name / "MANIFEST.json"
        assert entry["version"] in manifest.read_text(encoding="utf-8")


def test_air_gapped_install_from_a_download_folder(tarball, tmp_path):
    folder = tmp_path / "download"
    folder.mkdir()
    (folder / tarball.name).write_bytes(tarball.read_bytes())
    (folder / "requirements.yml").write_text(
        yaml.safe_dump({"collections": [{"name": tarball.name}]}), encoding="utf-8"
    )
    requirements = tmp_path / "requirements.yml"
    version = yaml.safe_load((REPO / "galaxy.yml").read_text(encoding="utf-8"))["version"]
    requirements.write_text(
        yaml.safe_dump({"collections": [{"name": "khronika.platform", "version": version}]})
    )
    proc = subprocess.run(
        [
            sys.executable,
            str(REPO / "scripts" / "install_collections.py"),
            "--source",
            "dir",
            "--requirements",
            str(requirements),
            "--dest",
            str(tmp_path / "collections"),
        ],
        capture_output=True,
        text=True,
        env={**ansible_env(), "KHRONIKA_COLLECTIONS_DIR": str(folder)},
        check=False,
    )
    assert proc.returncode == 0, proc.stderr + proc.stdout
    assert (
        tmp_path / "collections" / "ansible_collections" / "khronika" / "platform" / "roles" / "docker"
    ).is_dir()


def test_unpinned_requirement_is_refused(tmp_path):
    requirements = tmp_path / "requirements.yml"
    requirements.write_text(
        "collections:\n  - name: community.docker\n    version: '>=3.10'\n", encoding="utf-8"
    )
    proc = subprocess.run(
        [
            sys.executable,
            str(REPO / "scripts" / "install_collections.py"),
            "--requirements",
            str(requirements),
            "--dest",
            str(tmp_path / "c"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode != 0
    assert "community.docker must be pinned to one exact version" in proc.stderr
