"""The support request draft: what the vendor's support process asks of every request.

One request per problem, carrying the organisation (name, address, contact person), a description, the
category, a contact phone or e-mail, and where possible evidence (a screenshot, logs): here the bundle's
files are attached by their path inside the bundle. `request.json` is written from `SupportRequest`
and validated against `schema()`, which is written beside it (`request.schema.json`).
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

Category = Literal["incident", "problem", "service-request", "development-request"]
CATEGORIES: dict[str, str] = {
    "incident": "a failure for one user (one person cannot do something the platform should do)",
    "problem": "a failure that stopped the service (the platform or a module does not work for anyone)",
    "service-request": "a request for information (how to, what is supported, a document)",
    "development-request": "a change to the software (a new capability or a change of behaviour)",
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


def check_fields(organisation: Any, contact: Any, category: Any) -> list[str]:
    """Every problem with the fields a request needs, before anything is collected."""
    problems: list[str] = []
    if category not in CATEGORIES:
        problems.append(f"category must be one of {', '.join(CATEGORIES)}, not {category!r}")
    for model, value, variable in (
        (Organisation, organisation, "khronika_support_organisation"),
        (Contact, contact, "khronika_support_contact"),
    ):
        try:
            model.model_validate(value if isinstance(value, dict) else {})
        except ValidationError as exc:
            errors = exc.errors()
            detail = "; ".join(
                ".".join(str(part) for part in error.get("loc", ()))
                + (": " if error.get("loc") else "")
                + str(error["msg"])
                for error in errors
            ) or str(exc)
            problems.append(f"{variable}: {detail}")
    return problems
