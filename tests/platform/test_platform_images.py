"""The Docker image reference grammar: what the catalog and the release manifests accept."""

from __future__ import annotations

import pytest

from khronika_ops.platform.images import (
    ImageReferenceError,
    parse_image_reference,
    parse_pinned_reference,
    parse_repository,
)

DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize(
    ("text", "registry", "path", "tag", "digest"),
    [
        ("busybox", None, "busybox", None, None),
        ("library/busybox:1.36", None, "library/busybox", "1.36", None),
        (
            "registry.test:5000/khronika-samples/appeals-api",
            "registry.test:5000",
            "khronika-samples/appeals-api",
            None,
            None,
        ),
        ("localhost/a/b", "localhost", "a/b", None, None),
        ("127.0.0.1:5000/x/y:1.0", "127.0.0.1:5000", "x/y", "1.0", None),
        ("[::1]:5000/x", "[::1]:5000", "x", None, None),
        ("Registry.Example.org/a__b/c-d.e", "Registry.Example.org", "a__b/c-d.e", None, None),
        (f"x/y@{DIGEST}", None, "x/y", None, DIGEST),
        (f"x/y:1@{DIGEST}", None, "x/y", "1", DIGEST),
    ],
)
def test_valid_references(text, registry, path, tag, digest):
    reference = parse_image_reference(text)
    assert (reference.registry, reference.path, reference.tag, reference.digest) == (
        registry,
        path,
        tag,
        digest,
    )
    assert str(reference) == text


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "non-empty"),
        ("khronika/App", "lowercase"),
        ("MyApp", "lowercase"),
        ("registry.test:5000/Khronika/app", "lowercase"),
        ("x/-app", "separators"),
        ("x//app", "empty path component"),
        ("x/app:-bad", "tag"),
        ("x/app@sha256:abc", "64 lowercase hex"),
        ("x/app@md5:" + "a" * 32, "64 lowercase hex"),
        ("x/app@sha256:" + "AB" * 32, "64 lowercase hex"),
        ("exa_mple.org/app", "registry"),
        ("registry.test:70000/app", "out of range"),
        ("x/app bad", "spaces"),
        ("{{ khronika_registry }}/app", "Jinja2"),
    ],
)
def test_invalid_references_say_why(text, fragment):
    with pytest.raises(ImageReferenceError, match=fragment):
        parse_image_reference(text)


def test_catalog_repository_refuses_tag_and_digest():
    with pytest.raises(ImageReferenceError, match=r"must not carry a tag \(':1.0'\)"):
        parse_repository("x/app:1.0")
    with pytest.raises(ImageReferenceError, match="must not carry a digest"):
        parse_repository(f"x/app@{DIGEST}")
    assert parse_repository("registry.test:5000/x/app").repository == "registry.test:5000/x/app"


def test_release_reference_must_be_pinned_without_tag():
    with pytest.raises(ImageReferenceError, match="pinned by digest"):
        parse_pinned_reference("x/app:1.0")
    with pytest.raises(ImageReferenceError, match="beside the digest"):
        parse_pinned_reference(f"x/app:1.0@{DIGEST}")
    assert parse_pinned_reference(f"x/app@{DIGEST}").with_digest(DIGEST) == f"x/app@{DIGEST}"


def test_name_longer_than_255_is_refused():
    with pytest.raises(ImageReferenceError, match="longer than 255"):
        parse_image_reference("a/" + "b" * 260)
