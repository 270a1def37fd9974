"""Write image/mask GeoTIFF pair data sets (HRL, Urban Atlas, burnt areas, pilot sets).

Layout (the one our pair datasets read)::

    images/<sample_id>.tif   multi-band uint16 digital numbers (reflectance x 10000), bands named
    masks/<sample_id>.tif    the data set's own class codes (HRL 1..4, Urban Atlas 11100.., burnt 0/1);
                             pixels outside every class hold the file's nodata value
    splits.csv               sample_id,split   (train / validation / test)
    classes.yaml             the nomenclature: code, name, color per class

The scene under each sample is a CLC level-3 label field; the mask is that field seen through the target
nomenclature (each class covers CLC codes), so a CLC model's prediction can be scored on it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import rasterio
import yaml
from rasterio.transform import from_origin

from earthsignature.core.classes import Nomenclature
from earthsignature.core.sentinel2 import QUANTIFICATION_VALUE, RGBN_BANDS
from earthsignature.core.tiling_grid import tile
from earthsignature.samples import mark_synthetic
from earthsignature.samples.synthetic import LabelField, render_reflectance

SPLIT_CYCLE = ("train", "train", "validation", "test")


def mask_nodata_value(target: Nomenclature) -> int:
    """255 for nomenclatures whose codes fit a byte, else 0 (Urban Atlas codes are 5 digits)."""
    return 255 if max(target.codes) < 255 else 0


def write_classes_yaml(path: Path, target: Nomenclature) -> None:
    classes = [{"code": c.code, "name": c.name, "color": list(c.color)} for c in target]
    path.write_text(yaml.safe_dump({"name": target.name, "classes": classes}, sort_keys=False))


def write_image_mask_pairs(
    root: Path,
    target: Nomenclature,
    n_samples: int = 12,
    size: int = 120,
    bands: tuple[str, ...] = RGBN_BANDS,
    seed: int = 0,
    codes: tuple[int, ...] | None = None,
    weights: tuple[float, ...] | None = None,
    feature_size: float = 16.0,
    tile_id: str = "31TCJ",
) -> pd.DataFrame:
    """Write ``n_samples`` pairs of ``size`` x ``size`` 10 m pixels; return the split table.

    ``codes`` (and ``weights``) choose the CLC classes drawn in the scenes; by default every CLC class
    the target covers, uniformly.
    """
    root = Path(root)
    codes = tuple(codes or sorted({c for cls in target for c in cls.clc_codes}))
    nodata = mask_nodata_value(target)
    code_of = np.full(1000, nodata, dtype=np.int64)
    for cls in target:
        code_of[list(cls.clc_codes)] = cls.code
    mask_dtype = np.uint8 if nodata == 255 else np.uint16
    geometry = tile(tile_id)
    per_row = int(np.ceil(np.sqrt(n_samples)))
    scene = LabelField(per_row * size, per_row * size, codes, seed, feature_size, weights)
    rng = np.random.default_rng(seed + 1)
    records = []
    for k in range(n_samples):
        row, col = divmod(k, per_row)
        sample_id = f"{target.name}_{seed}_{k:05d}"
        clc = scene.window(row * size, col * size, size, size)
        image = np.stack([
            np.clip(np.rint(render_reflectance(clc, b, rng) * QUANTIFICATION_VALUE), 1, 65535)
            for b in bands
        ]).astype(np.uint16)
        transform = from_origin(geometry.ulx + col * size * 10, geometry.uly - row * size * 10, 10, 10)
        common = {"driver": "GTiff", "width": size, "height": size, "crs": geometry.crs,
                  "transform": transform, "compress": "deflate"}
        (root / "images").mkdir(parents=True, exist_ok=True)
        (root / "masks").mkdir(parents=True, exist_ok=True)
        with rasterio.open(root / "images" / f"{sample_id}.tif", "w", count=len(bands), dtype="uint16",
                           **common) as dataset:
            dataset.write(image)
            dataset.descriptions = bands
        with rasterio.open(root / "masks" / f"{sample_id}.tif", "w", count=1, dtype=mask_dtype.__name__,
                           nodata=nodata, **common) as dataset:
            dataset.write(code_of[clc].astype(mask_dtype), 1)
        records.append({"sample_id": sample_id, "split": SPLIT_CYCLE[k % len(SPLIT_CYCLE)]})
    splits = pd.DataFrame(records)
    splits.to_csv(root / "splits.csv", index=False)
    mark_synthetic(root, "samples.pairs_writer")
    write_classes_yaml(root / "classes.yaml", target)
    return splits
