"""execution-environment.yml: the build context ansible-builder makes from it, without Docker or network.

The image itself is built and smoke-tested by scripts/build-ee.sh --smoke (docs/awx.md); here the
definition is checked for what that build relies on: the pins of constraints.txt, the collections of
requirements.yml, the staged wheel and tarball reaching the context, pip's settings reaching every
stage that runs pip, and no host name written into the files.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import REPO, ansible_env, tool

EE_FILE = REPO / "execution-environment.yml"
BUILDER = Path(sys.executable).with_name("ansible-builder")
PIP_ARGS = ["PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_FIND_LINKS", "PIP_NO_INDEX", "PIP_TRUSTED_HOST"]
WHEEL = "khronika_ops-0.1.0-py3-none-any.whl"
TARBALL = "khronika-platform-0.1.0.tar.gz"


def pins() -> dict[str, str]:
    result = {}
    for line in (REPO / "constraints.txt").read_text(encoding="utf-8").splitlines():
        if "==" in line and not line.lstrip().startswith("#"):
            name, version = line.split("==", 1)
            result[name.strip().lower()] = version.strip()
    return result


@pytest.fixture(scope="module")
def ee() -> dict:
    return yaml.safe_load(EE_FILE.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def context(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`ansible-builder create` on a copy of the definition, with stand-ins for what build-ee.sh stages."""
    if not BUILDER.exists():
        pytest.skip(f"{BUILDER} missing (scripts/setup.sh installs ansible-builder)")
    root = tmp_path_factory.mktemp("ee")
    for name in ["execution-environment.yml", "requirements.yml", "constraints.txt"]:
        shutil.copy(REPO / name, root / name)
    staged = root / ".cache" / "ee"
    (staged / "khronika").mkdir(parents=True)
    (staged / "khronika" / WHEEL).write_bytes(b"wheel stand-in")
    manifest = staged / "collections" / "ansible_collections" / "community" / "docker" / "MANIFEST.json"
    manifest.parent.mkdir(parents=True)
    manifest.write_text("{}", encoding="utf-8")
    (staged / "collections" / TARBALL).write_bytes(b"tarball stand-in")
    out = root / "context"
    definition = root / "execution-environment.yml"
    subprocess.run(
        [str(BUILDER), "create", "-f", str(definition), "-c", str(out), "--output-filename", "Dockerfile"],
        check=True,
        capture_output=True,
        cwd=root,
        timeout=60,
    )
    return out


def stages(dockerfile: str) -> dict[str, list[str]]:
    """Dockerfile lines by stage name (`FROM ... AS <name>`)."""
    result: dict[str, list[str]] = {}
    current = "global"
    for line in dockerfile.splitlines():
        match = re.match(r"FROM \S+ AS (\w+)", line)
        if match:
            current = match.group(1)
        result.setdefault(current, []).append(line)
    return result


def test_ansible_core_and_runner_are_the_pins_of_constraints(ee):
    pinned = pins()
    deps = ee["dependencies"]
    assert deps["ansible_core"]["package_pip"] == f"ansible-core=={pinned['ansible-core']}"
    assert deps["ansible_runner"]["package_pip"] == f"ansible-runner=={pinned['ansible-runner']}"


def test_dockerfile_installs_the_pinned_ansible(context):
    pinned = pins()
    dockerfile = (context / "Dockerfile").read_text(encoding="utf-8")
    refs = f"ansible-core=={pinned['ansible-core']} ansible-runner=={pinned['ansible-runner']}"
    assert f'ARG ANSIBLE_INSTALL_REFS="{refs}"' in dockerfile
    assert 'ARG PKGMGR="/usr/bin/apt-get"' in dockerfile
    assert 'ARG ANSIBLE_GALAXY_CLI_COLLECTION_OPTS="--offline"' in dockerfile
    # Debian disables ensurepip: pip comes from the base image.
    assert "/output/scripts/pip_install" not in dockerfile


def test_context_holds_requirements_constraints_wheel_and_collections(context):
    build = context / "_build"
    assert (build / "requirements.yml").read_text() == (REPO / "requirements.yml").read_text()
    assert (build / "pins" / "constraints.txt").read_text() == (REPO / "constraints.txt").read_text()
    assert (build / "khronika" / WHEEL).is_file()
    assert (build / "collections" / TARBALL).is_file()
    assert (
        build / "collections" / "ansible_collections" / "community" / "docker" / "MANIFEST.json"
    ).is_file()
    python = (build / "requirements.txt").read_text().splitlines()
    assert "khronika-ops" in python
    assert "--find-links /output/khronika" in python


def test_collections_are_staged_then_checked_then_khronika_installed(context):
    galaxy = stages((context / "Dockerfile").read_text(encoding="utf-8"))["galaxy"]
    copy_tree = galaxy.index(
        "COPY _build/collections/ansible_collections/ /usr/share/ansible/collections/ansible_collections/"
    )
    check = next(
        i for i, line in enumerate(galaxy) if "collection install" in line and "-r requirements.yml" in line
    )
    khronika = next(i for i, line in enumerate(galaxy) if "khronika-platform-*.tar.gz" in line)
    assert copy_tree < check < khronika
    assert "--offline" in galaxy[khronika]


@pytest.mark.parametrize(
    ("stage", "first_pip_step"),
    [
        ("base", "RUN $PYCMD -m pip install --no-cache-dir $ANSIBLE_INSTALL_REFS"),
        ("builder", "RUN /output/scripts/assemble"),
        ("final", "RUN /output/scripts/install-from-bindep && rm -rf /output/wheels"),
    ],
)
def test_pip_settings_and_constraints_reach_every_pip_stage(context, stage, first_pip_step):
    lines = stages((context / "Dockerfile").read_text(encoding="utf-8"))[stage]
    step = lines.index(first_pip_step)
    for arg in PIP_ARGS:
        assert lines.index(f"ARG {arg}") < step, (stage, arg)
    assert lines.index("ARG PIP_CONSTRAINT=/output/constraints.txt") < step
    if stage == "builder":
        assert lines.index("COPY _build/khronika/ /output/khronika/") < step


def test_builder_tools_are_preinstalled_where_pip_has_its_index(context):
    """The builder stage installs bindep & co. before any ARG of ours: base must already have them."""
    by_stage = stages((context / "Dockerfile").read_text(encoding="utf-8"))
    install = "RUN $PYCMD -m pip install --no-cache-dir bindep pyyaml packaging"
    assert install in by_stage["builder"]
    assert install in by_stage["base"]
    assert by_stage["base"].index("ARG PIP_FIND_LINKS") < by_stage["base"].index(install)


def test_base_image_brings_pip_when_the_ee_skips_installing_it(ee):
    containerfile = (REPO / "ee" / "base.Containerfile").read_text(encoding="utf-8")
    assert ee["options"]["skip_pip_install"] is True
    assert "python3-pip" in containerfile
    assert "python3-venv" in containerfile


def test_no_host_is_written_into_the_ee_files():
    """Mirrors and indexes are read on the build host at run time; only the local wheelhouse is named."""
    files = [
        EE_FILE,
        REPO / "ee" / "base.Containerfile",
        REPO / "ee" / "smoke.yml",
        REPO / "scripts" / "build-ee.sh",
    ]
    for path in files:
        for url in re.findall(r"[a-z][a-z0-9+.-]*://[^\s\"'/]+", path.read_text(encoding="utf-8")):
            assert url.startswith("http://127.0.0.1:"), f"{path.name}: {url}"


def test_build_script_parses_and_documents_itself():
    script = REPO / "scripts" / "build-ee.sh"
    subprocess.run(["bash", "-n", str(script)], check=True)
    text = script.read_text(encoding="utf-8")
    assert "set -euo pipefail" in text
    out = subprocess.run(
        ["bash", str(script), "--help"], check=True, capture_output=True, text=True, timeout=30
    ).stdout
    assert "Usage: scripts/build-ee.sh" in out


def test_smoke_playbook_passes_syntax_check():
    proc = subprocess.run(
        [tool("ansible-playbook"), "--syntax-check", "-i", "localhost,", str(REPO / "ee" / "smoke.yml")],
        capture_output=True,
        text=True,
        env=ansible_env(),
        cwd=REPO,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
