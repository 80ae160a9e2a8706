"""The downtime probe: while an update runs, ask every module through the gateway a few times a second
and record each interval in which it did not answer 2xx, so the update report can put measured
downtime beside the planned one and count failed requests.

Bounded by construction: at most MAX_RATE requests per second per module, a time limit, a request
limit, one request in flight per module, and only to hosts the caller names (loopback by default):
the probe never wanders off to an address nobody allowed.
"""

from __future__ import annotations

import ipaddress
import json
import ssl
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

MAX_RATE = 50.0  # requests per second per module
MAX_SECONDS = 3600.0
DEFAULT_TIMEOUT = 1.0


class ProbeError(ValueError):
    """A target the probe must not or cannot ask, named with the reason."""


@dataclass(frozen=True)
class Sample:
    at: float  # epoch seconds when the request was sent
    ok: bool
    status: int | None  # HTTP status, None when no answer (refused, timed out)
    seconds: float  # how long the answer took (or the failure)


@dataclass
class Outage:
    start: float  # the first failed request
    end: float  # the first answered one after it (or the last request sent)
    failed: int

    @property
    def seconds(self) -> float:
        return self.end - self.start


@dataclass
class ModuleReport:
    module: str
    url: str
    requests: int = 0
    failed: int = 0
    outages: list[Outage] = field(default_factory=list)

    @property
    def down_seconds(self) -> float:
        return sum(outage.seconds for outage in self.outages)

    def as_dict(self) -> dict[str, object]:
        data = asdict(self)
        data["down_seconds"] = round(self.down_seconds, 3)
        data["outages"] = [{**asdict(o), "seconds": round(o.seconds, 3)} for o in self.outages]
        return data


def outages(samples: Sequence[Sample]) -> list[Outage]:
    """Runs of failed samples; each ends at the next answered request (or at the last sample)."""
    found: list[Outage] = []
    current: Outage | None = None
    for sample in sorted(samples, key=lambda item: item.at):
        if not sample.ok:
            if current is None:
                current = Outage(start=sample.at, end=sample.at, failed=0)
            current.failed += 1
            current.end = sample.at + sample.seconds
        elif current is not None:
            current.end = sample.at
            found.append(current)
            current = None
    if current is not None:
        found.append(current)
    return found


def check_targets(targets: Mapping[str, str], allowed_hosts: Iterable[str] = ()) -> None:
    """Every URL is http(s) to loopback or to a host named in `allowed_hosts` (names or addresses)."""
    allowed = {host.lower() for host in allowed_hosts}
    problems = []
    for module, url in sorted(targets.items()):
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        if parts.scheme not in ("http", "https") or not host:
            problems.append(f"{module}: {url!r} is not an http(s) URL")
            continue
        if host in allowed or _loopback(host):
            continue
        problems.append(
            f"{module}: {host} is neither loopback nor an allowed host ({', '.join(sorted(allowed)) or 'none'})"
        )
    if problems:
        raise ProbeError("; ".join(problems))


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Prober:
    """Probe each module's URL at `rate` per second in its own thread until stopped or a limit is hit."""

    def __init__(
        self,
        targets: Mapping[str, str],
        *,
        rate: float = 10.0,
        max_seconds: float = 600.0,
        max_requests: int | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        allowed_hosts: Iterable[str] = (),
        ca_file: str | None = None,
        check_hostname: bool = True,
    ) -> None:
        if not targets:
            raise ProbeError("no module to probe")
        if not 0 < rate <= MAX_RATE:
            raise ProbeError(f"the rate must be above 0 and at most {MAX_RATE:g} requests per second")
        if not 0 < max_seconds <= MAX_SECONDS:
            raise ProbeError(f"the time limit must be above 0 and at most {MAX_SECONDS:g} s")
        check_targets(targets, allowed_hosts)
        self.targets = dict(targets)
        self.interval = 1.0 / rate
        self.max_seconds = max_seconds
        self.max_requests = max_requests if max_requests is not None else int(rate * max_seconds) + 1
        self.timeout = timeout
        self.context = ssl.create_default_context(cafile=ca_file) if ca_file else None
        if not check_hostname:
            # The gateway asked by address: its certificate is still verified against the CA, only the
            # name in it is not compared with the address.
            self.context = self.context or ssl.create_default_context()
            self.context.check_hostname = False
        self.samples: dict[str, list[Sample]] = {module: [] for module in targets}
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.started = 0.0

    def start(self) -> Prober:
        self.started = time.time()
        for module, url in self.targets.items():
            thread = threading.Thread(
                target=self._run, args=(module, url), name=f"probe-{module}", daemon=True
            )
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> dict[str, ModuleReport]:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=self.timeout + 1.0)
        return self.report()

    def wait(self, seconds: float) -> None:
        self._stop.wait(seconds)

    def request_stop(self) -> None:
        """Ask every thread to stop after its request in flight (safe from a signal handler)."""
        self._stop.set()

    @property
    def running(self) -> bool:
        return not self._stop.is_set() and any(thread.is_alive() for thread in self._threads)

    def _run(self, module: str, url: str) -> None:
        deadline = self.started + self.max_seconds
        next_at = time.monotonic()
        sent = 0
        while not self._stop.is_set() and time.time() < deadline and sent < self.max_requests:
            self.samples[module].append(self._ask(url))
            sent += 1
            next_at += self.interval
            pause = next_at - time.monotonic()
            if pause > 0:
                self._stop.wait(pause)
            else:
                next_at = time.monotonic()  # a slow answer: no burst to catch up

    def _ask(self, url: str) -> Sample:
        sent = time.time()
        began = time.monotonic()
        status: int | None
        try:
            with urllib.request.urlopen(url, timeout=self.timeout, context=self.context) as response:
                response.read(65536)
                status = response.status
        except urllib.error.HTTPError as error:
            status = error.code
        except (TimeoutError, urllib.error.URLError, OSError):
            status = None
        ok = status is not None and 200 <= status < 300
        return Sample(at=sent, ok=ok, status=status, seconds=time.monotonic() - began)

    def report(self) -> dict[str, ModuleReport]:
        reports = {}
        for module, samples in self.samples.items():
            taken = list(samples)
            reports[module] = ModuleReport(
                module=module,
                url=self.targets[module],
                requests=len(taken),
                failed=sum(1 for sample in taken if not sample.ok),
                outages=outages(taken),
            )
        return reports


def write_report(path: Path, reports: Mapping[str, ModuleReport], started: float, ended: float) -> None:
    document = {
        "started": started,
        "ended": ended,
        "modules": {name: report.as_dict() for name, report in sorted(reports.items())},
    }
    path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")


def run_until_stopped(
    prober: Prober, out: Path, stop_file: Path | None = None, watch_pid: int | None = None
) -> dict[str, ModuleReport]:
    """Probe until SIGTERM/SIGINT, `stop_file` appearing, the run's process `watch_pid` ending (a
    controller that died), or a limit; then write the report to `out`."""
    import signal

    from khronika_ops.platform.lease import process_alive, process_started

    started = process_started(watch_pid) if watch_pid else None

    def _stop(_signum: int, _frame: object) -> None:
        prober.request_stop()

    previous = {sig: signal.signal(sig, _stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        prober.start()
        while prober.running:
            if stop_file is not None and stop_file.exists():
                break
            if watch_pid and not process_alive(watch_pid, started):
                break
            prober.wait(0.2)
        reports = prober.stop()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    write_report(out, reports, prober.started, time.time())
    return reports
