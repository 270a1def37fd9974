"""Training datasets on written fixtures: shapes, dtypes, class mapping, splits, ignore index."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
import yaml

from earthsignature.core.nomenclature import bigearthnet19, burnt_area, clc_level3, get_nomenclature, hrl
from earthsignature.data.bigearthnet import BigEarthNetV2Segmentation
from earthsignature.data.pairs import BurntAreaDataset, HRLDataset, ImageMaskPairs, UrbanAtlasDataset
from earthsignature.samples.bigearthnet_writer import write_bigearthnet_v2
from earthsignature.samples.pairs_writer import write_image_mask_pairs


@pytest.fixture(scope="module")
def ben_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("ben")
    write_bigearthnet_v2(root, patches_per_tile=4, seed=3, nodata_share=1.0, with_s1=False)
    return root


def _reference(root: Path, patch_id: str) -> np.ndarray:
    folder = "_".join(patch_id.split("_")[:-2])
    with rasterio.open(root / "Reference_Maps" / folder / patch_id / f"{patch_id}_reference_map.tif") as ds:
        return ds.read(1)


def test_bigearthnet_clc_level3_sample(ben_root: Path) -> None:
    dataset = BigEarthNetV2Segmentation(ben_root, split="train")
    assert len(dataset) == 6 and dataset.num_classes == 44
    sample = dataset[0]
    assert sample["image"].shape == (4, 120, 120) and sample["image"].dtype == torch.float32
    assert sample["mask"].shape == (120, 120) and sample["mask"].dtype == torch.int64
    codes = _reference(ben_root, dataset.metadata_df.loc[0, "patch_id"])
    expected = clc_level3().clc_lut(255)[codes]
    assert np.array_equal(sample["mask"].numpy(), expected)
    assert (sample["mask"][codes == 999] == 255).all() and (codes == 999).any()


@pytest.mark.parametrize(("taxonomy", "classes"),
                         [("clc_level2", 15), ("clc_level1", 5), ("bigearthnet19", 19)])
def test_bigearthnet_taxonomies(ben_root: Path, taxonomy: str, classes: int) -> None:
    dataset = BigEarthNetV2Segmentation(ben_root, split="val", taxonomy=taxonomy)
    mask = dataset[0]["mask"]
    codes = _reference(ben_root, dataset.metadata_df.loc[0, "patch_id"])
    assert dataset.num_classes == classes
    assert np.array_equal(mask.numpy(), get_nomenclature(taxonomy).clc_lut(255)[codes])
    if taxonomy == "bigearthnet19":  # roads, mines... are not BigEarthNet-19 classes: ignored
        dropped = np.isin(codes, [122, 123, 124, 131, 132, 133, 141, 142, 332, 334, 335, 423])
        assert (mask.numpy()[dropped] == 255).all()
    assert set(mask.unique().tolist()) <= set(range(classes)) | {255}


def test_bigearthnet_bands_are_resampled_and_ordered(ben_root: Path) -> None:
    dataset = BigEarthNetV2Segmentation(ben_root, split="test", bands=["B8A", "B01", "B02"])
    image = dataset[0]["image"]
    assert image.shape == (3, 120, 120)
    patch_id = dataset.metadata_df.loc[0, "patch_id"]
    folder = ben_root / "BigEarthNet-S2" / "_".join(patch_id.split("_")[:-2]) / patch_id
    with rasterio.open(folder / f"{patch_id}_B02.tif") as ds:
        assert np.array_equal(image[2].numpy(), ds.read(1).astype(np.float32))
    with rasterio.open(folder / f"{patch_id}_B01.tif") as ds:  # 20 x 20 at 60 m
        assert image[1].mean() == pytest.approx(float(ds.read(1).mean()), rel=0.02)


def test_bigearthnet_splits_and_errors(ben_root: Path, tmp_path: Path) -> None:
    sizes = {s: len(BigEarthNetV2Segmentation(ben_root, split=s)) for s in ("train", "val", "test")}
    assert sizes == {"train": 6, "val": 3, "test": 3}
    with pytest.raises(ValueError, match="taxonomy must be one of"):
        BigEarthNetV2Segmentation(ben_root, taxonomy="clc_level4")
    with pytest.raises(ValueError, match="has no band"):
        BigEarthNetV2Segmentation(ben_root, bands=["B10"])
    from torchgeo.datasets import DatasetNotFoundError

    with pytest.raises(DatasetNotFoundError):
        BigEarthNetV2Segmentation(tmp_path)


def test_hrl_and_urban_atlas_masks_become_class_indices(tmp_path: Path) -> None:
    write_image_mask_pairs(tmp_path / "hrl", hrl(), n_samples=4, size=32, seed=1,
                           codes=(111, 312, 231, 512, 334))  # 334 burnt: no HRL class -> nodata
    dataset = HRLDataset(tmp_path / "hrl", split="test")
    assert len(dataset) == 1
    sample = dataset[0]
    with rasterio.open(tmp_path / "hrl" / "masks" / f"{dataset.sample_ids[0]}.tif") as ds:
        codes = ds.read(1)
    assert np.array_equal(sample["mask"].numpy(), np.where(codes == 255, 255, codes.astype(np.int64) - 1))
    write_image_mask_pairs(tmp_path / "ua", get_nomenclature("urban_atlas"), n_samples=4, size=32)
    ua = UrbanAtlasDataset(tmp_path / "ua", split="train")
    assert len(ua) == 2 and int(ua[0]["mask"].max()) < 19


def test_burnt_and_pilot_sets(tmp_path: Path) -> None:
    write_image_mask_pairs(tmp_path / "burnt", burnt_area(), n_samples=4, size=32, codes=(312, 334))
    mask = BurntAreaDataset(tmp_path / "burnt")[0]["mask"]
    assert set(mask.unique().tolist()) <= {0, 1}
    # a pilot set: its own classes.yaml, any codes
    pilot = tmp_path / "crops"
    write_image_mask_pairs(pilot, burnt_area(), n_samples=4, size=32, codes=(312, 334))
    classes = [{"code": 0, "name": "Other", "color": [0, 0, 0]},
               {"code": 1, "name": "Maize", "color": [250, 200, 0]}]
    (pilot / "classes.yaml").write_text(yaml.safe_dump({"name": "crops", "classes": classes}))
    dataset = ImageMaskPairs(pilot, split="val", bands=["B08", "B02"])
    assert dataset.nomenclature.names == ["Other", "Maize"]
    assert dataset[0]["image"].shape == (2, 32, 32)
    with pytest.raises(ValueError, match="has no band"):
        ImageMaskPairs(pilot, bands=["B11"])[0]
    with pytest.raises(ValueError, match="split must be one of"):
        ImageMaskPairs(pilot, split="holdout")
    (pilot / "classes.yaml").write_text("classes: [{code: 1}]")
    with pytest.raises(ValueError, match="not a classes file"):
        ImageMaskPairs(pilot)


def test_bigearthnet19_fixture_labels_match_masks(ben_root: Path) -> None:
    dataset = BigEarthNetV2Segmentation(ben_root, split="train", taxonomy="bigearthnet19")
    row = dataset.metadata_df.loc[0]
    present = {bigearthnet19().by_index(i).name for i in dataset[0]["mask"].unique().tolist() if i != 255}
    assert present == set(row["labels"])
