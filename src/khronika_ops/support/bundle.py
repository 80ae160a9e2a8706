"""One support bundle from what playbooks/support-bundle.yml collected.

Input: per host a tar.gz the host wrote (roles/support/files/collect.sh; hosts/<host>.tar.gz on the
controller) or the reason it could not be reached; the firing alerts Alertmanager returned; the folder of
update reports. Every text is redacted (khronika_ops.support.redact) on its way into the bundle; the
finished archive is read back and scanned for every secret the inventory knows (and, with pseudonyms,
every host name) before it is renamed into place. A leak removes the archive and raises BundleError
naming the member and the kind, never the value.

    khronika-support-<UTC>/summary.md          for a person: hosts, releases, containers, failures, alerts
    khronika-support-<UTC>/request.json        the request draft (khronika_ops.support.request)
    khronika-support-<UTC>/request.schema.json its JSON schema
    khronika-support-<UTC>/hosts/<host>/...    per host: release.json, versions, containers, inspect.json
                                               (environment values redacted), logs/, docker info and
                                               events, failed units, disk, memory, GPU, audit.log
    khronika-support-<UTC>/controller/...      alerts.json, the last update and scale reports (evidence, site state)
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import tarfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from khronika_ops import __version__
from khronika_ops.support.redact import Redactor
from khronika_ops.support.request import (
    CATEGORIES,
    Attachment,
    Contact,
    Environment,
    Organisation,
    SupportRequest,
    check_fields,
    read_attachment,
    schema,
    subject_from,
)

_UNIT = re.compile(
    r"^[\w@:.\\-]+\.(service|socket|mount|timer|path|target|scope|slice|swap|device|automount)$"
)
MAX_MEMBER = 4 << 20  # bytes read of one collected file; the collector caps its files well below
REPORTS_KEPT = 3
DESCRIPTIONS = {
    "release.json": "the release the host records",
    "versions.txt": "kernel, OS, Docker and Python versions",
    "containers.jsonl": "every container and its state (docker ps)",
    "inspect.json": "docker inspect of every container, environment values redacted",
    "docker-info.txt": "docker info",
    "docker-events.jsonl": "Docker events of the last day",
    "systemd-failed.txt": "failed systemd units",
    "disk.txt": "filesystems and block devices",
    "memory.txt": "memory, cores, load",
    "gpu.txt": "nvidia-smi -q",
    "audit.log": "the platform's update audit log",
    "khronika-files.txt": "what /etc/khronika holds (its files are under etc/khronika/, redacted)",
    "docker-journal.txt": "dockerd's journal",
}


class BundleError(RuntimeError):
    """The bundle was not written; the message says why (never a secret's value)."""


@dataclass
class HostResult:
    reachable: bool
    error: str = ""


@dataclass
class BundleResult:
    path: Path
    bytes: int
    members: int
    redactions: dict[str, int]
    request: SupportRequest
    unreachable: list[str] = field(default_factory=list)


def _text(data: bytes) -> str:
    return data[:MAX_MEMBER].decode("utf-8", errors="replace")


def _host_files(archive: Path) -> dict[str, bytes]:
    """The regular files of a host's collection, by their path inside it (unsafe names skipped)."""
    files: dict[str, bytes] = {}
    with tarfile.open(archive, "r:gz") as tar:
        for member in tar:
            name = member.name.removeprefix("./")
            if not member.isfile() or name.startswith("/") or ".." in name.split("/"):
                continue
            stream = tar.extractfile(member)
            if stream is not None:
                files[name] = stream.read(MAX_MEMBER)
    return files


def _containers(text: str) -> list[dict[str, Any]]:
    rows = []
    for line in text.splitlines():
        try:
            rows.append(json.loads(line))
        except ValueError:
            continue
    return [row for row in rows if isinstance(row, dict)]


def _release(text: str) -> str | None:
    try:
        return str(json.loads(text)["version"])
    except (ValueError, KeyError, TypeError):
        return None


def write_bundle(
    *,
    collected: Path,
    hosts: Mapping[str, HostResult],
    dest: Path,
    organisation: Mapping[str, Any],
    contact: Mapping[str, Any],
    category: str,
    description: str,
    subject: str = "",
    attachments: Sequence[Path] = (),
    secrets: Sequence[str] = (),
    pseudonymize: bool = False,
    alerts: Mapping[str, Any] | None = None,
    reports_dir: Path | None = None,
    now: datetime | None = None,
) -> BundleResult:
    problems = check_fields(
        dict(organisation),
        dict(contact),
        category,
        description=description,
        subject=subject,
        attachments=[str(path) for path in attachments],
    )
    if problems:
        raise BundleError("the support request cannot be drafted: " + "; ".join(problems))
    now = (now or datetime.now(UTC)).replace(microsecond=0)
    stamp = now.strftime("%Y%m%dT%H%M%SZ")
    top = f"khronika-support-{stamp}"
    redactor = Redactor(secrets, pseudonymize=pseudonymize, hosts=hosts)
    members: dict[str, str] = {}
    releases: dict[str, str | None] = {}
    rows: list[str] = []
    unreachable = sorted(host for host, result in hosts.items() if not result.reachable)

    for host in sorted(hosts):
        shown = redactor.host_name(host)
        result = hosts[host]
        archive = collected / "hosts" / f"{host}.tar.gz"
        if not result.reachable or not archive.is_file():
            why = result.error or "nothing was collected"
            members[f"hosts/{shown}/UNREACHABLE.txt"] = redactor.text(f"{host}: not collected: {why}\n")
            releases[shown] = None
            rows.append(f"| {shown} | UNREACHABLE: {redactor.text(why)[:200]} | | | |")
            continue
        files = _host_files(archive)
        for name, data in sorted(files.items()):
            text = _text(data)
            members[f"hosts/{shown}/{name}"] = (
                redactor.docker_inspect(text) if name == "inspect.json" else redactor.text(text)
            )
        releases[shown] = _release(_text(files.get("release.json", b"")))
        containers = _containers(_text(files.get("containers.jsonl", b"")))
        gpu = files.get("gpu.txt", b"nvidia-smi: not present")
        running = sum(1 for c in containers if str(c.get("State", "")).lower() == "running")
        unhealthy = [str(c.get("Names")) for c in containers if "unhealthy" in str(c.get("Status", ""))]
        failed_units = [
            line.split()[0]
            for line in _text(files.get("systemd-failed.txt", b"")).splitlines()
            if line.strip() and _UNIT.match(line.split()[0])
        ]
        rows.append(
            f"| {shown} | {releases[shown] or 'none recorded'} | {running} of {len(containers)} running"
            + (f", unhealthy: {', '.join(unhealthy)}" if unhealthy else "")
            + f" | {', '.join(failed_units) or 'none'} | {'no' if b'nvidia-smi: not present' in gpu else 'yes'} |"
        )

    firing: list[dict[str, Any]] = []
    if alerts is not None:
        members["controller/alerts.json"] = redactor.text(json.dumps(alerts, indent=2, default=str))
        firing = [a for a in alerts.get("alerts", []) or [] if isinstance(a, dict)]
    reports: list[str] = []
    if reports_dir is not None and reports_dir.is_dir():
        runs = sorted(
            [
                *reports_dir.glob("update-*/update-report.json"),
                *reports_dir.glob("scale-*/scale-report.json"),
            ],
            key=lambda p: p.stat().st_mtime,
        )[-REPORTS_KEPT:]
        for report in runs:
            kind = report.name.removesuffix("-report.json")
            # The report (with each failed container's evidence), and the site state the run left.
            for name in (f"{kind}-report.md", f"{kind}-report.json", "site-state.yml"):
                path = report.parent / name
                if path.is_file():
                    members[f"controller/reports/{report.parent.name}/{name}"] = redactor.text(
                        _text(path.read_bytes())
                    )
            reports.append(report.parent.name)
        audit = reports_dir / "audit.log"
        if audit.is_file():
            members["controller/reports/audit.log"] = redactor.text(_text(audit.read_bytes()[-MAX_MEMBER:]))

    attached: dict[str, bytes] = {}
    listed: list[Attachment] = []
    for number, given in enumerate(attachments, start=1):
        source = Path(given).expanduser()
        media_type, data = read_attachment(source)
        safe = re.sub(r"[^A-Za-z0-9._-]+", "_", source.name).strip("._") or "file"
        name = f"attachments/{number:02d}-{safe}"
        # Text is redacted like everything else; an image cannot be, which summary.md says.
        if media_type == "text/plain":
            data = redactor.text(data.decode("utf-8")).encode("utf-8")
        attached[name] = data
        listed.append(
            Attachment(
                path=name,
                description=f"attached by the operator: {redactor.text(source.name)}",
                media_type=media_type,
                bytes=len(data),
                sha256=hashlib.sha256(data).hexdigest(),
            )
        )
    attachment_list = [
        Attachment(path="summary.md", description="the bundle's summary"),
        *listed,
        *(
            Attachment(
                path=name,
                description=DESCRIPTIONS.get(
                    Path(name).name, "logs of a container" if "/logs/" in name else "collected"
                ),
            )
            for name in sorted(members)
        ),
    ]
    request = SupportRequest(
        created_at=now.isoformat().replace("+00:00", "Z"),
        organisation=Organisation.model_validate(dict(organisation)),
        category=category,
        subject=redactor.text(subject.strip() or subject_from(description)),
        description=redactor.text(description),
        contact=Contact.model_validate(dict(contact)),
        environment=Environment(
            releases=releases,
            khronika_ops=__version__,
            hosts_unreachable=[redactor.host_name(h) for h in unreachable],
        ),
        attachments=attachment_list,
    )
    alert_lines = [
        f"- {a.get('labels', {}).get('alertname', '?')} ({a.get('labels', {}).get('severity', '?')}) on "
        f"{a.get('labels', {}).get('instance', a.get('labels', {}).get('host', '?'))} since {a.get('startsAt', '?')}"
        for a in firing
    ]
    summary = "\n".join(
        [
            f"# Khronika support bundle {stamp}",
            "",
            f"- Organisation: {request.organisation.name}, {request.organisation.address} (contact: {request.organisation.contact_person})",
            f"- Category: {request.category}: {CATEGORIES[request.category]}",
            f"- Contact: {', '.join(x for x in (request.contact.phone, request.contact.email) if x)}",
            f"- Made by khronika-ops {__version__} at {request.created_at}",
            "",
            f"## Subject: {request.subject}",
            "",
            "## Description",
            "",
            request.description,
            "",
            "## Hosts",
            "",
            "| host | release | containers | failed units | GPU |",
            "|---|---|---|---|---|",
            *rows,
            "",
            "## Firing alerts",
            "",
            *(redactor.text(line) for line in alert_lines),
            *(
                []
                if alert_lines
                else [
                    "none"
                    if alerts is not None and not alerts.get("error")
                    else f"not read: {redactor.text(str((alerts or {}).get('error', 'no monitoring in the inventory')))}"
                ]
            ),
            "",
            "## Attached by the operator",
            "",
            *(f"- {item.path} ({item.media_type}, {item.bytes:,} bytes)" for item in listed),
            *([] if listed else ["nothing"]),
            *(
                ["", "Images are not redacted: look at them before the bundle leaves the site."]
                if any(item.media_type != "text/plain" for item in listed)
                else []
            ),
            "",
            "## Update reports",
            "",
            *(f"- controller/reports/{name}/" for name in reports),
            *([] if reports else ["none found"]),
            "",
            "## Redacted",
            "",
            "Values never appear in a bundle; these are the counts of what was replaced with <redacted>"
            + (" or a pseudonym" if pseudonymize else "")
            + ":",
            "",
            *(f"- {kind}: {count}" for kind, count in sorted(redactor.counts.items()) if count),
            *([] if any(redactor.counts.values()) else ["- nothing"]),
            "",
        ]
    )
    document: dict[str, str | bytes] = {
        "summary.md": summary,
        "request.json": request.model_dump_json(indent=2) + "\n",
        "request.schema.json": json.dumps(schema(), indent=2) + "\n",
        **members,
        **attached,
    }
    dest.mkdir(parents=True, exist_ok=True)
    target = dest / f"{top}.tar.gz"
    partial = dest / f".{top}.tar.gz.partial"
    mtime = int(now.timestamp())
    try:
        with tarfile.open(partial, "w:gz") as tar:
            for name, content in document.items():
                data = content.encode("utf-8") if isinstance(content, str) else content
                info = tarfile.TarInfo(f"{top}/{name}")
                info.size, info.mode, info.mtime = len(data), 0o600, mtime
                tar.addfile(info, io.BytesIO(data))
        partial.chmod(0o600)
        leaks = []
        with tarfile.open(partial, "r:gz") as tar:
            for member in tar:
                stream = tar.extractfile(member)
                if stream is not None:
                    leaks += [
                        f"{member.name}: {kind}"
                        for kind in redactor.leaks(stream.read().decode("utf-8", "replace"))
                    ]
        if leaks:
            raise BundleError(
                "the finished bundle still holds secrets, so it was not written: " + "; ".join(leaks)
            )
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)
    return BundleResult(
        path=target,
        bytes=target.stat().st_size,
        members=len(document),
        redactions={kind: count for kind, count in redactor.counts.items() if count},
        request=request,
        unreachable=unreachable,
    )
