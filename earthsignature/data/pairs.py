"""Image/mask GeoTIFF pair datasets: HRL, Urban Atlas, burnt areas (the seed's CERTH set), pilot sets.

Layout: ``images/<id>.tif``, ``masks/<id>.tif``, ``splits.csv`` (sample_id, split) and, for pilot sets,
``classes.yaml`` (code, name, color per class). Masks hold the set's own class codes; the dataset turns
them into class indices of its nomenclature, with the mask's nodata value (and any unknown code) mapped
to the ignore index. HRL and Urban Atlas classes each cover CLC level-3 codes, so a CLC model is scored
on them directly by mapping its predictions through ``Nomenclature.clc_lut`` (see train/evaluate).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import rasterio
import torch
import yaml
from torch import Tensor
from torchgeo.datasets import NonGeoDataset

from earthsignature.core.classes import LandCoverClass, Nomenclature
from earthsignature.core.nomenclature import burnt_area, hrl, urban_atlas

IGNORE_INDEX = 255
SPLIT_NAMES = {"train": "train", "val": "validation", "validation": "validation", "test": "test"}


def load_classes_yaml(path: Path) -> Nomenclature:
    """A pilot nomenclature from ``classes.yaml``: ``{name, classes: [{code, name, color}]}``."""
    try:
        document = yaml.safe_load(Path(path).read_text())
        classes = tuple(
            LandCoverClass(int(c["code"]), str(c["name"]), tuple(int(v) for v in c["color"]), i)
            for i, c in enumerate(document["classes"])
        )
        return Nomenclature(str(document.get("name", Path(path).parent.name)), classes)
    except (OSError, KeyError, TypeError, ValueError, yaml.YAMLError) as error:
        raise ValueError(f"{path}: not a classes file ({error}); expected name + classes[code, name, color]"
                         ) from error


class ImageMaskPairs(NonGeoDataset):
    """Samples ``{"image": float32 [bands, H, W] digital numbers, "mask": int64 [H, W]}``."""

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        nomenclature: Nomenclature | None = None,
        bands: Sequence[str] | None = None,
        ignore_index: int = IGNORE_INDEX,
        transforms: Callable[[dict[str, Tensor]], dict[str, Tensor]] | None = None,
    ) -> None:
        self.root = Path(root)
        if split not in SPLIT_NAMES:
            raise ValueError(f"split must be one of {sorted(SPLIT_NAMES)}, not {split!r}")
        splits_file = self.root / "splits.csv"
        if not splits_file.exists():
            raise FileNotFoundError(f"{self.root}: no splits.csv (expected images/, masks/, splits.csv)")
        self.nomenclature = nomenclature or load_classes_yaml(self.root / "classes.yaml")
        table = pd.read_csv(splits_file, dtype={"sample_id": str})
        self.sample_ids = table.loc[table["split"] == SPLIT_NAMES[split], "sample_id"].tolist()
        self.split, self.ignore_index, self.transforms = split, ignore_index, transforms
        self.band_names = tuple(bands) if bands else None
        self.num_classes = len(self.nomenclature)
        self._code_to_index = {cls.code: cls.index for cls in self.nomenclature}

    def __len__(self) -> int:
        return len(self.sample_ids)

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        sample_id = self.sample_ids[index]
        sample = {"image": self._load_image(sample_id), "mask": self._load_mask(sample_id)}
        if self.transforms is not None:
            sample = self.transforms(sample)
        return sample

    def _load_image(self, sample_id: str) -> Tensor:
        with rasterio.open(self.root / "images" / f"{sample_id}.tif") as dataset:
            indexes = list(range(1, dataset.count + 1))
            if self.band_names:
                missing = [b for b in self.band_names if b not in dataset.descriptions]
                if missing:
                    raise ValueError(f"{dataset.name} has no band {missing}; it has {dataset.descriptions}")
                indexes = [dataset.descriptions.index(b) + 1 for b in self.band_names]
            return torch.from_numpy(dataset.read(indexes, out_dtype="float32"))

    def _load_mask(self, sample_id: str) -> Tensor:
        with rasterio.open(self.root / "masks" / f"{sample_id}.tif") as dataset:
            codes = dataset.read(1).astype(np.int64)
        indices = np.full(codes.shape, self.ignore_index, dtype=np.int64)
        for code, index in self._code_to_index.items():
            indices[codes == code] = index
        return torch.from_numpy(indices)


class HRLDataset(ImageMaskPairs):
    """Copernicus High Resolution Layers evaluation set (4 classes)."""

    def __init__(self, root: str | Path, split: str = "test", **kwargs) -> None:
        super().__init__(root, split, nomenclature=hrl(), **kwargs)


class UrbanAtlasDataset(ImageMaskPairs):
    """Copernicus Urban Atlas evaluation set (19 classes)."""

    def __init__(self, root: str | Path, split: str = "test", **kwargs) -> None:
        super().__init__(root, split, nomenclature=urban_atlas(), **kwargs)


class BurntAreaDataset(ImageMaskPairs):
    """Binary burnt-area set (the seed's CERTH set): 0 not burnt, 1 burnt."""

    def __init__(self, root: str | Path, split: str = "train", **kwargs) -> None:
        super().__init__(root, split, nomenclature=burnt_area(), **kwargs)
