"""The seed's input preprocessing: min-max scaling, then channel-wise mean-centering (D3.2, 2.2.1).

Statistics come from the training split: the global minimum and maximum digital number over every
band and pixel, and the per-channel mean of the min-max-scaled values. ``x' = (x - min) / (max - min)
- mean[c]``. They are computed once, cached as JSON next to the data, stored with every trained model
(checkpoint hyper-parameters, then the model manifest) and reused unchanged for evaluation,
fine-tuning and inference.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import Tensor

from earthsignature.core.manifest import scale_and_center


@dataclass(frozen=True)
class NormalizationStats:
    bands: tuple[str, ...]
    minimum: float
    maximum: float
    mean: tuple[float, ...]  # per band, of min-max-scaled values

    def __post_init__(self) -> None:
        if self.maximum <= self.minimum:
            raise ValueError(f"maximum {self.maximum} must exceed minimum {self.minimum}")
        if len(self.mean) != len(self.bands):
            raise ValueError(f"{len(self.mean)} means for {len(self.bands)} bands")

    def apply(self, image: Tensor) -> Tensor:
        """Normalise a [C, H, W] or [N, C, H, W] image of digital numbers."""
        mean = torch.tensor(self.mean, dtype=torch.float32, device=image.device).view(-1, 1, 1)
        return scale_and_center(image.float(), self.minimum, self.maximum, mean)

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, values: dict) -> NormalizationStats:
        return cls(tuple(values["bands"]), float(values["minimum"]), float(values["maximum"]),
                   tuple(float(m) for m in values["mean"]))


def compute_stats(images: Iterable[Tensor], bands: Sequence[str]) -> NormalizationStats:
    """One pass over [C, H, W] images: global min and max, per-channel sums."""
    minimum, maximum = float("inf"), float("-inf")
    sums = torch.zeros(len(bands), dtype=torch.float64)
    count = 0
    for image in images:
        if image.shape[0] != len(bands):
            raise ValueError(f"image has {image.shape[0]} channels, expected {len(bands)} ({bands})")
        minimum, maximum = min(minimum, float(image.min())), max(maximum, float(image.max()))
        sums += image.double().sum(dim=(1, 2))
        count += image.shape[1] * image.shape[2]
    if count == 0:
        raise ValueError("cannot compute normalization statistics from an empty training split")
    raw_mean = sums / count
    mean = ((raw_mean - minimum) / (maximum - minimum)).tolist()
    return NormalizationStats(tuple(bands), minimum, maximum, tuple(mean))


def cached_stats(path: Path, images: Iterable[Tensor], bands: Sequence[str]) -> NormalizationStats:
    """Statistics from ``path`` when it holds them for these bands, else computed and written there."""
    path = Path(path)
    if path.exists():
        stats = NormalizationStats.from_dict(json.loads(path.read_text()))
        if stats.bands == tuple(bands):
            return stats
    stats = compute_stats(images, bands)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(f".{os.getpid()}.partial")
    partial.write_text(json.dumps(stats.to_dict(), indent=1))
    partial.replace(path)  # atomic: concurrent workers never read half a file
    return stats


class Normalize:
    """Sample transform: normalise ``sample["image"]``."""

    def __init__(self, stats: NormalizationStats):
        self.stats = stats

    def __call__(self, sample: dict[str, Tensor]) -> dict[str, Tensor]:
        return {**sample, "image": self.stats.apply(sample["image"])}
