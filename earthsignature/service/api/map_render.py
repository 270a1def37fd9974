"""A class map drawn for web maps: its colours, no data transparent, warped to Web Mercator (EPSG:3857) over
the map's own bounds, as a PNG at most ``max_size`` pixels wide or high. Web pages lay it over a base map
as a static image at ``bounds_3857`` without decoding a GeoTIFF in the browser.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import rasterio
from rasterio.enums import Resampling
from rasterio.io import MemoryFile
from rasterio.transform import from_bounds
from rasterio.warp import reproject, transform_bounds

from earthsignature.core.product import gdal_path

WEB_MERCATOR = "EPSG:3857"
MAX_MERCATOR_Y = 20037508.342789244


@dataclass(frozen=True)
class RenderedMap:
    png: bytes
    bounds_3857: tuple[float, float, float, float]  # west, south, east, north


def render_png(url: str, max_size: int = 1024) -> RenderedMap:
    """The class map at ``url`` in its colour table, nearest-neighbour from the overview that fits."""
    with rasterio.open(gdal_path(url)) as dataset:
        west, south, east, north = transform_bounds(dataset.crs, WEB_MERCATOR, *dataset.bounds, densify_pts=21)
        south, north = max(south, -MAX_MERCATOR_Y), min(north, MAX_MERCATOR_Y)
        scale = max(east - west, north - south) / max_size
        width, height = max(1, math.ceil((east - west) / scale)), max(1, math.ceil((north - south) / scale))
        factor = max(1, int(min(dataset.width / width, dataset.height / height)))  # read no more than needed
        source = dataset.read(1, out_shape=(max(1, dataset.height // factor), max(1, dataset.width // factor)),
                              resampling=Resampling.nearest)
        source_transform = dataset.transform @ dataset.transform.scale(dataset.width / source.shape[1],
                                                                       dataset.height / source.shape[0])
        nodata = 255 if dataset.nodata is None else int(dataset.nodata)
        try:
            colormap = dataset.colormap(1)
        except ValueError:  # a map without a colour table: grey levels
            colormap = {v: (v, v, v, 255) for v in range(256)}
        warped = np.full((height, width), nodata, dtype=source.dtype)
        reproject(source, warped, src_transform=source_transform, src_crs=dataset.crs, src_nodata=nodata,
                  dst_transform=from_bounds(west, south, east, north, width, height), dst_crs=WEB_MERCATOR,
                  dst_nodata=nodata, resampling=Resampling.nearest)
    palette = np.zeros((max(256, int(warped.max()) + 1, nodata + 1), 4), dtype=np.uint8)
    for value, rgba in colormap.items():
        if value < len(palette):
            palette[value] = rgba
    palette[nodata, 3] = 0
    rgba = np.moveaxis(palette[warped], -1, 0)
    with MemoryFile() as memory:
        with memory.open(driver="PNG", width=width, height=height, count=4, dtype="uint8") as image:
            image.write(rgba)
        return RenderedMap(memory.read(), (west, south, east, north))
