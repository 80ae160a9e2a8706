"""SAMPLE module appeals-api: stores citizens' appeals as JSON files on its data volume.

    POST /appeals        {"text": "...", ...}  -> 201 {"id", "location"}; 413 above APPEALS_MAX_BYTES
    GET  /appeals/<id>   -> the stored appeal
    GET  /health, /version, /metrics (see khronika_sample.py)

Environment: APPEALS_DATA_DIR (the named volume, default /var/lib/appeals), APPEALS_MAX_BYTES
(default 1 MiB), KHRONIKA_SAMPLE_PORT (default 8080).

KHRONIKA_SAMPLE_BROKEN=crash-once (the sample release 1.3.0) is a data migration that fails part way:
the first start on a volume moves up to three appeals aside (they answer 404 from then on), marks the
volume as migrated and exits 3; Docker restarts it, and the second start serves, healthy, with those
appeals gone. An update gate that looks only at the health at its end would call it a success.

KHRONIKA_SAMPLE_BROKEN=forget (the sample release 1.4.0) is a migration that loses the data quietly: the
first start on a volume moves every appeal aside and serves, healthy, never restarted. Only a check of the
data itself (the catalog's data_check: a record written before the switch and read back after it) sees it.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import sys
import uuid
from http import HTTPStatus
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parent.parent / "common"))  # running from the source tree

from khronika_sample import HttpError, Response, SampleHandler, sample_version, serve

MODULE = "appeals-api"
DEFAULT_PORT = 8080


def data_dir() -> Path:
    return Path(os.environ.get("APPEALS_DATA_DIR", "/var/lib/appeals")) / "appeals"


def create_appeal(_match: re.Match[str], handler: SampleHandler) -> Response:
    limit = int(os.environ.get("APPEALS_MAX_BYTES") or 1024 * 1024)
    appeal = handler.read_json(limit)
    if not isinstance(appeal, dict) or not isinstance(appeal.get("text"), str) or not appeal["text"].strip():
        raise HttpError(HTTPStatus.BAD_REQUEST, 'an appeal is a JSON object with a non-empty "text"')
    appeal_id = uuid.uuid4().hex
    record: dict[str, Any] = {
        "id": appeal_id,
        "received_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "stored_by": f"{MODULE} {sample_version()}",
        "appeal": appeal,
    }
    directory = data_dir()
    directory.mkdir(parents=True, exist_ok=True)
    partial = directory / f".{appeal_id}.tmp"
    partial.write_text(json.dumps(record, ensure_ascii=False), encoding="utf-8")
    partial.replace(directory / f"{appeal_id}.json")  # readers never see half an appeal
    return HTTPStatus.CREATED, {"id": appeal_id, "location": f"/appeals/{appeal_id}"}


def read_appeal(match: re.Match[str], _handler: SampleHandler) -> Response:
    path = data_dir() / f"{match['id']}.json"
    if not path.is_file():
        raise HttpError(HTTPStatus.NOT_FOUND, f"no appeal {match['id']}")
    return HTTPStatus.OK, json.loads(path.read_text(encoding="utf-8"))


ROUTES = [
    ("POST", re.compile(r"/appeals"), "/appeals", create_appeal),
    ("GET", re.compile(r"/appeals/(?P<id>[0-9a-f]{32})"), "/appeals/<id>", read_appeal),
]


def migrate_or_crash() -> None:
    broken = os.environ.get("KHRONIKA_SAMPLE_BROKEN")
    if broken not in {"crash-once", "forget"}:
        return
    marker = data_dir().parent / f".migrated-{sample_version()}"
    if marker.exists():
        return
    directory = data_dir()
    directory.mkdir(parents=True, exist_ok=True)
    moved = sorted(directory.glob("*.json"))[: None if broken == "forget" else 3]
    for path in moved:
        path.rename(path.with_name(path.name + ".migrating"))
    marker.write_text(f"{len(moved)} appeals moved aside\n", encoding="utf-8")
    if broken == "forget":
        print(f"{MODULE}: migrated, {len(moved)} appeals left behind", file=sys.stderr, flush=True)
        return
    print(f"{MODULE}: migration failed after {len(moved)} appeals (exit 3)", file=sys.stderr, flush=True)
    sys.exit(3)


if __name__ == "__main__":
    migrate_or_crash()
    serve(MODULE, ROUTES, DEFAULT_PORT)
