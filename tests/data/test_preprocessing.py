"""The seed's normalization and joint augmentations."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from earthsignature.core.normalization import NormalizationStats
from earthsignature.data.augmentation import JointAugmentation, rotate
from earthsignature.data.normalization import cached_stats, compute_stats, normalize_tensor


def test_stats_by_hand() -> None:
    images = [torch.tensor([[[0.0, 10.0]], [[20.0, 30.0]]]), torch.tensor([[[40.0, 50.0]], [[60.0, 100.0]]])]
    stats = compute_stats(images, ["B02", "B03"])
    assert (stats.minimum, stats.maximum) == (0.0, 100.0)
    # band means of the raw values: 25 and 52.5 -> scaled 0.25 and 0.525
    assert stats.mean == pytest.approx((0.25, 0.525))
    normalised = normalize_tensor(stats, images[1])
    assert normalised[:, 0, 0].tolist() == pytest.approx([0.4 - 0.25, 0.6 - 0.525])
    batch = normalize_tensor(stats, torch.stack(images))
    assert batch.shape == (2, 2, 1, 2) and torch.allclose(batch[1], normalised)


def test_stats_cache_is_reused_and_invalidated_by_bands(tmp_path: Path) -> None:
    path = tmp_path / "stats.json"
    images = [torch.full((1, 2, 2), 5.0), torch.full((1, 2, 2), 15.0)]
    first = cached_stats(path, images, ["B02"])
    assert json.loads(path.read_text())["maximum"] == 15.0
    again = cached_stats(path, iter(()), ["B02"])  # no images needed: read from the cache
    assert again == first
    with pytest.raises(ValueError, match="empty training split"):
        cached_stats(path, iter(()), ["B03"])  # other bands: must recompute
    with pytest.raises(ValueError, match="must exceed"):
        NormalizationStats(("B02",), 1.0, 1.0, (0.0,))


def _interior(mask: torch.Tensor) -> torch.Tensor:
    """Pixels whose 3 x 3 neighbourhood holds one value: away from class borders, bilinear (image)
    and nearest (mask) resampling must agree exactly."""
    # outside the patch counts as another value: bilinear samples there blend in the fill
    x = torch.nn.functional.pad(mask.float()[None, None], (1, 1, 1, 1), value=-1.0)
    high = torch.nn.functional.max_pool2d(x, 3, stride=1)
    low = -torch.nn.functional.max_pool2d(-x, 3, stride=1)
    return (high == low)[0, 0]


def test_rotation_keeps_image_and_mask_aligned() -> None:
    mask = torch.zeros(32, 32, dtype=torch.int64)
    mask[4:12, 6:26] = 3
    mask[20:28, 10:16] = 7
    image = mask.float().unsqueeze(0)
    rotated_image, rotated_mask = rotate(image, mask, 90.0, ignore_index=255)
    assert torch.equal(rotated_mask, torch.rot90(mask, 1, dims=(0, 1)))  # 90 deg counter-clockwise
    assert torch.equal(rotated_image[0], torch.rot90(image[0], 1, dims=(0, 1)))
    image_30, mask_30 = rotate(image, mask, 30.0, ignore_index=255)
    assert mask_30[0, 0] == 255 and mask_30[31, 31] == 255  # corners rotated in from outside
    interior = _interior(mask_30) & (mask_30 != 255)
    assert interior.sum() > 500
    assert torch.equal(image_30[0][interior].round(), mask_30[interior].float())


def test_joint_augmentation_applies_the_same_transform() -> None:
    generator = torch.Generator().manual_seed(0)
    augment = JointAugmentation(generator=generator, ignore_index=255)
    mask = (torch.arange(4).repeat_interleave(8)[:, None] * 4 + torch.arange(4).repeat_interleave(8)) % 7
    seen_flip = seen_rotation = False
    for _ in range(30):
        out = augment({"image": mask.float().unsqueeze(0), "mask": mask})
        valid = out["mask"] != 255
        seen_rotation |= bool((~valid).any())
        seen_flip |= not torch.equal(out["mask"], mask) and bool(valid.all())
        interior = _interior(out["mask"]) & valid
        assert torch.equal(out["image"][0][interior].round(), out["mask"][interior].float())
    assert seen_flip and seen_rotation


def test_augmentation_probabilities_zero_is_identity() -> None:
    augment = JointAugmentation(p_hflip=0, p_vflip=0, p_rotate=0)
    sample = {"image": torch.rand(4, 8, 8), "mask": torch.randint(0, 3, (8, 8))}
    out = augment(sample)
    assert torch.equal(out["image"], sample["image"]) and torch.equal(out["mask"], sample["mask"])
