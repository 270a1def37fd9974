"""``earthsignature store``: the raster store checked against the catalog."""

from __future__ import annotations

import sys

import click

from earthsignature.cli.common import config_option, database_url, overrides_argument, service_config


@click.group()
def store() -> None:
    """The COG store of the Database service (api.store_url) against its catalog."""


@store.command("check")
@click.option("--repair", is_flag=True, help="remove orphaned and partial files; mend rows whose files are gone")
@click.option("--min-age", "min_age_s", type=float, default=None,
              help="leave files younger than this many seconds (default: an hour; ingestions may be writing)")
@config_option
@overrides_argument
def store_check(repair: bool, min_age_s: float | None, config: str, overrides: tuple[str, ...]) -> None:
    """List (and with --repair remove) orphaned files, staging leftovers and rows whose files are missing;
    exit code 1 when something is wrong and was not repaired."""
    from earthsignature.service.catalog.catalog import Catalog
    from earthsignature.service.catalog.raster_store import RasterStore
    from earthsignature.service.catalog.store_check import DEFAULT_MIN_AGE_S, check_store

    cfg = service_config(config, overrides)
    catalog = Catalog(database_url(config, overrides), pool_size=1)
    try:
        report = check_store(catalog, RasterStore(cfg.api.store_url, cfg.api.store_endpoint), repair,
                             DEFAULT_MIN_AGE_S if min_age_s is None else min_age_s)
    finally:
        catalog.dispose()
    for kind, items in (("orphaned", report.orphans), ("partial", report.partial), ("missing", report.missing)):
        for item in items:
            click.echo(f"{kind:<9} {item}")
    click.echo(report.summary())
    sys.exit(0 if report.clean or report.repaired else 1)
