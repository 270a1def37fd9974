"""The Cloud-Optimized GeoTIFF profile of every class map, confidence and cloud mask: written by the
monitor, stored by the catalog, read back by window, served to pilots.

The three layers and their no-data values are stated here once. A class map's legend travels beside it as
two small files that desktop GIS reads without any plugin: GDAL's ``.aux.xml`` (category names and a
thematic raster attribute table: value, code, name, colour; GDAL looks for it next to the file, also over
``/vsicurl/``) and a QGIS ``.qml`` style (a paletted renderer with the class names).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np
import rasterio
import rasterio.shutil
from affine import Affine
from rasterio.io import MemoryFile

from earthsignature.core.classes import LandCoverClass

#: GDAL COG driver options: 256-pixel tiles, lossless DEFLATE, nearest-neighbour overviews (classes
#: must not be averaged).
COG_OPTIONS = {"COMPRESS": "DEFLATE", "BLOCKSIZE": "256", "OVERVIEW_RESAMPLING": "NEAREST", "PREDICTOR": "NO"}

#: Class maps: pixel value = class index; 255 where the input had no data.
CLASS_NODATA = 255
#: Confidence: 1..255 = the winning class's probability (1 + round(p x 254)); 0 where there is no map.
CONFIDENCE_NODATA = 0
#: Cloud mask: 1 cloud, cloud shadow or cirrus, 0 clear; 255 where the scene classification has no data.
CLOUD_MASK_NODATA = 255
#: How clouds are drawn where pilots look at maps (web pictures, XYZ tiles, pilot pictures, the map page).
CLOUD_COLOR = (255, 255, 255)
#: No-data value of each layer a segmentation carries.
LAYER_NODATA = {"classes": CLASS_NODATA, "confidence": CONFIDENCE_NODATA, "cloud_mask": CLOUD_MASK_NODATA}
#: What each layer's band holds (its GeoTIFF band description).
LAYER_DESCRIPTIONS = {
    "classes": "land-cover class (pixel value = class index; see the category names)",
    "confidence": "probability of the mapped class: 1 + round(p x 254); 0 = no data",
    "cloud_mask": "1 = cloud, cloud shadow or cirrus (Sentinel-2 SCL), 0 = clear, 255 = no data",
}


def confidence_values(probability: np.ndarray) -> np.ndarray:
    """Probabilities in [0, 1] as confidence bytes 1..255 (0 stays free for no data)."""
    return (1 + np.rint(np.clip(probability, 0, 1) * 254)).astype(np.uint8)


def write_cog(path: Path | str, data: np.ndarray, crs: str | None, transform: Affine, nodata: int | None = None,
              colormap: dict[int, tuple[int, int, int, int]] | None = None, description: str = "",
              tags: dict[str, str] | None = None, options: dict[str, str] | None = None) -> Path:
    """``data`` [H, W] as a COG at ``path``, with its band's colour table, description and metadata ``tags``
    (GDAL's metadata TIFF tag); ``options``: COG driver options beyond (or instead of) ``COG_OPTIONS``."""
    profile = {"driver": "GTiff", "width": data.shape[1], "height": data.shape[0], "count": 1,
               "dtype": data.dtype.name, "nodata": nodata}
    if crs:  # a raster sent without georeferencing stays without it
        profile.update(crs=crs, transform=transform)
    with MemoryFile() as memory, memory.open(**profile) as dataset:
        dataset.write(data, 1)
        if colormap:
            dataset.write_colormap(1, colormap)
        if description:
            dataset.set_band_description(1, description)
        if tags:
            dataset.update_tags(1, **tags)
        rasterio.shutil.copy(dataset, path, driver="COG", **(COG_OPTIONS | (options or {})))
    return Path(path)


def cog_bytes(data: np.ndarray, crs: str | None, transform: Affine, nodata: int | None = None,
              colormap: dict[int, tuple[int, int, int, int]] | None = None, description: str = "",
              tags: dict[str, str] | None = None) -> bytes:
    """``write_cog``'s file as bytes (a COG sent in a message)."""
    with MemoryFile() as target:
        write_cog(target.name, data, crs, transform, nodata, colormap, description, tags)
        return target.read()


def copy_as_cog(source: Path | str, target: Path | str) -> Path:
    """A tiled GeoTIFF (the segmenter's) rewritten as a COG with ``COG_OPTIONS``, its colour table kept."""
    rasterio.shutil.copy(source, target, driver="COG", **COG_OPTIONS)
    return Path(target)


def class_tags(legend: Sequence[LandCoverClass]) -> dict[str, str]:
    """A class map's band tags naming its classes: ``CLASS_<pixel value>`` -> class name."""
    return {f"CLASS_{c.index}": c.name for c in legend}


def legend_sidecars(raster_url: str) -> tuple[str, str]:
    """The URLs of a class map's legend files: GDAL's ``.aux.xml`` and the QGIS ``.qml`` style."""
    stem = raster_url.removesuffix(".tif")
    return f"{raster_url}.aux.xml", f"{stem}.qml"


def category_names(legend: Sequence[LandCoverClass]) -> list[str]:
    """Names by pixel value, 0..the highest class index ("" where no class has that value)."""
    names = [""] * (max((c.index for c in legend), default=-1) + 1)
    for land_cover in legend:
        names[land_cover.index] = land_cover.name
    return names


def gdal_aux_xml(legend: Sequence[LandCoverClass], description: str = LAYER_DESCRIPTIONS["classes"]) -> str:
    """GDAL's PAM sidecar for band 1: description, category names and a thematic attribute table."""
    categories = "".join(f"<Category>{escape(name)}</Category>" for name in category_names(legend))
    # field usages (GDALRATFieldUsage): 5 min-max (the pixel value), 0 generic, 2 name, 6/7/8 red/green/blue
    fields = [("Value", 0, 5), ("Code", 0, 0), ("Class", 2, 2), ("Red", 0, 6), ("Green", 0, 7), ("Blue", 0, 8)]
    definitions = "".join(f'<FieldDefn index="{i}"><Name>{name}</Name><Type>{kind}</Type><Usage>{usage}</Usage>'
                          f"</FieldDefn>" for i, (name, kind, usage) in enumerate(fields))
    rows = "".join(
        f'<Row index="{i}"><F>{c.index}</F><F>{c.code}</F><F>{escape(c.name)}</F>'
        f"<F>{c.color[0]}</F><F>{c.color[1]}</F><F>{c.color[2]}</F></Row>"
        for i, c in enumerate(sorted(legend, key=lambda c: c.index)))
    return (f'<PAMDataset><PAMRasterBand band="1"><Description>{escape(description)}</Description>'
            f"<CategoryNames>{categories}</CategoryNames>"
            f'<GDALRasterAttributeTable tableType="thematic">{definitions}{rows}</GDALRasterAttributeTable>'
            f"</PAMRasterBand></PAMDataset>\n")


def qgis_style(legend: Sequence[LandCoverClass], nodata: int = CLASS_NODATA) -> str:
    """A QGIS layer style (``.qml``): a paletted renderer labelling every class by name."""
    entries = "\n".join(
        f'        <paletteEntry value="{c.index}" color="{c.hex_color}" alpha="255" '
        f'label="{escape(c.name, {chr(34): "&quot;"})}"/>' for c in sorted(legend, key=lambda c: c.index))
    return f"""<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>
<qgis version="3.34" styleCategories="Symbology">
  <pipe>
    <provider><resampling enabled="false" zoomedInResamplingMethod="nearestNeighbour"
      zoomedOutResamplingMethod="nearestNeighbour"/></provider>
    <rasterrenderer type="paletted" band="1" opacity="1" nodataColor="">
      <rasterTransparency><singleValuePixelList><pixelListEntry min="{nodata}" max="{nodata}" percentTransparent="100"/>
      </singleValuePixelList></rasterTransparency>
      <colorPalette>
{entries}
      </colorPalette>
    </rasterrenderer>
  </pipe>
</qgis>
"""
