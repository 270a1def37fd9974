"""Search Sentinel-2 products with EODAG and make each one readable, whatever its provider's layout.

The provider is EODAG configuration: the embedded default is the local STAC catalog (``StaticStacSearch``
+ ``HTTPDownload`` over 127.0.0.1); a real provider (``cop_dataspace``, ``earth_search``,
``planetary_computer``...) is one of EODAG's own, with credentials in EODAG's environment variables
(``EODAG__COP_DATASPACE__AUTH__CREDENTIALS__USERNAME``...). The same code path serves all.

Searches page through results without counting them (a day over Europe is hundreds of products); a day's
results are saved with EODAG's own serialization, and every later step rebuilds its product from them
(one search per day, never one per product). The product's layout decides how it is fetched, not the
provider's name: a SAFE archive is downloaded with retries and exponential backoff (HTTP 429 and transient
errors included), verified (the zip's CRC and the SAFE metadata), unpacked, and skipped when already there;
a STAC item whose bands are COG assets is recorded as JSON and read in place over HTTP range requests (or
its band files copied first, ``download.stream_cogs=false``).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
import zipfile
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from shapely import wkt as shapely_wkt

from earthsignature.core.config import state_home
from earthsignature.core.product import REMOTE_READ_OPTIONS, ProductError
from earthsignature.core.readers import open_product
from earthsignature.core.stac_item import band_asset_keys, band_assets, product_name_of, read_stac_item, tile_of
from earthsignature.service.monitor.asked import Asked
from earthsignature.service.monitor.records import FoundProduct

log = logging.getLogger(__name__)
#: Europe: the seed's area of interest (lon -25..45, lat 34..72)
EUROPE_WKT = "POLYGON((-25 34, 45 34, 45 72, -25 72, -25 34))"


class DownloadError(RuntimeError):
    """A product that could not be downloaded intact after the retries; the message says why."""


PRODUCT_LEVELS = {"S2_MSI_L2A": "L2A", "S2_MSI_L2A_COG": "L2A", "S2_MSI_L1C": "L1C"}


def _level_of(properties: dict, product_id: str) -> str | None:
    level = properties.get("processing:level")
    if level:
        return str(level).replace("Level-", "L")
    for candidate in ("L2A", "L1C"):
        if f"MSI{candidate}" in product_id:
            return candidate
    return None


def found_product(feature: dict) -> FoundProduct:
    """What a search result (an EOProduct's ``as_dict()``: EODAG 4 names properties the STAC way) says."""
    properties = feature["properties"]
    start = str(properties.get("start_datetime") or properties.get("datetime")).replace("Z", "+00:00")
    name = product_name_of(feature)
    product_id = str(name) if name else str(properties.get("title") or feature.get("id"))
    layout = "STAC-COG" if band_assets(feature.get("assets") or {}, "")[0] else "SAFE"
    return FoundProduct(product_id, datetime.fromisoformat(start), properties.get("eo:cloud_cover"),
                        tile_of(properties, name) or "", layout)


def _environment() -> None:
    """Keep EODAG offline-safe and its files in the project (ENVIRONMENT.md)."""
    os.environ.setdefault("EODAG_STRICT_COLLECTIONS", "1")
    os.environ.setdefault("EODAG_CFG_DIR", str(state_home() / "eodag"))
    Path(os.environ["EODAG_CFG_DIR"]).mkdir(parents=True, exist_ok=True)


def local_provider_yaml(name: str, catalog_url: str, download_dir: Path, collections: dict[str, str]) -> str:
    products = "\n".join(f"    {product_type}:\n      _collection: {collection}"
                         for product_type, collection in collections.items())
    return f"""
{name}:
  search:
    type: StaticStacSearch
    api_endpoint: {catalog_url}
  products:
{products}
  download:
    type: HTTPDownload
    output_dir: {download_dir}
    extract: false
"""


class ProductSource:
    def __init__(self, provider: str, download_dir: Path, provider_yaml: str | None = None,
                 product_type: str = "S2_MSI_L2A", retries: int = 3, backoff_s: float = 2.0,
                 stream_cogs: bool = True):
        _environment()
        from eodag import EODataAccessGateway

        self.dag = EODataAccessGateway()
        if provider_yaml:
            self.dag.update_providers_config(provider_yaml)
        self.dag.set_preferred_provider(provider)
        self.provider, self.product_type = provider, product_type
        self.download_dir = Path(download_dir)
        self.retries, self.backoff_s, self.stream_cogs = retries, backoff_s, stream_cogs

    def search(self, day: date, area_wkt: str = EUROPE_WKT, max_cloud_cover: float | None = None,
               end_day: date | None = None, skipped: list[tuple[FoundProduct, str]] | None = None,
               ) -> Iterator[tuple[FoundProduct, object]]:
        """Products acquired on ``day`` (to ``end_day``, UTC) over the area, page by page. What the provider
        returns beyond that is checked out (``asked``) and, when ``skipped`` is given, listed there with why."""
        start = datetime.combine(day, datetime.min.time(), tzinfo=UTC)
        end = datetime.combine(end_day or day, datetime.min.time(), tzinfo=UTC) + timedelta(days=1)
        area = shapely_wkt.loads(area_wkt)
        asked = Asked(start, end, area)
        criteria = {"collection": self.product_type, "start": start.replace(tzinfo=None).isoformat(),
                    "end": end.replace(tzinfo=None).isoformat(), "geom": area, "provider": self.provider}
        if max_cloud_cover is not None:
            criteria["eo:cloud_cover"] = max_cloud_cover
        level = PRODUCT_LEVELS.get(self.product_type)
        for page in self.dag.search_iter_page(**criteria):
            for product in page:
                found = found_product(product.as_dict())
                # StaticStacSearch returns every item of the catalog whatever the collection: check the level
                if level and _level_of(product.properties, found.product_id) not in (level, None):
                    continue
                problem = asked.problem(found.start, getattr(product, "geometry", None))
                if problem:
                    log.info("skipped %s from %s: %s", found.product_id, self.provider, problem)
                    if skipped is not None:
                        skipped.append((found, problem))
                    continue
                yield found, product

    def save_search(self, products: list, path: Path) -> None:
        """Keep a search's products (EOProducts) with EODAG's serialization, written atomically."""
        from eodag.api.search_result import SearchResult

        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.partial")
        self.dag.serialize(SearchResult(products), str(partial))
        partial.rename(path)

    def saved_search(self, path: Path) -> dict[str, object]:
        """product id -> EOProduct, ready to download, from a saved search (no request to the provider)."""
        from eodag.api.product.metadata_mapping import NOT_AVAILABLE

        products = {}
        for product in self.dag.deserialize_and_register(str(path)):
            # EODAG 4.10's round trip turns a product without a download link ("Not Available", whose
            # assets are then downloaded) into one with an empty link, which its downloader skips
            if not product.remote_location:
                product.location = product.remote_location = NOT_AVAILABLE
            products[found_product(product.as_dict()).product_id] = product
        return products

    def safe_path(self, product_id: str) -> Path:
        return self.download_dir / f"{product_id}.SAFE"

    def item_path(self, product_id: str) -> Path:
        return self.download_dir / f"{product_id}.json"

    def fetch(self, product) -> str:
        """Where the product readers open ``product`` (an EOProduct): an unpacked ``.SAFE`` folder, or the
        JSON record of a COG-asset item (its bands read in place, or copied when not streaming)."""
        feature = product.as_dict()
        found = found_product(feature)
        if found.layout == "STAC-COG":
            return str(self._retried(found.product_id,
                                     lambda: self._record_item(found.product_id, _signed(product, feature))))
        return str(self.download(product))

    def download(self, product) -> Path:
        """The unpacked .SAFE of ``product`` (an EOProduct): downloaded, verified, unpacked, or already there."""
        product_id = found_product(product.as_dict()).product_id
        target = self.safe_path(product_id)
        if target.exists():
            return target
        staging = self.download_dir / f".{product_id}.download"

        def attempt() -> Path:
            shutil.rmtree(staging, ignore_errors=True)
            try:
                downloaded = Path(self.dag.download(product, output_dir=str(staging), extract=False))
                archives = [downloaded] if downloaded.is_file() else sorted(downloaded.rglob("*.zip"))
                if len(archives) != 1:
                    raise DownloadError(f"{self.provider} returned {len(archives)} zip archives, expected 1 "
                                        "(interrupted or rejected transfer)")
                _verify_zip(archives[0])
                _unpack(archives[0], target)
                return target
            finally:
                shutil.rmtree(staging, ignore_errors=True)

        return self._retried(product_id, attempt)

    def _record_item(self, product_id: str, feature: dict) -> Path:
        """Write the item as ``<product id>.json``, after checking that it reads and its bands open; band
        files are copied beside it first when not streaming."""
        import rasterio
        import rasterio.shutil

        target = self.item_path(product_id)
        if target.exists():
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        product = read_stac_item(feature)
        with rasterio.Env(**REMOTE_READ_OPTIONS):
            if not self.stream_cogs:
                folder = self.download_dir / product_id
                folder.mkdir(parents=True, exist_ok=True)
                local = {}
                for band_name, path in product.band_files.items():
                    rasterio.shutil.copyfiles(path, str(folder / f"{band_name}.tif"))
                    local[band_name] = str(folder / f"{band_name}.tif")
                feature = _with_local_bands(feature, local)
            else:
                for path in product.band_files.values():
                    with rasterio.open(path):  # reachable and a raster: fail here, not mid-segmentation
                        pass
        partial = target.with_name(f".{target.name}.partial")
        partial.write_text(json.dumps(feature))
        partial.rename(target)
        return target

    def _retried(self, product_id: str, attempt):
        """``attempt()`` with retries and exponential backoff; every failure is retried, then reported."""
        last_error: Exception | None = None
        for number in range(self.retries + 1):
            try:
                return attempt()
            except Exception as error:
                last_error = error
                if number < self.retries:
                    delay = self.backoff_s * 2**number
                    log.warning("fetching %s failed (%s); retrying in %.1f s", product_id, error, delay)
                    time.sleep(delay)
        raise DownloadError(f"{product_id}: download failed {self.retries + 1} times: "
                            f"{type(last_error).__name__}: {last_error}")


def _signed(product, feature: dict) -> dict:
    """The item with its band hrefs as the provider lets them be read: Planetary Computer's blobs need a SAS
    token, which the provider's own EODAG authentication (``SASAuth``) adds; other providers' are as they are."""
    plugin = getattr(product, "downloader_auth", None)
    sign = getattr(plugin.authenticate(), "sign_url", None) if plugin is not None else None
    if sign is None:
        return feature
    assets = dict(feature["assets"])
    for key in band_asset_keys(assets):
        assets[key] = {**assets[key], "href": sign(assets[key]["href"])}
    return {**feature, "assets": assets}


def _with_local_bands(feature: dict, local: dict[str, str]) -> dict:
    """The item with only its band assets, pointing at the copied files."""
    assets = {band_name: {"href": path, "type": "image/tiff; application=geotiff"} for band_name, path in local.items()}
    return {**feature, "assets": assets}


def _verify_zip(archive: Path) -> None:
    if not zipfile.is_zipfile(archive):
        raise DownloadError(f"{archive.name} is not a zip archive (truncated or corrupted download)")
    with zipfile.ZipFile(archive) as zf:
        broken = zf.testzip()
        if broken:
            raise DownloadError(f"{archive.name}: {broken} fails its CRC check")
    try:
        open_product(archive)
    except ProductError as error:
        raise DownloadError(f"{archive.name} is not a readable SAFE product: {error}") from error


def _unpack(archive: Path, target: Path) -> None:
    """Extract the .SAFE folder next to ``target`` and rename it into place (never half there)."""
    staging = target.with_name(f".{target.name}.unpacking")
    shutil.rmtree(staging, ignore_errors=True)
    with zipfile.ZipFile(archive) as zf:
        zf.extractall(staging)
    safe_dirs = list(staging.glob("*.SAFE"))
    if len(safe_dirs) != 1:
        raise DownloadError(f"{archive.name} holds {len(safe_dirs)} .SAFE folders, expected 1")
    safe_dirs[0].rename(target)
    shutil.rmtree(staging, ignore_errors=True)
