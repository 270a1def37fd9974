"""A Sentinel-2 product as the monitor and the models see it, whatever the provider's layout.

Providers deliver the same product in different layouts: ESA's SAFE (a folder or zip of JPEG 2000
bands, Copernicus Data Space), SAFE-structured Cloud-Optimized GeoTIFFs (Planetary Computer), and STAC
items whose assets are per-band COGs (Element84's Earth Search). A reader per layout (``safe.py``,
``stac_item.py``) turns each into one ``Sentinel2Product``: metadata from the product's own records, and
every band as a GDAL path (a file, ``/vsizip/``, ``/vsicurl/`` or ``/vsis3/``), so windows are read
straight from wherever the band lives.

Digital numbers become reflectance with ``(DN + offset) / quantification``. The ``offset`` is what the
product's metadata says its digital numbers carry (-1000 for processing baseline 04.00 and later, unless the
provider already removed it), so it is removed exactly once, on every path.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np
import rasterio
from rasterio.enums import Resampling
from rasterio.windows import Window
from shapely.geometry import MultiPolygon, Polygon
from shapely.geometry.base import BaseGeometry

from earthsignature.core.sentinel2 import QUANTIFICATION_VALUE

#: How a product is laid out by its provider.
LAYOUTS = ("SAFE", "STAC-COG")


class ProductError(ValueError):
    """A product that is not a readable Sentinel-2 product; the message names it and says what is wrong."""


@dataclass(frozen=True)
class Sentinel2Product:
    """A Sentinel-2 product: what its metadata says, and where each band is."""

    location: str  # what was opened: a .SAFE folder or zip, or a STAC item (file or URL)
    layout: str  # one of LAYOUTS
    product_id: str  # ESA's product name (S2A_MSIL2A_..., without .SAFE)
    mission: str  # S2A, S2B, S2C
    level: str  # L2A or L1C
    tile_id: str  # MGRS tile, e.g. 34SGH
    processing_baseline: str  # "05.09"
    start_time: datetime
    stop_time: datetime
    footprint: Polygon | MultiPolygon  # lon/lat (EPSG:4326), split at the antimeridian
    cloud_cover: float  # percent
    epsg: int
    #: band name -> GDAL path of its native-resolution file ("B02", ..., "SCL")
    band_files: dict[str, str] = field(repr=False)
    quantification: int = QUANTIFICATION_VALUE
    offset: int = 0  # added to digital numbers before dividing by ``quantification``

    @property
    def path(self) -> Path:
        """The product's folder or archive (SAFE layout only: Sen2Cor works on files)."""
        if self.layout != "SAFE":
            raise ProductError(f"{self.product_id} is a {self.layout} product, not a SAFE folder or zip")
        return Path(self.location)

    def band_path(self, band_name: str) -> str:
        try:
            return self.band_files[band_name]
        except KeyError:
            raise ProductError(
                f"{self.product_id} has no band {band_name}; it has {', '.join(sorted(self.band_files))}"
            ) from None

    def read(self, band_name: str, window: Window | None = None, out_shape: tuple[int, int] | None = None,
             resampling: Resampling = Resampling.bilinear) -> np.ndarray:
        """Digital numbers of one band, optionally windowed and resampled to ``out_shape``."""
        with rasterio.Env(**REMOTE_READ_OPTIONS), rasterio.open(self.band_path(band_name)) as dataset:
            return dataset.read(1, window=window, out_shape=out_shape, resampling=resampling)

    def reflectance(self, dn: np.ndarray) -> np.ndarray:
        """Surface (L2A) or top-of-atmosphere (L1C) reflectance from digital numbers; 0 (no data) -> NaN."""
        values = (dn.astype(np.float32) + self.offset) / self.quantification
        values[dn == 0] = np.nan
        return values


#: GDAL settings for bands read over HTTP: one HEAD-less open, range requests merged, retried on 429/5xx.
REMOTE_READ_OPTIONS = {
    "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR", "CPL_VSIL_CURL_ALLOWED_EXTENSIONS": ".tif,.tiff,.jp2,.xml",
    "GDAL_HTTP_MERGE_CONSECUTIVE_RANGES": "YES", "GDAL_HTTP_MULTIPLEX": "YES",
    "GDAL_HTTP_MAX_RETRY": "4", "GDAL_HTTP_RETRY_DELAY": "1", "VSI_CACHE": "TRUE",
}


def gdal_path(url: str) -> str:
    """What GDAL opens for a URL (a band asset, a file of the raster store): local paths as they are,
    object storage through GDAL's virtual file systems (``s3://`` -> ``/vsis3/``: public buckets need
    ``AWS_NO_SIGN_REQUEST=YES``), HTTP through ``/vsicurl/``."""
    for scheme, prefix in (("s3://", "/vsis3/"), ("gs://", "/vsigs/"), ("az://", "/vsiaz/")):
        if url.startswith(scheme):
            return prefix + url[len(scheme):]
    if url.startswith(("http://", "https://")):
        return "/vsicurl/" + url
    return url.removeprefix("file://")


def crosses_antimeridian(geometry: Polygon | MultiPolygon) -> bool:
    """Whether a lon/lat ring jumps across 180 degrees (consecutive longitudes more than 180 apart)."""
    polygons = geometry.geoms if geometry.geom_type == "MultiPolygon" else [geometry]
    for polygon in polygons:
        for ring in (polygon.exterior, *polygon.interiors):
            longitudes = [x for x, *_ in ring.coords]
            if any(abs(b - a) > 180 for a, b in itertools.pairwise(longitudes)):
                return True
    return False


def split_at_antimeridian(geometry: Polygon | MultiPolygon) -> Polygon | MultiPolygon:
    """A ring that crosses the antimeridian, split into a valid MultiPolygon on either side of it, as
    GeoJSON (RFC 7946) asks; any other geometry as it is."""
    import antimeridian
    from shapely.geometry import shape

    if not crosses_antimeridian(geometry):
        return geometry
    fixed = shape(antimeridian.fix_shape(geometry, fix_winding=True))
    return fixed if fixed.is_valid else fixed.buffer(0)


def footprint_lonlat(geometry: BaseGeometry, product_id: str) -> Polygon | MultiPolygon:
    """A valid lon/lat footprint, split at the antimeridian when it crosses it."""
    if geometry.geom_type not in ("Polygon", "MultiPolygon") or geometry.is_empty:
        raise ProductError(f"{product_id}: the footprint is a {geometry.geom_type}, not a polygon")
    bounds = geometry.bounds
    if not all(math.isfinite(v) for v in bounds) or bounds[1] < -90 or bounds[3] > 90:
        raise ProductError(f"{product_id}: the footprint is not in longitude/latitude degrees ({bounds})")
    fixed = split_at_antimeridian(geometry)
    if fixed.is_empty or fixed.geom_type not in ("Polygon", "MultiPolygon") or not fixed.is_valid:
        raise ProductError(f"{product_id}: the footprint is not a usable polygon")
    return fixed
