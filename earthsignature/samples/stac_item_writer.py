"""Write a Sentinel-2 product in Earth Search's layout: a STAC item whose assets are per-band
Cloud-Optimized GeoTIFFs, the layout ``core/stac_item.py`` reads.

The pixels come from a SAFE product written by ``safe_writer`` (so the same scene exists in both layouts,
and a test can compare them); the item follows Earth Search's ``sentinel-2-l2a`` items field by field: id
``S2A_34SGH_20210801_0_L2A``, ``s2:product_uri``, ``s2:processing_baseline``, ``mgrs:*``, ``grid:code``,
``proj:epsg``, ``earthsearch:boa_offset_applied``, assets named by common name (``blue``, ``nir08``,
``scl``) with ``proj:shape``, ``proj:transform`` and ``raster:bands`` (scale 0.0001, offset -0.1), plus
``granule_metadata`` and ``product_metadata`` XML. Asset hrefs are relative to the item file; the local
STAC provider makes them absolute URLs when it serves them.

``offset_applied=True`` writes what Earth Search's first collection serves for baseline >= 04.00: pixels
with the +1000 offset already removed, and the flag set.
"""

from __future__ import annotations

import json
import shutil
from datetime import timedelta
from pathlib import Path

import antimeridian
import numpy as np
import rasterio
import rasterio.shutil
from shapely.geometry import mapping

from earthsignature.core.cog import write_cog
from earthsignature.core.readers import open_product
from earthsignature.core.sentinel2 import BANDS_BY_NAME, QUANTIFICATION_VALUE
from earthsignature.core.stac_item import COMMON_NAME_BANDS

_ASSET_OF_BAND = {band_name: key for key, band_name in COMMON_NAME_BANDS.items()}
_TITLES = {"B01": "Coastal aerosol (band 1)", "B02": "Blue (band 2)", "B03": "Green (band 3)",
           "B04": "Red (band 4)", "B05": "Red edge 1 (band 5)", "B06": "Red edge 2 (band 6)",
           "B07": "Red edge 3 (band 7)", "B08": "NIR 1 (band 8)", "B8A": "NIR 2 (band 8A)",
           "B09": "NIR 3 (band 9)", "B11": "SWIR 1 (band 11)", "B12": "SWIR 2 (band 12)"}
COG_MEDIA_TYPE = "image/tiff; application=geotiff; profile=cloud-optimized"


def item_id(product_id: str) -> str:
    """Earth Search's item id for an ESA product name: ``S2A_34SGH_20210801_0_L2A``."""
    mission, level, sensing, *_rest, tile_part, _ = product_id.split("_")
    return f"{mission}_{tile_part.removeprefix('T')}_{sensing[:8]}_0_{level.removeprefix('MSI')}"


def write_cog_item(safe: Path, out_dir: Path, offset_applied: bool = False) -> Path:
    """Write the L2A product at ``safe`` as ``out_dir/<item id>/<item id>.json`` + one COG per band."""
    product = open_product(safe)
    if product.level != "L2A":
        raise ValueError(f"{product.product_id}: Earth Search's COG layout is for L2A products")
    identifier = item_id(product.product_id)
    folder = Path(out_dir) / identifier
    staging = folder.with_name(f".{identifier}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    shift = -product.offset if offset_applied else 0
    assets = {}
    for band_name in sorted(product.band_files):
        assets[_ASSET_OF_BAND[band_name]] = _write_band(product, band_name, staging, shift)
    for key, xml in (("granule_metadata", "GRANULE"), ("product_metadata", f"MTD_MSI{product.level}.xml")):
        assets[key] = _copy_metadata(safe, xml, staging / f"{key}.xml")
    item = _item(product, identifier, assets, offset_applied)
    (staging / f"{identifier}.json").write_text(json.dumps(item, indent=1))
    shutil.rmtree(folder, ignore_errors=True)
    staging.rename(folder)
    return folder / f"{identifier}.json"


#: Reflectance is averaged in overviews, as Earth Search's COGs do (the SCL band's classes are not: nearest).
REFLECTANCE_OVERVIEWS = {"OVERVIEW_RESAMPLING": "AVERAGE"}


def _write_band(product, band_name: str, folder: Path, shift: int) -> dict:
    """One band as a COG (``B02.tif``); ``shift`` is subtracted from valid pixels (harmonised catalogs)."""
    file_name = f"{band_name}.tif"
    with rasterio.open(product.band_path(band_name)) as source:
        data = source.read(1)
        profile = {"width": source.width, "height": source.height, "transform": source.transform}
        source_crs = source.crs.to_string()
    if shift and band_name != "SCL":
        valid = data > 0
        data = np.where(valid, np.clip(data.astype(np.int32) - shift, 1, 65535), 0).astype(data.dtype)
    write_cog(folder / file_name, data, source_crs, profile["transform"], 0, options=REFLECTANCE_OVERVIEWS
              if band_name != "SCL" else None)
    resolution = round(profile["transform"].a)
    asset = {"href": f"./{file_name}", "type": COG_MEDIA_TYPE, "proj:shape": [profile["height"], profile["width"]],
             "proj:transform": list(profile["transform"])[:6], "roles": ["data", "reflectance"]}
    if band_name == "SCL":
        asset["title"] = "Scene classification map (SCL)"
        asset["raster:bands"] = [{"nodata": 0, "data_type": "uint8", "spatial_resolution": resolution}]
        return asset
    asset["title"] = f"{_TITLES[band_name]} - {resolution}m"
    common = _ASSET_OF_BAND[band_name]
    asset["eo:bands"] = [{"name": common, "common_name": common, "description": _TITLES[band_name],
                          "center_wavelength": BANDS_BY_NAME[band_name].wavelength_nm / 1000}]
    asset["gsd"] = resolution
    asset["raster:bands"] = [{"nodata": 0, "data_type": "uint16", "bits_per_sample": 15,
                              "spatial_resolution": resolution, "scale": 1 / QUANTIFICATION_VALUE, "offset": -0.1}]
    return asset


def _copy_metadata(safe: Path, member: str, target: Path) -> dict:
    """Copy ``MTD_MSIL2A.xml`` or the granule's ``MTD_TL.xml`` out of the SAFE folder."""
    source = next(Path(safe).glob("GRANULE/*/MTD_TL.xml")) if member == "GRANULE" else Path(safe) / member
    shutil.copyfile(source, target)
    return {"href": f"./{target.name}", "type": "application/xml", "roles": ["metadata"]}


def _item(product, identifier: str, assets: dict, offset_applied: bool) -> dict:
    name_parts = product.product_id.split("_")
    zone, band_letter, square = product.tile_id[:2], product.tile_id[2], product.tile_id[3:]
    created = (product.start_time + timedelta(hours=8)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return {
        "type": "Feature", "stac_version": "1.0.0", "id": identifier,
        "stac_extensions": ["https://stac-extensions.github.io/projection/v1.1.0/schema.json",
                            "https://stac-extensions.github.io/eo/v1.1.0/schema.json",
                            "https://stac-extensions.github.io/raster/v1.1.0/schema.json",
                            "https://stac-extensions.github.io/mgrs/v1.0.0/schema.json",
                            "https://stac-extensions.github.io/grid/v1.0.0/schema.json"],
        "properties": {
            "created": created, "platform": f"sentinel-2{product.mission[-1].lower()}",
            "constellation": "sentinel-2", "instruments": ["msi"], "eo:cloud_cover": product.cloud_cover,
            "proj:epsg": product.epsg, "mgrs:utm_zone": int(zone), "mgrs:latitude_band": band_letter,
            "mgrs:grid_square": square, "grid:code": f"MGRS-{product.tile_id}",
            "s2:product_type": "S2MSI2A", "s2:processing_baseline": product.processing_baseline,
            "s2:product_uri": f"{product.product_id}.SAFE",
            "s2:generation_time": f"{name_parts[-1][:4]}-{name_parts[-1][4:6]}-{name_parts[-1][6:8]}T"
                                  f"{name_parts[-1][9:11]}:{name_parts[-1][11:13]}:{name_parts[-1][13:15]}.000000Z",
            "datetime": product.start_time.strftime("%Y-%m-%dT%H:%M:%S.%fZ"), "s2:sequence": "0",
            "earthsearch:boa_offset_applied": offset_applied, "updated": created,
        },
        "geometry": mapping(product.footprint), "bbox": list(antimeridian.bbox(product.footprint)),
        "links": [], "assets": assets,
    }
