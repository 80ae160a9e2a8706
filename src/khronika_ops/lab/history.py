"""Two weeks of history for the lab's Prometheus, replayed from real load traces.

A fresh lab's Prometheus holds minutes of samples: too few to forecast anything. The `history` stage of
`khronika lab up` gives it the two weeks the planner reads by default, from real traces shipped with the
package (`data/traces/nab`: AWS CloudWatch series of the Numenta Anomaly Benchmark, MIT licence):

1. it asks the lab's Prometheus for today's level of each series the planner reads (`RULES`: the
   collector's gauges, node_exporter's NIC counters, the modules' request counters and latencies): its
   mean over the last 10 minutes (a counter: its rate), and where its head, the first live sample, begins;
2. each series gets one trace, picked by a hash of its labels (a series keeps its trace from lab to lab),
   laid on the lab's clock at 5-minute steps, ending before the head:
   - CPU, disk, network and request rates follow the trace's shape, today's level (measured while the
     lab's traffic runs) at the trace's 99th percentile, never below a small floor, a host's CPU never
     above its cores; counters are their running sums;
   - memory and latency follow a trace damped to +-30 % around today's value;
   - a filesystem's used bytes grow along the cumulative writes of a disk trace, ending at today's value
     (grown by a tenth of what is free, at most a quarter of today's, over the two weeks: a fill date);
   - sizes (cores, memory, filesystem size) stay at today's value;
3. the samples, and one `khronika_replayed_series` marker per series the planner builds from them (its
   key's labels, plus `metric` and `trace`: what a plan reads to say which series were replayed), are
   written as OpenMetrics;
4. on the monitoring host `promtool tsdb create-blocks-from openmetrics` turns them into TSDB blocks
   (a day each at most), which are moved into Prometheus' data folder; Prometheus is restarted (it loads
   blocks at start) and must answer again with every marker.

A Prometheus that holds samples before its head already (a second `up`, a lab up for days) is left alone.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import io
import math
import shlex
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import TextIO

import numpy as np

from khronika_ops.planner.errors import InputError
from khronika_ops.planner.ingest.prometheus import (
    NIC_MATCHER,
    PLAN_QUERIES,
    REPLAYED_MARKER,
    PrometheusClient,
    series_key,
)
from khronika_ops.planner.models import SeriesKey

DAYS = 14
STEP = 300
POINTS = DAYS * 86400 // STEP
MARKER = REPLAYED_MARKER
#: A trace file larger than this is not one of ours.
MAX_TRACE_BYTES = 1_000_000
#: The OpenMetrics file is refused beyond this: about 0.9 MB a series (a counter's minutes weigh most),
#: so a lab of 60 hosts (~1,000 series) stays below it. Written to disk a series at a time.
MAX_OPENMETRICS_BYTES = 2 * 1024**3


@dataclass(frozen=True)
class Rule:
    """How one metric is replayed: `kind` is load (the trace's shape around today's level), damped (+-30 %
    around it), growth (cumulative writes ending at today's value), size (today's value throughout) or
    counter (the running sum of a load); `traces` the family drawn from; `floor` the least level a load
    gets (an idle lab still shows a shape); `matchers` narrow the live query."""

    kind: str
    traces: str = ""
    floor: float = 0.0
    matchers: str = ""


#: What the lab replays: the series the planner reads (planner/ingest/prometheus.py, PLAN_QUERIES).
RULES: dict[str, Rule] = {
    "khronika_host_cpu_used_cores": Rule("load", "cpu", 0.2),
    "khronika_container_cpu_cores": Rule("load", "cpu", 0.05),
    "khronika_disk_iops": Rule("load", "disk", 5.0),
    "khronika_disk_throughput_bytes_per_second": Rule("load", "disk", 200e3),
    "khronika_network_bytes_per_second": Rule("load", "network", 50e3),
    "khronika_host_memory_used_bytes": Rule("damped", "memory"),
    "khronika_container_memory_bytes": Rule("damped", "memory"),
    "khronika_module_request_duration_seconds": Rule("damped", "cpu", 0.02),
    "khronika_filesystem_used_bytes": Rule("growth", "disk"),
    "khronika_host_cpu_cores": Rule("size"),
    "khronika_host_memory_total_bytes": Rule("size"),
    "khronika_filesystem_size_bytes": Rule("size"),
    "node_network_receive_bytes_total": Rule("counter", "network", 50e3, NIC_MATCHER),
    "node_network_transmit_bytes_total": Rule("counter", "network", 50e3, NIC_MATCHER),
    "khronika_module_requests_total": Rule("counter", "requests", 0.5),
}
#: A use never replayed above its size (same labels, this metric).
CAPACITY = {
    "khronika_host_cpu_used_cores": "khronika_host_cpu_cores",
    "khronika_host_memory_used_bytes": "khronika_host_memory_total_bytes",
    "khronika_filesystem_used_bytes": "khronika_filesystem_size_bytes",
}
#: Which traces each family draws from (file name prefixes in data/traces/nab).
TRACES = {
    "cpu": "ec2_cpu_utilization_",
    "memory": "rds_cpu_utilization_",
    "disk": "ec2_disk_write_bytes_",
    "network": "ec2_network_in_",
    "requests": "elb_request_count_",
}
MEMORY_SWING = 0.3
FILL_SHARE = 0.1
#: Counters are written a sample a minute (their rate is constant within each 5-minute step).
COUNTER_STEP = 60
#: Today's level of a series: its mean (a counter: its rate) over this window.
LEVEL_WINDOW = "10m"


class HistoryError(RuntimeError):
    """The history could not be replayed; the message says where it stopped."""


Labels = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class LiveSeries:
    metric: str
    labels: Labels  # every label but __name__, as Prometheus answers it
    value: float


@dataclass(frozen=True)
class Replay:
    series: LiveSeries
    trace: str  # "nab/<file>", or "" for a size held at today's value
    values: np.ndarray


def _traces_folder() -> Traversable:
    """The NAB traces shipped as package data (with their MIT licence)."""
    return resources.files("khronika_ops.data") / "traces" / "nab"


@functools.cache
def trace_files(kind: str) -> tuple[str, ...]:
    names = (p.name for p in _traces_folder().iterdir())
    return tuple(sorted(n for n in names if n.startswith(TRACES[kind]) and n.endswith(".csv")))


@functools.cache
def read_trace(name: str) -> np.ndarray:
    """The values of one NAB trace (`timestamp,value`), bounded, as floats; at least a day of them.
    Read once per process (a lab's series share a handful of traces); the array is read-only."""
    data = (_traces_folder() / name).read_bytes()
    if len(data) > MAX_TRACE_BYTES:
        raise HistoryError(f"trace {name}: larger than {MAX_TRACE_BYTES} bytes")
    values = []
    for row in csv.DictReader(io.StringIO(data.decode("utf-8"))):
        value = float(row["value"])
        if math.isfinite(value):
            values.append(value)
    if len(values) < 86400 // STEP:
        raise HistoryError(f"trace {name}: fewer than a day of samples")
    array = np.asarray(values, dtype=np.float64)
    array.setflags(write=False)
    return array


def pick_trace(kind: str, series: LiveSeries) -> str:
    names = trace_files(kind)
    if not names:
        raise HistoryError(f"no {kind} trace in the package (data/traces/nab/{TRACES[kind]}*.csv)")
    digest = hashlib.sha256(repr((series.metric, series.labels)).encode()).digest()
    return names[int.from_bytes(digest[:4], "big") % len(names)]


def _shape(name: str, by: str) -> np.ndarray:
    """The trace fitted to POINTS steps (its last POINTS samples, repeated from its start if shorter),
    divided by its 99th percentile (`by="p99"`: today's level, measured while the lab's traffic runs, is
    the trace's busy hour) or its mean (`by="mean"`)."""
    values = np.clip(read_trace(name), 0.0, None)
    if values.size < POINTS:
        values = np.concatenate([np.resize(values, POINTS - values.size), values])
    values = values[-POINTS:]
    scale = float(np.percentile(values, 99)) if by == "p99" else 0.0
    scale = scale or float(values.mean()) or 1.0
    shaped: np.ndarray = values / scale
    return shaped


def replay(series: LiveSeries, capacity: float | None) -> Replay:
    """The two weeks of one series (oldest first), from its trace and today's level."""
    rule = RULES.get(series.metric)
    if rule is None:
        raise HistoryError(f"{series.metric}: not a series the lab replays")
    level = max(series.value, rule.floor)
    top = capacity if capacity is not None and capacity > 0 else math.inf
    if rule.kind == "size":
        return Replay(series, "", np.full(POINTS, level))
    name = pick_trace(rule.traces, series)
    if rule.kind in ("load", "counter"):
        values = np.minimum(_shape(name, "p99") * level, top)
        if rule.kind == "counter":
            values = np.cumsum(values * STEP)
    elif rule.kind == "damped":
        swing = MEMORY_SWING * np.clip(_shape(name, "mean") - 1.0, -1.0, 1.0)
        values = np.minimum(level * (1.0 + swing), top)
    else:  # growth
        writes = _shape(name, "mean")
        written = np.cumsum(writes) / max(float(writes.sum()), 1e-12)
        free = max(top - level, 0.0) if math.isfinite(top) else level
        growth = min(FILL_SHARE * free, 0.25 * level)
        values = level - growth * (1.0 - written)
    return Replay(series, f"nab/{name}", values)


def planner_key(series: LiveSeries) -> SeriesKey | None:
    """The key the planner gives the series this one feeds (planner/ingest/prometheus.py's own rule): a
    counter feeds the rate of the query that reads it, summed by that query's labels; a gauge, the
    first query of its name."""
    spec = next((s for s in PLAN_QUERIES if series.metric in s.counters), None)
    if spec is not None:
        return series_key(spec, {k: v for k, v in series.labels if k in spec.by})
    spec = next((s for s in PLAN_QUERIES if s.metric == series.metric), None)
    return None if spec is None else series_key(spec, dict(series.labels))


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _label_text(labels: Labels) -> str:
    return "{" + ",".join(f'{name}="{_escape(value)}"' for name, value in labels) + "}"


def markers(replays: Sequence[Replay]) -> dict[Labels, str]:
    """One marker per series key the planner builds from the replayed series (several counters of a
    module feed one rate): its labels with `metric` -> the trace (the first series' one)."""
    marked: dict[Labels, str] = {}
    for item in replays:
        key = planner_key(item.series)
        if key is not None:
            marked.setdefault(tuple(sorted((*key.labels, ("metric", key.metric)))), item.trace or "size")
    return marked


def write_openmetrics(replays: Sequence[Replay], end: float, out: TextIO) -> int:
    """Write the OpenMetrics text (every replayed family, then one marker per planner key, each series'
    samples in time order, the last at `end`, epoch seconds) to `out`, a series at a time; the characters
    written. Refused past MAX_OPENMETRICS_BYTES."""
    times = end - STEP * np.arange(POINTS - 1, -1, -1, dtype=np.float64)
    written = 0

    def emit(lines: Iterable[str]) -> None:
        nonlocal written
        text = "".join(lines)
        written += len(text)
        if written > MAX_OPENMETRICS_BYTES:
            raise HistoryError(f"the replayed history would be larger than {MAX_OPENMETRICS_BYTES} bytes")
        out.write(text)

    by_metric: dict[str, list[Replay]] = {}
    for item in replays:
        by_metric.setdefault(item.series.metric, []).append(item)
    for metric in sorted(by_metric):
        counter = RULES[metric].kind == "counter"
        family = metric.removesuffix("_total") if counter else metric
        emit([f"# TYPE {family} {'counter' if counter else 'gauge'}\n"])
        for item in by_metric[metric]:
            prefix = metric + _label_text(item.series.labels) + " "
            at, values = times, item.values
            if counter:  # a sample a minute: the planner's rates look 2 minutes back
                at = np.arange(times[0], times[-1] + 1, COUNTER_STEP, dtype=np.float64)
                values = np.interp(at, times, item.values)
            emit(f"{prefix}{value:.9g} {when:.0f}\n" for value, when in zip(values, at, strict=True))
    emit([f"# TYPE {MARKER} gauge\n"])
    hourly = times[::-1][:: 3600 // STEP][::-1]  # the last at `end`
    for key_labels, trace in sorted(markers(replays).items()):
        prefix = MARKER + _label_text(tuple(sorted((*key_labels, ("trace", trace))))) + " "
        emit(f"{prefix}1 {at:.0f}\n" for at in hourly)
    emit(["# EOF\n"])
    return written


def openmetrics(replays: Sequence[Replay], end: float) -> str:
    """`write_openmetrics` into a string."""
    buffer = io.StringIO()
    write_openmetrics(replays, end, buffer)
    return buffer.getvalue()


def live_series(client: PrometheusClient, now: float) -> list[LiveSeries]:
    """The replayed metrics' series as the lab's Prometheus holds them: today's level of each (its mean
    over LEVEL_WINDOW; a counter's rate)."""
    found = []
    for metric, rule in RULES.items():
        function = "rate" if rule.kind == "counter" else "avg_over_time"
        query = f"{function}({metric}{{{rule.matchers}}}[{LEVEL_WINDOW}])"
        for labels, points in client.query_range(query, now, now, 60):
            if points and math.isfinite(points[-1][1]):
                found.append(LiveSeries(metric, tuple(sorted(labels.items())), points[-1][1]))
    return found


def head_start(client: PrometheusClient) -> float:
    """Epoch seconds of the oldest sample in Prometheus' head (its in-memory block)."""
    status = client.get_json("/api/v1/status/tsdb")
    try:
        return float(status["data"]["headStats"]["minTime"]) / 1000.0
    except (KeyError, TypeError, ValueError) as exc:
        raise HistoryError(f"Prometheus did not give its head's start: {exc}") from exc


def holds_history_before(client: PrometheusClient, end: float) -> bool:
    """Whether any host reported its cores (every collector does, every scrape) in the two weeks before."""
    query = "count(count_over_time(khronika_host_cpu_cores[1h]))"
    answered = client.query_range(query, end - DAYS * 86400, end, 3600)
    return any(points for _, points in answered)


def plan_replays(series: Sequence[LiveSeries]) -> list[Replay]:
    values = {(s.metric, s.labels): s.value for s in series}
    return [replay(s, values.get((CAPACITY.get(s.metric, ""), s.labels))) for s in series]


@dataclass
class Outcome:
    replayed: int  # series written
    end: float
    skipped: str = ""
    planned: int = 0  # the planner's series they feed (markers)

    def line(self) -> str:
        if self.skipped:
            return self.skipped
        ended = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(self.end))
        return (
            f"{self.replayed} series replayed from NAB traces: {DAYS} d at {STEP // 60}-minute steps, "
            f"ending {ended} (before the first live sample); {self.planned} planner series marked {MARKER}"
        )


def promtool_script(storage_path: str, service: str = "prometheus", owner: str = "prometheus") -> str:
    """The shell script the monitoring host runs as root, the OpenMetrics text on its standard input:
    the blocks made by promtool (one per day at most), owned by Prometheus' user, moved into its data
    folder, Prometheus restarted (it loads blocks at start)."""
    quoted = shlex.quote(storage_path.rstrip("/") or "/")
    return (
        "set -eu; work=$(mktemp -d /var/tmp/khronika-history.XXXXXX); trap 'rm -rf \"$work\"' EXIT; "
        'mkdir "$work/blocks"; cat > "$work/history.om"; '
        'promtool tsdb create-blocks-from openmetrics --max-block-duration=24h "$work/history.om" '
        '"$work/blocks" > "$work/promtool.log"; '
        f'chown -R {shlex.quote(owner)}: "$work/blocks"; mv "$work"/blocks/* {quoted}/; '
        f"systemctl restart {shlex.quote(service)}"
    )


def _targets(client: PrometheusClient) -> list[dict[str, object]]:
    answer = client.get_json("/api/v1/targets", {"state": "active"})
    found = answer.get("data", {}).get("activeTargets", [])
    return [target for target in found if isinstance(target, dict)] if isinstance(found, list) else []


def replay_history(
    client: PrometheusClient,
    install: Callable[[Path], None],
    work: Path,
    say: Callable[[str], None] = print,
    ready_seconds: float = 120.0,
) -> Outcome:
    """The whole stage. `install(openmetrics_file)` makes the blocks where Prometheus reads them and
    restarts it (the lab: `promtool_script` over SSH); then Prometheus must answer, have scraped each of
    its targets again, and hold every marker."""
    now = time.time()
    end = math.floor(head_start(client) / STEP) * STEP - STEP
    if holds_history_before(client, end):
        return Outcome(0, end, "Prometheus already holds history before its head: nothing replayed")
    series = live_series(client, now)
    if not series:
        raise HistoryError("the lab's Prometheus holds none of the collector's series yet")
    replays = plan_replays(series)
    expected = len(markers(replays))
    path = work / "history.om"
    with path.open("w", encoding="utf-8") as out:
        size = write_openmetrics(replays, end, out)
    say(f"    {len(series)} series, {size / 1e6:.1f} MB of OpenMetrics; promtool on the monitoring host")
    watched = len(_targets(client))
    install(path)
    deadline = time.monotonic() + ready_seconds
    while True:
        try:
            client.get_json("/-/ready", expect_json=False)
            break
        except InputError as exc:  # not up yet: wait, up to the deadline
            if time.monotonic() > deadline:
                raise HistoryError(f"Prometheus did not come back within {ready_seconds:g} s: {exc}") from exc
            time.sleep(0.5)
    # Left as found: every target back (discovery fills the list a moment after the start) and scraped
    # again since the restart (none "unknown").
    while True:
        targets = _targets(client)
        if len(targets) >= watched and all(target.get("health") != "unknown" for target in targets):
            break
        if time.monotonic() > deadline:
            raise HistoryError(f"Prometheus had not scraped every target again within {ready_seconds:g} s")
        time.sleep(0.5)
    at = time.time()
    answered = client.query_range(f"count(max_over_time({MARKER}[{DAYS + 1}d]))", at, at, 60)
    counted = int(answered[0][1][-1][1]) if answered and answered[0][1] else 0
    if counted != expected:
        raise HistoryError(f"Prometheus answers {counted} replayed series after the restart, not {expected}")
    return Outcome(len(series), end, planned=expected)
