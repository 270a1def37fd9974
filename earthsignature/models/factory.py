"""Build a segmentation network from its config: the seed's UNet, or a segmentation-models-pytorch
architecture (the backbones TorchGeo's trainers use) as an alternative."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import nn

from earthsignature.core.settings import SmpUNetSettings, UNetSettings
from earthsignature.models.unet import UNet


def build_model(config: Mapping[str, Any], in_channels: int, num_classes: int) -> nn.Module:
    """``config.name``: ``unet`` (``UNetSettings``) or ``smp`` (``SmpUNetSettings``); missing keys take
    the settings' defaults (checkpoints store the config they were trained with)."""
    name = config.get("name", UNetSettings.name)
    if name == UNetSettings.name:
        unet = UNetSettings(**config)
        return UNet(in_channels, num_classes, int(unet.base_width), int(unet.depth))
    if name == SmpUNetSettings.name:
        import segmentation_models_pytorch as smp

        # encoder_weights stays None by default: pretrained weights would be downloaded at run time.
        settings = SmpUNetSettings(**config)
        return smp.create_model(settings.arch, encoder_name=settings.encoder_name,
                                encoder_weights=settings.encoder_weights, in_channels=in_channels,
                                classes=num_classes)
    raise ValueError(f"unknown model {name!r}; choose 'unet' or 'smp'")
