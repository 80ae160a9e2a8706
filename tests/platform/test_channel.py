"""The release channel: its policy, the one decision rule, its state, the registry channel against the
real test registry (publish, list, refusals) and the drop folder of signed archives (real archives, real
gpg), and the commands over a real inventory."""

from __future__ import annotations

import json
import os
import shutil
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from conftest import (
    REPO,
    TEST_REGISTRY_LOCAL,
    docker_available,
    gpg_keyring,
    pinned_test_image,
    require_service,
)
from khronika_ops.cli import app
from khronika_ops.platform.channel import (
    Batch,
    Canary,
    ChannelError,
    ChannelRelease,
    ChannelState,
    FolderChannel,
    Halt,
    Offer,
    RegistryChannel,
    Rollout,
    RunLine,
    Stage,
    StateStore,
    approve,
    decide,
    load_release_text,
    parse_policy,
    plan_stages,
    resume,
)
from khronika_ops.platform.registry import Credentials, RegistryClient

NOW = datetime(2026, 12, 6, 2, 0, tzinfo=UTC)  # inside the window below (Sundays 01:00-05:00)
WINDOW = {"start": "2026-12-06T01:00:00Z", "duration": "4h", "every": "7d"}


def manifest(version: str, kind: str = "change-release", image: str = "khronika-samples/appeals-api") -> str:
    return (
        f"version: '{version}'\nkind: {kind}\ndate: 2026-12-01\nmodules:\n"
        f"  - name: appeals-api\n    image: {image}@sha256:{'a' * 64}\n"
    )


def offer(*releases: tuple[str, str]) -> Offer:
    return Offer(
        [
            ChannelRelease(load_release_text(manifest(v, k), v), f"test:{v}", manifest(v, k))
            for v, k in releases
        ],
        [],
    )


def policy(**overrides: Any) -> Any:
    return parse_policy(
        {"source": "registry", "registry": "registry.test:5000", "window": WINDOW, **overrides}
    )


# --- policy -------------------------------------------------------------------------------------------


def test_the_policy_defaults_and_its_refusals() -> None:
    default = policy()
    assert default.apply == {"change-release": "auto", "new-version": "approve"}
    assert default.canary == Canary(count=1) and default.batch == Batch(percent=50)
    assert default.soak == 900 and default.failure_budget == 0 and not default.late_rollback_restore
    assert policy(apply={"new-version": "never"}).apply == {"change-release": "auto", "new-version": "never"}
    refusals = {
        "canary": ({"canary": {"group": "canary", "count": 1}}, "not both"),
        "folder without key": ({"source": "folder", "folder": "/srv/drop"}, "refused unsigned"),
        "repository": ({"repository": "Khronika Releases"}, "not a registry repository name"),
        "registry": ({"registry": "https://registry.test"}, "not a registry host"),
        "unknown key": ({"soak_time": "10m"}, "soak_time"),
        "rule": ({"apply": {"change-release": "sometimes"}}, "apply.change-release"),
        "window": (
            {"window": {"start": "2026-12-06T01:00:00Z", "duration": "8d", "every": "7d"}},
            "every >= duration",
        ),
        "watch": ({"watch": {"prometheus": "prometheus:9090"}}, r"not an http\(s\) URL"),
    }
    for name, (change, expected) in refusals.items():
        with pytest.raises(ChannelError, match=expected):
            policy(**change)
        assert name
    with pytest.raises(ChannelError, match="must be a mapping"):
        parse_policy(["registry"])


# --- the decision -------------------------------------------------------------------------------------


def test_a_change_release_applies_inside_the_window_and_waits_outside() -> None:
    channel = offer(("1.0.0", "change-release"), ("1.1.0", "change-release"), ("1.1.1", "change-release"))
    now = decide(policy(), ChannelState(), "1.0.0", channel, NOW)
    assert (now.action, now.release) == ("apply", "1.1.1")
    assert [(c.version, c.verdict) for c in now.candidates] == [
        ("1.1.0", "a newer release applies (1.1.1)"),
        ("1.1.1", "applies"),
    ]
    later = decide(policy(), ChannelState(), "1.0.0", channel, NOW + timedelta(hours=4))
    assert later.action == "wait" and "opens at 2026-12-13T01:00:00Z" in later.window
    assert decide(policy(), ChannelState(), "1.1.1", channel, NOW).action == "nothing"
    assert decide(policy(paused=True), ChannelState(), "1.0.0", channel, NOW).action == "paused"


def test_a_new_version_waits_for_approval_and_a_failed_release_is_never_retried() -> None:
    channel = offer(("1.1.0", "change-release"), ("2.0.0", "new-version"), ("2.0.1", "change-release"))
    first = decide(policy(), ChannelState(), "1.0.0", channel, NOW)
    assert (first.action, first.release) == ("apply", "1.1.0")
    verdicts = {c.version: (c.move, c.verdict) for c in first.candidates}
    # 2.0.1 is a change release, but moving to it crosses 2.0.0: it needs the new version's approval.
    assert verdicts["2.0.1"] == ("new-version", "needs approval: khronika update approve 2.0.0")
    assert verdicts["2.0.0"] == ("new-version", "needs approval: khronika update approve 2.0.0")
    assert decide(policy(), ChannelState(), "1.1.0", channel, NOW).message == (
        "nothing to apply: 2.0.1 needs approval: khronika update approve 2.0.0"
    )
    approved = approve(ChannelState(), "2.0.0")
    assert decide(policy(), approved, "1.1.0", channel, NOW).release == "2.0.1"
    # A major number that changes is a new version even when the release that changed it is gone.
    assert (
        decide(policy(), ChannelState(), "1.1.0", offer(("3.0.1", "change-release")), NOW).action == "nothing"
    )
    failed = approved.model_copy(update={"failed": {"2.0.1": "the canary failed its health gate"}})
    assert decide(policy(), failed, "1.1.0", channel, NOW).release == "2.0.0"
    failed = failed.model_copy(update={"failed": {"2.0.1": "health gate", "2.0.0": "5xx in the soak"}})
    assert decide(policy(), failed, "1.1.0", channel, NOW).action == "nothing"
    with pytest.raises(ChannelError, match="never applied by the channel again"):
        approve(failed, "2.0.0")
    never = policy(apply={"change-release": "never"})
    assert (
        decide(never, ChannelState(), "1.0.0", channel, NOW).candidates[0].verdict.startswith("not by policy")
    )


def test_a_halt_stops_everything_until_resumed_and_a_rollout_in_progress_goes_on() -> None:
    channel = offer(("1.1.0", "change-release"), ("1.2.0", "change-release"))
    halted = ChannelState(
        halted=Halt(release="1.2.0", reason="the canary's 5xx share rose", at="2026-12-06T01:30:00Z"),
        failed={"1.2.0": "the canary's 5xx share rose"},
    )
    decision = decide(policy(), halted, "1.1.0", channel, NOW)
    assert decision.action == "halted" and "khronika update resume" in decision.message
    assert decide(policy(), resume(halted), "1.1.0", channel, NOW).action == "nothing"
    rollout = Rollout(
        release="1.1.0",
        from_release="1.0.0",
        started_at="2026-12-06T01:10:00Z",
        stages=[Stage(name="canary", hosts=["app1"], state="soaked"), Stage(name="batch 1", hosts=["app2"])],
    )
    going = decide(policy(), ChannelState(rollout=rollout), "1.1.0", channel, NOW)
    assert (going.action, going.release) == ("continue", "1.1.0") and "batch 1 (app2)" in going.message
    assert (
        decide(policy(), ChannelState(rollout=rollout), "1.1.0", channel, NOW + timedelta(hours=5)).action
        == "wait"
    )


def test_stages_put_the_canary_first_then_batches_in_inventory_order() -> None:
    hosts = ["app1", "app2", "app3", "app4", "app5"]
    counted = plan_stages(hosts, Canary(count=1), [], Batch(percent=50))
    assert [(s.name, s.hosts) for s in counted] == [
        ("canary", ["app1"]),
        ("batch 1", ["app2", "app3"]),
        ("batch 2", ["app4", "app5"]),
    ]
    grouped = plan_stages(hosts, Canary(group="canary"), ["app4"], Batch(hosts=3))
    assert [s.hosts for s in grouped] == [["app4"], ["app1", "app2", "app3"], ["app5"]]
    assert [s.hosts for s in plan_stages(["app1"], Canary(count=2), [], Batch(hosts=1))] == [["app1"]]
    with pytest.raises(ChannelError, match="has no platform host"):
        plan_stages(hosts, Canary(group="canary"), ["db1"], Batch(hosts=1))


# --- the state ----------------------------------------------------------------------------------------


def test_the_state_is_written_atomically_and_one_run_at_a_time(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "channel")
    assert store.load() == ChannelState()
    state = approve(ChannelState(), "2.0.0").with_run(
        RunLine(at="2026-12-06T01:00:00Z", action="approve", release="2.0.0", result="ok", message="by ops")
    )
    store.save(state)
    assert store.load() == state
    assert [p.name for p in store.folder.iterdir() if p.name.startswith(".state-")] == []
    for index in range(150):
        state = state.with_run(RunLine(at="t", action="auto", result="nothing", message=str(index)))
    assert len(state.runs) == 100 and state.runs[-1].message == "149"
    with store.lock(), pytest.raises(ChannelError, match="another channel run holds"), store.lock():
        pass
    with store.lock():
        pass  # released
    store.file.write_text('{"schema_version": 1, "halted": "yes"}')
    with pytest.raises(ChannelError, match="halted"):
        store.load()


# --- the registry channel, against the real test registry --------------------------------------------


def _registry() -> RegistryChannel:
    state = os.environ.get("KHRONIKA_TEST_REGISTRY_DIR")
    require_service(bool(state) and Path(state or "").is_dir(), "the test registry")
    assert state is not None
    password = (Path(state) / "password").read_text(encoding="utf-8").strip()
    client = RegistryClient(
        {TEST_REGISTRY_LOCAL: Credentials(os.environ["KHRONIKA_TEST_REGISTRY_USER"], password)},
        ca_file=os.environ["KHRONIKA_TEST_REGISTRY_CA"],
    )
    return RegistryChannel(client, TEST_REGISTRY_LOCAL, f"khronika-test/channel-{uuid.uuid4().hex[:8]}")


def _push_raw(channel: RegistryChannel, tag: str, layer: bytes, media_type: str) -> None:
    """An artifact as a careless or hostile publisher would push it, past `publish`'s checks."""
    layer_digest = channel._upload(layer, media_type)
    config = channel._upload(b"{}", "application/vnd.oci.empty.v1+json")
    body = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": config, "size": 2},
            "layers": [{"mediaType": media_type, "digest": layer_digest, "size": len(layer)}],
        }
    ).encode()
    answer = channel.client.send(
        "PUT",
        channel.registry,
        channel.repository,
        f"{channel.base}/manifests/{tag}",
        data=body,
        headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"},
    )
    assert answer.status == 201, answer.body


def test_a_registry_channel_publishes_lists_and_refuses_what_is_not_a_release() -> None:
    channel = _registry()
    assert channel.offer().releases == []  # a repository nothing was published to
    origin, written = channel.publish(manifest("1.1.0"), "1.1.0.yml")
    assert written and origin.startswith(f"registry://{channel.registry}/{channel.repository}:1.1.0@sha256:")
    assert channel.publish(manifest("1.1.0"), "1.1.0.yml") == (origin, False)
    with pytest.raises(ChannelError, match="already published with other contents"):
        channel.publish(manifest("1.1.0", image="khronika-samples/other"), "1.1.0.yml")
    channel.publish(manifest("2.0.0", "new-version"), "2.0.0.yml")
    with pytest.raises(ChannelError, match="not a semantic version"):
        channel.publish(manifest("2.0").replace("'2.0'", "'2.0'"), "bad.yml")
    # Pushed past publish: a tag that is not a release, a manifest whose number is not its tag, an
    # image's layer where the release should be, and YAML that is not a release.
    _push_raw(channel, "latest", manifest("9.9.9").encode(), "application/vnd.khronika.release.v1+yaml")
    _push_raw(channel, "1.2.0", manifest("1.3.0").encode(), "application/vnd.khronika.release.v1+yaml")
    _push_raw(channel, "1.4.0", b"\x1f\x8b not a release", "application/vnd.oci.image.layer.v1.tar+gzip")
    _push_raw(
        channel, "1.5.0", b"version: '1.5.0'\nkind: hotfix\n", "application/vnd.khronika.release.v1+yaml"
    )
    offered = channel.offer(newer_than="1.0.0")
    assert [item.version for item in offered.releases] == ["1.1.0", "2.0.0"]
    assert offered.releases[1].release.kind == "new-version"
    refused = {item.origin.rsplit(":", 1)[1]: item.reason for item in offered.refused}
    assert set(refused) == {"1.2.0", "1.4.0", "1.5.0"}  # "latest" is no release number: not asked
    assert "says release 1.3.0, not 1.2.0" in refused["1.2.0"]
    assert "not a release manifest artifact" in refused["1.4.0"]
    assert "kind" in refused["1.5.0"]
    assert [item.version for item in channel.offer(newer_than="1.5.0").releases] == ["2.0.0"]
    unreachable = RegistryChannel(RegistryClient(timeout=2), "127.0.0.1:9", "khronika/releases")
    with pytest.raises(ChannelError, match="does not answer"):
        unreachable.offer()


# --- the drop folder of signed archives ---------------------------------------------------------------


@pytest.fixture(scope="module")
def signed_archives(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two releases' archives signed with a new gpg key, one unsigned, one tampered; and the keyring."""
    require_service(docker_available() and shutil.which("gpg") is not None, "docker and gpg")
    from khronika_ops.archive.build import BuildOptions, build
    from khronika_ops.archive.signing import Signer

    image = pinned_test_image()
    root = tmp_path_factory.mktemp("drop")
    releases, drop = root / "releases", root / "drop"
    releases.mkdir()
    drop.mkdir()
    home = root / "gnupg"
    keyring = gpg_keyring(home)
    os.environ.setdefault(
        "DOCKER_CONFIG", str(Path(os.environ["KHRONIKA_TEST_REGISTRY_DIR"]) / "docker-config")
    )
    old_home = os.environ.get("GNUPGHOME")
    os.environ["GNUPGHOME"] = str(home)
    try:
        for version, signed in (("1.0.0", True), ("1.1.0", True), ("1.2.0", False)):
            (releases / f"{version}.yml").write_text(
                manifest(version).replace(f"khronika-samples/appeals-api@sha256:{'a' * 64}", image)
            )
            build(
                BuildOptions(
                    release=version,
                    source=REPO,
                    releases_dir=releases,
                    output=drop / f"khronika-{version}.tar",
                    registry=TEST_REGISTRY_LOCAL,
                    signer=Signer.parse("gpg:archive-test@khronika.invalid") if signed else None,
                    without={"wheels", "collection", "collections", "docs", "os-packages"},
                )
            )
    finally:
        if old_home is None:
            os.environ.pop("GNUPGHOME", None)
        else:
            os.environ["GNUPGHOME"] = old_home
    return {"drop": drop, "keyring": Path(keyring)}


def test_a_drop_folder_offers_only_verified_signed_archives(
    signed_archives: dict[str, Path], tmp_path: Path
) -> None:
    drop = tmp_path / "drop"
    shutil.copytree(signed_archives["drop"], drop)
    tampered = drop / "khronika-1.3.0.tar"
    shutil.copy(drop / "khronika-1.1.0.tar", tampered)  # a renamed copy: its release says 1.1.0
    (drop / "notes.txt").write_text("not an archive")
    (drop / "khronika-1.4.0.tar").write_bytes(b"not a tar at all")
    channel = FolderChannel(drop, signed_archives["keyring"])
    offered = channel.offer(newer_than="1.0.0")
    assert [item.version for item in offered.releases] == ["1.1.0"]
    assert offered.releases[0].archive == str(drop / "khronika-1.1.0.tar")
    refused = {Path(item.origin).name: item.reason for item in offered.refused}
    assert set(refused) == {"khronika-1.2.0.tar", "khronika-1.3.0.tar", "khronika-1.4.0.tar"}
    assert "no signature" in refused["khronika-1.2.0.tar"] or "not signed" in refused["khronika-1.2.0.tar"]
    assert "also in" in refused["khronika-1.3.0.tar"]
    with pytest.raises(ChannelError, match="is not a file"):
        FolderChannel(drop, tmp_path / "missing.gpg").offer()


# --- the commands over a real inventory ---------------------------------------------------------------


def _inventory(tmp_path: Path, channel: dict[str, Any], release: str = "1.0.0") -> Path:
    inventory = tmp_path / "site"
    (inventory / "group_vars" / "all").mkdir(parents=True)
    (inventory / "hosts.yml").write_text(
        "all:\n  children:\n    khronika_platform:\n      hosts:\n"
        "        app1: {ansible_connection: local}\n        app2: {ansible_connection: local}\n"
    )
    (inventory / "group_vars" / "all" / "main.yml").write_text(
        json.dumps({"khronika_release_version": release, "khronika_update_channel": channel})
    )
    return inventory


def test_check_approve_resume_and_status_commands(tmp_path: Path) -> None:
    channel = _registry()
    channel.publish(manifest("1.1.0"), "1.1.0.yml")
    channel.publish(manifest("2.0.0", "new-version"), "2.0.0.yml")
    password = channel.client.credentials[TEST_REGISTRY_LOCAL].password
    inventory = _inventory(
        tmp_path,
        {
            "source": "registry",
            "registry": TEST_REGISTRY_LOCAL,
            "repository": channel.repository,
            "registry_user": os.environ["KHRONIKA_TEST_REGISTRY_USER"],
            "registry_password": password,
            "registry_ca": os.environ["KHRONIKA_TEST_REGISTRY_CA"],
            # Open now, for an hour, every day: the decision is "apply".
            "window": {
                "start": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "duration": "1h",
                "every": "1d",
            },
        },
    )
    runner = CliRunner()
    result = runner.invoke(app, ["update", "channel", "check", "-i", str(inventory)])
    assert result.exit_code == 0, result.output
    assert "decision: apply: 1.1.0 applies now" in result.output
    assert "2.0.0      new-version     needs approval: khronika update approve 2.0.0" in result.output
    as_json = json.loads(
        runner.invoke(app, ["update", "channel", "check", "-i", str(inventory), "--json"]).output
    )
    assert as_json["action"] == "apply" and as_json["release"] == "1.1.0"
    assert as_json["channel"] == f"registry {TEST_REGISTRY_LOCAL}/{channel.repository}"

    approved = runner.invoke(app, ["update", "approve", "2.0.0", "-i", str(inventory)])
    assert approved.exit_code == 0, approved.output
    result = runner.invoke(app, ["update", "channel", "check", "-i", str(inventory)])
    assert "decision: apply: 2.0.0 applies now" in result.output
    state_file = inventory / ".khronika" / "channel" / "state.json"
    state = json.loads(state_file.read_text())
    assert state["approved"] == ["2.0.0"]

    store = StateStore(state_file.parent)
    store.save(
        store.load().model_copy(update={"halted": Halt(release="2.0.0", reason="canary 5xx", at="now")})
    )
    result = runner.invoke(app, ["update", "channel", "check", "-i", str(inventory)])
    assert "decision: halted" in result.output and "canary 5xx" in result.output
    status = runner.invoke(app, ["update", "channel", "status", "-i", str(inventory)])
    assert status.exit_code == 0, status.output
    assert "HALTED:" in status.output and "approved: 2.0.0" in status.output
    assert password not in status.output
    assert (
        password
        not in runner.invoke(app, ["update", "channel", "status", "-i", str(inventory), "--json"]).output
    )
    resumed = runner.invoke(app, ["update", "resume", "-i", str(inventory)])
    assert resumed.exit_code == 0 and "the halt on 2.0.0 is lifted" in resumed.output
    assert "nothing to resume" in runner.invoke(app, ["update", "resume", "-i", str(inventory)]).output
    assert [run["action"] for run in json.loads(state_file.read_text())["runs"]] == ["approve", "resume"]
    # The decision would be "apply": a strategy the controller does not run is refused before anything.
    refused = runner.invoke(app, ["update", "auto", "-i", str(inventory), "--strategy", "fast"])
    assert refused.exit_code == 2 and "unknown strategy 'fast'" in refused.output, refused.output
    assert [run["action"] for run in json.loads(state_file.read_text())["runs"]] == ["approve", "resume"]


def test_a_bad_policy_or_none_is_refused_before_anything_is_asked(tmp_path: Path) -> None:
    runner = CliRunner()
    none = tmp_path / "none"
    none.mkdir()
    result = runner.invoke(app, ["update", "channel", "check", "-i", str(_inventory(none, {}))])
    assert result.exit_code == 2
    bad = _inventory(tmp_path, {"source": "folder", "folder": "/srv/drop", "window": WINDOW})
    result = runner.invoke(app, ["update", "channel", "check", "-i", str(bad)])
    assert result.exit_code == 2
    assert "a folder channel needs `folder` and `key`" in result.output
