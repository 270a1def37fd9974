"""The embedded default provider: a static STAC catalog of local Sentinel-2 products, served over HTTP on
127.0.0.1 so EODAG downloads them exactly as it downloads from a remote provider.

``write_catalog`` describes every ``*.zip`` SAFE product of a folder with pystac (collection
``sentinel-2-l2a`` or ``sentinel-2-l1c``, footprint, time, ``eo:cloud_cover``, MGRS tile, one ``product``
asset); ``LocalStacServer`` serves the folder and (re)writes the catalog with its own address.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pystac
from shapely.geometry import mapping

from earthsignature.core.product import ProductError
from earthsignature.core.readers import open_product
from earthsignature.service.monitor.runner import LOCAL_PROVIDER

COLLECTIONS = {"L2A": "sentinel-2-l2a", "L1C": "sentinel-2-l1c"}


def write_catalog(folder: Path, base_url: str) -> Path:
    """Write ``folder/stac/catalog.json`` describing the zipped products in ``folder``."""
    folder = Path(folder)
    catalog = pystac.Catalog("earthsignature-local", "Sentinel-2 products on this machine")
    extent = pystac.Extent(pystac.SpatialExtent([[-180.0, -90.0, 180.0, 90.0]]), pystac.TemporalExtent([[None, None]]))
    collections = {level: pystac.Collection(cid, f"Sentinel-2 {level}", extent) for level, cid in COLLECTIONS.items()}
    for collection in collections.values():
        catalog.add_child(collection)
    for archive in sorted(folder.glob("*.zip")):
        try:
            product = open_product(archive)
        except ProductError:
            continue  # a broken archive is not described; the downloader reports broken downloads
        item = pystac.Item(product.product_id, mapping(product.footprint), list(product.footprint.bounds),
                           product.start_time, {"eo:cloud_cover": product.cloud_cover, "s2:mgrs_tile": product.tile_id,
                                                "platform": f"sentinel-2{product.mission[-1].lower()}",
                                                "processing:level": product.level, "end_datetime":
                                                product.stop_time.isoformat(), "start_datetime":
                                                product.start_time.isoformat()})
        item.add_asset("product", pystac.Asset(f"{base_url}/{archive.name}", media_type="application/zip",
                                               roles=["data"]))
        collections[product.level].add_item(item)
    root = folder / "stac"
    catalog.normalize_hrefs(str(root))
    catalog.save(pystac.CatalogType.SELF_CONTAINED)
    return root / "catalog.json"


@contextmanager
def local_provider(monitor: object) -> Iterator[str | None]:
    """The catalog URL the monitor searches while it runs: for the ``local_s2`` provider without a
    ``catalog_url``, the products of ``monitor.local_catalog`` served here; otherwise None (the
    configured provider)."""
    if monitor.provider != LOCAL_PROVIDER or monitor.get("catalog_url"):
        yield None
        return
    with LocalStacServer(Path(monitor.local_catalog)) as server:
        yield server.catalog_url


class LocalStacServer:
    """``with LocalStacServer(folder) as server: server.catalog_url``"""

    def __init__(self, folder: Path, port: int = 0):
        self.folder = Path(folder)
        handler = functools.partial(_QuietHandler, directory=str(self.folder))
        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.catalog_url = ""

    def __enter__(self) -> LocalStacServer:
        write_catalog(self.folder, self.url)
        self.catalog_url = f"{self.url}/stac/catalog.json"
        threading.Thread(target=self.httpd.serve_forever, name="stac-http", daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        return
