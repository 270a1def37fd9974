"""Build a segmentation network from its config: the seed's UNet, or a segmentation-models-pytorch
architecture (the backbones TorchGeo's trainers use) as an alternative."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import nn

from earthsignature.models.unet import UNet


def build_model(config: Mapping[str, Any], in_channels: int, num_classes: int) -> nn.Module:
    """``config.name``: ``unet`` (``base_width``, ``depth``) or ``smp`` (``arch``, ``encoder_name``)."""
    name = config.get("name", "unet")
    if name == "unet":
        return UNet(in_channels, num_classes, int(config.get("base_width", 64)), int(config.get("depth", 4)))
    if name == "smp":
        import segmentation_models_pytorch as smp

        # encoder_weights stays None by default: pretrained weights would be downloaded at run time.
        return smp.create_model(str(config.get("arch", "Unet")), encoder_name=str(config.get("encoder_name",
                                "resnet18")), encoder_weights=config.get("encoder_weights"),
                                in_channels=in_channels, classes=num_classes)
    raise ValueError(f"unknown model {name!r}; choose 'unet' or 'smp'")
