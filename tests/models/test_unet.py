"""The seed's UNet and the fine-tuning helpers."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from earthsignature.models.factory import build_model
from earthsignature.models.finetune import freeze_all_but_head, frozen_modules, head_of, replace_head
from earthsignature.models.unet import UNet


@pytest.mark.parametrize("size", [(120, 120), (121, 97), (64, 65), (17, 33)])
def test_output_has_input_size_for_odd_and_even_inputs(size) -> None:
    model = UNet(in_channels=4, num_classes=44, base_width=4, depth=3).eval()
    out = model(torch.randn(2, 4, *size))
    assert out.shape == (2, 44, *size)


def test_architecture_follows_the_seed() -> None:
    model = UNet(4, 10, base_width=8, depth=2)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert all(m.kernel_size == (3, 3) for m in convs[:-1]) and convs[-1].kernel_size == (1, 1)
    assert sum(isinstance(m, nn.BatchNorm2d) for m in model.modules()) == 2 * (2 * 2 + 1)
    assert sum(isinstance(m, nn.ConvTranspose2d) for m in model.modules()) == 2
    assert [b[0].out_channels for b in model.encoder] == [8, 16, 32]
    probabilities = model.eval().predict_proba(torch.randn(1, 4, 16, 16))
    assert torch.allclose(probabilities.sum(dim=1), torch.ones(1, 16, 16))


def test_replace_and_freeze_head() -> None:
    model = UNet(4, 44, base_width=4, depth=2)
    old = head_of(model)
    new = replace_head(model, 2)
    assert new is not old and new.out_channels == 2 and new.in_channels == old.in_channels
    assert model.num_classes == 2 and model(torch.randn(1, 4, 16, 16)).shape[1] == 2
    freeze_all_but_head(model)
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    assert trainable == {"head.weight", "head.bias"}
    assert len(frozen_modules(model)) == sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())


def test_smp_backbone_by_config() -> None:
    model = build_model({"name": "smp", "arch": "Unet", "encoder_name": "resnet18"}, 4, 5)
    assert model(torch.randn(1, 4, 64, 64)).shape == (1, 5, 64, 64)
    replace_head(model, 3)
    assert model(torch.randn(1, 4, 64, 64)).shape == (1, 3, 64, 64)
    with pytest.raises(ValueError, match="unknown model"):
        build_model({"name": "segformer9000"}, 4, 5)
