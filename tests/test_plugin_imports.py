"""Loading the collection's filter files imports nothing heavy: Ansible loads every filter file of the
collection in each task's worker to find one filter, so an eager import cost every such task about 0.6
CPU-seconds per host (khronika_ops.lazy)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import REPO

HEAVY = (
    "pydantic",
    "numpy",
    "scipy",
    "matplotlib",
    "khronika_ops.platform",
    "khronika_ops.planner",
    "khronika_ops.archive",
)

_LOAD = """
import importlib.util, json, sys
from pathlib import Path
modules = {}
for path in sorted(Path("plugins/filter").glob("*.py")):
    spec = importlib.util.spec_from_file_location("filter_" + path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    modules[path.stem] = module
heavy = sorted({name.split(".")[0] if not name.startswith("khronika_ops.") else ".".join(name.split(".")[:2])
                for name in sys.modules if name.startswith(tuple(sys.argv[1].split(",")))})
filters = {stem: sorted(m.FilterModule().filters()) for stem, m in modules.items()}
after = None
if len(sys.argv) > 2:
    # one filter called: only what it needs is imported
    print(modules["platform"].khronika_catalog_plan([], {"khronika_platform": []}), file=sys.stderr)
    after = sorted(n for n in sys.modules if n.startswith("khronika_ops.platform."))
print(json.dumps({"heavy": heavy, "filters": filters, "after": after}))
"""


def _load(*args: str) -> dict:
    result = subprocess.run(
        [sys.executable, "-c", _LOAD, ",".join(HEAVY), *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(result.stdout)


def test_loading_every_filter_file_imports_nothing_heavy() -> None:
    loaded = _load()
    assert loaded["heavy"] == []
    assert all(names for names in loaded["filters"].values()), loaded["filters"]


def test_a_filter_imports_its_module_when_called() -> None:
    loaded = _load("call")
    assert "khronika_ops.platform.catalog" in loaded["after"]
    assert "khronika_ops.platform.scale" not in loaded["after"]


def test_a_lazy_module_reads_through_and_says_what_it_is() -> None:
    from khronika_ops.lazy import lazy

    module = lazy("khronika_ops.quantities")
    assert "not imported yet" in repr(module)
    assert callable(module.parse_duration)
    assert "(imported)" in repr(module)
    with pytest.raises(AttributeError):
        _ = module.no_such_name
