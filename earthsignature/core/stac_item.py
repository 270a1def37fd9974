"""Read a Sentinel-2 STAC item whose assets are per-band Cloud-Optimized GeoTIFFs (Earth Search, Planetary
Computer) into a ``Sentinel2Product``, without downloading a pixel.

Everything comes from the item: bands from its assets (Earth Search names them by common name, ``blue``,
``nir08``, ``scl``; Planetary Computer by band, ``B02``, ``SCL``), the product name from
``s2:product_uri``, the tile from ``s2:mgrs_tile`` / ``mgrs:*`` / ``grid:code``, the EPSG code from
``proj:epsg`` / ``proj:code``, the processing baseline from ``s2:processing_baseline``.

The digital-number offset: products of baseline 04.00 and later carry +1000 (ESA's BOA_ADD_OFFSET -1000);
Earth Search's first collection removed it from some COGs and says so with
``earthsearch:boa_offset_applied`` (its ``raster:bands`` still declare -0.1, so they are not trusted over
the flag). Only an item without a baseline falls back to its ``raster:bands`` offset; an item with
neither is refused rather than guessed.
"""

from __future__ import annotations

import json
import re
import urllib.request
from datetime import datetime
from pathlib import Path
from urllib.parse import urljoin

from shapely.geometry import shape

from earthsignature.core.product import ProductError, Sentinel2Product, footprint_lonlat, gdal_path
from earthsignature.core.sentinel2 import BANDS_BY_NAME, BOA_ADD_OFFSET, QUANTIFICATION_VALUE, ProductName

#: Earth Search's asset keys (common names) -> Sentinel-2 band names.
COMMON_NAME_BANDS = {
    "coastal": "B01", "blue": "B02", "green": "B03", "red": "B04", "rededge1": "B05", "rededge2": "B06",
    "rededge3": "B07", "nir": "B08", "nir08": "B8A", "nir09": "B09", "cirrus": "B10", "swir16": "B11",
    "swir22": "B12", "scl": "SCL",
}
_PRODUCT_TYPES = {"S2MSI2A": "L2A", "S2MSI1C": "L1C"}
_RASTER_SUFFIXES = (".tif", ".tiff", ".jp2")


def read_stac_item(source: str | Path | dict, location: str | None = None) -> Sentinel2Product:
    """The product a STAC item describes: a dict, a local JSON file, or an http(s) URL.

    ``location`` is where the item lives (relative asset hrefs resolve against it); defaults to ``source``.
    """
    item = source if isinstance(source, dict) else _load(str(source))
    location = location or ("" if isinstance(source, dict) else str(source))
    if not isinstance(item, dict) or item.get("type") != "Feature" or not isinstance(item.get("properties"), dict):
        raise ProductError(f"{location or 'item'}: not a STAC item (a GeoJSON Feature with properties)")
    properties = item["properties"]
    name = product_name_of(item)
    product_id = str(name) if name else str(item.get("id") or "")
    if not product_id:
        raise ProductError(f"{location or 'item'}: the item has no id")
    bands, raster_band = band_assets(item.get("assets") or {}, location)
    if not bands:
        raise ProductError(f"{product_id}: the item has no band assets (COG/JPEG 2000 hrefs of B02..., blue...)")
    start = properties.get("start_datetime") or properties.get("datetime")
    if not start:
        raise ProductError(f"{product_id}: the item has no datetime")
    baseline = _baseline(properties, name)
    scale = float(raster_band.get("scale") or 1 / QUANTIFICATION_VALUE)
    try:
        return Sentinel2Product(
            location=location, layout="STAC-COG", product_id=product_id, mission=_mission(properties, name),
            level=_level(properties, name, product_id), tile_id=_required_tile(properties, name, product_id),
            processing_baseline=baseline or "", start_time=_time(start),
            stop_time=_time(properties.get("end_datetime") or start),
            footprint=footprint_lonlat(_geometry(item, product_id), product_id),
            cloud_cover=_cloud_cover(properties, product_id),
            epsg=_epsg(properties, item.get("assets") or {}, product_id), band_files=bands,
            quantification=round(1 / scale), offset=_offset(properties, raster_band, baseline, product_id),
        )
    except (TypeError, ValueError, ZeroDivisionError) as error:
        if isinstance(error, ProductError):
            raise
        raise ProductError(f"{product_id}: unreadable item metadata: {error}") from error


def _load(source: str) -> dict:
    try:
        if source.startswith(("http://", "https://")):
            with urllib.request.urlopen(source, timeout=60) as response:
                return json.loads(response.read())
        return json.loads(Path(source).read_text())
    except (OSError, ValueError) as error:
        raise ProductError(f"{source}: cannot read the STAC item: {error}") from error


def product_name_of(item: dict) -> ProductName | None:
    """ESA's product name, from ``s2:product_uri`` (Earth Search ids are ``S2A_39QTA_20230628_0_L2A``)."""
    for candidate in (item["properties"].get("s2:product_uri"), item.get("id")):
        try:
            return ProductName.parse(str(candidate or "").removesuffix(".SAFE"))
        except ValueError:
            continue
    return None


def band_asset_keys(assets: dict) -> dict[str, str]:
    """Asset key -> band name of the assets that are band rasters (not previews, metadata, or Earth Search's
    ``-jp2`` duplicates)."""
    keys = {}
    for key, asset in assets.items():
        if not isinstance(asset, dict) or not isinstance(asset.get("href"), str):
            continue
        band_name = key.upper() if key.upper() in BANDS_BY_NAME or key.upper() == "SCL" else COMMON_NAME_BANDS.get(key)
        if band_name is not None and asset["href"].lower().endswith(_RASTER_SUFFIXES):
            keys[key] = band_name
    return keys


def band_assets(assets: dict, location: str) -> tuple[dict[str, str], dict]:
    """Band name -> GDAL path, and the ``raster:bands`` entry of a reflectance band (for its scale)."""
    bands, raster_band = {}, {}
    for key, band_name in band_asset_keys(assets).items():
        href = assets[key]["href"]
        bands[band_name] = gdal_path(urljoin(location, href) if location else href)
        if band_name != "SCL" and not raster_band:
            raster_band = _raster_band(assets[key])
    return bands, raster_band


def _raster_band(asset: dict) -> dict:
    """The asset's ``raster:bands[0]`` (STAC 1.0), or its flattened ``raster:scale``/``raster:offset``
    (STAC 1.1, as EODAG rewrites items)."""
    listed = (asset.get("raster:bands") or [{}])[0] or {}
    if listed:
        return listed
    return {key: asset[f"raster:{key}"] for key in ("scale", "offset") if f"raster:{key}" in asset}


def _baseline(properties: dict, name: ProductName | None) -> str | None:
    """"05.09" (EODAG turns the item's string into a number: 5.09)."""
    baseline = properties.get("s2:processing_baseline")
    if isinstance(baseline, int | float):
        return f"{baseline:05.2f}"
    if baseline:
        return str(baseline)
    return name.processing_baseline if name else None


def _offset(properties: dict, raster_band: dict, baseline: str | None, product_id: str) -> int:
    if properties.get("earthsearch:boa_offset_applied") is True:
        return 0  # the provider already removed it from the pixels
    if baseline:
        try:
            return BOA_ADD_OFFSET if float(baseline) >= 4.0 else 0
        except ValueError:
            raise ProductError(f"{product_id}: s2:processing_baseline {baseline!r} is not a number") from None
    if "offset" in raster_band and raster_band.get("scale"):
        return round(float(raster_band["offset"]) / float(raster_band["scale"]))
    raise ProductError(f"{product_id}: cannot tell the digital-number offset: the item has no "
                       "s2:processing_baseline, no product name with one, and no raster:bands offset")


def _mission(properties: dict, name: ProductName | None) -> str:
    platform = str(properties.get("platform") or "")
    match = re.fullmatch(r"sentinel-?2([a-d])", platform.lower())
    if match:
        return f"S2{match.group(1).upper()}"
    return name.mission if name else "S2"


def _level(properties: dict, name: ProductName | None, product_id: str) -> str:
    level = _PRODUCT_TYPES.get(str(properties.get("s2:product_type") or ""))
    level = level or (name.level if name else None)
    if level is None:
        level = next((candidate for candidate in ("L2A", "L1C") if product_id.endswith(candidate)), None)
    if level is None:
        raise ProductError(f"{product_id}: cannot tell the processing level (no s2:product_type)")
    return level


def _required_tile(properties: dict, name: ProductName | None, product_id: str) -> str:
    tile_id = tile_of(properties, name)
    if not tile_id:
        raise ProductError(f"{product_id}: the item names no MGRS tile (s2:mgrs_tile, mgrs:*, grid:code)")
    return tile_id


def tile_of(properties: dict, name: ProductName | None) -> str | None:
    """The MGRS tile from ``s2:mgrs_tile``, ``mgrs:*``, ``grid:code`` or the product name."""
    tile_id = properties.get("s2:mgrs_tile")
    if not tile_id and properties.get("mgrs:utm_zone") is not None:
        tile_id = (f"{int(properties['mgrs:utm_zone']):02d}{properties.get('mgrs:latitude_band', '')}"
                   f"{properties.get('mgrs:grid_square', '')}")
    if not tile_id and str(properties.get("grid:code", "")).startswith("MGRS-"):
        tile_id = properties["grid:code"][len("MGRS-"):]
    if not tile_id and name:
        tile_id = name.tile_id
    return str(tile_id).upper().removeprefix("T") if tile_id else None


def _cloud_cover(properties: dict, product_id: str) -> float:
    value = properties.get("eo:cloud_cover")
    if value is None:
        raise ProductError(f"{product_id}: the item has no eo:cloud_cover")
    return float(value)


def _epsg(properties: dict, assets: dict, product_id: str) -> int:
    candidates = [properties] + [a for a in assets.values() if isinstance(a, dict)]
    for record in candidates:
        if record.get("proj:epsg"):
            return int(record["proj:epsg"])
        code = str(record.get("proj:code") or "")
        if code.upper().startswith("EPSG:"):
            return int(code.split(":")[1])
    raise ProductError(f"{product_id}: the item has no proj:epsg or proj:code")


def _geometry(item: dict, product_id: str):
    try:
        return shape(item["geometry"])
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise ProductError(f"{product_id}: the item has no usable geometry ({error})") from None


def _time(text: str) -> datetime:
    return datetime.fromisoformat(str(text).replace("Z", "+00:00"))
