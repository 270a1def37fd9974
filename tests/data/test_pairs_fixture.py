"""Image/mask pair sets (HRL, Urban Atlas, burnt areas, pilot sets)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import rasterio
import yaml

from earthsignature.core.nomenclature import burnt_area, hrl, urban_atlas
from earthsignature.samples.pairs_writer import write_image_mask_pairs


@pytest.mark.parametrize(("nomenclature", "dtype", "nodata"), [
    (hrl, "uint8", 255), (urban_atlas, "uint16", 0), (burnt_area, "uint8", 255),
])
def test_pairs_layout_and_mask_codes(tmp_path: Path, nomenclature, dtype: str, nodata: int) -> None:
    target = nomenclature()
    splits = write_image_mask_pairs(tmp_path, target, n_samples=5, size=48, seed=2)
    assert list(splits["split"]) == ["train", "train", "validation", "test", "train"]
    assert pd.read_csv(tmp_path / "splits.csv").equals(splits)
    classes = yaml.safe_load((tmp_path / "classes.yaml").read_text())
    assert [c["code"] for c in classes["classes"]] == target.codes
    for sample_id in splits["sample_id"]:
        with rasterio.open(tmp_path / "images" / f"{sample_id}.tif") as image:
            assert image.count == 4 and image.descriptions == ("B02", "B03", "B04", "B08")
            pixels = image.read()
        with rasterio.open(tmp_path / "masks" / f"{sample_id}.tif") as mask:
            assert mask.dtypes[0] == dtype and mask.nodata == nodata
            assert mask.transform == image.transform and mask.crs == image.crs
            codes = mask.read(1)
        assert set(np.unique(codes)) <= set(target.codes) | {nodata}
        assert pixels.min() > 0


def test_burnt_scene_weights_put_burnt_pixels_in(tmp_path: Path) -> None:
    write_image_mask_pairs(tmp_path, burnt_area(), n_samples=2, size=64, codes=(312, 334),
                           weights=(0.5, 0.5))
    with rasterio.open(next((tmp_path / "masks").glob("*.tif"))) as mask:
        share = float((mask.read(1) == 1).mean())
    assert 0.2 < share < 0.8
