"""The seed's input preprocessing on the training side: statistics computed, cached, applied to tensors.

The record (``core.normalization.NormalizationStats``) is the one the model manifest carries. Statistics
come from the training split: the global minimum and maximum digital number over every band and pixel,
and the per-channel mean of the min-max-scaled values. They are computed once, cached as JSON next to the
data, stored with every trained model (checkpoint hyper-parameters, then the model manifest) and reused
unchanged for evaluation, fine-tuning and inference.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import torch
from torch import Tensor

from earthsignature.core.normalization import NormalizationStats, scale_and_center


def normalize_tensor(stats: NormalizationStats, image: Tensor) -> Tensor:
    """Normalise a [C, H, W] or [N, C, H, W] tensor of digital numbers: the float32 operations of
    ``NormalizationStats.apply`` (the model service's), in the same order."""
    mean = torch.tensor(stats.mean, dtype=torch.float32, device=image.device).view(-1, 1, 1)
    return scale_and_center(image.float(), stats.minimum, stats.maximum, mean)


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
        return {**sample, "image": normalize_tensor(self.stats, sample["image"])}
