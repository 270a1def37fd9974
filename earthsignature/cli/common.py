"""What every service command group shares: the service config (``-c NAME`` plus overrides) and the
private PostGIS cluster it describes."""

from __future__ import annotations

from datetime import UTC, datetime

import click
from omegaconf import DictConfig

from earthsignature.core.config import ConfigError, load_config


class IsoDate(click.ParamType):
    """An ISO 8601 date or date and time (``2021-08-01``, ``2021-08-01T09:20:31``), as a datetime in UTC
    when no offset is given; anything else is a usage error naming the option."""

    name = "date"

    def convert(self, value, param, ctx):
        if isinstance(value, datetime):
            return value
        try:
            moment = datetime.fromisoformat(str(value))
        except ValueError:
            self.fail(f"{value!r} is not an ISO date such as 2021-08-01 or 2021-08-01T09:20:31", param, ctx)
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


ISO_DATE = IsoDate()


class IsoPeriod(click.ParamType):
    """``DATE`` (that day) or ``DATE/DATE`` (as STAC writes intervals), each as ``IsoDate`` reads it:
    (start, end or None)."""

    name = "period"

    def convert(self, value, param, ctx):
        if isinstance(value, tuple):
            return value
        start, _, end = str(value).partition("/")
        try:
            return ISO_DATE.convert(start, param, ctx), ISO_DATE.convert(end, param, ctx) if end else None
        except click.BadParameter:
            self.fail(f"{value!r} is not DATE or DATE/DATE (ISO 8601: 2023-06-01/2023-06-30)", param, ctx)


ISO_PERIOD = IsoPeriod()

config_option = click.option("-c", "--config", default="embedded", show_default=True,
                             help="service config in earthsignature/conf/service/")
overrides_argument = click.argument("overrides", nargs=-1)


def service_config(config: str, overrides: tuple[str, ...] | list[str]) -> DictConfig:
    try:
        return load_config("service", config, list(overrides))
    except ConfigError as error:
        raise click.ClickException(str(error)) from error


def private_cluster(config: str, overrides: tuple[str, ...] | list[str]):
    """The service config and its private cluster (refused when ``db.url`` names another database)."""
    from earthsignature.embedded.postgres import cluster_from_config

    cfg = service_config(config, overrides)
    if cfg.db.url:
        raise click.ClickException(f"db.url is set ({cfg.db.url}): that database is not ours to manage")
    return cfg, cluster_from_config(cfg.db)


def database_url(config: str, overrides: tuple[str, ...] | list[str]) -> str:
    """``db.url``, else the private cluster's database, started when it is not running."""
    cfg = service_config(config, overrides)
    return cfg.db.url or private_cluster(config, overrides)[1].up(cfg.db.name)
