"""Write a BigEarthNet v2 (reBEN) folder in the real release layout, filled with synthetic scenes.

Layout, as TorchGeo's ``BigEarthNetV2`` and our own dataset read it::

    BigEarthNet-S2/<S2 tile folder>/<patch_id>/<patch_id>_B01.tif ... _B12.tif   (12 bands)
    BigEarthNet-S1/<S1 product>/<s1_name>/<s1_name>_VV.tif, _VH.tif
    Reference_Maps/<S2 tile folder>/<patch_id>/<patch_id>_reference_map.tif      (CLC level-3 codes)
    metadata.parquet   patch_id, labels, split, country, s1_name, contains_seasonal_snow,
                       contains_cloud_or_shadow

``patch_id`` is ``S2A_MSIL2A_20170613T101031_N9999_R022_T33UUP_26_57``: the S2 product (without its
discriminator), then the patch's row and column in the tile. 10 m bands are 120 x 120 pixels, 20 m
bands 60 x 60, 60 m bands 20 x 20, all uint16 GeoTIFFs in the tile's UTM CRS. Reference maps hold CLC
codes (111..523) and 999 where CLC has no data; ``labels`` are the BigEarthNet-19 names present.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import rasterio
from rasterio.transform import from_origin

from earthsignature.core.nomenclature import CLC_NODATA_CODE, bigearthnet19, clc_level3
from earthsignature.core.sentinel2 import L2A_BANDS, QUANTIFICATION_VALUE, band
from earthsignature.core.tiling_grid import tile
from earthsignature.samples import mark_synthetic
from earthsignature.samples.synthetic import LabelField, render_reflectance

PATCH_PIXELS = 120
PATCH_METRES = PATCH_PIXELS * 10
SPLITS = ("train", "validation", "test")


@dataclass(frozen=True)
class BigEarthNetTile:
    """One S2 acquisition the patches are cut from."""

    tile_id: str
    sensing_time: datetime
    country: str
    relative_orbit: int = 22
    mission: str = "S2A"

    @property
    def s2_folder(self) -> str:
        return (f"{self.mission}_MSIL2A_{self.sensing_time:%Y%m%dT%H%M%S}_N9999_"
                f"R{self.relative_orbit:03d}_T{self.tile_id}")

    @property
    def s1_folder(self) -> str:
        return f"S1A_IW_GRDH_1SDV_{self.sensing_time:%Y%m%d}T165043"


DEFAULT_TILES = (
    BigEarthNetTile("33UUP", datetime(2017, 6, 13, 10, 10, 31, tzinfo=UTC), "Austria"),
    BigEarthNetTile("29SND", datetime(2017, 7, 20, 11, 21, 11, tzinfo=UTC), "Portugal", 137),
    BigEarthNetTile("35VLG", datetime(2018, 5, 29, 9, 30, 31, tzinfo=UTC), "Finland", 36, "S2B"),
)


def write_bigearthnet_v2(
    root: Path,
    patches_per_tile: int = 8,
    tiles: tuple[BigEarthNetTile, ...] = DEFAULT_TILES,
    seed: int = 0,
    codes: tuple[int, ...] | None = None,
    feature_size: float = 20.0,
    nodata_share: float = 0.02,
    with_s1: bool = True,
) -> pd.DataFrame:
    """Write the folder and return its metadata table. Splits cycle train/train/validation/test so
    every split has patches; ``nodata_share`` of patches get a strip of CLC no data (999)."""
    root = Path(root)
    codes = tuple(codes or clc_level3().codes)
    rng = np.random.default_rng(seed)
    ben19 = bigearthnet19()
    lut = ben19.clc_lut(ignore_index=-1)
    rows = []
    grid = int(np.ceil(np.sqrt(patches_per_tile)))
    for tile_number, s2_tile in enumerate(tiles):
        scene = LabelField(grid * PATCH_PIXELS, grid * PATCH_PIXELS, codes, seed * 1000 + tile_number,
                           feature_size)
        for k in range(patches_per_tile):
            row, col = divmod(k, grid)
            patch_id = f"{s2_tile.s2_folder}_{row}_{col}"
            s1_name = f"{s2_tile.s1_folder}_{s2_tile.tile_id}_{row}_{col}"
            reference = scene.window(row * PATCH_PIXELS, col * PATCH_PIXELS, PATCH_PIXELS, PATCH_PIXELS)
            if rng.random() < nodata_share:
                reference[:, : PATCH_PIXELS // 6] = CLC_NODATA_CODE
            _write_patch(root, s2_tile, patch_id, s1_name, scene, row, col, reference, rng, with_s1)
            present = sorted({int(i) for i in np.unique(lut[reference]) if i >= 0})
            rows.append({
                "patch_id": patch_id,
                "labels": np.array([ben19.by_index(i).name for i in present], dtype=object),
                "split": SPLITS[(0, 0, 1, 2)[len(rows) % 4]],
                "country": s2_tile.country,
                "s1_name": s1_name,
                "contains_seasonal_snow": bool((reference == 335).any()),
                "contains_cloud_or_shadow": False,
            })
    metadata = pd.DataFrame(rows)
    metadata.to_parquet(root / "metadata.parquet", index=False)
    mark_synthetic(root, "samples.bigearthnet_writer")
    return metadata


def _geotiff(path: Path, data: np.ndarray, epsg: int, ulx: float, uly: float, resolution: float,
             nodata: float | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    profile = {
        "driver": "GTiff", "width": data.shape[1], "height": data.shape[0], "count": 1,
        "dtype": data.dtype.name, "crs": f"EPSG:{epsg}", "nodata": nodata,
        "transform": from_origin(ulx, uly, resolution, resolution),
    }
    with rasterio.open(path, "w", **profile) as dataset:
        dataset.write(data, 1)


def _write_patch(root: Path, s2_tile: BigEarthNetTile, patch_id: str, s1_name: str, scene: LabelField,
                 row: int, col: int, reference: np.ndarray, rng: np.random.Generator,
                 with_s1: bool) -> None:
    geometry = tile(s2_tile.tile_id)
    ulx, uly = geometry.ulx + col * PATCH_METRES, geometry.uly - row * PATCH_METRES
    patch_dir = root / "BigEarthNet-S2" / s2_tile.s2_folder / patch_id
    for band_name in L2A_BANDS:
        resolution = band(band_name).resolution
        scale = resolution // 10
        n = PATCH_PIXELS // scale
        labels = scene.window(row * n, col * n, n, n, scale)
        reflectance = render_reflectance(labels, band_name, rng)
        dn = np.clip(np.rint(reflectance * QUANTIFICATION_VALUE), 1, 65535).astype(np.uint16)
        _geotiff(patch_dir / f"{patch_id}_{band_name}.tif", dn, geometry.epsg, ulx, uly, resolution)
    maps_dir = root / "Reference_Maps" / s2_tile.s2_folder / patch_id
    _geotiff(maps_dir / f"{patch_id}_reference_map.tif", reference.astype(np.uint16), geometry.epsg,
             ulx, uly, 10)
    if with_s1:
        s1_dir = root / "BigEarthNet-S1" / s2_tile.s1_folder / s1_name
        for polarisation, offset in (("VV", 0.0), ("VH", -7.0)):
            backscatter = _backscatter_db(reference, rng) + offset
            _geotiff(s1_dir / f"{s1_name}_{polarisation}.tif", backscatter, geometry.epsg, ulx, uly, 10)


def _backscatter_db(codes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Sentinel-1 sigma0 in dB by land-cover family, with speckle."""
    level1 = codes // 100
    mean = np.select([level1 == 1, level1 == 3, level1 == 5], [-6.0, -9.0, -21.0], default=-13.0)
    return (mean + rng.normal(0, 1.5, size=codes.shape)).astype(np.float32)
