"""What every Khronika SAMPLE module shares: version, health, Prometheus metrics, an HTTP server.

Samples stand in for the vendor's images in the lab and the tests. Python 3 standard library only, so
they run on Debian's python3 in the base image without installing anything.

Environment:
  KHRONIKA_SAMPLE_VERSION   the version to report (default: the VERSION file baked beside this file)
  KHRONIKA_SAMPLE_BROKEN=1  /health answers 503: the deliberately broken release
  KHRONIKA_SAMPLE_BROKEN=flaky  healthy, but once it has served for KHRONIKA_SAMPLE_FLAKY_AFTER seconds
                            (default 20) every third request to the module's own routes answers 500: a
                            release that passes every gate at its switch and fails under traffic
  KHRONIKA_SAMPLE_PORT      port to listen on (the module's default otherwise)
"""

from __future__ import annotations

import json
import os
import re
import signal
import sys
import threading
import time
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

VERSION_FILE = Path(__file__).resolve().with_name("VERSION")
#: Routes that are the module's own plumbing, not the work it serves: left out of the module-level metrics.
PLUMBING_ROUTES = frozenset({"/health", "/version", "/metrics", "unmatched"})
#: The module-level latency gauge is the mean over this many recent seconds.
LATENCY_WINDOW_SECONDS = 60.0
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
MAX_BODY_BYTES = 1024 * 1024


def sample_version() -> str:
    if os.environ.get("KHRONIKA_SAMPLE_VERSION"):
        return os.environ["KHRONIKA_SAMPLE_VERSION"]
    try:
        return VERSION_FILE.read_text(encoding="utf-8").strip() or "0.0.0-dev"
    except OSError:
        return "0.0.0-dev"


def is_broken() -> bool:
    return os.environ.get("KHRONIKA_SAMPLE_BROKEN", "0").lower() in {"1", "true", "yes"}


STARTED = time.monotonic()


def is_flaky() -> bool:
    return os.environ.get("KHRONIKA_SAMPLE_BROKEN", "0").lower() == "flaky"


def flaky_after() -> float:
    try:
        return float(os.environ.get("KHRONIKA_SAMPLE_FLAKY_AFTER", "20"))
    except ValueError:
        return 20.0


class Metrics:
    """A request counter and a latency histogram, rendered in the Prometheus text format (0.0.4)."""

    def __init__(self, module: str) -> None:
        self.module = module
        self._lock = threading.Lock()
        self._requests: dict[tuple[str, str, str], int] = {}
        self._buckets: dict[str, list[int]] = {}
        self._sums: dict[str, float] = {}
        self._counts: dict[str, int] = {}
        self._served = 0
        self._recent: list[tuple[float, float]] = []  # (monotonic time, seconds) of served requests
        self._errors = 0  # served requests answered 5xx
        self._seen = 0  # the module's own requests, for the flaky release's every third

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        with self._lock:
            if route not in PLUMBING_ROUTES:
                self._served += 1
                if status >= 500:
                    self._errors += 1
                now = time.monotonic()
                self._recent.append((now, seconds))
                if len(self._recent) > 4096 or self._recent[0][0] < now - LATENCY_WINDOW_SECONDS:
                    self._recent = [item for item in self._recent if item[0] >= now - LATENCY_WINDOW_SECONDS]
            key = (method, route, str(status))
            self._requests[key] = self._requests.get(key, 0) + 1
            buckets = self._buckets.setdefault(route, [0] * len(LATENCY_BUCKETS))
            for index, bound in enumerate(LATENCY_BUCKETS):
                if seconds <= bound:
                    buckets[index] += 1
            self._sums[route] = self._sums.get(route, 0.0) + seconds
            self._counts[route] = self._counts.get(route, 0) + 1

    def fails_now(self, route: str) -> bool:
        """The flaky release: every third of the module's own requests, once it has served a while."""
        if route in PLUMBING_ROUTES or not is_flaky() or time.monotonic() - STARTED < flaky_after():
            return False
        with self._lock:
            self._seen += 1
            return self._seen % 3 == 0

    def render(self) -> str:
        module = self.module
        lines = [
            "# HELP khronika_sample_http_requests_total HTTP requests answered, by method, route and status.",
            "# TYPE khronika_sample_http_requests_total counter",
        ]
        with self._lock:
            for (method, route, status), count in sorted(self._requests.items()):
                labels = f'module="{module}",method="{method}",route="{route}",status="{status}"'
                lines.append(f"khronika_sample_http_requests_total{{{labels}}} {count}")
            lines += [
                "# HELP khronika_sample_http_request_duration_seconds Time to answer an HTTP request.",
                "# TYPE khronika_sample_http_request_duration_seconds histogram",
            ]
            for route in sorted(self._buckets):
                labels = f'module="{module}",route="{route}"'
                for bound, count in zip(LATENCY_BUCKETS, self._buckets[route], strict=True):
                    lines.append(
                        f'khronika_sample_http_request_duration_seconds_bucket{{{labels},le="{bound}"}} {count}'
                    )
                total = self._counts[route]
                lines.append(
                    f'khronika_sample_http_request_duration_seconds_bucket{{{labels},le="+Inf"}} {total}'
                )
                lines.append(
                    f"khronika_sample_http_request_duration_seconds_sum{{{labels}}} {self._sums[route]}"
                )
                lines.append(f"khronika_sample_http_request_duration_seconds_count{{{labels}}} {total}")
            recent = [
                seconds for at, seconds in self._recent if at >= time.monotonic() - LATENCY_WINDOW_SECONDS
            ]
            served = self._served
            errors = self._errors
        # The platform's module interface (docs/metrics.md): requests served (plumbing routes left out)
        # and the recent mean latency; the planner reads these.
        lines += [
            "# HELP khronika_module_requests_total Requests the module served (health, version, metrics left out).",
            "# TYPE khronika_module_requests_total counter",
            f'khronika_module_requests_total{{module="{module}"}} {served}',
            "# HELP khronika_module_errors_total Requests the module served with a 5xx answer.",
            "# TYPE khronika_module_errors_total counter",
            f'khronika_module_errors_total{{module="{module}"}} {errors}',
            f"# HELP khronika_module_request_duration_seconds Mean time to serve a request, last {LATENCY_WINDOW_SECONDS:g} s.",
            "# TYPE khronika_module_request_duration_seconds gauge",
            f'khronika_module_request_duration_seconds{{module="{module}"}} '
            f"{(sum(recent) / len(recent)) if recent else 0.0:.6f}",
        ]
        lines += [
            "# HELP khronika_sample_info The sample module and its version.",
            "# TYPE khronika_sample_info gauge",
            f'khronika_sample_info{{module="{module}",version="{sample_version()}"}} 1',
        ]
        return "\n".join(lines) + "\n"


class HttpError(Exception):
    def __init__(self, status: HTTPStatus, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


Response = tuple[HTTPStatus, Any]
# (method, route pattern, route label for metrics, handler(match, request) -> (status, JSON body))
Route = tuple[str, "re.Pattern[str]", str, Callable[["re.Match[str]", "SampleHandler"], Response]]


class SampleHandler(BaseHTTPRequestHandler):
    server_version = "khronika-sample"
    module = "sample"
    metrics: Metrics
    routes: ClassVar[list[Route]] = []

    def log_message(self, format: str, *args: Any) -> None:
        sys.stderr.write(f"{self.module} {self.address_string()} {format % args}\n")

    def read_json(self, limit: int = MAX_BODY_BYTES) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        if length > limit:
            raise HttpError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"body larger than {limit} bytes")
        try:
            return json.loads(self.rfile.read(length) or b"null")
        except (ValueError, UnicodeDecodeError):
            raise HttpError(HTTPStatus.BAD_REQUEST, "body is not JSON") from None

    def _dispatch(self, method: str) -> None:
        started = time.perf_counter()
        path = self.path.split("?", 1)[0]
        route_label = "unmatched"  # unknown paths share one label, so scanners cannot blow up the series
        try:
            route, match = self._find_route(method, path)
            route_label = route[2]
            if self.metrics.fails_now(route_label):
                raise HttpError(HTTPStatus.INTERNAL_SERVER_ERROR, "flaky sample release: failed on purpose")
            status, body = route[3](match, self)
        except HttpError as exc:
            status, body = exc.status, {"error": exc.message}
        except Exception as exc:  # a sample must answer, not hang, whatever goes wrong
            status, body = HTTPStatus.INTERNAL_SERVER_ERROR, {"error": f"{type(exc).__name__}: {exc}"}
        if isinstance(body, str):
            payload, content_type = body.encode(), "text/plain; version=0.0.4; charset=utf-8"
        else:
            payload, content_type = (json.dumps(body) + "\n").encode(), "application/json"
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)
        self.metrics.observe(method, route_label, int(status), time.perf_counter() - started)

    def _find_route(self, method: str, path: str) -> tuple[Route, re.Match[str]]:
        allowed = False
        for route in [*_COMMON_ROUTES, *self.routes]:
            match = route[1].fullmatch(path)
            if match is None:
                continue
            if route[0] == method:
                return route, match
            allowed = True
        if allowed:
            raise HttpError(HTTPStatus.METHOD_NOT_ALLOWED, f"{method} is not allowed on {path}")
        raise HttpError(HTTPStatus.NOT_FOUND, f"no such path: {path}")

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")


def _health(_match: re.Match[str], handler: SampleHandler) -> Response:
    if is_broken():
        return HTTPStatus.SERVICE_UNAVAILABLE, {"status": "broken", "version": sample_version()}
    return HTTPStatus.OK, {"status": "ok", "module": handler.module, "version": sample_version()}


def _version(_match: re.Match[str], handler: SampleHandler) -> Response:
    return HTTPStatus.OK, {"module": handler.module, "version": sample_version(), "sample": True}


def _metrics(_match: re.Match[str], handler: SampleHandler) -> Response:
    return HTTPStatus.OK, handler.metrics.render()


_COMMON_ROUTES: list[Route] = [
    ("GET", re.compile(r"/health"), "/health", _health),
    ("GET", re.compile(r"/version"), "/version", _version),
    ("GET", re.compile(r"/metrics"), "/metrics", _metrics),
]


def serve(module: str, routes: list[Route], default_port: int) -> None:
    """Serve until SIGTERM or SIGINT (as PID 1 in a container, SIGTERM needs a handler to stop us)."""
    port = int(os.environ.get("KHRONIKA_SAMPLE_PORT") or default_port)
    handler = type(
        f"{module}Handler", (SampleHandler,), {"module": module, "routes": routes, "metrics": Metrics(module)}
    )
    server = ThreadingHTTPServer(("0.0.0.0", port), handler)  # a container listens on every address
    server.daemon_threads = True

    def stop(_signum: int, _frame: object) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    state = (
        "BROKEN (health fails)"
        if is_broken()
        else f"BROKEN (every third request fails after {flaky_after():g} s)"
        if is_flaky()
        else "ok"
    )
    print(f"{module} {sample_version()} listening on :{port} ({state})", flush=True)
    server.serve_forever()
    server.server_close()
