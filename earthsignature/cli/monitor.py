"""``earthsignature monitor``: the daily ingestion (run a day or a backfill, read a day's status)."""

from __future__ import annotations

import sys

import click

from earthsignature.cli.common import ISO_DATE, config_option, overrides_argument, service_config


@click.group()
def monitor() -> None:
    """The daily ingestion: search, download, segment and publish Sentinel-2 products (Luigi)."""


@monitor.command("run")
@click.option("--date", "day", type=ISO_DATE, default=None, help="the day to ingest (default: yesterday, UTC)")
@click.option("--start", type=ISO_DATE, default=None, help="backfill: first day")
@click.option("--end", type=ISO_DATE, default=None, help="backfill: last day")
@click.option("--workers", type=int, default=None, help="parallel Luigi workers (default: monitor.workers)")
@click.option("--scheduler", default=None, help="host:port of a luigid central scheduler (default: local)")
@click.option("--insecure", is_flag=True, help="publish to a server run with --insecure")
@config_option
@overrides_argument
def monitor_run(day, start, end, workers, scheduler, insecure, config, overrides) -> None:
    """Ingest a day (or a backfill range); the exit code says whether every product succeeded."""
    from datetime import UTC, datetime, timedelta

    from earthsignature.embedded.stac_provider import local_provider
    from earthsignature.service.monitor.runner import run_days

    if day and (start or end):
        raise click.UsageError("give --date or --start/--end, not both")
    if bool(start) != bool(end):
        raise click.UsageError("a backfill needs both --start and --end")
    first = (start or day).date() if (start or day) else datetime.now(UTC).date() - timedelta(days=1)
    last = end.date() if end else first
    if last < first:
        raise click.UsageError(f"--end {last} is before --start {first}")
    cfg = service_config(config, overrides)
    try:
        with local_provider(cfg.monitor) as catalog_url:
            report = run_days(cfg, first, last, workers, scheduler, insecure, catalog_url)
    except ValueError as error:
        raise click.ClickException(str(error)) from error
    for failure in report.failures:
        click.echo(f"FAILED {failure.line()}", err=True)
    click.echo(f"{'all products succeeded' if report.succeeded else f'{len(report.failures)} failure(s)'} "
               f"for {first}..{last}")
    sys.exit(0 if report.succeeded else 1)


@monitor.command("status")
@click.option("--date", "day", type=ISO_DATE, required=True)
@config_option
@overrides_argument
def monitor_status(day: str, config: str, overrides: tuple[str, ...]) -> None:
    """What this machine's work folder says about a day's products: fetched, segmented, published, failed."""

    from earthsignature.service.monitor.runner import day_status, skipped_products

    cfg = service_config(config, overrides)
    rows, skipped = day_status(cfg, day.date()), skipped_products(cfg, day.date())
    if not rows and not skipped:
        click.echo(f"nothing searched for {day} yet")
    if skipped:  # what the provider returned beyond what was asked
        click.echo(f"{len(skipped)} product{'s' if len(skipped) > 1 else ''} outside the day or the area skipped")
        for entry in skipped:
            click.echo(f"       skipped {entry.product_id}: {entry.reason}")
    for row in rows:
        models = ", ".join(f"{m}: {state}" for m, state in row.models.items()) or "no model output"
        click.echo(f"{row.product.tile_id:<6} {row.product.layout:<8} "
                   f"{'fetched' if row.fetched else 'not fetched':<11} {models}  {row.product.product_id}")
        if row.failure:
            click.echo(f"       FAILED {row.failure.line()}")
