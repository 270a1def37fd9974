"""Search and download Sentinel-2 products with EODAG.

The provider is EODAG configuration: the embedded default is the local STAC catalog (``StaticStacSearch``
+ ``HTTPDownload`` over 127.0.0.1); a real provider (``cop_dataspace``, ``earth_search``...) is one of
EODAG's own, with credentials in EODAG's environment variables (``EODAG__COP_DATASPACE__AUTH__
CREDENTIALS__USERNAME``...). The same code path serves both.

Searches page through results without counting them (a day over Europe is hundreds of products).
Downloads are retried with exponential backoff (HTTP 429 and transient errors included), verified (the
zip's CRC and the SAFE metadata), unpacked, and skipped when the product is already there.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

from shapely import wkt as shapely_wkt

from earthsignature.core.config import state_home
from earthsignature.core.product import ProductError
from earthsignature.core.readers import open_product

log = logging.getLogger(__name__)
#: Europe: the seed's area of interest (lon -25..45, lat 34..72)
EUROPE_WKT = "POLYGON((-25 34, 45 34, 45 72, -25 72, -25 34))"


class DownloadError(RuntimeError):
    """A product that could not be downloaded intact after the retries; the message says why."""


@dataclass(frozen=True)
class FoundProduct:
    product_id: str
    start: datetime
    cloud_cover: float | None
    tile_id: str


PRODUCT_LEVELS = {"S2_MSI_L2A": "L2A", "S2_MSI_L1C": "L1C"}


def _level_of(properties: dict, product_id: str) -> str | None:
    level = properties.get("processing:level")
    if level:
        return str(level).replace("Level-", "L")
    for candidate in ("L2A", "L1C"):
        if f"MSI{candidate}" in product_id:
            return candidate
    return None


def found_product(properties: dict) -> FoundProduct:
    """EODAG 4 names properties the STAC way (start_datetime, eo:cloud_cover, s2:mgrs_tile)."""
    start = str(properties.get("start_datetime") or properties.get("datetime")).replace("Z", "+00:00")
    return FoundProduct(str(properties.get("id") or properties.get("title")), datetime.fromisoformat(start),
                        properties.get("eo:cloud_cover"), str(properties.get("s2:mgrs_tile") or ""))


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
                 product_type: str = "S2_MSI_L2A", retries: int = 3, backoff_s: float = 2.0):
        _environment()
        from eodag import EODataAccessGateway

        self.dag = EODataAccessGateway()
        if provider_yaml:
            self.dag.update_providers_config(provider_yaml)
        self.dag.set_preferred_provider(provider)
        self.provider, self.product_type = provider, product_type
        self.download_dir = Path(download_dir)
        self.retries, self.backoff_s = retries, backoff_s

    def search(self, day: date, area_wkt: str = EUROPE_WKT, max_cloud_cover: float | None = None,
               end_day: date | None = None) -> Iterator[tuple[FoundProduct, object]]:
        """Products acquired on ``day`` (to ``end_day``) over the area, page by page."""
        start = datetime.combine(day, datetime.min.time())
        end = datetime.combine(end_day or day, datetime.min.time()) + timedelta(days=1)
        criteria = {"collection": self.product_type, "start": start.isoformat(), "end": end.isoformat(),
                    "geom": shapely_wkt.loads(area_wkt), "provider": self.provider}
        if max_cloud_cover is not None:
            criteria["eo:cloud_cover"] = max_cloud_cover
        level = PRODUCT_LEVELS.get(self.product_type)
        for page in self.dag.search_iter_page(**criteria):
            for product in page:
                found = found_product(product.properties)
                # StaticStacSearch returns every item of the catalog whatever the collection: check the level
                if level and _level_of(product.properties, found.product_id) not in (level, None):
                    continue
                yield found, product

    def safe_path(self, product_id: str) -> Path:
        return self.download_dir / f"{product_id}.SAFE"

    def download(self, product) -> Path:
        """The unpacked .SAFE of ``product`` (an EOProduct): downloaded, verified, unpacked, or already there."""
        product_id = product.properties.get("id") or product.properties.get("title")
        target = self.safe_path(product_id)
        if target.exists():
            return target
        last_error: Exception | None = None
        for attempt in range(self.retries + 1):
            staging = self.download_dir / f".{product_id}.download"
            try:
                shutil.rmtree(staging, ignore_errors=True)
                downloaded = Path(self.dag.download(product, output_dir=str(staging), extract=False))
                archives = [downloaded] if downloaded.is_file() else sorted(downloaded.rglob("*.zip"))
                if len(archives) != 1:
                    raise DownloadError(f"{self.provider} returned {len(archives)} zip archives, expected 1 "
                                        "(interrupted or rejected transfer)")
                archive = archives[0]
                _verify_zip(archive)
                _unpack(archive, target)
                shutil.rmtree(staging, ignore_errors=True)
                return target
            except Exception as error:  # every failure is retried, then reported with its reason
                last_error = error
                shutil.rmtree(staging, ignore_errors=True)
                if attempt < self.retries:
                    delay = self.backoff_s * 2**attempt
                    log.warning("download of %s failed (%s); retrying in %.1f s", product_id, error, delay)
                    time.sleep(delay)
        raise DownloadError(f"{product_id}: download failed {self.retries + 1} times: "
                            f"{type(last_error).__name__}: {last_error}")


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
