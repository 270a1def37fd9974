"""The BigEarthNet v2 writer produces the release layout that TorchGeo's BigEarthNetV2 reads."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import rasterio

from earthsignature.core.nomenclature import CLC_NODATA_CODE, bigearthnet19, clc_level3
from earthsignature.samples.bigearthnet_writer import write_bigearthnet_v2

torchgeo_datasets = pytest.importorskip("torchgeo.datasets")


@pytest.fixture(scope="module")
def ben_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("bigearthnet")
    write_bigearthnet_v2(root, patches_per_tile=4, seed=1, nodata_share=0.5)
    return root


def test_release_layout(ben_root: Path) -> None:
    metadata = pd.read_parquet(ben_root / "metadata.parquet")
    assert list(metadata.columns) == ["patch_id", "labels", "split", "country", "s1_name",
                                      "contains_seasonal_snow", "contains_cloud_or_shadow"]
    assert set(metadata["split"]) == {"train", "validation", "test"}
    patch_id = metadata["patch_id"][0]
    assert patch_id == "S2A_MSIL2A_20170613T101031_N9999_R022_T33UUP_0_0"
    tile_folder = "S2A_MSIL2A_20170613T101031_N9999_R022_T33UUP"
    patch_dir = ben_root / "BigEarthNet-S2" / tile_folder / patch_id
    assert sorted(p.name.split("_")[-1] for p in patch_dir.glob("*.tif")) == sorted(
        f"{b}.tif" for b in ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09",
                             "B11", "B12"))
    sizes = {"B02": 120, "B05": 60, "B01": 20}
    for band_name, size in sizes.items():
        with rasterio.open(patch_dir / f"{patch_id}_{band_name}.tif") as dataset:
            assert dataset.shape == (size, size) and dataset.dtypes[0] == "uint16"
            assert dataset.crs.to_epsg() == 32633
    s1_name = metadata["s1_name"][0]
    assert (ben_root / "BigEarthNet-S1" / "S1A_IW_GRDH_1SDV_20170613T165043" / s1_name
            / f"{s1_name}_VV.tif").exists()


def test_reference_maps_hold_clc_codes_and_labels_agree(ben_root: Path) -> None:
    metadata = pd.read_parquet(ben_root / "metadata.parquet")
    valid = set(clc_level3().codes) | {CLC_NODATA_CODE}
    lut = bigearthnet19().clc_lut(ignore_index=-1)
    saw_nodata = False
    for row in metadata.itertuples():
        folder = "_".join(row.patch_id.split("_")[:-2])
        path = ben_root / "Reference_Maps" / folder / row.patch_id / f"{row.patch_id}_reference_map.tif"
        with rasterio.open(path) as dataset:
            codes = dataset.read(1)
        assert set(np.unique(codes)) <= valid
        saw_nodata |= bool((codes == CLC_NODATA_CODE).any())
        present = sorted(bigearthnet19().by_index(i).name for i in set(lut[codes].ravel()) - {-1})
        assert sorted(row.labels) == present
    assert saw_nodata


@pytest.mark.parametrize("split", ["train", "val", "test"])
def test_torchgeo_bigearthnetv2_loads_the_folder(ben_root: Path, split: str) -> None:
    dataset = torchgeo_datasets.BigEarthNetV2(str(ben_root), split=split, bands="s2")
    expected = {"train": 6, "val": 3, "test": 3}[split]
    assert len(dataset) == expected
    sample = dataset[0]
    assert sample["image"].shape == (12, 120, 120)
    assert sample["mask"].shape == (1, 120, 120)
    assert sample["label"].shape == (19,) and int(sample["label"].sum()) > 0
    # TorchGeo maps the 32 BigEarthNet CLC codes to 0..18 and leaves the rest as raw codes
    values = set(sample["mask"].unique().tolist())
    assert values & set(range(19))
    assert values - set(range(19)) <= set(clc_level3().codes) | {CLC_NODATA_CODE}


def test_torchgeo_reads_s1_too(ben_root: Path) -> None:
    sample = torchgeo_datasets.BigEarthNetV2(str(ben_root), split="train", bands="all")[0]
    assert sample["image_s1"].shape == (2, 120, 120) and sample["image_s2"].shape == (12, 120, 120)
    assert float(sample["image_s1"][0].mean()) < 0  # backscatter in dB
