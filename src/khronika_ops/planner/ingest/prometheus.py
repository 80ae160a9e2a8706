"""Prometheus HTTP API ingest (`/api/v1/query_range`), standard library only.

- Peaks survive the query step: gauges are read as `max_over_time(metric[step])`, rates as a
  `max_over_time(rate(...)[step:resolution])` subquery (krr's known miss: a coarse step hides peaks).
- Batches: a selector list is split into small `label=~"a|b|c"` groups (never one giant regex), and long
  ranges into chunks under Prometheus' 11,000-points-per-series limit.
- Results are renamed to the collector's vocabulary (`instance` -> `host`, cAdvisor `name` -> `container`)
  so the rest of the planner sees one set of names whichever exporter produced them.
"""

from __future__ import annotations

import base64
import json
import re
import ssl
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from khronika_ops.metrics import is_disk_mount, prometheus_matchers
from khronika_ops.planner.errors import InputError
from khronika_ops.planner.models import RawSeries, SeriesKey
from khronika_ops.planner.units import UNKNOWN_UNIT
from khronika_ops.planner.vocabulary import strip_port

MAX_POINTS_PER_QUERY = 10_000
SELECTOR_BATCH = 20
#: The largest answer read from Prometheus (a query_range of a big site is tens of MB).
MAX_ANSWER_BYTES = 512 * 1024 * 1024


@dataclass(frozen=True)
class QuerySpec:
    """One PromQL template and the series it yields. `{sel}` is the label selector, `{step}` the step."""

    metric: str
    promql: str
    unit: str
    rename: tuple[tuple[str, str], ...] = (("instance", "host"),)
    keep: tuple[str, ...] = (
        "host",
        "container",
        "module",
        "mount",
        "device",
        "interface",
        "direction",
        "gpu",
        "model",
    )
    labels: tuple[tuple[str, str], ...] = ()  # set on every series the query returns
    # Which answered series count (on the renamed labels, before `keep`); None: all of them.
    select: Callable[[Mapping[str, str]], bool] | None = None
    # A rate of counters (`_rate`): the counters it reads and the labels it sums their rates by. The
    # lab's replayed history keys each counter it writes by them, as this query's answer is keyed.
    counters: tuple[str, ...] = ()
    by: tuple[str, ...] = ()


def _gauge(metric: str, unit: str, source: str | None = None) -> QuerySpec:
    return QuerySpec(metric, f"max_over_time({source or metric}{{{{{{sel}}}}}}[{{step}}])", unit)


_MATCHERS = prometheus_matchers()
_FS = f'fstype!~"{_MATCHERS["disk_fstype_exclude"]}",'
_DISK = f'device!~"{_MATCHERS["virtual_disk_exclude"]}",'
#: node_exporter's NICs the plan counts (the lab's replayed history selects its counters with it too).
NIC_MATCHER = f'device!~"{_MATCHERS["virtual_interface_exclude"]}"'
_NIC = NIC_MATCHER + ","


def _rate(
    metric: str, unit: str, counters: tuple[str, ...], by: tuple[str, ...], matcher: str = "", **options: Any
) -> QuerySpec:
    """Peak per step of the per-second rates of `counters` (each with the label matchers `matcher`, ending
    in a comma), summed by the labels `by`."""
    rates = " + ".join(f"rate({counter}{{{{{matcher}{{sel}}}}}}[2m])" for counter in counters)
    promql = f"max_over_time(sum by ({', '.join(by)}) ({rates})[{{step}}:1m])"
    return QuerySpec(metric, promql, unit, counters=counters, by=by, **options)


def _planned_filesystem(labels: Mapping[str, str]) -> bool:
    """The collector's rule for node_exporter's filesystems: a disk, no file a container runtime bind-mounts."""
    return is_disk_mount(labels.get("mount", ""), labels.get("fstype", ""))


# What the full plan asks for: the collector's own names first, exporter equivalents after them.
PLAN_QUERIES: tuple[QuerySpec, ...] = (
    _gauge("khronika_host_cpu_used_cores", "cores"),
    _gauge("khronika_host_cpu_cores", "cores"),
    _gauge("khronika_host_memory_used_bytes", "bytes"),
    _gauge("khronika_host_memory_total_bytes", "bytes"),
    _gauge("khronika_container_cpu_cores", "cores"),
    _gauge("khronika_container_memory_bytes", "bytes"),
    _gauge("khronika_filesystem_used_bytes", "bytes"),
    _gauge("khronika_filesystem_size_bytes", "bytes"),
    _gauge("khronika_disk_iops", "iops"),
    _gauge("khronika_disk_throughput_bytes_per_second", "bytes"),
    _gauge("khronika_gpu_utilisation_ratio", "ratio"),
    _gauge("khronika_gpu_memory_used_bytes", "bytes"),
    _gauge("khronika_module_request_duration_seconds", "seconds"),
    _rate(
        "khronika_module_requests_per_second", "requests", ("khronika_module_requests_total",), ("module",)
    ),
    _rate(
        "khronika_host_cpu_used_cores", "cores", ("node_cpu_seconds_total",), ("instance",), 'mode!="idle",'
    ),
    QuerySpec(
        "khronika_host_memory_used_bytes",
        "max_over_time((node_memory_MemTotal_bytes{{{sel}}} - node_memory_MemAvailable_bytes{{{sel}}})[{step}:1m])",
        "bytes",
    ),
    _rate(
        "khronika_container_cpu_cores",
        "cores",
        ("container_cpu_usage_seconds_total",),
        ("instance", "name"),
        'name!="",',
        rename=(("instance", "host"), ("name", "container")),
    ),
    QuerySpec(
        "khronika_container_memory_bytes",
        'max_over_time(container_memory_working_set_bytes{{name!="",{sel}}}[{step}])',
        "bytes",
        rename=(("instance", "host"), ("name", "container")),
    ),
    QuerySpec(
        "khronika_gpu_utilisation_ratio",
        "max_over_time(DCGM_FI_DEV_GPU_UTIL{{{sel}}}[{step}]) / 100",
        "ratio",
        rename=(("instance", "host"), ("modelName", "model")),
    ),
    QuerySpec(
        "khronika_gpu_memory_used_bytes",
        "max_over_time(DCGM_FI_DEV_FB_USED{{{sel}}}[{step}]) * 1048576",
        "bytes",
        rename=(("instance", "host"), ("modelName", "model")),
    ),
    # node_exporter: filesystems (used = size - free, as df and the collector count it), disks and NICs.
    QuerySpec(
        "khronika_filesystem_used_bytes",
        f"max_over_time((node_filesystem_size_bytes{{{{{_FS}{{sel}}}}}} - node_filesystem_free_bytes{{{{{_FS}{{sel}}}}}})"
        "[{step}:1m])",
        "bytes",
        rename=(("instance", "host"), ("mountpoint", "mount")),
        keep=("host", "mount"),  # node_exporter's `device` would keep it apart from the collector's series
        select=_planned_filesystem,
    ),
    QuerySpec(
        "khronika_filesystem_size_bytes",
        f"max_over_time(node_filesystem_size_bytes{{{{{_FS}{{sel}}}}}}[{{step}}])",
        "bytes",
        rename=(("instance", "host"), ("mountpoint", "mount")),
        keep=("host", "mount"),  # node_exporter's `device` would keep it apart from the collector's series
        select=_planned_filesystem,
    ),
    _rate(
        "khronika_disk_iops",
        "iops",
        ("node_disk_reads_completed_total", "node_disk_writes_completed_total"),
        ("instance", "device"),
        _DISK,
    ),
    _rate(
        "khronika_disk_throughput_bytes_per_second",
        "bytes",
        ("node_disk_read_bytes_total", "node_disk_written_bytes_total"),
        ("instance", "device"),
        _DISK,
    ),
    *(
        _rate(
            "khronika_network_bytes_per_second",
            "bytes",
            (f"node_network_{direction}_bytes_total",),
            ("instance", "device"),
            _NIC,
            rename=(("instance", "host"), ("device", "interface")),
            labels=(("direction", direction),),  # links are full duplex: each direction on its own
        )
        for direction in ("receive", "transmit")
    ),
)


def selector_batches(
    label: str, values: Sequence[str], *, suffix: str = "", size: int = SELECTOR_BATCH
) -> list[str]:
    """`label=~"(a|b)suffix"` selectors of at most `size` values each; [""] when there are no values.

    Values are regex-escaped, then backslash-escaped again for the PromQL string literal."""
    if not values:
        return [""]
    ordered = sorted(set(values))
    batches = []
    for i in range(0, len(ordered), size):
        alternatives = "|".join(re.escape(value).replace("\\", "\\\\") for value in ordered[i : i + size])
        batches.append(f'{label}=~"({alternatives}){suffix}"')
    return batches


def format_step(seconds: float) -> str:
    return f"{int(seconds)}s" if seconds >= 1 else f"{int(seconds * 1000)}ms"


class PrometheusClient:
    """`query_range` over HTTP(S). A Prometheus behind TLS and basic auth (as the monitoring_server role
    sets it up) takes `ca_file` (the monitoring CA) and `username`/`password`; `bearer_token` is for a
    proxy that wants a token instead."""

    def __init__(
        self,
        base_url: str,
        *,
        timeout: float = 30.0,
        ca_file: str | None = None,
        username: str | None = None,
        password: str | None = None,
        bearer_token: str | None = None,
    ) -> None:
        if not re.match(r"^https?://[^/\s]+", base_url):
            raise InputError("not an http:// or https:// URL", source=base_url)
        if (username is None) != (password is None):
            raise InputError("basic auth needs both a user name and a password", source=base_url)
        if username is not None and bearer_token is not None:
            raise InputError("give basic auth or a bearer token, not both", source=base_url)
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self._headers: dict[str, str] = {"Accept": "application/json"}
        if username is not None and password is not None:
            pair = base64.b64encode(f"{username}:{password}".encode()).decode("ascii")
            self._headers["Authorization"] = f"Basic {pair}"
        elif bearer_token is not None:
            self._headers["Authorization"] = f"Bearer {bearer_token}"
        self._context: ssl.SSLContext | None = None
        if ca_file is not None:
            try:
                self._context = ssl.create_default_context(cafile=ca_file)
            except (OSError, ssl.SSLError) as exc:
                raise InputError(f"cannot load the CA file: {exc}", source=ca_file) from exc

    def query_range(
        self, query: str, start: float, end: float, step: float
    ) -> list[tuple[dict[str, str], list[tuple[float, float]]]]:
        """Raw `query_range` answer, split into chunks of at most MAX_POINTS_PER_QUERY steps."""
        merged: dict[tuple[tuple[str, str], ...], list[tuple[float, float]]] = {}
        chunk = step * (MAX_POINTS_PER_QUERY - 1)
        chunk_start = start
        while chunk_start <= end:
            chunk_end = min(end, chunk_start + chunk)
            for labels, points in self._get(query, chunk_start, chunk_end, step):
                merged.setdefault(tuple(sorted(labels.items())), []).extend(points)
            chunk_start = chunk_end + step
        return [(dict(key), points) for key, points in sorted(merged.items())]

    def _get(
        self, query: str, start: float, end: float, step: float
    ) -> Iterable[tuple[dict[str, str], list[tuple[float, float]]]]:
        params = {"query": query, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": str(step)}
        body = self.get_json("/api/v1/query_range", params, query=query)
        if body.get("status") != "success":
            raise InputError(f"query failed: {body.get('error')}; query: {query}", source=self.base_url)
        for item in body["data"]["result"]:
            yield item["metric"], [(float(t), float(v)) for t, v in item["values"]]

    def get_json(
        self, path: str, params: dict[str, str] | None = None, *, query: str = "", expect_json: bool = True
    ) -> dict[str, Any]:
        """GET one API path (its JSON answer; {} when `expect_json` is false), errors named as the planner
        names them. Answers are read up to MAX_ANSWER_BYTES."""
        url = f"{self.base_url}{path}" + (f"?{urllib.parse.urlencode(params)}" if params else "")
        request = urllib.request.Request(url, headers=self._headers)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout, context=self._context) as response:
                data = response.read(MAX_ANSWER_BYTES + 1)
        except urllib.error.HTTPError as exc:
            if exc.code in (401, 403):
                hint = (
                    "check the user name and password"
                    if "Authorization" in self._headers
                    else (
                        "this Prometheus wants credentials: --prometheus-user and KHRONIKA_PROMETHEUS_PASSWORD"
                    )
                )
                raise InputError(f"access refused ({exc.code}): {hint}", source=self.base_url) from exc
            detail = exc.read(4096).decode("utf-8", "replace")[:300]
            raise InputError(
                f"query failed ({exc.code}): {detail}" + (f"; query: {query}" if query else f"; {path}"),
                source=self.base_url,
            ) from exc
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            if isinstance(reason, ssl.SSLError):
                raise InputError(
                    f"TLS check failed ({reason}): give the CA that signed Prometheus' certificate "
                    "with --prometheus-ca",
                    source=self.base_url,
                ) from exc
            raise InputError(f"cannot reach Prometheus: {exc}", source=self.base_url) from exc
        if len(data) > MAX_ANSWER_BYTES:
            raise InputError(f"answer larger than {MAX_ANSWER_BYTES} bytes: {path}", source=self.base_url)
        if not expect_json:
            return {}
        try:
            body: dict[str, Any] = json.loads(data)
        except ValueError as exc:
            raise InputError(f"not a JSON answer: {path}: {exc}", source=self.base_url) from exc
        return body

    def fetch(
        self,
        spec: QuerySpec,
        start: float,
        end: float,
        step: float,
        selectors: Sequence[str] = ("",),
    ) -> list[RawSeries]:
        series: list[RawSeries] = []
        for selector in selectors:
            query = spec.promql.format(sel=selector, step=format_step(step))
            for labels, points in self.query_range(query, start, end, step):
                key = series_key(spec, labels)
                if not points or key is None:
                    continue
                data = np.array(sorted(set(points)), dtype=np.float64)
                series.append(
                    RawSeries(
                        key=key,
                        unit=spec.unit or UNKNOWN_UNIT,
                        source=f"{self.base_url} ({spec.metric})",
                        timestamps=data[:, 0],
                        values=data[:, 1],
                    )
                )
        return series


def series_key(spec: QuerySpec, labels: Mapping[str, str]) -> SeriesKey | None:
    """The key of one answered series of `spec` (labels renamed, the host without its port, the spec's
    own labels set, only those it keeps); None when the spec's `select` leaves it out."""
    renamed = dict(labels)
    for old, new in spec.rename:
        if old in renamed:
            value = renamed.pop(old)
            renamed.setdefault(new, value)  # a label the exporter set itself wins
    if "host" in renamed:
        renamed["host"] = strip_port(renamed["host"])
    if spec.select is not None and not spec.select(renamed):
        return None
    renamed.update(spec.labels)
    return SeriesKey(
        metric=spec.metric, labels=tuple(sorted((k, v) for k, v in renamed.items() if k in spec.keep))
    )


#: The marker a replayed history carries (khronika_ops/lab/history.py): one series per key the planner
#: builds (its labels), plus `metric` (the key's metric) and `trace` (where its history came from).
REPLAYED_MARKER = "khronika_replayed_series"


def fetch_replayed(client: PrometheusClient, end: float, history_seconds: float) -> dict[SeriesKey, str]:
    """The series keys whose history was replayed from a trace, not measured (key -> trace), from the
    markers in the window read. Only a lab writes markers: the query is not split by host."""
    found: dict[SeriesKey, str] = {}
    query = f"max_over_time({REPLAYED_MARKER}[{format_step(max(history_seconds, 60.0))}])"
    for labels, points in client.query_range(query, end, end, 60.0):
        metric, trace = labels.pop("metric", ""), labels.pop("trace", "")
        if points and metric:
            found[SeriesKey(metric=metric, labels=tuple(sorted(labels.items())))] = trace
    return found


def fetch_plan_series(
    client: PrometheusClient, start: float, end: float, step: float, hosts: Sequence[str] = ()
) -> list[RawSeries]:
    """Everything the plan needs; a metric already answered by the collector's name is not re-read."""
    selectors = selector_batches("instance", hosts, suffix="(:[0-9]+)?")
    found: dict[SeriesKey, RawSeries] = {}
    for spec in PLAN_QUERIES:
        for item in client.fetch(spec, start, end, step, selectors):
            found.setdefault(item.key, item)
    return list(found.values())
