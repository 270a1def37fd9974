"""Pictures of query results for pilots: the class map large (clouds drawn as clouds), with a legend of the
classes present (their shares of the clear pixels) and of clouds, a scale bar and latitude/longitude ticks;
beside it the product's RGB quicklook and its cloud mask. The class map is
saved beside the picture as a Cloud-Optimized GeoTIFF with its colours and class names."""

from __future__ import annotations

import io
import logging
import math
import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.patches import Patch, Rectangle

from earthsignature.core.cog import CLOUD_COLOR, CLOUD_MASK_NODATA

RARE = 0.01  # classes under 1 % of the map read "<1 %"
TITLE_WIDTH = 90  # characters of a title line over the class map (its width at fontsize 9)
log = logging.getLogger(__name__)


def share_label(fraction: float) -> str:
    return "<1 %" if fraction < RARE else f"{fraction:.0%}".replace("%", " %")


def scale_length(width_m: float) -> float:
    """A round length (1, 2 or 5 x 10^n metres) near a quarter of the map's width."""
    target = width_m / 4
    power = 10 ** math.floor(math.log10(target))
    return max(step * power for step in (1, 2, 5) if step * power <= target)


def _rgb(result) -> np.ndarray:
    """The class map in the legend's colours, clouds as clouds (the class under them is no land cover seen)."""
    rgb = np.full((*result.classes.shape, 3), 255, dtype=np.uint8)
    for value, share in result.legend.items():
        rgb[result.classes == value] = share.land_cover.color
    if _clouds(result) is not None:
        rgb[_clouds(result)] = CLOUD_COLOR
    return rgb


def _clouds(result) -> np.ndarray | None:
    """Where the cloud mask says cloud, on the class map's grid (None without a mask of the same shape)."""
    mask = result.cloud_mask
    return mask == 1 if mask is not None and mask.shape == result.classes.shape else None


def _extent(result, shape: tuple[int, int]) -> tuple[float, float, float, float]:
    t = result.transform
    height, width = shape
    return t.c, t.c + t.a * width, t.f + t.e * height, t.f


def _lonlat_ticks(axis, result, extent) -> None:
    """Label the projected axes with longitudes (bottom edge) and latitudes (left edge)."""
    from pyproj import Transformer

    to_lonlat = Transformer.from_crs(result.crs, "EPSG:4326", always_xy=True)
    left, right, bottom, top = extent
    xs, ys = np.linspace(left, right, 5)[1:-1], np.linspace(bottom, top, 5)[1:-1]  # corners stay unlabelled
    lons = [to_lonlat.transform(x, bottom)[0] for x in xs]
    lats = [to_lonlat.transform(left, y)[1] for y in ys]
    axis.set_xticks(xs, [f"{abs(v):.3f}°{'E' if v >= 0 else 'W'}" for v in lons], fontsize=7)
    axis.set_yticks(ys, [f"{abs(v):.3f}°{'N' if v >= 0 else 'S'}" for v in lats], fontsize=7, rotation=90,
                    va="center")


def _scale_bar(axis, extent) -> None:
    left, right, bottom, top = extent
    length = scale_length(right - left)
    x, y = left + (right - left) * 0.04, bottom + (top - bottom) * 0.04
    height = (top - bottom) * 0.012
    margin = length * 0.08
    axis.add_patch(Rectangle((x - margin, y - margin), length + 2 * margin, height * 4 + 2 * margin,
                             facecolor="white", alpha=0.8, edgecolor="none"))  # readable on any class colour
    axis.add_patch(Rectangle((x, y), length, height, facecolor="black", edgecolor="black"))
    label = f"{length / 1000:g} km" if length >= 1000 else f"{length:g} m"
    axis.text(x + length / 2, y + height * 1.5, label, ha="center", va="bottom", fontsize=8)


def _legend(axis, result) -> None:
    """The classes present with their share of the clear pixels, and the share of the map under clouds."""
    present = sorted((s for s in result.legend.values() if s.pixel_count > 0), key=lambda s: -s.fraction)
    handles = [Patch(facecolor=np.array(s.land_cover.color) / 255, edgecolor="black",
                     label=f"{s.land_cover.name} ({share_label(s.fraction)})") for s in present]
    clouds = _clouds(result)
    if clouds is not None and clouds.any():
        handles.append(Patch(facecolor=np.array(CLOUD_COLOR) / 255, edgecolor="black",
                             label=f"Clouds ({share_label(float(clouds.mean()))} of the map)"))
    axis.legend(handles=handles, loc="upper left", bbox_to_anchor=(0, -0.08), ncol=2, fontsize=8, frameon=False,
                title=f"classes present ({len(present)} of {len(result.legend)})", title_fontsize=8,
                alignment="left")


def _side_panel(axis, title: str, image: np.ndarray | None, empty: str, **imshow) -> None:
    axis.set_title(title, fontsize=9)
    axis.set_xticks([])
    axis.set_yticks([])
    if image is None:
        axis.text(0.5, 0.5, empty, ha="center", va="center", fontsize=8, transform=axis.transAxes)
        return
    axis.imshow(image, interpolation="nearest", **imshow)


def _cloud_picture(mask: np.ndarray | None) -> np.ndarray | None:
    if mask is None:
        return None
    picture = np.full((*mask.shape, 3), (70, 130, 60), dtype=np.uint8)  # clear: green
    picture[mask == 1] = (255, 255, 255)
    picture[mask == CLOUD_MASK_NODATA] = (0, 0, 0)
    return picture


def _quicklook(png: bytes | None) -> tuple[np.ndarray | None, str]:
    """The decoded quicklook, or None and why (a picture is still drawn without it)."""
    if not png:
        return None, "no quicklook"
    try:
        return plt.imread(io.BytesIO(png), format="png"), ""
    except (ValueError, SyntaxError, OSError) as error:  # Pillow's errors for a broken PNG
        log.warning("the quicklook is not a readable PNG (%s): drawn without it", error)
        return None, "quicklook unreadable"


def save_map_png(result, path: Path, quicklook_png: bytes | None = None) -> Path:
    """``result`` (an ``earthsignature.client.Result``) as a picture; ``quicklook_png``: the product's RGB
    quicklook (the response's link, fetched by the client)."""
    figure = plt.figure(figsize=(12, 8.5))
    grid = figure.add_gridspec(2, 2, width_ratios=(2.2, 1), hspace=0.25, wspace=0.12)
    axis = figure.add_subplot(grid[:, 0])
    extent = _extent(result, result.classes.shape)
    axis.imshow(_rgb(result), extent=extent, interpolation="nearest")
    card = textwrap.fill(result.model_card.line(), TITLE_WIDTH)  # a long card wraps, never clipped
    axis.set_title(f"{result.product_id[:70]}\n{result.model}  {result.start:%Y-%m-%d %H:%M} UTC  "
                   f"cloud cover {result.cloud_cover:.0f} %\n{card}", fontsize=9)
    if result.crs:
        _lonlat_ticks(axis, result, extent)
        _scale_bar(axis, extent)
    _legend(axis, result)
    quicklook, missing = _quicklook(quicklook_png)
    _side_panel(figure.add_subplot(grid[0, 1]), "RGB quicklook", quicklook, missing)
    _side_panel(figure.add_subplot(grid[1, 1]), "clouds (white), no data (black)", _cloud_picture(result.cloud_mask),
                "no cloud mask")
    figure.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(figure)
    return Path(path)


def save_maps(result, folder: Path, quicklook_png: bytes | None = None) -> Path:
    """The result's class map as a COG and a picture in ``folder``, named by product and model; the stem."""
    folder.mkdir(parents=True, exist_ok=True)
    stem = folder / f"{result.product_id}_{result.model.replace(':', '_v')}"
    result.save_geotiff(stem.with_suffix(".tif"))
    save_map_png(result, stem.with_suffix(".png"), quicklook_png)
    return stem
