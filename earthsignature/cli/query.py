"""``earthsignature query``: ask the API as a pilot does, and save the maps."""

from __future__ import annotations

from pathlib import Path

import click

from earthsignature.cli.common import ISO_DATE, ISO_PERIOD, config_option, overrides_argument, service_config
from earthsignature.core.layout import CertificateFolder


def _client(address: str | None, ca: Path | None, cert: Path | None, key: Path | None, insecure: bool,
            config: str, overrides: tuple[str, ...]):
    from earthsignature.client import EarthSignatureClient

    cfg = service_config(config, overrides)
    folder = CertificateFolder(Path(cfg.api.certs_dir))
    identity = folder.identity("monitor")
    return EarthSignatureClient(address or cfg.api.address, ca=ca or folder.ca_cert, cert=cert or identity.cert,
                                key=key or identity.key, insecure=insecure)


def _connection_options(function):
    for option in reversed([
        click.option("--address", default=None, help="server host:port (default: api.address)"),
        click.option("--ca", type=click.Path(exists=True, path_type=Path), default=None, help="CA certificate"),
        click.option("--cert", type=click.Path(exists=True, path_type=Path), default=None, help="your certificate"),
        click.option("--key", type=click.Path(exists=True, path_type=Path), default=None, help="your private key"),
        click.option("--insecure", is_flag=True, help="plain-text connection (a server run with --insecure)"),
        config_option,
    ]):
        function = option(function)
    return function


_save_option = click.option("--save", type=click.Path(file_okay=False, path_type=Path), default=None,
                            help="write each map as GeoTIFF and PNG into this folder")


@click.group()
def query() -> None:
    """Ask the API as a pilot does: list by area/date/ids/categories, or search with text."""


def _print_and_save(client, results, save: Path | None) -> None:
    from earthsignature.client.pictures import save_maps

    count = 0
    for result in results:
        count += 1
        click.echo(result.summary())
        if save and result.classes is not None:
            save_maps(result, save, client.quicklook(result))
    click.echo(f"{count} result(s)" + (f", maps in {save}" if save and count else ""))


@query.command("list")
@click.option("--wkt", default=None, help="area, EPSG:4326 Well-Known Text")
@click.option("--start", type=ISO_DATE, default=None, help="acquired after (ISO date)")
@click.option("--end", type=ISO_DATE, default=None, help="acquired before (ISO date)")
@click.option("--product", "products", multiple=True)
@click.option("--category", "categories", multiple=True, help="class name or code (repeatable)")
@click.option("-n", "--n-results", type=int, default=None)
@_save_option
@_connection_options
@overrides_argument
def query_list(wkt, start, end, products, categories, n_results, save, address, ca, cert, key, insecure, config,
               overrides) -> None:
    """ListSegmentation."""
    import grpc

    try:
        with _client(address, ca, cert, key, insecure, config, overrides) as client:
            _print_and_save(client, client.list(wkt=wkt, start=start, end=end, product_ids=products,
                                        categories=categories, n_results=n_results), save)
    except grpc.RpcError as error:
        raise click.ClickException(f"{error.code().name}: {error.details()}") from error


@query.command("search")
@click.argument("text")
@click.option("-n", "--n-results", type=int, default=None)
@_save_option
@_connection_options
@overrides_argument
def query_search(text, n_results, save, address, ca, cert, key, insecure, config, overrides) -> None:
    """SearchSegmentation with the text query language (see the README)."""
    import grpc

    try:
        with _client(address, ca, cert, key, insecure, config, overrides) as client:
            _print_and_save(client, client.search(text, n_results=n_results), save)
    except grpc.RpcError as error:
        raise click.ClickException(f"{error.code().name}: {error.details()}") from error


@query.command("stats")
@click.option("--wkt", required=True, help="area, EPSG:4326 Well-Known Text")
@click.option("--model", required=True, help="whose maps to count (a collection: clc-unet, burnt-unet...)")
@click.option("--start", type=ISO_DATE, default=None, help="acquired after (ISO date)")
@click.option("--end", type=ISO_DATE, default=None, help="acquired before (ISO date)")
@click.option("--category", "categories", multiple=True, help="only this class, name or code (repeatable)")
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="also write the table as CSV here")
@_connection_options
@overrides_argument
def query_stats(wkt, model, start, end, categories, csv_path, address, ca, cert, key, insecure, config,
                overrides) -> None:
    """AreaStatistics: hectares of each class inside the area per date, with clouds, no data and the part no
    map covers (clouds and no data never count as a class)."""
    import grpc

    from earthsignature.client.tables import statistics_frame, statistics_text

    try:
        with _client(address, ca, cert, key, insecure, config, overrides) as client:
            response = client.statistics_message(wkt, model, start=start, end=end, categories=categories)
    except grpc.RpcError as error:
        raise click.ClickException(f"{error.code().name}: {error.details()}") from error
    table = statistics_frame(response)
    click.echo(statistics_text(table))
    click.echo(f"{len(table)} date(s) of {model}")
    if csv_path:
        table.to_csv(csv_path, index=False)
        click.echo(f"table in {csv_path}")


@query.command("change")
@click.option("--wkt", required=True, help="area, EPSG:4326 Well-Known Text")
@click.option("--model", required=True, help="whose maps to compare (a collection)")
@click.option("--before", type=ISO_PERIOD, required=True, help="the first period: DATE or DATE/DATE")
@click.option("--after", type=ISO_PERIOD, required=True, help="the second period: DATE or DATE/DATE")
@click.option("--from", "from_categories", multiple=True, help="draw changes from this class (repeatable)")
@click.option("--to", "to_categories", multiple=True, help="draw changes to this class (repeatable)")
@click.option("--save", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="write the change maps (COG per tile) into this folder")
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="also write the transition matrix as CSV here")
@_connection_options
@overrides_argument
def query_change(wkt, model, before, after, from_categories, to_categories, save, csv_path, address, ca, cert, key,
                 insecure, config, overrides) -> None:
    """AreaChange: hectares that went from each class to each class between two periods (pixels clear on both
    sides), what could not be compared and why, and change maps of the transitions asked for."""
    import grpc

    from earthsignature.client.api_client import save_change_maps
    from earthsignature.client.tables import change_matrix, change_text

    try:
        with _client(address, ca, cert, key, insecure, config, overrides) as client:
            response = client.change_message(wkt, model, before, after, from_categories=from_categories,
                                             to_categories=to_categories)
    except grpc.RpcError as error:
        raise click.ClickException(f"{error.code().name}: {error.details()}") from error
    matrix = change_matrix(response)
    click.echo(change_text(response))
    if csv_path and not matrix.empty:
        matrix.to_csv(csv_path)
        click.echo(f"matrix in {csv_path}")
    if save:
        for path in save_change_maps(response, save):
            click.echo(f"change map {path}")
