"""The full plan: ingest -> clean -> forecast -> size modules -> place -> size hosts -> report.

The stages live in their own modules (docs/architecture.md); this one only runs them in order.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Sequence

from khronika_ops.planner.catalog import Catalog, ModuleSpec, load_catalog
from khronika_ops.planner.clean import clean
from khronika_ops.planner.errors import InputError
from khronika_ops.planner.forecast import forecast_block
from khronika_ops.planner.models import CleanSeries, Forecast, ForecastSettings, RawSeries
from khronika_ops.planner.moves import describe_moves, n_minus_1_advice
from khronika_ops.planner.place import Replica, check_n_minus_1, place
from khronika_ops.planner.plan import Plan, PlanRequest
from khronika_ops.planner.series_index import SeriesIndex
from khronika_ops.planner.size_hosts import host_plans, host_vars
from khronika_ops.planner.size_modules import module_plan
from khronika_ops.planner.vocabulary import to_collector_names

Progress = Callable[[str], None]


def ingest(request: PlanRequest, catalog: Catalog) -> tuple[list[RawSeries], dict[str, str]]:
    """The series to plan on, and those of them whose history was replayed (series -> trace)."""
    from khronika_ops.planner.ingest.csvfile import read_csv

    series: list[RawSeries] = []
    replayed: dict[str, str] = {}
    for path in request.csv_files:
        series += read_csv(path)
    if request.prometheus_url:
        from khronika_ops.planner.ingest.prometheus import (
            PrometheusClient,
            fetch_plan_series,
            fetch_replayed,
        )

        end = request.end_time or time.time()
        start = end - request.history_days * 86400.0
        client = PrometheusClient(
            request.prometheus_url,
            ca_file=request.prometheus_ca,
            username=request.prometheus_user,
            password=request.prometheus_password.get_secret_value() if request.prometheus_password else None,
            bearer_token=request.prometheus_token.get_secret_value() if request.prometheus_token else None,
        )
        hosts = [host.name for host in catalog.hosts]
        series += fetch_plan_series(client, start, end, request.step_seconds, hosts=hosts)
        read = {item.key for item in series}
        replayed = {
            str(key): trace for key, trace in fetch_replayed(client, end, end - start).items() if key in read
        }
    if not series:
        names = ", ".join(host.name for host in catalog.hosts)
        scope = (
            f" for the catalog's hosts ({names}) over the last {request.history_days:g} d" if names else ""
        )
        hint = (
            "; Prometheus must label them instance=<inventory name>[:port] (docs/metrics.md)"
            if names and request.prometheus_url
            else ""
        )
        raise InputError(
            f"no series found{scope}{hint}", source=request.prometheus_url or ",".join(request.csv_files)
        )
    return series, replayed


def forecast_all(series: Sequence[CleanSeries], settings: ForecastSettings) -> list[Forecast]:
    """Forecast series grouped by grid, so each group is one vectorised fit; input order is kept."""
    groups: dict[tuple[float, float, int], list[int]] = defaultdict(list)
    for index, item in enumerate(series):
        groups[item.start, item.step, item.values.size].append(index)
    results: list[Forecast | None] = [None] * len(series)
    for indices in groups.values():
        for index, result in zip(
            indices, forecast_block([series[i] for i in indices], settings), strict=True
        ):
            results[index] = result
    return [result for result in results if result is not None]


def build_plan(request: PlanRequest, progress: Progress | None = None) -> Plan:
    note = progress or (lambda _message: None)
    catalog = load_catalog(request.catalog_files)
    note("reading history")
    raw, replayed = ingest(request, catalog)
    note(f"cleaning {len(raw)} series")
    cleaned_raw, skipped = [], []
    for series in raw:
        try:
            cleaned_raw.append(clean(series))
        except InputError as error:  # one unusable series (all NaN, say) must not stop the whole plan
            skipped.append(f"{series.key}: not used: {error}")
    if not cleaned_raw:
        raise InputError("no usable series: " + "; ".join(skipped[:5]), source=raw[0].source)
    cleaned = to_collector_names(cleaned_raw)
    note("forecasting")
    forecasts = forecast_all(cleaned, request.settings)
    index = SeriesIndex(cleaned, forecasts)
    insufficient = sorted(str(f.key) for f in forecasts if f.insufficient_data)
    specs = catalog.modules or [
        ModuleSpec(name=name) for name in index.labels("khronika_container_cpu_cores", "container")
    ]
    note(f"sizing {len(specs)} modules")
    modules = [module_plan(spec, index, request, catalog) for spec in specs]
    by_name = {spec.name: spec for spec in specs}
    replicas = [
        Replica(
            module=m.name,
            index=i,
            cores=m.cores_per_replica,
            memory_gib=m.memory_gib_per_replica,
            gpus=m.gpus_per_replica,
            gpu_model=m.gpu_model,
            anti_affinity=by_name[m.name].anti_affinity,
            current_host=m.current_hosts[i] if i < len(m.current_hosts) else None,
            stateful=by_name[m.name].stateful,
            data_gib=by_name[m.name].data_gib,
        )
        for m in modules
        for i in range(m.replicas)
    ]
    note(f"placing {len(replicas)} replicas")
    placement = place(replicas, catalog)
    drains = check_n_minus_1(replicas, placement, catalog)
    warnings = list(catalog.notes) + skipped
    warnings += [f"{name}: could not be placed on any host or shape" for name in placement.unplaced]
    warnings += n_minus_1_advice(replicas, placement, catalog, drains)
    hosts = host_plans(
        replicas,
        placement=placement,
        catalog=catalog,
        index=index,
        request=request,
        drains={d.host: d.holds for d in drains},
    )
    changes = [f"{h.name}: {change}" for h in hosts for change in h.changes]
    changes += describe_moves(replicas, placement, catalog, drains)
    return Plan(
        horizon_days=request.settings.horizon_days,
        sizing=request.policy.description,
        target_under=request.policy.target_under if request.policy.calibration == "backtest" else None,
        history_source=request.prometheus_url or ", ".join(request.csv_files),
        series_read=len(raw),
        insufficient_series=insufficient,
        replayed_series=replayed,
        modules=modules,
        hosts=hosts,
        placement=placement,
        n_minus_1={d.host: d.holds for d in drains},
        total_new_cost=placement.cost,
        changes=changes,
        host_vars={h.name: host_vars(h) for h in hosts},
        warnings=warnings,
    )


def run_plan(request: PlanRequest, output_formats: Sequence[str]) -> dict[str, str]:
    """One plan, rendered in every format asked for (format -> text)."""
    from rich.console import Console
    from rich.progress import Progress as RichProgress
    from rich.progress import SpinnerColumn, TextColumn

    from khronika_ops.planner.report import render

    # The bar goes to stderr so that `--format json` on stdout stays parseable.
    columns = (SpinnerColumn(), TextColumn("{task.description}"))
    with RichProgress(*columns, transient=True, console=Console(stderr=True)) as bar:
        task = bar.add_task("planning", total=None)
        plan = build_plan(request, progress=lambda message: bar.update(task, description=message))
    return {output_format: render(plan, output_format) for output_format in output_formats}
