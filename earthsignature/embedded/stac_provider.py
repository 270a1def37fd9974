"""The embedded default provider: a static STAC catalog of local Sentinel-2 products, served over HTTP on
127.0.0.1 so EODAG searches and downloads them exactly as from a remote provider.

It offers the real layouts side by side: ``*.zip`` SAFE products (collections ``sentinel-2-l2a`` and
``sentinel-2-l1c``, one ``product`` asset each, as Copernicus Data Space delivers them) and Earth Search
style items with per-band COG assets (``cogs/<item id>/<item id>.json``, written by
``samples.stac_item_writer``; collection ``sentinel-2-l2a-cogs``), whose asset hrefs become absolute URLs
on this server. The server (``static_http``, in its own process) answers HTTP range requests, so GDAL's ``/vsicurl/``
reads windows of the COGs as it does from S3 or Azure, and it counts requests per path (tests count the
provider's searches).
"""

from __future__ import annotations

import collections
import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pystac
from omegaconf import DictConfig
from shapely.geometry import mapping

from earthsignature.core.product import ProductError
from earthsignature.core.readers import open_product
from earthsignature.core.settings import MonitorSettings
from earthsignature.embedded.ports import free_port
from earthsignature.service.monitor.runner import LOCAL_COLLECTIONS, LOCAL_PROVIDER

COLLECTIONS = {"L2A": LOCAL_COLLECTIONS["S2_MSI_L2A"], "L1C": LOCAL_COLLECTIONS["S2_MSI_L1C"],
               "COG": LOCAL_COLLECTIONS["S2_MSI_L2A_COG"]}
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
def local_provider(monitor: MonitorSettings | DictConfig) -> Iterator[str | None]:
    """The catalog URL the monitor searches while it runs: for the ``local_s2`` provider without a
    ``catalog_url``, the products of ``monitor.local_catalog`` served here; otherwise None (the
    configured provider)."""
    if monitor.provider != LOCAL_PROVIDER or monitor.catalog_url:
        yield None
        return
    with LocalStacServer(Path(monitor.local_catalog)) as server:
        yield server.catalog_url


class LocalStacServer:
    """``with LocalStacServer(folder) as server: server.catalog_url``; ``server.requests[path]`` counts GETs,
    ``server.range_requests[path]`` those answered with a byte range. The files are served by a separate
    process (``static_http``), as a remote provider would serve them."""

    def __init__(self, folder: Path, port: int = 0):
        self.folder = Path(folder)
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.catalog_url = ""
        self._log = self.folder / "stac" / "requests.log"
        self._process: subprocess.Popen | None = None

    def __enter__(self) -> LocalStacServer:
        write_catalog(self.folder, self.url)
        self.catalog_url = f"{self.url}/stac/catalog.json"
        self._log.write_text("")
        self._process = subprocess.Popen([sys.executable, "-m", "earthsignature.embedded.static_http",
                                          str(self.folder), str(self.port), str(self._log)])
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and self._process.poll() is None:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return self
            except OSError:
                time.sleep(0.05)
        self.__exit__()
        raise RuntimeError(f"the local STAC server did not start on port {self.port}")

    def __exit__(self, *exc: object) -> None:
        if self._process is not None:
            self._process.terminate()
            self._process.wait(timeout=30)
            self._process = None

    def _counted(self, kind: str) -> collections.Counter[str]:
        lines = self._log.read_text().splitlines() if self._log.exists() else []
        return collections.Counter(line.split(" ", 1)[1] for line in lines if line.startswith(f"{kind} "))

    @property
    def requests(self) -> collections.Counter[str]:
        return self._counted("GET")

    @property
    def range_requests(self) -> collections.Counter[str]:
        return self._counted("RANGE")

    def clear_requests(self) -> None:
        self._log.write_text("")
