"""The embedded default provider: a static STAC catalog of local Sentinel-2 products, served over HTTP on
127.0.0.1 so EODAG searches and downloads them exactly as from a remote provider.

It offers the real layouts side by side: ``*.zip`` SAFE products (collections ``sentinel-2-l2a`` and
``sentinel-2-l1c``, one ``product`` asset each, as Copernicus Data Space delivers them) and Earth Search
style items with per-band COG assets (``cogs/<item id>/<item id>.json``, written by
``samples.stac_item_writer``; collection ``sentinel-2-l2a-cogs``), whose asset hrefs become absolute URLs
on this server. The server answers HTTP range requests, so GDAL's ``/vsicurl/`` reads windows of the COGs
as it does from S3 or Azure, and it counts requests per path (tests count the provider's searches).
"""

from __future__ import annotations

import collections
import functools
import json
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http import HTTPStatus
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pystac
from shapely.geometry import mapping

from earthsignature.core.product import ProductError
from earthsignature.core.readers import open_product
from earthsignature.service.monitor.runner import LOCAL_PROVIDER

COLLECTIONS = {"L2A": "sentinel-2-l2a", "L1C": "sentinel-2-l1c", "COG": "sentinel-2-l2a-cogs"}
#: The folder of COG-asset items inside the served folder.
COG_ITEMS = "cogs"


def write_catalog(folder: Path, base_url: str) -> Path:
    """Write ``folder/stac/catalog.json`` describing the SAFE zips and the COG items in ``folder``."""
    folder = Path(folder)
    catalog = pystac.Catalog("earthsignature-local", "Sentinel-2 products on this machine")
    extent = pystac.Extent(pystac.SpatialExtent([[-180.0, -90.0, 180.0, 90.0]]), pystac.TemporalExtent([[None, None]]))
    collections_ = {key: pystac.Collection(cid, f"Sentinel-2 {key}", extent) for key, cid in COLLECTIONS.items()}
    for collection in collections_.values():
        catalog.add_child(collection)
    for archive in sorted(folder.glob("*.zip")):
        item = _safe_item(archive, f"{base_url}/{archive.name}")
        if item is not None:
            collections_[item.properties["processing:level"]].add_item(item)
    for item_file in sorted(folder.glob(f"{COG_ITEMS}/*/*.json")):
        collections_["COG"].add_item(_cog_item(item_file, f"{base_url}/{item_file.parent.relative_to(folder)}"))
    root = folder / "stac"
    catalog.normalize_hrefs(str(root))
    catalog.save(pystac.CatalogType.SELF_CONTAINED)
    return root / "catalog.json"


def _safe_item(archive: Path, href: str) -> pystac.Item | None:
    try:
        product = open_product(archive)
    except ProductError:
        return None  # a broken archive is not described; the downloader reports broken downloads
    item = pystac.Item(product.product_id, mapping(product.footprint), list(product.footprint.bounds),
                       product.start_time, {"eo:cloud_cover": product.cloud_cover, "s2:mgrs_tile": product.tile_id,
                                            "platform": f"sentinel-2{product.mission[-1].lower()}",
                                            "processing:level": product.level,
                                            "s2:processing_baseline": product.processing_baseline,
                                            "end_datetime": product.stop_time.isoformat(),
                                            "start_datetime": product.start_time.isoformat()})
    item.add_asset("product", pystac.Asset(href, media_type="application/zip", roles=["data"]))
    return item


def _cog_item(item_file: Path, folder_url: str) -> pystac.Item:
    """The item with its relative asset hrefs made absolute URLs on this server, as Earth Search's are."""
    record = json.loads(item_file.read_text())
    for asset in record["assets"].values():
        asset["href"] = f"{folder_url}/{asset['href'].removeprefix('./')}"
    return pystac.Item.from_dict(record)


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
    """``with LocalStacServer(folder) as server: server.catalog_url``; ``server.requests[path]`` counts GETs,
    ``server.range_requests[path]`` those answered with a byte range."""

    def __init__(self, folder: Path, port: int = 0):
        self.folder = Path(folder)
        self.requests: collections.Counter[str] = collections.Counter()
        self.range_requests: collections.Counter[str] = collections.Counter()
        handler = functools.partial(_RangeHandler, directory=str(self.folder), counter=self.requests,
                                    range_counter=self.range_requests)
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


_RANGE = re.compile(r"bytes=(\d*)-(\d*)$")


class _RangeHandler(SimpleHTTPRequestHandler):
    """Static files with single byte ranges (``Range: bytes=a-b``), as object stores serve them."""

    def __init__(self, *args, counter: collections.Counter, range_counter: collections.Counter, **kwargs):
        self.counter, self.range_counter = counter, range_counter
        super().__init__(*args, **kwargs)

    def send_head(self):
        self.counter[self.path.split("?", 1)[0]] += 1
        match = _RANGE.match(self.headers.get("Range", "").strip())
        path = Path(self.translate_path(self.path))
        if match is None or not path.is_file():
            return super().send_head()
        size = path.stat().st_size
        first, last = match.groups()
        start = size - int(last) if first == "" else int(first)
        stop = size - 1 if first == "" or last == "" else min(int(last), size - 1)
        if start >= size or start > stop or start < 0:
            self.send_response(HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE)
            self.send_header("Content-Range", f"bytes */{size}")
            self.end_headers()
            return None
        self.range_counter[self.path.split("?", 1)[0]] += 1
        handle = path.open("rb")
        handle.seek(start)
        self.send_response(HTTPStatus.PARTIAL_CONTENT)
        self.send_header("Content-Type", self.guess_type(str(path)))
        self.send_header("Content-Range", f"bytes {start}-{stop}/{size}")
        self.send_header("Content-Length", str(stop - start + 1))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        self._remaining = stop - start + 1
        return handle

    def copyfile(self, source, outputfile) -> None:
        remaining = getattr(self, "_remaining", None)
        if remaining is None:
            return super().copyfile(source, outputfile)
        while remaining > 0:
            chunk = source.read(min(remaining, 1 << 16))
            if not chunk:
                break
            outputfile.write(chunk)
            remaining -= len(chunk)
        self._remaining = None
        return None

    def log_message(self, format: str, *args: object) -> None:
        return
