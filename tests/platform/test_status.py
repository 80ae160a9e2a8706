"""`khronika status` parsing of Ansible's JSON output (the live path runs in the deploy scenario)."""

from __future__ import annotations

import base64
import json

from khronika_ops.platform.status import parse_ansible_json, parse_stdout


def _content(record: dict[str, object]) -> str:
    return base64.b64encode(json.dumps(record).encode()).decode()


def test_records_errors_and_unreachable_hosts():
    record = {
        "version": "1.1.0",
        "kind": "change-release",
        "deployed_at": "2026-11-25T00:00:00Z",
        "modules": [],
    }
    document = {
        "plays": [
            {
                "tasks": [
                    {
                        "hosts": {
                            "b": {"content": _content(record), "encoding": "base64"},
                            "a": {"failed": True, "msg": "file not found: /etc/khronika/release.json"},
                            "c": {"unreachable": True, "msg": "ssh: connect to host c port 22"},
                        }
                    }
                ]
            }
        ]
    }
    records = parse_ansible_json(document)
    assert list(records) == ["a", "b", "c"]
    assert records["a"] == {"error": "no release recorded (/etc/khronika/release.json missing)"}
    assert records["b"] == record
    assert records["c"]["error"].startswith("unreachable: ssh")


def test_other_callbacks_around_the_json_document():
    stdout = 'Thursday 26 November 2026\n{"plays": [], "stats": {}}\nansible.builtin.slurp ----- 0.52s\n'
    assert parse_stdout(stdout) == {"plays": [], "stats": {}}
