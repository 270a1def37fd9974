"""``earthsignature db``: the private PostGIS cluster (the embedded default database) and the schema."""

from __future__ import annotations

import sys

import click

from earthsignature.cli.common import config_option, database_url, overrides_argument, private_cluster, service_config


@click.group()
def db() -> None:
    """The private PostGIS cluster (embedded default database). OVERRIDES: e.g. db.port=5544."""


@db.command("up")
@config_option
@overrides_argument
def db_up(config: str, overrides: tuple[str, ...]) -> None:
    """Initialise, start and create the database with PostGIS (idempotent); print its URL."""
    from earthsignature.embedded.postgres import ClusterError

    cfg, cluster = private_cluster(config, overrides)
    try:
        click.echo(cluster.up(cfg.db.name))
    except ClusterError as error:
        raise click.ClickException(str(error)) from error


@db.command("down")
@config_option
@overrides_argument
def db_down(config: str, overrides: tuple[str, ...]) -> None:
    """Stop the cluster (its data stays)."""
    _, cluster = private_cluster(config, overrides)
    cluster.down()
    click.echo(f"stopped ({cluster.data_dir})")


@db.command("status")
@config_option
@overrides_argument
def db_status(config: str, overrides: tuple[str, ...]) -> None:
    """Say whether the cluster runs; exit 3 when it does not (like pg_ctl status)."""
    cfg, cluster = private_cluster(config, overrides)
    if not cluster.initialized:
        click.echo(f"not initialised ({cluster.data_dir})")
        sys.exit(3)
    if not cluster.is_running():
        click.echo(f"stopped ({cluster.data_dir})")
        sys.exit(3)
    click.echo(f"running on {cluster.host}:{cluster.port} ({cluster.data_dir}): {cluster.url(cfg.db.name)}")


@db.command("url")
@config_option
@overrides_argument
def db_url(config: str, overrides: tuple[str, ...]) -> None:
    """Print the SQLAlchemy URL of the catalog database."""
    cfg = service_config(config, overrides)
    if cfg.db.url:
        click.echo(cfg.db.url)
        return
    _, cluster = private_cluster(config, overrides)
    click.echo(cluster.url(cfg.db.name))


@db.command("migrate")
@config_option
@overrides_argument
def db_migrate(config: str, overrides: tuple[str, ...]) -> None:
    """Create or upgrade the catalog schema (Alembic) in db.url or the private cluster."""
    from earthsignature.service.catalog.schema import upgrade

    click.echo(f"catalog schema at revision {upgrade(database_url(config, overrides))}")
