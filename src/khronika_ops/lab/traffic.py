"""Appeal traffic through the gateway: a day and a night compressed into a few minutes.

Citizens write appeals (appeals-api: POST, and a share of reads back) and each appeal's text is
classified (classifier: POST). The rate follows a daily curve: a quiet night, a morning rise, a midday
peak and an evening decline, scaled to `peak_rate` requests a second, with ±15 % noise.

Bounded on purpose: at most `MAX_RATE` requests a second, at most `MAX_SECONDS`, a fixed pool of
workers, and only loopback or private addresses (this must never load someone else's service).
"""

from __future__ import annotations

import http.client
import ipaddress
import json
import math
import random
import ssl
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

MAX_RATE = 50.0
MAX_SECONDS = 3600.0
_WORDS = [
    "дорога",
    "яма",
    "ремонт",
    "двор",
    "освещение",
    "отопление",
    "вода",
    "мусор",
    "транспорт",
    "автобус",
    "остановка",
    "школа",
    "детский",
    "сад",
    "поликлиника",
    "запись",
    "врач",
    "тариф",
    "оплата",
    "квартира",
    "подъезд",
    "лифт",
    "парк",
    "благоустройство",
    "road",
    "repair",
    "heating",
    "water",
    "bus",
    "school",
    "clinic",
    "lift",
    "park",
    "rubbish",
    "lighting",
]


class TrafficError(ValueError):
    """The traffic was refused before any request (target, rate or duration out of bounds)."""


def day_shape(phase: float) -> float:
    """The share of the peak rate at `phase` of a day (0 = midnight, 0.5 = noon), between 0.15 and 1."""
    hour = (phase % 1.0) * 24.0
    night = 0.15
    # A broad working-day hump centred at 13:00 plus a smaller evening bump at 19:00.
    day = math.exp(-(((hour - 13.0) / 3.6) ** 2))
    evening = 0.45 * math.exp(-(((hour - 19.5) / 1.8) ** 2))
    return min(1.0, night + (1.0 - night) * max(day, evening))


def check_address(address: str) -> None:
    """Only loopback or private addresses (a literal address: a name could resolve anywhere)."""
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        raise TrafficError(f"the gateway must be given as an address, not {address!r}") from None
    if not (parsed.is_loopback or parsed.is_private):
        raise TrafficError(
            f"{address} is neither loopback nor a private address: the lab's traffic stays local"
        )


@dataclass
class TrafficReport:
    seconds: float = 0.0
    sent: int = 0
    by_module: dict[str, Counter[str]] = field(default_factory=dict)
    latencies: dict[str, list[float]] = field(default_factory=dict)
    peak_rate: float = 0.0

    def record(self, module: str, status: str, seconds: float) -> None:
        self.by_module.setdefault(module, Counter())[status] += 1
        self.latencies.setdefault(module, []).append(seconds)

    def as_dict(self) -> dict[str, Any]:
        modules = {}
        for module, counts in sorted(self.by_module.items()):
            values = sorted(self.latencies.get(module, []))
            modules[module] = {
                "requests": sum(counts.values()),
                "statuses": dict(sorted(counts.items())),
                "p50_ms": round(1000 * values[len(values) // 2], 1) if values else None,
                "p95_ms": round(1000 * values[int(len(values) * 0.95)], 1) if values else None,
            }
        return {
            "seconds": round(self.seconds, 1),
            "sent": self.sent,
            "peak_rate": self.peak_rate,
            "modules": modules,
        }

    def line(self) -> str:
        parts = []
        for module, data in self.as_dict()["modules"].items():
            ok = sum(n for status, n in data["statuses"].items() if status.startswith("2"))
            parts.append(f"{module} {data['requests']} ({ok} ok, p95 {data['p95_ms']} ms)")
        return f"{self.sent} visits in {self.seconds:.0f}s: " + "; ".join(parts)


class Traffic:
    def __init__(
        self,
        address: str,
        *,
        port: int = 443,
        ca_file: str | None = None,
        peak_rate: float = 8.0,
        seconds: float = 180.0,
        workers: int = 8,
        seed: int | None = None,
    ) -> None:
        check_address(address)
        if not 0 < peak_rate <= MAX_RATE:
            raise TrafficError(f"the peak rate must be above 0 and at most {MAX_RATE:g} requests a second")
        if not 0 < seconds <= MAX_SECONDS:
            raise TrafficError(f"the duration must be above 0 and at most {MAX_SECONDS:g} s")
        self.address, self.port = address, port
        self.peak_rate, self.seconds = peak_rate, seconds
        self.workers = max(1, min(workers, 32))
        self.random = random.Random(seed)
        # The gateway is asked by address: its certificate is verified, not the name in it.
        self.context = ssl.create_default_context(cafile=ca_file)
        self.context.check_hostname = False
        if ca_file is None:
            self.context.verify_mode = ssl.CERT_NONE
        self.report = TrafficReport(peak_rate=peak_rate)
        self._lock = threading.Lock()
        self._appeals: list[str] = []

    def _request(self, method: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
        connection = http.client.HTTPSConnection(self.address, self.port, context=self.context, timeout=10)
        try:
            payload = json.dumps(body, ensure_ascii=False).encode() if body is not None else None
            headers = {"Content-Type": "application/json"} if payload is not None else {}
            connection.request(method, path, body=payload, headers=headers)
            response = connection.getresponse()
            data = response.read()
            try:
                return response.status, json.loads(data) if data else None
            except ValueError:
                return response.status, None
        finally:
            connection.close()

    def _text(self) -> str:
        return " ".join(self.random.choice(_WORDS) for _ in range(self.random.randint(8, 60)))

    def _one(self) -> None:
        """One citizen's visit: an appeal written and classified, or an earlier appeal read back."""
        with self._lock:
            read_back = self._appeals and self.random.random() < 0.25
            appeal_id = self.random.choice(self._appeals) if read_back else None
            text = self._text()
        calls: list[tuple[str, str, str, dict[str, Any] | None]]
        if appeal_id:
            calls = [("appeals-api", "GET", f"/api/appeals/appeals/{appeal_id}", None)]
        else:
            calls = [
                ("appeals-api", "POST", "/api/appeals/appeals", {"text": text, "channel": "lab"}),
                ("classifier", "POST", "/api/classify/classify", {"text": text}),
            ]
        for module, method, path, body in calls:
            started = time.perf_counter()
            try:
                status, answer = self._request(method, path, body)
                outcome = str(status)
            except (OSError, http.client.HTTPException) as exc:
                status, answer, outcome = 0, None, type(exc).__name__
            elapsed = time.perf_counter() - started
            with self._lock:
                self.report.record(module, outcome, elapsed)
                if status == 201 and isinstance(answer, dict) and isinstance(answer.get("id"), str):
                    self._appeals.append(answer["id"])
                    del self._appeals[:-500]

    def run(
        self, on_tick: Callable[[float, float], None] | None = None, tick_seconds: float = 30.0
    ) -> TrafficReport:
        """Send until the time is up; `on_tick(elapsed, current rate)` every `tick_seconds`."""
        started = time.monotonic()
        next_tick = tick_seconds
        with ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="traffic") as pool:
            while (elapsed := time.monotonic() - started) < self.seconds:
                # One compressed day over the whole run, starting at 03:00 so that it rises early.
                rate = self.peak_rate * day_shape(0.125 + elapsed / self.seconds)
                rate *= 1.0 + self.random.uniform(-0.15, 0.15)
                pool.submit(self._one)
                self.report.sent += 1
                if on_tick and elapsed >= next_tick:
                    on_tick(elapsed, rate)
                    next_tick += tick_seconds
                time.sleep(self.random.expovariate(rate))
        self.report.seconds = time.monotonic() - started
        return self.report
