"""`khronika plan`: the full capacity plan (group callback) and `khronika plan size` (one series)."""

from __future__ import annotations

import math
import os
from datetime import UTC, datetime
from enum import StrEnum
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from khronika_ops.options import number
from khronika_ops.planner.errors import PlannerError
from khronika_ops.planner.models import GROWTH_MAX, GROWTH_MIN, LOAD_FACTOR_MAX, ForecastSettings
from khronika_ops.planner.units import Resource

if TYPE_CHECKING:
    from rich.console import Console

    from khronika_ops.planner.size import SizingPolicy

plan_app = typer.Typer(
    help="Capacity planning: forecast load and size hosts, disks and GPUs before a maintenance window.",
    invoke_without_command=True,
    no_args_is_help=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


@cache
def _stderr() -> Console:
    """Rich is imported only to print an error or a note: not on the `plan size --json` path."""
    from khronika_ops.console import make_console

    return make_console(stderr=True)


class OutputFormat(StrEnum):
    TABLE = "table"
    JSON = "json"
    MD = "md"
    HTML = "html"


class SizeResource(StrEnum):
    CPU = "cpu"
    MEMORY = "memory"
    DISK = "disk"
    REQUESTS = "requests"


#: What each duration option may be, in days: a plan looks at most 10 years ahead, reads at most a
#: year and a half of history, at a step between a second and a day.
DURATION_LIMITS = {
    "--horizon": (None, 3650.0),
    "--history": (None, 550.0),
    "--step": (1.0 / 86400.0, 1.0),
}


def parse_duration_days(text: str, option: str = "--horizon") -> float:
    """'90', '90d', '12h', '2w', '1w3d' -> days (khronika_ops.quantities' grammar; a bare number is days),
    positive and within the option's DURATION_LIMITS, or a usage error naming the option."""
    from khronika_ops.quantities import parse_duration

    try:
        value = parse_duration(text, bare_seconds=86400.0) / 86400.0
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint=option) from None
    low, high = DURATION_LIMITS.get(option, (None, None))
    if value <= 0 or (low is not None and value < low) or (high is not None and value > high):
        bounds = f"at least {low * 86400:g} s" if low else "positive"
        raise typer.BadParameter(
            f"{text!r}: the duration must be {bounds}" + (f" and at most {high:g} days" if high else ""),
            param_hint=option,
        )
    return value


def parse_window(text: str | None) -> float | None:
    """The next maintenance window: an ISO 8601 time within the next ten years (UTC unless zoned)."""
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(
            f"{text!r} is not an ISO 8601 time such as 2025-07-06T02:00", param_hint="--window"
        ) from None
    moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    if moment.year > datetime.now(UTC).year + 10:
        raise typer.BadParameter(f"{text!r} is more than ten years ahead", param_hint="--window")
    return moment.timestamp()


def what_if(load_factor: float, growth: float) -> tuple[float, float]:
    """--load-factor and --growth, checked (both commands take them)."""
    return (
        number(load_factor, "--load-factor", above=0, at_most=LOAD_FACTOR_MAX),
        number(growth, "--growth", above=GROWTH_MIN, at_most=GROWTH_MAX),
    )


def _fail(error: Exception) -> typer.Exit:
    from khronika_ops.console import error_text

    _stderr().print(error_text(error))
    return typer.Exit(code=2)


PASSWORD_VARIABLE = "KHRONIKA_PROMETHEUS_PASSWORD"
TOKEN_VARIABLE = "KHRONIKA_PROMETHEUS_TOKEN"
REPORT_STEM = "capacity-plan"
_EXTENSIONS = {
    OutputFormat.TABLE: "txt",
    OutputFormat.JSON: "json",
    OutputFormat.MD: "md",
    OutputFormat.HTML: "html",
}


def parse_formats(values: list[str] | None) -> list[OutputFormat]:
    """`--format md --format html` or `--format md,html,json`; order kept, repeats dropped."""
    formats: list[OutputFormat] = []
    for value in values or ["table"]:
        for token in filter(None, (part.strip().lower() for part in value.split(","))):
            try:
                chosen = OutputFormat(token)
            except ValueError:
                allowed = ", ".join(item.value for item in OutputFormat)
                raise typer.BadParameter(
                    f"{token!r} is not a format ({allowed})", param_hint="--format"
                ) from None
            if chosen not in formats:
                formats.append(chosen)
    return formats


def report_paths(formats: list[OutputFormat], output: Path | None) -> dict[OutputFormat, Path | None]:
    """One format: `-o` is the file. Several: `-o` is a directory and each report is capacity-plan.<ext>."""
    if len(formats) == 1:
        return {formats[0]: output}
    if output is None:
        raise typer.BadParameter("several formats need -o DIRECTORY to write them to", param_hint="-o")
    if output.exists() and not output.is_dir():
        raise typer.BadParameter(f"{output} is a file; several formats need a directory", param_hint="-o")
    return {item: output / f"{REPORT_STEM}.{_EXTENSIONS[item]}" for item in formats}


@plan_app.callback()
def plan(
    ctx: typer.Context,
    *,
    prometheus: Annotated[str | None, typer.Option(help="Prometheus base URL to read history from.")] = None,
    prometheus_ca: Annotated[
        Path | None, typer.Option(help="CA certificate that signed Prometheus' TLS certificate.")
    ] = None,
    prometheus_user: Annotated[
        str | None,
        typer.Option(
            help=f"Basic-auth user for Prometheus; the password comes from --prometheus-password-file or ${PASSWORD_VARIABLE}."
        ),
    ] = None,
    prometheus_password_file: Annotated[
        Path | None,
        typer.Option(help="File whose first line is the Prometheus password (keep it mode 0600)."),
    ] = None,
    csv: Annotated[
        list[Path] | None, typer.Option("--csv", help="CSV file(s) with history (repeatable).")
    ] = None,
    catalog: Annotated[
        list[Path] | None,
        typer.Option(
            help="Site catalog YAML (hosts, modules, shapes); repeat to layer files, later ones win."
        ),
    ] = None,
    horizon: Annotated[str, typer.Option(help="Planning horizon: 90d, 12w, 36h.")] = "90d",
    history: Annotated[str, typer.Option(help="History to read from Prometheus.")] = "14d",
    step: Annotated[str, typer.Option(help="Prometheus query step (peaks kept with max_over_time).")] = "5m",
    window: Annotated[str | None, typer.Option(help="Next maintenance window (ISO 8601).")] = None,
    load_factor: Annotated[float, typer.Option(help="What-if: multiply all load by this.")] = 1.0,
    growth: Annotated[float, typer.Option(help="What-if: load growth in percent per month.")] = 0.0,
    target_under: Annotated[
        str,
        typer.Option(
            help="Share of samples each series may have above its size (1%, 0.5); each series is "
            "calibrated to it on its own history."
        ),
    ] = "1%",
    output_format: Annotated[
        list[str] | None,
        typer.Option(
            "--format", help="Report format: table, json, md, html; repeat or comma-separate for several."
        ),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option("-o", "--output", help="Write the report here (a directory when several formats)."),
    ] = None,
) -> None:
    """Build the full plan from Prometheus or CSV history and a site catalog (no subcommand)."""
    if ctx.invoked_subcommand is not None:
        return
    load_factor, growth = what_if(load_factor, growth)
    if prometheus is None and not csv:
        raise typer.BadParameter("give --prometheus URL or at least one --csv FILE")
    formats = parse_formats(output_format)
    paths = report_paths(formats, output)
    password = os.environ.get(PASSWORD_VARIABLE) or None
    if prometheus_password_file is not None:
        try:
            lines = prometheus_password_file.read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise typer.BadParameter(
                f"cannot read {prometheus_password_file}: {exc.strerror}",
                param_hint="--prometheus-password-file",
            ) from None
        password = lines[0] if lines and lines[0] else None
    token = os.environ.get(TOKEN_VARIABLE) or None
    if prometheus_user is not None and password is None:
        raise typer.BadParameter(
            f"--prometheus-user needs the password in --prometheus-password-file or ${PASSWORD_VARIABLE}"
        )
    from khronika_ops.planner.pipeline import run_plan
    from khronika_ops.planner.plan import PlanRequest

    try:
        request = PlanRequest(
            prometheus_url=prometheus,
            prometheus_ca=str(prometheus_ca) if prometheus_ca else None,
            prometheus_user=prometheus_user,
            prometheus_password=password if prometheus_user is not None else None,
            prometheus_token=token if prometheus_user is None else None,
            csv_files=[str(path) for path in csv or []],
            catalog_files=[str(path) for path in catalog or []],
            history_days=parse_duration_days(history, "--history"),
            step_seconds=parse_duration_days(step, "--step") * 86400.0,
            settings=ForecastSettings(
                horizon_days=parse_duration_days(horizon),
                maintenance_window=parse_window(window),
                load_factor=load_factor,
                growth_percent_per_month=growth,
                keep_band=bool({OutputFormat.HTML, OutputFormat.MD} & set(formats)),
            ),
            policy=_policy("backtest", target_under),
        )
        texts = run_plan(request, [item.value for item in formats])
    except PlannerError as error:
        raise _fail(error) from error
    for item, path in paths.items():
        if path is None:
            typer.echo(texts[item.value], nl=False)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(texts[item.value], encoding="utf-8")
        _stderr().print(f"report written to {path}")


def _policy(calibration: str, target_under: str) -> SizingPolicy:
    """The sizing policy of --calibration and --target-under, or a usage error naming the option."""
    from khronika_ops.planner.size import SizingPolicy

    if calibration not in ("fixed", "backtest"):
        raise typer.BadParameter(f"{calibration!r}: fixed or backtest", param_hint="--calibration")
    try:
        target = float(target_under.strip().removesuffix("%")) / 100.0
        if not math.isfinite(target):
            raise ValueError(target_under)
        return SizingPolicy(calibration=calibration, target_under=target)
    except ValueError:
        raise typer.BadParameter(
            f"{target_under!r}: a percentage above 0 and below 50, such as 1% or 0.5",
            param_hint="--target-under",
        ) from None


@plan_app.command()
def size(
    *,
    csv: Annotated[Path, typer.Option("--csv", help="CSV file: NAB timestamp,value, wide or long.")],
    resource: Annotated[SizeResource, typer.Option(help="What the series measures.")],
    horizon: Annotated[str, typer.Option(help="Days ahead to size for (90, 30d, 12h).")] = "90",
    json_output: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    unit: Annotated[str | None, typer.Option(help="Unit of the values when the name does not say.")] = None,
    series: Annotated[str | None, typer.Option(help="Series (column or metric) to size.")] = None,
    sort: Annotated[bool, typer.Option("--sort", help="Sort out-of-order timestamps (flagged).")] = False,
    window: Annotated[str | None, typer.Option(help="Next maintenance window (ISO 8601).")] = None,
    load_factor: Annotated[float, typer.Option(help="What-if: multiply load by this.")] = 1.0,
    growth: Annotated[float, typer.Option(help="What-if: growth in percent per month.")] = 0.0,
    reserve: Annotated[float, typer.Option(help="Disk: room for release images and backups.")] = 0.0,
    capacity: Annotated[float | None, typer.Option(help="Disk: current size, for days until full.")] = None,
    calibration: Annotated[
        str,
        typer.Option(
            help="CPU, memory and rates: backtest (the base, p95, p99 or maximum, and the multiplier on it that "
            "the series' own rolling-origin backtest prices best at --target-under) or fixed (CPU max(p95 x 1.15, p99.9), memory peak x 1.15)."
        ),
    ] = "backtest",
    target_under: Annotated[
        str, typer.Option(help="With --calibration backtest: the share of samples allowed above the size.")
    ] = "1%",
) -> None:
    """Size one series (values in the file's own units)."""
    from khronika_ops.planner.single import size_csv

    load_factor, growth = what_if(load_factor, growth)
    number(reserve, "--reserve", at_least=0, at_most=1e18)
    if capacity is not None:
        number(capacity, "--capacity", above=0, at_most=1e18)
    policy = _policy(calibration, target_under)
    try:
        result = size_csv(
            csv,
            Resource(resource.value),
            settings=ForecastSettings(
                horizon_days=parse_duration_days(horizon),
                maintenance_window=parse_window(window),
                load_factor=load_factor,
                growth_percent_per_month=growth,
                backtest=calibration == "backtest",
            ),
            policy=policy,
            unit=unit,
            series_name=series,
            allow_unsorted=sort,
            extra_bytes=reserve,
            capacity=capacity,
        )
    except PlannerError as error:
        raise _fail(error) from error
    if json_output:
        from khronika_ops.console import json_text

        typer.echo(json_text(result.model_dump(mode="json")))
        return
    if result.recommended is None:
        typer.echo(f"{result.series}: {result.reason}")
        return
    typer.echo(
        f"{result.series}: recommended {result.recommended:g} {result.unit}\n  {result.method}\n  {result.reason}"
    )
    if result.at_window is not None:
        at = result.at_window
        typer.echo(
            f"  at the window {at.at} ({at.days:.3g} d ahead): recommended {at.recommended:g} {result.unit}"
        )
    elif window is not None:
        typer.echo(f"  window {window} is not after the history: sized for the horizon only")
