"""reBEN's LMDB format: packed samples bit-identical to the GeoTIFF release, and ConfigILM's real mock read."""

from __future__ import annotations

import sys
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from click.testing import CliRunner

from earthsignature.cli import main
from earthsignature.core.sentinel2 import L2A_BANDS
from earthsignature.data.bigearthnet import BigEarthNetV2Segmentation
from earthsignature.data.reben_lmdb import LMDB_FOLDER, REFERENCE_MAP, PackedPatches, image
from earthsignature.samples.bigearthnet_writer import write_bigearthnet_v2

#: Downloaded by `make setup` (the wheel's mock data are a small real BigEarthNet v2 LMDB).
CONFIGILM_WHEEL = Path(sys.prefix) / "reference" / "configilm-0.7.1-py3-none-any.whl"
MOCK = "configilm/extra/mock_data/BENv2/"


@pytest.fixture(scope="module")
def release(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("reben")
    write_bigearthnet_v2(root, patches_per_tile=2, seed=4)
    result = CliRunner().invoke(main, ["data", "pack", str(root)])
    assert result.exit_code == 0 and "records in" in result.output, result.output
    return root


@pytest.mark.parametrize("split", ["train", "val", "test"])
def test_packed_samples_are_bit_identical_to_the_geotiff_release(release, split) -> None:
    from_files = BigEarthNetV2Segmentation(release, split, bands=L2A_BANDS)
    from_pack = BigEarthNetV2Segmentation(release, split, bands=L2A_BANDS, source="lmdb")
    assert len(from_files) == len(from_pack) > 0
    for index in range(len(from_files)):
        expected, packed = from_files[index], from_pack[index]
        assert packed["image"].shape == (12, 120, 120) and packed["image"].dtype == torch.float32
        assert torch.equal(packed["image"], expected["image"]) and torch.equal(packed["mask"], expected["mask"])


def test_a_pack_has_reben_records(release) -> None:
    patches = PackedPatches(release / LMDB_FOLDER)
    metadata = pd.read_parquet(release / "metadata.parquet")
    keys = set(patches.keys())
    assert set(metadata["patch_id"]) | set(metadata["s1_name"]) == keys  # S2 and S1 records, by patch name
    record = patches[str(metadata["patch_id"].iloc[0])]
    shapes = {name: array.shape for name, array in record.items()}
    assert shapes["B02"] == (120, 120) and shapes["B05"] == (60, 60) and shapes["B01"] == (20, 20)
    assert record[REFERENCE_MAP].dtype == np.uint16 and record["B02"].dtype == np.uint16
    s1 = patches[str(metadata["s1_name"].iloc[0])]
    assert set(s1) == {"VV", "VH"} and s1["VV"].dtype == np.float32


def test_configilm_s_real_mock_reads(tmp_path) -> None:
    assert CONFIGILM_WHEEL.exists(), f"{CONFIGILM_WHEEL} is missing: run `make setup`"
    with zipfile.ZipFile(CONFIGILM_WHEEL) as wheel:
        for member in wheel.namelist():
            if member.startswith(MOCK) and not member.endswith("/"):
                wheel.extract(member, tmp_path)
    root = tmp_path / MOCK
    patches = PackedPatches(root / LMDB_FOLDER)
    metadata = pd.read_parquet(root / "metadata.parquet")
    keys = set(patches.keys())
    assert len(keys) == 48 and set(metadata["patch_id"]) <= keys and set(metadata["s1_name"]) <= keys
    for patch_id in metadata["patch_id"]:
        record = patches[patch_id]
        assert sorted(record) == sorted(L2A_BANDS)
        assert record["B8A"].shape == (60, 60) and record["B09"].shape == (20, 20)
        pixels = image(record, L2A_BANDS)
        assert pixels.shape == (12, 120, 120) and float(pixels[1].mean()) > 0  # real reflectances
    # the mock has no reference maps: the segmentation data set says how to get them
    dataset = BigEarthNetV2Segmentation(root, "train", bands=L2A_BANDS, source="lmdb")
    with pytest.raises(ValueError, match=r"has no reference_map .*`earthsignature data pack`"):
        dataset[0]


def test_pack_refuses_what_is_not_a_release(tmp_path) -> None:
    result = CliRunner().invoke(main, ["data", "pack", str(tmp_path)])
    assert result.exit_code == 1 and "is not a reBEN release" in result.output
    with pytest.raises(FileNotFoundError, match="earthsignature data pack"):
        PackedPatches(tmp_path / LMDB_FOLDER)
    with pytest.raises(ValueError, match="source must be one of"):
        BigEarthNetV2Segmentation(tmp_path, source="zarr")


def test_loader_workers_forked_after_a_read_open_their_own_environment(release) -> None:
    from torch.utils.data import DataLoader

    dataset = BigEarthNetV2Segmentation(release, "train", source="lmdb")
    first = dataset[0]  # the parent opens the environment before the workers fork
    batches = list(DataLoader(dataset, batch_size=4, num_workers=2))
    assert sum(len(b["image"]) for b in batches) == len(dataset)
    assert torch.equal(batches[0]["image"][0], first["image"])
