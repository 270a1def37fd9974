"""BigEarthNet v2 (reBEN) with pixel-level CORINE Land Cover masks, for segmentation.

Extends TorchGeo's ``BigEarthNetV2`` (which reads the release layout and the official splits) with
what the seed's CLC model needs: a ``taxonomy`` (CLC level 3, 2 or 1, or BigEarthNet-19) applied to the
reference maps, unlabeled / no-data pixels mapped to an ignore index (TorchGeo leaves unmapped CLC codes
in the mask), and a choice of Sentinel-2 ``bands`` (default the seed's four 10 m bands), with 20 m and
60 m bands resampled to the 120 x 120 grid.

``source`` picks where the patches are read: ``geotiff`` (the release's folders, 13 files per sample) or
``lmdb`` (the same release packed by ``earthsignature data pack`` into reBEN's LMDB format, one read per
sample); both give bit-identical samples.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import rasterio
import torch
from torch import Tensor
from torchgeo.datasets import BigEarthNetV2, DatasetNotFoundError

from earthsignature.core.classes import Nomenclature
from earthsignature.core.nomenclature import get_nomenclature
from earthsignature.core.sentinel2 import L2A_BANDS, RGBN_BANDS
from earthsignature.data.reben_lmdb import LMDB_FOLDER, REFERENCE_MAP, PackedPatches, image, patch_dir

IGNORE_INDEX = 255
SOURCES = ("geotiff", "lmdb")
TAXONOMIES = {"clc_level3": "clc_level3", "clc_level2": "clc_level2", "clc_level1": "clc_level1",
              "bigearthnet19": "bigearthnet19"}


class BigEarthNetV2Segmentation(BigEarthNetV2):
    """Samples ``{"image": float32 [bands, 120, 120] digital numbers, "mask": int64 [120, 120]}``."""

    def __init__(
        self,
        root: str | Path = "data",
        split: str = "train",
        taxonomy: str = "clc_level3",
        bands: Sequence[str] = RGBN_BANDS,
        ignore_index: int = IGNORE_INDEX,
        transforms: Callable[[dict[str, Tensor]], dict[str, Tensor]] | None = None,
        source: str = "geotiff",
    ) -> None:
        if source not in SOURCES:
            raise ValueError(f"source must be one of {SOURCES}, not {source!r}")
        self.source = source
        self.packed = PackedPatches(Path(root) / LMDB_FOLDER) if source == "lmdb" else None
        if taxonomy not in TAXONOMIES:
            raise ValueError(f"taxonomy must be one of {sorted(TAXONOMIES)}, not {taxonomy!r}")
        unknown = [b for b in bands if b not in L2A_BANDS]
        if unknown:
            raise ValueError(f"BigEarthNet v2 has no band {unknown}; its bands are {', '.join(L2A_BANDS)}")
        self.taxonomy: Nomenclature = get_nomenclature(TAXONOMIES[taxonomy])
        self.band_names = tuple(bands)
        self.ignore_index = ignore_index
        self._lut = torch.from_numpy(self.taxonomy.clc_lut(ignore_index))
        super().__init__(root=str(root), split=split, bands="s2", transforms=transforms)
        self.num_classes = len(self.taxonomy)

    def _verify(self) -> None:
        """Only what segmentation reads must exist: S2 patches and reference maps (or their pack), metadata."""
        needed = [self.dir_file_names["metadata"]]
        needed += [LMDB_FOLDER] if self.source == "lmdb" else [self.dir_file_names[k] for k in ("s2", "maps")]
        missing = [n for n in needed if not os.path.exists(os.path.join(self.root, n))]
        if missing:
            raise DatasetNotFoundError(self) from FileNotFoundError(
                f"{self.root} lacks {', '.join(missing)} (see the README for the BigEarthNet v2 layout)")

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        if self.packed is not None:
            sample = self._load_packed(index)
        else:
            sample = {"image": self._load_image(index, "s2"), "mask": self._load_map(index)}
        if self.transforms is not None:
            sample = self.transforms(sample)
        return sample

    def _load_image(self, index: int, sensor: str) -> Tensor:
        patch_id = str(self.metadata_df.loc[index, "patch_id"])
        folder = patch_dir(Path(self.root) / self.dir_file_names["s2"], patch_id)
        bands = []
        for band_name in self.band_names:
            with rasterio.open(folder / f"{patch_id}_{band_name}.tif") as dataset:
                bands.append(dataset.read(1))
        return image(dict(zip(self.band_names, bands, strict=True)), self.band_names)

    def _load_map(self, index: int) -> Tensor:
        patch_id = str(self.metadata_df.loc[index, "patch_id"])
        path = patch_dir(Path(self.root) / self.dir_file_names["maps"], patch_id) / f"{patch_id}_reference_map.tif"
        with rasterio.open(path) as dataset:
            return self._classes(dataset.read(1), str(path))

    def _load_packed(self, index: int) -> dict[str, Tensor]:
        patch_id = str(self.metadata_df.loc[index, "patch_id"])
        record = self.packed[patch_id]
        if REFERENCE_MAP not in record:
            raise ValueError(f"{patch_id} in {self.packed.folder} has no {REFERENCE_MAP} (a pack without maps, "
                             "such as ConfigILM's): pack the release with `earthsignature data pack`")
        return {"image": image(record, self.band_names),
                "mask": self._classes(record[REFERENCE_MAP], f"{self.packed.folder}:{patch_id}")}

    def _classes(self, codes: np.ndarray, where: str) -> Tensor:
        codes = torch.from_numpy(codes.astype(np.int64))
        if codes.max() >= len(self._lut):
            raise ValueError(f"{where}: value {int(codes.max())} is not a CLC code")
        return self._lut[codes]
