"""Adapting a trained segmentation model to a pilot task (D3.2, section 2.2.1).

The seed freezes the pre-trained network, replaces its final 1x1 classification layer with a randomly
initialised one for the pilot's classes and trains only that; full fine-tuning (every layer trainable)
is the option it anticipates for larger pilot data sets.
"""

from __future__ import annotations

from torch import nn


def head_of(model: nn.Module) -> nn.Conv2d:
    """The final classification layer: ``model.head`` (our UNet) or ``segmentation_head[0]`` (smp)."""
    if isinstance(getattr(model, "head", None), nn.Conv2d):
        return model.head
    segmentation_head = getattr(model, "segmentation_head", None)
    if segmentation_head is not None and isinstance(segmentation_head[0], nn.Conv2d):
        return segmentation_head[0]
    raise TypeError(f"{type(model).__name__} has no recognised classification head")


def replace_head(model: nn.Module, num_classes: int) -> nn.Conv2d:
    """Swap the classification layer for a new, randomly initialised one with ``num_classes`` outputs."""
    old = head_of(model)
    new = nn.Conv2d(old.in_channels, num_classes, kernel_size=old.kernel_size, padding=old.padding)
    if isinstance(getattr(model, "head", None), nn.Conv2d):
        model.head = new
    else:
        model.segmentation_head[0] = new
    if hasattr(model, "num_classes"):
        model.num_classes = num_classes
    return new


def freeze_all_but_head(model: nn.Module) -> None:
    """Only the classification layer trains; batch-norm statistics are frozen too (eval mode is set
    by the LightningModule at every epoch start through ``frozen_modules``)."""
    for parameter in model.parameters():
        parameter.requires_grad = False
    for parameter in head_of(model).parameters():
        parameter.requires_grad = True


def frozen_modules(model: nn.Module) -> list[nn.Module]:
    """Batch-norm layers whose parameters are all frozen: they must stay in eval mode while training,
    or their running statistics would drift."""
    return [
        m for m in model.modules()
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and not any(p.requires_grad for p in m.parameters())
    ]
