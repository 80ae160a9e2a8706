"""Release manifests: schema, the committed examples, diff and the downtime rule, the host record."""

from __future__ import annotations

import pytest
from platform_helpers import RELEASES, digest, release_data

from khronika_ops.platform.release import (
    ReleaseError,
    diff,
    list_releases,
    load_release,
    parse_release,
    release_record,
    semver_key,
)


def release(version="1.0.0", kind="change-release", config=(), **modules):
    data = release_data(version, kind, **{name: digest(seed) for name, seed in modules.items()})
    data["config_changes"] = list(config)
    return parse_release(data)


def test_committed_example_releases_are_valid():
    releases = list_releases(RELEASES)
    assert [r.version for r in releases] == ["1.0.0", "1.1.0", "1.2.0", "1.3.0", "1.4.0", "1.5.0", "1.5.1"]
    assert releases[0].kind == "new-version"
    assert all(r.module("appeals-api") for r in releases)


@pytest.mark.parametrize(
    ("change", "field", "fragment"),
    [
        ({"version": "1.0"}, "version", "not a semantic version"),
        ({"kind": "hotfix"}, "kind", "'new-version' or 'change-release'"),
        ({"colour": "red"}, "colour", "unknown key"),
        ({"modules": []}, "modules", "at least 1 item"),
    ],
)
def test_schema_errors_name_the_field(change, field, fragment):
    data = {**release_data(api=digest("a")), **change}
    with pytest.raises(ReleaseError) as caught:
        parse_release(data)
    assert any(p.field == field and fragment in p.message for p in caught.value.problems), caught.value


def test_module_image_must_be_pinned_and_errors_name_the_module():
    data = release_data(api=digest("a"))
    data["modules"][0]["image"] = "example/api:1.0"
    with pytest.raises(ReleaseError) as caught:
        parse_release(data)
    assert "module 'api', field 'image': must be pinned by digest" in str(caught.value)


def test_duplicate_modules_and_file_name_mismatch(tmp_path):
    data = release_data(api=digest("a"))
    data["modules"] *= 2
    with pytest.raises(ReleaseError, match="modules listed twice: api"):
        parse_release(data)
    path = tmp_path / "2.0.0.yml"
    path.write_text((RELEASES / "1.0.0.yml").read_text())
    with pytest.raises(ReleaseError, match="does not match the file name"):
        load_release(path)


def test_semver_precedence():
    versions = ["1.0.0", "1.0.0-rc.1", "1.0.0-alpha", "1.0.0-alpha.1", "0.9.10", "1.10.0", "1.2.0"]
    assert sorted(versions, key=semver_key) == [
        "0.9.10",
        "1.0.0-alpha",
        "1.0.0-alpha.1",
        "1.0.0-rc.1",
        "1.0.0",
        "1.2.0",
        "1.10.0",
    ]


def test_identical_releases_mean_no_downtime():
    a = release("1.0.0", api="1")
    result = diff(a, a)
    assert (result.direction, result.downtime, result.image_changes) == ("same", "none", [])


def test_recreate_module_change_is_full_downtime():
    result = diff(release("1.0.0", api="1", web="1"), release("1.1.0", api="2", web="1"))
    assert [c.module for c in result.image_changes] == ["api"]
    assert result.image_changes[0].update == "recreate"  # unknown strategy: counted as recreate
    assert result.downtime == "full"


def test_rolling_only_changes_are_partial():
    a, b = release("1.0.0", api="1", web="1"), release("1.1.0", api="2", web="1")
    result = diff(a, b, strategies={"api": "rolling", "web": "recreate"})
    assert result.downtime == "partial"
    assert result.downtime_reasons == ["api changes image and rolls replica by replica"]


def test_new_version_is_full_even_for_rolling_modules():
    a, b = release("1.0.0", api="1"), release("2.0.0", kind="new-version", api="2")
    result = diff(a, b, strategies={"api": "rolling"})
    assert result.downtime == "full" and result.crosses_new_version
    # Rolling back across it is just as disruptive.
    assert diff(b, a, strategies={"api": "rolling"}).downtime == "full"


def test_added_modules_and_resources_need_no_downtime():
    a = release("1.0.0", api="1")
    b_data = release_data("1.1.0", "change-release", api=digest("1"), extra=digest("x"))
    b_data["modules"][0]["min_resources"] = {"memory": "1g"}
    result = diff(a, parse_release(b_data))
    assert [m.module for m in result.added] == ["extra"]
    assert result.resource_changes[0].to_resources.memory == 1024**3
    assert result.downtime == "none"


def test_removed_module_is_partial():
    result = diff(release("1.0.0", api="1", old="1"), release("1.1.0", api="1"))
    assert [m.module for m in result.removed] == ["old"] and result.downtime == "partial"


def test_config_changes_follow_the_module_they_name():
    module_key = {"key": "khronika_modules.api.environment.X", "from": None, "to": 1, "note": "set X"}
    global_key = {"key": "khronika_registry", "from": "a", "to": "b"}
    a = release("1.0.0", api="1")
    rolling = {"api": "rolling"}
    assert diff(a, release("1.1.0", config=[module_key], api="1"), strategies=rolling).downtime == "partial"
    assert diff(a, release("1.1.0", config=[module_key], api="1")).downtime == "full"
    assert diff(a, release("1.1.0", config=[global_key], api="1"), strategies=rolling).downtime == "full"


def test_skipped_releases_contribute_their_config_changes_and_downgrades_reverse_them():
    change = {"key": "khronika_modules.api.environment.X", "from": None, "to": 1}
    a, middle, b = (
        release("1.0.0", api="1"),
        release("1.1.0", config=[change], api="2"),
        release("1.2.0", api="3"),
    )
    upgrade = diff(a, b, between=[middle])
    assert [(c.key, c.from_value, c.to_value) for c in upgrade.config_changes] == [(change["key"], None, 1)]
    downgrade = diff(b, a, between=[middle])
    assert downgrade.direction == "downgrade"
    assert [(c.from_value, c.to_value) for c in downgrade.config_changes] == [(1, None)]


def test_sample_releases_diff():
    r100, r110, r120, r130, r140, r150, r151 = list_releases(RELEASES)
    result = diff(r110, r120, strategies={"appeals-api": "rolling", "classifier": "recreate"})
    assert [c.module for c in result.image_changes] == ["appeals-api"]  # classifier unchanged
    assert result.downtime == "partial"
    assert diff(r100, r110).config_changes[0].key.endswith("APPEALS_MAX_BYTES")
    # 1.3.0, the crash-once sample, changes only appeals-api again.
    assert [c.module for c in diff(r120, r130).image_changes] == ["appeals-api"]
    # 1.4.0, the sample that loses its appeals while healthy, too.
    assert [c.module for c in diff(r130, r140).image_changes] == ["appeals-api"]
    # 1.5.0, the flaky sample the release channel's soak catches, and its fix 1.5.1.
    assert [c.module for c in diff(r140, r150).image_changes] == ["appeals-api"]
    assert [c.module for c in diff(r150, r151).image_changes] == ["appeals-api"]
    assert not diff(r110, r151).crosses_new_version  # a change release: the channel applies it by itself


def test_release_record():
    r = release("1.0.0", api="1", web="2")
    record = release_record(r, "2025-06-01T02:00:00Z")
    assert record["version"] == "1.0.0" and record["deployed_at"] == "2025-06-01T02:00:00Z"
    assert [m["digest"] for m in record["modules"]] == [digest("1"), digest("2")]
    containers = [{"module": "web", "image": f"registry.test:5000/example/web@{digest('2')}"}] * 2
    host_record = release_record(r, "now", containers)
    assert host_record["modules"] == [
        {"name": "web", "image": f"registry.test:5000/example/web@{digest('2')}", "digest": digest("2")}
    ]
    assert release_record(r, "now", [])["modules"] == []
