"""Docker image references, parsed by the grammar of distribution/reference (what `docker pull` accepts).

    reference  := name [ ":" tag ] [ "@" digest ]
    name       := [ domain "/" ] path-component [ "/" path-component ]*
    domain     := host [ ":" port ]            (the first component, when it has "." or ":" or is localhost)
    path-comp  := [a-z0-9]+ ( ( "." | "_" | "__" | "-"+ ) [a-z0-9]+ )*
    tag        := [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}
    digest     := algorithm ":" hex            (sha256: exactly 64 lowercase hex digits)

Errors say which part is wrong, because "invalid reference format" is what Docker says and nobody
knows what to fix from it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN_RE = re.compile(
    rf"^(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[0-9a-fA-F:.]+\])(?::[0-9]{{1,5}})?$"
)
_PATH_COMPONENT_RE = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$")
_TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_SHA256_DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}$")
_MAX_NAME_LENGTH = 255


# Where hosts get the module images: pulled from a registry by digest, or loaded from an installation
# archive (khronika_ops.archive; playbooks/install-offline.yml) and run by the tag archive_tag() names.
IMAGE_SOURCES = ("registry", "archive")


def archive_tag(digest: str) -> str:
    """The tag of an image loaded from an archive: its registry digest, `sha256:` written `sha256-`."""
    if not _SHA256_DIGEST_RE.match(digest):
        raise ImageReferenceError(f"digest {digest!r} is not 'sha256:' followed by 64 lowercase hex digits")
    return digest.replace(":", "-", 1)


class ImageReferenceError(ValueError):
    """An image reference Docker would refuse, with the reason."""


@dataclass(frozen=True)
class ImageReference:
    registry: str | None  # host[:port], None when the reference names no registry
    path: str
    tag: str | None = None
    digest: str | None = None

    @property
    def repository(self) -> str:
        """registry/path without tag or digest: what the catalog's `image` holds."""
        return f"{self.registry}/{self.path}" if self.registry else self.path

    def with_digest(self, digest: str) -> str:
        return f"{self.repository}@{digest}"

    def loaded_from_archive(self, digest: str) -> str:
        """The name an image of an installation archive gets on a host: `docker load` keeps no
        repository digest, so the loader tags the image `repository:sha256-<hex>` and the plan runs that."""
        return f"{self.repository}:{archive_tag(digest)}"

    def __str__(self) -> str:
        text = self.repository
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text


def _looks_like_registry(component: str) -> bool:
    # Docker's rule: a first component is a registry when it has a dot or a port, or is localhost.
    return "." in component or ":" in component or component == "localhost" or component != component.lower()


def parse_image_reference(text: str) -> ImageReference:
    if not isinstance(text, str) or not text:
        raise ImageReferenceError("an image reference must be a non-empty string")
    if "{{" in text or "{%" in text:
        raise ImageReferenceError(
            "contains a Jinja2 expression; write the repository literally (a path without a registry is "
            "pulled from khronika_registry)"
        )
    if text != text.strip() or any(char.isspace() for char in text):
        raise ImageReferenceError("must not contain spaces")
    remainder, _, digest = text.partition("@")
    if "@" in text and not _SHA256_DIGEST_RE.match(digest):
        raise ImageReferenceError(f"digest {digest!r} is not 'sha256:' followed by 64 lowercase hex digits")
    name, tag = remainder, None
    last_slash = remainder.rfind("/")
    colon = remainder.rfind(":")
    if colon > last_slash:
        name, tag = remainder[:colon], remainder[colon + 1 :]
        if not _TAG_RE.match(tag):
            raise ImageReferenceError(
                f"tag {tag!r} must be 1-128 characters of letters, digits, '_', '.' or '-', not starting "
                "with '.' or '-'"
            )
    if len(name) > _MAX_NAME_LENGTH:
        raise ImageReferenceError(f"repository name is longer than {_MAX_NAME_LENGTH} characters")
    components = name.split("/")
    registry = None
    if len(components) > 1 and _looks_like_registry(components[0]):
        registry = components.pop(0)
        if not _DOMAIN_RE.match(registry):
            raise ImageReferenceError(
                f"registry {registry!r} is not a host name, IPv4 address or [IPv6] address with an "
                "optional :port"
            )
        port = registry.rpartition(":")[2] if not registry.endswith("]") and ":" in registry else None
        if port is not None and not 0 < int(port) < 65536:
            raise ImageReferenceError(f"registry port {port} is out of range 1-65535")
    for component in components:
        if not component:
            raise ImageReferenceError(f"repository {name!r} has an empty path component")
        if component != component.lower():
            raise ImageReferenceError(
                f"repository path component {component!r} must be lowercase (only the registry host may "
                "have capitals)"
            )
        if not _PATH_COMPONENT_RE.match(component):
            raise ImageReferenceError(
                f"repository path component {component!r} may only hold a-z, 0-9 and the separators "
                "'.', '_', '__' or '-' between them"
            )
    return ImageReference(registry=registry, path="/".join(components), tag=tag, digest=digest or None)


def parse_repository(text: str) -> ImageReference:
    """A repository for the catalog: no tag and no digest, because the release pins the digest."""
    reference = parse_image_reference(text)
    if reference.digest:
        raise ImageReferenceError(
            "must not carry a digest: the release manifest pins it (write only the repository)"
        )
    if reference.tag:
        raise ImageReferenceError(
            f"must not carry a tag (':{reference.tag}'): the release manifest pins the digest "
            "(write only the repository)"
        )
    return reference


def parse_pinned_reference(text: str) -> ImageReference:
    """A release's image: repository@sha256:<64 hex>; a tag beside the digest is refused (it would lie)."""
    reference = parse_image_reference(text)
    if not reference.digest:
        raise ImageReferenceError("must be pinned by digest: repository@sha256:<64 hex digits>")
    if reference.tag:
        raise ImageReferenceError(
            f"must not carry a tag (':{reference.tag}') beside the digest; the digest alone decides"
        )
    return reference
