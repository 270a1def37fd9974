"""The seed's augmentations, applied to image and mask together (D3.2, 2.2.1).

Left-right flip, up-down flip and a rotation by a uniform angle in [-180, 180] degrees, each with
probability 0.5. Images are resampled bilinearly, masks by nearest neighbour, and the corners that a
rotation brings in from outside the patch are set to the ignore index in the mask (and 0, the mean after
normalisation, in the image) so they never count in the loss.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torchvision.transforms.v2 import InterpolationMode
from torchvision.transforms.v2 import functional as F


class JointAugmentation:
    def __init__(self, p_hflip: float = 0.5, p_vflip: float = 0.5, p_rotate: float = 0.5,
                 max_degrees: float = 180.0, ignore_index: int = 255,
                 generator: torch.Generator | None = None):
        self.p_hflip, self.p_vflip, self.p_rotate = p_hflip, p_vflip, p_rotate
        self.max_degrees, self.ignore_index, self.generator = max_degrees, ignore_index, generator

    def _draw(self) -> float:
        return float(torch.rand(1, generator=self.generator))

    def __call__(self, sample: dict[str, Tensor]) -> dict[str, Tensor]:
        image, mask = sample["image"], sample["mask"]
        if self._draw() < self.p_hflip:
            image, mask = image.flip(-1), mask.flip(-1)
        if self._draw() < self.p_vflip:
            image, mask = image.flip(-2), mask.flip(-2)
        if self._draw() < self.p_rotate:
            angle = (2 * self._draw() - 1) * self.max_degrees
            image, mask = rotate(image, mask, angle, self.ignore_index)
        return {**sample, "image": image, "mask": mask}


def rotate(image: Tensor, mask: Tensor, angle: float, ignore_index: int) -> tuple[Tensor, Tensor]:
    """Rotate counter-clockwise by ``angle`` degrees about the centre, keeping the size."""
    rotated_image = F.rotate(image, angle, interpolation=InterpolationMode.BILINEAR, fill=0.0)
    rotated_mask = F.rotate(mask.unsqueeze(0), angle, interpolation=InterpolationMode.NEAREST,
                            fill=float(ignore_index)).squeeze(0)
    return rotated_image, rotated_mask
