"""``earthsignature query``: ask the API as a pilot does, and save the maps."""

from __future__ import annotations

from pathlib import Path

import click

from earthsignature.cli.common import ISO_DATE, config_option, overrides_argument, service_config
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
        click.option("--save", type=click.Path(file_okay=False, path_type=Path), default=None,
                     help="write each map as GeoTIFF and PNG into this folder"),
        config_option,
    ]):
        function = option(function)
    return function


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
@_connection_options
@overrides_argument
def query_list(wkt, start, end, products, categories, n_results, address, ca, cert, key, insecure, save, config,
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
@_connection_options
@overrides_argument
def query_search(text, n_results, address, ca, cert, key, insecure, save, config, overrides) -> None:
    """SearchSegmentation with the text query language (see the README)."""
    import grpc

    try:
        with _client(address, ca, cert, key, insecure, config, overrides) as client:
            _print_and_save(client, client.search(text, n_results=n_results), save)
    except grpc.RpcError as error:
        raise click.ClickException(f"{error.code().name}: {error.details()}") from error
