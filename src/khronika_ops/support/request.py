"""The support request draft: what the vendor's support process asks of every request.

One request per problem, carrying the organisation (name, address, contact person), a description, the
category, a contact phone or e-mail, and where possible evidence (a screenshot, logs): here the bundle's
files are attached by their path inside the bundle. `request.json` is written from `SupportRequest`
and validated against `schema()`, which is written beside it (`request.schema.json`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

Category = Literal["incident", "problem", "service-request", "development-request"]
CATEGORIES: dict[str, str] = {
    "incident": "a failure for one user (one person cannot do something the platform should do)",
    "problem": "a failure that stopped the service (the platform or a module does not work for anyone)",
    "service-request": "a request for information (how to, what is supported, a document)",
    "development-request": "a change to the software (a new capability or a change of behaviour)",
}
#: What an operator may attach (a screenshot of the failure, a log or text file): each file, and all together.
ATTACHMENT_MAX_BYTES = 5 << 20
ATTACHMENTS_MAX_BYTES = 20 << 20
ATTACHMENTS_MAX = 10
SUBJECT_MAX = 200
DESCRIPTION_MAX = 20_000
_IMAGE_MAGIC = {
    b"\x89PNG\r\n\x1a\n": "image/png",
    b"\xff\xd8\xff": "image/jpeg",
    b"GIF87a": "image/gif",
    b"GIF89a": "image/gif",
}
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_PHONE = re.compile(r"^\+?[0-9 ()\-]{5,20}$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Organisation(_Strict):
    name: str = Field(min_length=1, description="The organisation that runs the platform.")
    address: str = Field(min_length=1, description="Its postal address.")
    contact_person: str = Field(min_length=1, description="Who the support specialist talks to.")


class Contact(_Strict):
    phone: str | None = Field(default=None, description="A phone number, digits with + ( ) - and spaces.")
    email: str | None = Field(default=None, description="An e-mail address.")

    @model_validator(mode="after")
    def _one_way(self) -> Contact:
        if not self.phone and not self.email:
            raise ValueError(
                "give a contact phone or e-mail (khronika_support_contact: {phone: ..., email: ...})"
            )
        if self.email and not _EMAIL.match(self.email):
            raise ValueError(f"e-mail {self.email!r} is not an address")
        if self.phone and not _PHONE.match(self.phone):
            raise ValueError(f"phone {self.phone!r} is not a phone number")
        return self


class Attachment(_Strict):
    path: str = Field(description="The file's path inside the bundle.")
    description: str
    media_type: str | None = Field(
        default=None,
        description="For a file the operator attached: image/png, image/jpeg, ... or text/plain.",
    )
    bytes: int | None = Field(default=None, description="For a file the operator attached: its size.")
    sha256: str | None = Field(default=None, description="For a file the operator attached: its sha256.")


class Environment(_Strict):
    releases: dict[str, str | None] = Field(
        description="Host -> the release it records (null: none or unknown)."
    )
    khronika_ops: str = Field(description="The toolkit's version that made the bundle.")
    hosts_unreachable: list[str] = Field(default_factory=list)


class SupportRequest(_Strict):
    schema_version: Literal[1] = 1
    created_at: str = Field(description="UTC, ISO 8601.")
    organisation: Organisation
    category: Category = Field(description="; ".join(f"{name}: {text}" for name, text in CATEGORIES.items()))
    subject: str = Field(
        min_length=1, max_length=SUBJECT_MAX, description="The request's subject (тема запроса): one line."
    )
    description: str = Field(min_length=1, description="What happened, when, what was expected.")
    contact: Contact
    environment: Environment
    attachments: list[Attachment] = Field(default_factory=list)


def schema() -> dict[str, Any]:
    """JSON Schema (draft 2020-12) of request.json."""
    document = SupportRequest.model_json_schema()
    document["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    document["title"] = "Khronika support request"
    # The model's "a phone or an e-mail" rule, said to schema readers as well.
    document["$defs"]["Contact"]["anyOf"] = [
        {"properties": {field: {"type": "string", "minLength": 1}}, "required": [field]}
        for field in ("phone", "email")
    ]
    return document


def subject_from(description: str) -> str:
    """A subject when none was given: the description's first line, shortened."""
    line = next((text.strip() for text in description.splitlines() if text.strip()), "")
    return line if len(line) <= 120 else line[:119].rstrip() + "…"


def read_attachment(path: Path) -> tuple[str, bytes]:
    """A file an operator attaches, read once and at most ATTACHMENT_MAX_BYTES: its media type (an image,
    PNG, JPEG, GIF or WebP, or UTF-8 text) and its bytes; ValueError saying what is wrong otherwise
    (missing, not a file, too large, another kind of file)."""
    try:
        if not path.is_file():
            raise ValueError(f"{path} is not a file" if path.exists() else f"{path} does not exist")
        size = path.stat().st_size
        if size > ATTACHMENT_MAX_BYTES:
            raise ValueError(f"{path} is {size:,} bytes; an attachment may hold {ATTACHMENT_MAX_BYTES:,}")
        with path.open("rb") as handle:
            data = handle.read(ATTACHMENT_MAX_BYTES + 1)
    except OSError as exc:
        raise ValueError(f"{path} cannot be read: {exc.strerror}") from None
    if len(data) > ATTACHMENT_MAX_BYTES:  # it grew since its size was read
        raise ValueError(
            f"{path} holds more than {ATTACHMENT_MAX_BYTES:,} bytes; an attachment may hold that"
        )
    for magic, media_type in _IMAGE_MAGIC.items():
        if data.startswith(magic):
            return media_type, data
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp", data
    if b"\0" not in data:
        try:
            data.decode("utf-8")
            return "text/plain", data
        except UnicodeDecodeError:
            pass
    raise ValueError(f"{path} is neither an image (PNG, JPEG, GIF, WebP) nor UTF-8 text")


def _field_sentence(variable: str, error: Any) -> str:
    field = ".".join(str(part) for part in error.get("loc", ()))
    name = f"{variable}.{field}" if field else variable
    kind = error.get("type", "")
    if kind == "missing":
        return f"{name} is required"
    if kind == "string_too_short":
        return f"{name} is empty"
    if kind == "extra_forbidden":
        return f"{name} is not a field support knows"
    if kind in ("string_type", "dict_type", "model_type"):
        return f"{name} must be {'a mapping' if kind != 'string_type' else 'text'}"
    return f"{name}: {str(error.get('msg', 'invalid')).removeprefix('Value error, ')}"


def check_fields(
    organisation: Any,
    contact: Any,
    category: Any,
    *,
    description: Any = None,
    subject: Any = None,
    attachments: Sequence[Any] = (),
    hosts: Sequence[Any] | None = None,
    hosts_pattern: str = "khronika",
) -> list[str]:
    """Every problem with what a request needs, each a sentence, before anything is collected: the
    site's organisation and contact, then the request itself (check_request), then the hosts
    (None: not checked)."""
    problems: list[str] = []
    for model, value, variable in (
        (Organisation, organisation, "khronika_support_organisation"),
        (Contact, contact, "khronika_support_contact"),
    ):
        if not isinstance(value, dict) or not value:
            problems.append(
                f"{variable} is not set: the inventory needs it (docs/support.md shows the fields)"
            )
            continue
        try:
            model.model_validate(value)
        except ValidationError as exc:
            problems += [_field_sentence(variable, error) for error in exc.errors()]
    problems += check_request(category, description, subject, attachments)
    if hosts is not None and not hosts:
        problems.append(
            f"no host of the inventory matches {hosts_pattern!r}: there is nothing to collect from "
            "(the inventory's group khronika, or --limit)"
        )
    return problems


def check_request(
    category: Any, description: Any = None, subject: Any = None, attachments: Sequence[Any] = ()
) -> list[str]:
    """What the operator gives for one request (`khronika support bundle`'s options), each problem a
    sentence. `description` None: not checked."""
    problems: list[str] = []
    if category not in CATEGORIES:
        problems.append(f"category must be one of {', '.join(CATEGORIES)}, not {category!r}")
    if description is not None:
        text = str(description)
        if not text.strip():
            problems.append(
                "the request has no description: say what happened, when, and what was expected "
                "(--describe, khronika_support_description)"
            )
        elif len(text) > DESCRIPTION_MAX:
            problems.append(f"the description holds {len(text):,} characters; at most {DESCRIPTION_MAX:,}")
    if subject:
        text = str(subject).strip()
        if "\n" in text or "\r" in text:
            problems.append("the subject must be one line (--subject, khronika_support_subject)")
        elif len(text) > SUBJECT_MAX:
            problems.append(f"the subject holds {len(text)} characters; at most {SUBJECT_MAX}")
    if len(attachments) > ATTACHMENTS_MAX:
        problems.append(f"{len(attachments)} files attached; at most {ATTACHMENTS_MAX}")
    total = 0
    for item in attachments:
        path = Path(str(item)).expanduser()
        try:
            total += len(read_attachment(path)[1])
        except ValueError as exc:
            problems.append(f"--attach {item}: {exc}")
    if total > ATTACHMENTS_MAX_BYTES:
        problems.append(f"the attachments hold {total:,} bytes together; at most {ATTACHMENTS_MAX_BYTES:,}")
    return problems
