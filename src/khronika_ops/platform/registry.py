"""Ask a registry (Docker Registry HTTP API v2) whether the images of a release can be pulled: the
update's pre-flight, before any module stops.

Each `repository@sha256:...` is asked with `HEAD /v2/<path>/manifests/<digest>`. Authentication is
what registries answer for: basic auth directly (distribution with htpasswd), or the bearer-token
flow a `WWW-Authenticate: Bearer realm=...` challenge asks for (the token fetched with the same
credentials). TLS is verified, against `ca_file` when given.
"""

from __future__ import annotations

import base64
import json
import re
import ssl
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass

from khronika_ops.platform.images import ImageReferenceError, parse_image_reference

MANIFEST_TYPES = ", ".join(
    (
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    )
)
MAX_ANSWER = 4 * 1024 * 1024  # a manifest, a tag list, an error document
_CHALLENGE = re.compile(r'(\w+)="([^"]*)"')


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str

    def basic(self) -> str:
        return "Basic " + base64.b64encode(f"{self.username}:{self.password}".encode()).decode()


class RegistryAnswerError(OSError):
    """The registry answered more than the caller bounded the answer to."""


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]  # names in Title-Case
    body: bytes


@dataclass(frozen=True)
class ImageCheck:
    image: str
    ok: bool
    reason: str  # "present", or why it cannot be pulled


class RegistryClient:
    def __init__(
        self,
        credentials: dict[str, Credentials] | None = None,
        *,
        ca_file: str | None = None,
        timeout: float = 10.0,
    ) -> None:
        self.credentials = credentials or {}  # registry host[:port] -> credentials
        self.context = ssl.create_default_context(cafile=ca_file) if ca_file else ssl.create_default_context()
        self.timeout = timeout
        self._tokens: dict[tuple[str, str], str] = {}

    def check(self, image: str) -> ImageCheck:
        try:
            reference = parse_image_reference(image)
        except ImageReferenceError as exc:
            return ImageCheck(image, False, f"not an image reference: {exc}")
        if reference.digest is None:
            return ImageCheck(image, False, "no digest: a release pins every image by digest")
        if reference.registry is None:
            return ImageCheck(
                image, False, "no registry host: set khronika_registry, or name the registry in the image"
            )
        url = f"https://{reference.registry}/v2/{reference.path}/manifests/{reference.digest}"
        try:
            status = self._head(reference.registry, reference.path, url)
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            return ImageCheck(image, False, f"registry {reference.registry} does not answer: {reason}")
        if status == 200:
            return ImageCheck(image, True, "present")
        if status == 404:
            return ImageCheck(image, False, f"{reference.digest} is not in {reference.repository}")
        if status in (401, 403):
            known = reference.registry in self.credentials
            why = "the credentials were refused" if known else "the registry needs credentials (none given)"
            return ImageCheck(image, False, f"{why} (HTTP {status})")
        return ImageCheck(image, False, f"the registry answered HTTP {status}")

    def check_all(self, images: Iterable[str]) -> list[ImageCheck]:
        return [self.check(image) for image in sorted(set(images))]

    def _head(self, registry: str, path: str, url: str) -> int:
        return self.send("HEAD", registry, path, url, headers={"Accept": MANIFEST_TYPES}).status

    def send(
        self,
        method: str,
        registry: str,
        path: str,
        url: str,
        *,
        headers: dict[str, str] | None = None,
        data: bytes | None = None,
        limit: int = MAX_ANSWER,
    ) -> Answer:
        """One request to `registry` about repository `path`, authenticated as the registry asks (basic,
        or the bearer token its challenge names, fetched once per repository); at most `limit` bytes of
        the answer are read (a longer answer is an error: RegistryAnswerError)."""
        headers = dict(headers or {})
        token = self._tokens.get((registry, path))
        credentials = self.credentials.get(registry)
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        elif credentials is not None:
            headers["Authorization"] = credentials.basic()
        answer = self._request(url, headers, method=method, data=data, limit=limit)
        challenge = answer.headers.get("WWW-Authenticate", "")
        if answer.status == 401 and challenge.lower().startswith("bearer") and token is None:
            token = self._token(challenge, credentials)
            if token is not None:
                self._tokens[registry, path] = token
                answer = self._request(
                    url,
                    {**headers, "Authorization": f"Bearer {token}"},
                    method=method,
                    data=data,
                    limit=limit,
                )
        return answer

    def _request(
        self,
        url: str,
        headers: dict[str, str],
        *,
        method: str = "HEAD",
        data: bytes | None = None,
        limit: int = MAX_ANSWER,
    ) -> Answer:
        request = urllib.request.Request(url, headers=headers, method=method, data=data)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout, context=self.context) as response:
                body = response.read(limit + 1) if method != "HEAD" else b""
                status, answered = response.status, dict(response.headers.items())
        except urllib.error.HTTPError as error:
            body = error.read(limit + 1) if method != "HEAD" else b""
            status, answered = error.code, dict(error.headers.items())
        if len(body) > limit:
            raise RegistryAnswerError(f"{method} {url}: the answer is larger than {limit} bytes")
        return Answer(status, {key.title(): value for key, value in answered.items()}, body)

    def _token(self, challenge: str, credentials: Credentials | None) -> str | None:
        fields = dict(_CHALLENGE.findall(challenge))
        realm = fields.pop("realm", None)
        if not realm or not realm.startswith("https://"):
            return None
        url = f"{realm}?{urllib.parse.urlencode(fields)}"
        headers = {"Authorization": credentials.basic()} if credentials else {}
        request = urllib.request.Request(url, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout, context=self.context) as response:
                document = json.loads(response.read(MAX_ANSWER))
        except (urllib.error.URLError, OSError, ValueError):
            return None
        token = document.get("token") or document.get("access_token")
        return str(token) if token else None
