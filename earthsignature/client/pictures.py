"""Pictures of query results: the class map with its legend, as a PNG people can look at."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.patches import Patch


def save_map_png(result, path: Path) -> Path:
    """``result`` (an ``earthsignature.client.Result``) as a colored map with a legend of its classes."""
    classes = result.classes
    rgb = np.full((*classes.shape, 3), 255, dtype=np.uint8)
    for value, share in result.legend.items():
        rgb[classes == value] = share.land_cover.color
    figure, axis = plt.subplots(figsize=(7, 5.5))
    height, width = classes.shape
    t = result.transform
    axis.imshow(rgb, extent=(t.c, t.c + t.a * width, t.f + t.e * height, t.f), interpolation="nearest")
    axis.set_title(f"{result.product_id[:60]}\n{result.model}  {result.start:%Y-%m-%d %H:%M} UTC\n"
                   f"{result.model_card.line()}", fontsize=8)
    axis.set_xlabel(f"x ({result.crs})", fontsize=8)
    axis.tick_params(labelsize=7)
    handles = [Patch(facecolor=np.array(s.land_cover.color) / 255, edgecolor="black",
                     label=f"{s.land_cover.code} {s.land_cover.name} ({s.fraction:.0%})")
               for _, s in sorted(result.legend.items())]
    axis.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=7, frameon=False)
    figure.tight_layout()
    figure.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(figure)
    return Path(path)


def save_maps(result, folder: Path) -> Path:
    """The result's class map as a GeoTIFF and a PNG in ``folder``, named by product and model; the stem."""
    folder.mkdir(parents=True, exist_ok=True)
    stem = folder / f"{result.product_id}_{result.model.replace(':', '_v')}"
    result.save_geotiff(stem.with_suffix(".tif"))
    save_map_png(result, stem.with_suffix(".png"))
    return stem
