"""Class maps drawn for web maps: their colours, clouds as clouds (from the cloud mask beside the map), no
data transparent, warped to Web Mercator (EPSG:3857).

``render_png``: the whole map over its own bounds (web pages lay it over a base map as a static image at
``bounds_3857``, without decoding a GeoTIFF in the browser; ``render_cog_png`` the same for a change map made
for one answer); ``render_tile``: XYZ tiles, for web map
libraries and QGIS's XYZ layers. Both read from the COG overview that fits the output's resolution.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import rasterio
from affine import Affine
from rasterio.enums import Resampling
from rasterio.errors import WindowError
from rasterio.io import MemoryFile
from rasterio.transform import from_bounds
from rasterio.warp import reproject, transform_bounds
from rasterio.windows import Window
from rasterio.windows import from_bounds as window_from_bounds

from earthsignature.core.product import gdal_path

WEB_MERCATOR = "EPSG:3857"
MAX_MERCATOR_Y = 20037508.342789244


@dataclass(frozen=True)
class RenderedMap:
    png: bytes
    bounds_3857: tuple[float, float, float, float]  # west, south, east, north


#: value -> RGBA, as a colour table holds it
Palette = dict[int, tuple[int, int, int, int]]
#: The cloud mask's value for clouds (``observations.CLOUD``; 0 clear, 255 no data)
CLOUDED = 1


@dataclass(frozen=True)
class Clouds:
    """A class map's cloud mask (same grid) and how its clouded pixels are drawn over the map."""

    url: str
    rgba: tuple[int, int, int, int]


def render_png(url: str, max_size: int = 1024, clouds: Clouds | None = None) -> RenderedMap:
    """The whole class map at ``url``, at most ``max_size`` pixels a side, over its own Web Mercator bounds;
    with ``clouds``, its clouded pixels drawn as clouds."""
    with rasterio.open(gdal_path(url)) as dataset:
        return _whole(dataset, max_size, clouds=clouds)


def render_cog_png(payload: bytes, max_size: int = 1024, transparent: tuple[int, ...] = ()) -> RenderedMap:
    """A COG held in memory (a change map, made for one answer) drawn as ``render_png`` draws a stored map;
    the ``transparent`` values are not drawn (a change map's unchanged pixels, over the class maps)."""
    with MemoryFile(payload) as memory, memory.open() as dataset:
        return _whole(dataset, max_size, transparent)


def _whole(dataset, max_size: int, transparent: tuple[int, ...] = (), clouds: Clouds | None = None) -> RenderedMap:
    west, south, east, north = transform_bounds(dataset.crs, WEB_MERCATOR, *dataset.bounds, densify_pts=21)
    south, north = max(south, -MAX_MERCATOR_Y), min(north, MAX_MERCATOR_Y)
    scale = max(east - west, north - south) / max_size
    width, height = max(1, math.ceil((east - west) / scale)), max(1, math.ceil((north - south) / scale))
    png = _rendered(dataset, (west, south, east, north), width, height, transparent, clouds)
    return RenderedMap(png, (west, south, east, north))


def tile_bounds(z: int, x: int, y: int) -> tuple[float, float, float, float]:
    """Web Mercator bounds of XYZ tile (z, x, y) (the OSM/Google scheme: y grows southwards)."""
    span = 2 * MAX_MERCATOR_Y / 2 ** z
    west, north = -MAX_MERCATOR_Y + x * span, MAX_MERCATOR_Y - y * span
    return west, north - span, west + span, north


def render_tile(url: str, z: int, x: int, y: int, size: int = 256, clouds: Clouds | None = None) -> bytes:
    """XYZ tile (z, x, y) of the class map as a ``size`` x ``size`` PNG (transparent where the map is not;
    with ``clouds``, its clouded pixels drawn as clouds)."""
    with rasterio.open(gdal_path(url)) as dataset:
        return _rendered(dataset, tile_bounds(z, x, y), size, size, clouds=clouds)


def _rendered(dataset, bounds: tuple[float, float, float, float], width: int, height: int,
              transparent: tuple[int, ...] = (), clouds: Clouds | None = None) -> bytes:
    """The part of ``dataset`` under Web Mercator ``bounds`` as a width x height RGBA PNG in its colour table:
    nearest neighbour, read from the overview that fits, no data transparent; clouds (read the same way from
    the cloud mask's own overviews) drawn over it."""
    nodata = 255 if dataset.nodata is None else int(dataset.nodata)
    warped = _warped(dataset, bounds, width, height, nodata)
    colours = np.zeros((max(256, int(warped.max()) + 1, nodata + 1), 4), dtype=np.uint8)
    for value, rgba in _colour_table(dataset).items():
        if value < len(colours):
            colours[value] = rgba
    colours[[nodata, *transparent], 3] = 0
    rgba = colours[warped]
    if clouds is not None:
        with rasterio.open(gdal_path(clouds.url)) as mask:
            clouded = _warped(mask, bounds, width, height, 255) == CLOUDED
        rgba[clouded & (warped != nodata)] = clouds.rgba
    with MemoryFile() as memory:
        with memory.open(driver="PNG", width=width, height=height, count=4, dtype="uint8") as image:
            image.write(np.moveaxis(rgba, -1, 0))
        return memory.read()


def _warped(dataset, bounds: tuple[float, float, float, float], width: int, height: int, nodata: int) -> np.ndarray:
    """``dataset``'s first band under Web Mercator ``bounds`` on a width x height grid (nearest neighbour)."""
    warped = np.full((height, width), nodata, dtype=dataset.dtypes[0])
    source, source_transform = _source_window(dataset, bounds, width, height)
    if source is not None:
        reproject(source, warped, src_transform=source_transform, src_crs=dataset.crs, src_nodata=nodata,
                  dst_transform=from_bounds(*bounds, width, height), dst_crs=WEB_MERCATOR, dst_nodata=nodata,
                  resampling=Resampling.nearest)
    return warped


def _colour_table(dataset) -> Palette:
    try:
        return dataset.colormap(1)
    except ValueError:  # a map without a colour table: grey levels
        return {v: (v, v, v, 255) for v in range(256)}


def _source_window(dataset, bounds, width: int, height: int):
    """The map's pixels under ``bounds`` at about the output's resolution (None where the map is not)."""
    try:
        inner = transform_bounds(WEB_MERCATOR, dataset.crs, *bounds, densify_pts=21)
        window = window_from_bounds(*inner, transform=dataset.transform).round_offsets().round_lengths()
        window = window.intersection(Window(0, 0, dataset.width, dataset.height))
    except (WindowError, ValueError):  # no overlap, or bounds the map's CRS cannot hold
        return None, None
    if window.width < 1 or window.height < 1:
        return None, None
    factor = max(1, int(min(window.width / width, window.height / height)))  # read no more than needed
    shape = (max(1, int(window.height) // factor), max(1, int(window.width) // factor))
    source = dataset.read(1, window=window, out_shape=shape, resampling=Resampling.nearest)
    transform = dataset.window_transform(window) @ Affine.scale(window.width / shape[1], window.height / shape[0])
    return source, transform
