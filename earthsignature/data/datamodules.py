"""LightningDataModules with the seed's preprocessing, one per data set family.

Each one builds its train / validation / test datasets, computes the normalization statistics on the
training split once (cached as JSON next to the data) unless a model's statistics are given (evaluation
and fine-tuning reuse the pre-trained model's), normalises every split, and augments the training split
with the joint flips and rotation. They read data sets, real or synthetic alike, and never write one: the
smoke experiments' synthetic sets (a data config's ``fixture``) are written by the entry points first
(``embedded.fixtures``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from lightning import LightningDataModule
from torch import Tensor
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms.v2 import Compose

from earthsignature.core.classes import Nomenclature
from earthsignature.core.nomenclature import get_nomenclature
from earthsignature.core.normalization import NormalizationStats
from earthsignature.core.sentinel2 import RGBN_BANDS
from earthsignature.data.augmentation import JointAugmentation
from earthsignature.data.bigearthnet import BigEarthNetV2Segmentation
from earthsignature.data.normalization import Normalize, cached_stats
from earthsignature.data.pairs import ImageMaskPairs, load_classes_yaml

Transform = Callable[[dict[str, Tensor]], dict[str, Tensor]]


class SegmentationDataModule(LightningDataModule):
    def __init__(
        self,
        root: str | Path,
        bands: Sequence[str] = RGBN_BANDS,
        batch_size: int = 128,
        num_workers: int = 0,
        augment: bool = True,
        ignore_index: int = 255,
        stats: NormalizationStats | Mapping[str, Any] | None = None,
        stats_file: str | Path | None = None,
    ) -> None:
        super().__init__()
        self.root = Path(root)
        self.bands = tuple(bands)
        self.batch_size, self.num_workers = batch_size, num_workers
        self.augment, self.ignore_index = augment, ignore_index
        if isinstance(stats, Mapping):
            stats = NormalizationStats.from_dict(dict(stats))
        if stats is not None and stats.bands != self.bands:
            raise ValueError(f"the model was trained on bands {stats.bands}, the data asks for {self.bands}")
        self.stats = stats
        self.stats_file = Path(stats_file) if stats_file else self.root / (
            f"earthsignature-stats-{'-'.join(self.bands)}.json")
        self.datasets: dict[str, Dataset] = {}

    # -- what a family defines ----------------------------------------------------------------------

    def dataset(self, split: str, transforms: Transform | None) -> Dataset:
        raise NotImplementedError

    @property
    def nomenclature(self) -> Nomenclature:
        raise NotImplementedError

    # -- shared machinery ---------------------------------------------------------------------------

    def prepare_data(self) -> None:
        """Check the data set is there (it is read, never written here)."""
        if not self.root.exists():
            raise FileNotFoundError(
                f"no data set at {self.root}: set data.root to one (README: Pointing the datasets at real data); "
                "a smoke experiment's synthetic set is written by `earthsignature train`, `finetune` and `evaluate`")

    def setup(self, stage: str | None = None) -> None:
        if self.stats is None:
            raw_train = self.dataset("train", None)
            self.stats = cached_stats(self.stats_file, (raw_train[i]["image"] for i in range(len(raw_train))),
                                      self.bands)
        normalize = Normalize(self.stats)
        train_transforms = normalize
        if self.augment:
            train_transforms = Compose([normalize, JointAugmentation(ignore_index=self.ignore_index)])
        self.datasets = {"train": self.dataset("train", train_transforms),
                         "val": self.dataset("val", normalize), "test": self.dataset("test", normalize)}

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        return DataLoader(self.datasets[split], batch_size=self.batch_size, shuffle=shuffle,
                          num_workers=self.num_workers, persistent_workers=self.num_workers > 0)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)


class BigEarthNetDataModule(SegmentationDataModule):
    """BigEarthNet v2 with CLC masks (the seed's CLC data set)."""

    def __init__(self, root: str | Path, taxonomy: str = "clc_level3", source: str = "geotiff", **kwargs: Any) -> None:
        super().__init__(root, **kwargs)
        self.taxonomy, self.source = taxonomy, source

    @property
    def nomenclature(self) -> Nomenclature:
        return get_nomenclature(self.taxonomy)

    def dataset(self, split: str, transforms: Transform | None) -> Dataset:
        return BigEarthNetV2Segmentation(self.root, split, self.taxonomy, self.bands, self.ignore_index,
                                         transforms, self.source)


PAIR_KINDS = ("hrl", "urban_atlas", "burnt_area", "crops", "pilot")


class PairsDataModule(SegmentationDataModule):
    """Image/mask pair sets: ``kind`` is one of PAIR_KINDS (pilot: its own classes.yaml)."""

    def __init__(self, root: str | Path, kind: str = "pilot", **kwargs: Any) -> None:
        super().__init__(root, **kwargs)
        if kind not in PAIR_KINDS:
            raise ValueError(f"kind must be one of {', '.join(PAIR_KINDS)}, not {kind!r}")
        self.kind = kind

    @property
    def nomenclature(self) -> Nomenclature:
        if self.kind == "pilot":
            return load_classes_yaml(self.root / "classes.yaml")
        return get_nomenclature(self.kind)

    def dataset(self, split: str, transforms: Transform | None) -> Dataset:
        return ImageMaskPairs(self.root, split, self.nomenclature, self.bands, self.ignore_index, transforms)
