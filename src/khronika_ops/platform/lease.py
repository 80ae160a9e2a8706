"""The Alertmanager silence of a running update or scale, held by a lease.

A silence created until the window's end outlives a controller that dies in the middle of a switch (a
closed laptop, an OOM-killed AWX job): the site's alerts stay silenced for hours while nobody watches.
So the run creates its silence for a few minutes only (`khronika_update_silence_lease`, 10 minutes) and
`khronika update lease` keeps it: on the controller, beside the run, it renews the silence every third
of the lease for as long as the run's `ansible-playbook` process lives, the stop file is absent and the
window lasts. When the controller dies, nobody renews, and the silence lapses by itself within a lease.
"""

from __future__ import annotations

import base64
import json
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psutil

MAX_RESPONSE = 1024 * 1024
LEASE_MIN, LEASE_MAX = 30.0, 3600.0


def lease_seconds(text: object) -> float:
    """A lease as `khronika_update_silence_lease` gives it (`10m`, `90s`): 30 s to 1 h, or ValueError."""
    from khronika_ops.quantities import parse_duration

    seconds = parse_duration(text)
    if not LEASE_MIN <= seconds <= LEASE_MAX:
        raise ValueError(
            f"the silence's lease is {text!r}: give 30s to 1h (a lease outlives a dead run that long)"
        )
    return seconds


class LeaseError(RuntimeError):
    """Alertmanager could not be asked; the message says what it answered."""


@dataclass(frozen=True)
class Alertmanager:
    url: str
    user: str = ""
    password: str = ""
    ca_file: str | None = None
    timeout: float = 10.0

    def _request(self, method: str, path: str, body: Mapping[str, Any] | list[Any] | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            self.url.rstrip("/") + path,
            data=data,
            method=method,
            headers={"Content-Type": "application/json"},
        )
        if self.user:
            token = base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
            request.add_header("Authorization", f"Basic {token}")
        context = ssl.create_default_context(cafile=self.ca_file) if self.ca_file else None
        try:
            with urllib.request.urlopen(request, timeout=self.timeout, context=context) as response:
                text = response.read(MAX_RESPONSE + 1)
        except (urllib.error.URLError, OSError) as exc:
            raise LeaseError(f"{method} {path}: {exc}") from exc
        if len(text) > MAX_RESPONSE:
            raise LeaseError(f"{method} {path}: the answer is larger than {MAX_RESPONSE} bytes")
        return json.loads(text) if text else None

    def silence(self, silence_id: str) -> dict[str, Any]:
        answer = self._request("GET", f"/api/v2/silence/{silence_id}")
        if not isinstance(answer, dict):
            raise LeaseError(f"silence {silence_id}: Alertmanager answered {answer!r}")
        return answer

    def post(self, body: Mapping[str, Any]) -> str:
        answer = self._request("POST", "/api/v2/silences", body)
        return str((answer or {}).get("silenceID", ""))

    def post_alerts(self, alerts: list[Mapping[str, Any]]) -> None:
        """Alerts as a client sends them (`/api/v2/alerts`): firing until their `endsAt`, resolved by one
        sent again with `endsAt` now."""
        self._request("POST", "/api/v2/alerts", alerts)

    def alerts(self, active: bool = True) -> list[dict[str, Any]]:
        answer = self._request(
            "GET", "/api/v2/alerts" + ("?active=true&silenced=false&inhibited=false" if active else "")
        )
        return [alert for alert in answer or [] if isinstance(alert, dict)]


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def renewed(silence: Mapping[str, Any], now: datetime, lease: float, until: datetime) -> dict[str, Any]:
    """The silence as posted again with its id: the same matchers, ending one lease from now (never
    after `until`, the window's end)."""
    ends = min(now + timedelta(seconds=lease), until)
    return {
        "id": silence["id"],
        "matchers": silence["matchers"],
        "startsAt": silence["startsAt"],
        "endsAt": iso(ends),
        "createdBy": silence.get("createdBy", ""),
        "comment": silence.get("comment", ""),
    }


def process_started(pid: int) -> float | None:
    """When `pid` started (None: no such process)."""
    try:
        return psutil.Process(pid).create_time()
    except psutil.Error:
        return None


def process_alive(pid: int, started: float | None) -> bool:
    """Whether `pid` is still the process it was when the lease began (a reused pid is not)."""
    try:
        process = psutil.Process(pid)
        return (
            process.is_running()
            and process.status() != psutil.STATUS_ZOMBIE
            and (started is None or abs(process.create_time() - started) < 1.0)
        )
    except psutil.Error:
        return False


def keep(
    alertmanager: Alertmanager,
    silence_id: str,
    *,
    lease: float,
    until: datetime,
    watch_pid: int,
    stop_file: Path | None,
    max_seconds: float,
    id_file: Path | None = None,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    sleep: Callable[[float], None] = time.sleep,
) -> str:
    """Renew the silence until one of the lease's ends; returns which one. Alertmanager before 0.24
    replaces a silence it is asked to extend (a new id): the lease follows the id it answers and keeps
    it in `id_file`, whose id the run's finish removes. A renewal that fails is tried again at the next
    second until the silence's end."""
    started = process_started(watch_pid)
    if started is None:
        return f"process {watch_pid} is gone: the silence lapses at its end"
    deadline = clock() + timedelta(seconds=max_seconds)
    every = max(1.0, lease / 3)
    due = clock()
    while True:
        now = clock()
        if stop_file is not None and stop_file.exists():
            return "the run finished"
        if not process_alive(watch_pid, started):
            return f"the run (process {watch_pid}) ended without finishing: the silence lapses within {lease:g} s"
        if now >= until or now >= deadline:
            return "the window (or the lease's time limit) ended"
        if now >= due:
            try:
                silence = alertmanager.silence(silence_id)
                if (silence.get("status") or {}).get("state") != "active":
                    return f"the silence is {(silence.get('status') or {}).get('state', 'gone')}"
                answered = alertmanager.post(renewed(silence, now, lease, until))
            except LeaseError:
                sleep(1.0)
                continue
            if answered and answered != silence_id:
                silence_id = answered
                if id_file is not None:
                    id_file.write_text(silence_id + "\n", encoding="utf-8")
            due = now + timedelta(seconds=every)
        # The stop file and the run are looked at every second; the silence is renewed every third of a lease.
        sleep(1.0)
