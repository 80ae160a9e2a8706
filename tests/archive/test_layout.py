"""The archive's rules that need no Docker: names of loaded images, the checksum list, the plan's images
when they come from an archive, and what the update's pre-flight says of an image that is not loaded."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "platform"))
from platform_helpers import digest, inventory, module, release_data

from khronika_ops.archive import layout
from khronika_ops.platform.catalog import resolve_deployment
from khronika_ops.platform.images import ImageReferenceError, archive_tag, parse_image_reference
from khronika_ops.platform.release import parse_release


def _manifest(**images: str) -> layout.ArchiveManifest:
    return layout.ArchiveManifest(
        release="1.1.0",
        kind="change-release",
        built_at="2026-12-03T00:00:00Z",
        built_by="0.1.0",
        components=["images"],
        images=[
            layout.ArchiveImage(
                module=name,
                reference=f"example/{name}@{pin}",
                digest=pin,
                image_id=digest(f"id-{name}"),
                size=1,
            )
            for name, pin in images.items()
        ],
    )


def test_the_plan_runs_the_archives_tags_and_the_loader_finds_their_ids() -> None:
    release = parse_release(release_data("1.1.0", api=digest("api"), worker=digest("worker")))
    catalog = [module("api", image=None), module("worker", image=None)]
    pulled = resolve_deployment(catalog, inventory(), release=release, default_registry="registry.test:5000")
    loaded = resolve_deployment(
        catalog, inventory(), release=release, default_registry="registry.test:5000", image_source="archive"
    )
    images = {c.module: c.image for c in loaded.hosts["app-01"].containers}
    hex_api = digest("api").split(":")[1]
    assert images["api"] == f"registry.test:5000/example/api:sha256-{hex_api}"
    assert {c.module: c.image for c in pulled.hosts["app-01"].containers}["api"] == (
        f"registry.test:5000/example/api@{digest('api')}"
    )
    # Everything else about the plan is the same.
    assert loaded.model_dump(exclude={"hosts"}) == pulled.model_dump(exclude={"hosts"})
    assert loaded.hosts["app-01"].container_names == pulled.hosts["app-01"].container_names
    tags = layout.load_tags(_manifest(api=digest("api"), worker=digest("worker")), images.values())
    assert tags == [
        {"name": images["api"], "image_id": digest("id-api")},
        {"name": images["worker"], "image_id": digest("id-worker")},
    ]
    with pytest.raises(ValueError, match="image source must be one of registry, archive"):
        resolve_deployment(catalog, inventory(), release=release, image_source="mirror")


def test_the_loader_refuses_images_the_archive_lacks() -> None:
    manifest = _manifest(api=digest("api"))
    wrong = [
        f"example/api:{archive_tag(digest('other'))}",
        "example/api:latest",
        f"example/api@{digest('api')}",
    ]
    with pytest.raises(ValueError) as caught:
        layout.load_tags(manifest, wrong)
    message = str(caught.value)
    assert "the archive of release 1.1.0 holds no image for" in message
    assert all(name in message for name in wrong)


def test_archive_tag() -> None:
    pin = digest("x")
    assert archive_tag(pin) == "sha256-" + pin.split(":")[1]
    assert parse_image_reference(f"r.test:5000/a/b:{archive_tag(pin)}").tag == archive_tag(pin)
    with pytest.raises(ImageReferenceError):
        archive_tag("sha256:abc")


def test_checksum_list_round_trip_and_errors() -> None:
    sums = {"b/x.tar": "a" * 64, "archive.json": "b" * 64}
    text = layout.format_checksums(sums)
    assert text.splitlines()[0] == f"{'b' * 64}  archive.json"
    assert layout.parse_checksums(text) == sums
    assert layout.parse_checksums(f"{'c' * 64} *bin.tar\n") == {"bin.tar": "c" * 64}
    for bad, said in [
        ("zz  x\n", "line 1 is not"),
        (f"{'a' * 64}  ../etc/passwd\n", "leaves the archive's folder"),
        (f"{'a' * 64}  /etc/passwd\n", "leaves the archive's folder"),
        (f"{'a' * 64}  x\n{'b' * 64}  x\n", "lists x twice"),
    ]:
        with pytest.raises(ValueError, match=said):
            layout.parse_checksums(bad)
