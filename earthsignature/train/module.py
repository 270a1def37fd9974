"""The LightningModule that trains, validates, tests and fine-tunes segmentation models.

Pixel-wise cross-entropy on logits with an ignore index, Adam (the seed: lr 1e-3, betas 0.9/0.999), and
the metrics of ``train.metrics`` accumulated in a torchmetrics confusion matrix. Everything needed to
rebuild and use the model later (architecture, classes, bands, normalization) is saved as
hyper-parameters in every checkpoint.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from lightning import LightningModule
from torch import Tensor, nn
from torchmetrics.classification import MulticlassConfusionMatrix

from earthsignature.core.classes import Nomenclature
from earthsignature.core.normalization import NormalizationStats
from earthsignature.models.factory import build_model
from earthsignature.models.finetune import freeze_all_but_head, frozen_modules, replace_head
from earthsignature.train.metrics import SegmentationScores, scores_from_confusion

FINETUNE_MODES = (None, "head", "full")


class SegmentationModule(LightningModule):
    def __init__(
        self,
        model: Mapping[str, Any],
        nomenclature_name: str,
        classes: Sequence[Mapping[str, Any]],
        bands: Sequence[str],
        normalization: Mapping[str, Any],
        task: str = "land_cover",
        ignore_index: int = 255,
        lr: float = 1e-3,
        betas: Sequence[float] = (0.9, 0.999),
        weight_decay: float = 0.0,
        finetune: str | None = None,
    ) -> None:
        super().__init__()
        if finetune not in FINETUNE_MODES:
            raise ValueError(f"finetune must be one of {FINETUNE_MODES}, not {finetune!r}")
        self.save_hyperparameters()
        self.nomenclature = Nomenclature.from_records(nomenclature_name, classes)
        self.normalization = NormalizationStats.from_dict(dict(normalization))
        num_classes = len(self.nomenclature)
        self.model = build_model(dict(model), len(bands), num_classes)
        if finetune == "head":
            freeze_all_but_head(self.model)
        self.loss = nn.CrossEntropyLoss(ignore_index=ignore_index)
        self.val_confusion = MulticlassConfusionMatrix(num_classes, ignore_index=ignore_index)
        self.test_confusion = MulticlassConfusionMatrix(num_classes, ignore_index=ignore_index)
        #: Confusion matrices of the last validation and test epochs, for reports and pictures.
        self.last_confusion: dict[str, Tensor] = {}

    @classmethod
    def finetune_from(cls, checkpoint: str | Path, nomenclature: Nomenclature, mode: str = "head",
                      task: str = "pilot", **overrides: Any) -> SegmentationModule:
        """A pre-trained model with a new, randomly initialised head for ``nomenclature``.

        ``mode="head"`` trains only the head (the seed's protocol); ``"full"`` trains every layer.
        The pre-trained normalization is kept: frozen features expect the inputs they were trained on.
        """
        base = cls.load_from_checkpoint(checkpoint, map_location="cpu")
        network = base.model
        replace_head(network, len(nomenclature))
        hparams = {**base.hparams, "nomenclature_name": nomenclature.name,
                   "classes": nomenclature.to_records(), "task": task, "finetune": mode, **overrides}
        module = cls(**hparams)
        module.model = network
        if mode == "head":
            freeze_all_but_head(module.model)
        return module

    def forward(self, image: Tensor) -> Tensor:
        return self.model(image)

    def on_train_epoch_start(self) -> None:
        for layer in frozen_modules(self.model):
            layer.eval()  # frozen batch norm keeps its pre-trained running statistics

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        loss = self.loss(self(batch["image"]), batch["mask"])
        # sync_dist: every rank logs (and checkpoints by) the same mean over all ranks' batches
        self.log("train_loss", loss, on_step=False, on_epoch=True, prog_bar=True,
                 batch_size=batch["image"].shape[0], sync_dist=True)
        return loss

    def _evaluation_step(self, batch: dict[str, Tensor], stage: str) -> None:
        logits = self(batch["image"])
        self.log(f"{stage}_loss", self.loss(logits, batch["mask"]), on_epoch=True, prog_bar=True,
                 batch_size=batch["image"].shape[0], sync_dist=True)
        getattr(self, f"{stage}_confusion").update(logits.argmax(dim=1), batch["mask"])

    def _evaluation_epoch_end(self, stage: str) -> SegmentationScores:
        metric = getattr(self, f"{stage}_confusion")
        confusion = metric.compute().cpu()
        metric.reset()
        self.last_confusion[stage] = confusion
        scores = scores_from_confusion(confusion)
        self.log_dict(scores.as_metrics(f"{stage}_"))
        return scores

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        self._evaluation_step(batch, "val")

    def on_validation_epoch_end(self) -> None:
        self._evaluation_epoch_end("val")

    def test_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        self._evaluation_step(batch, "test")

    def on_test_epoch_end(self) -> None:
        self._evaluation_epoch_end("test")

    def configure_optimizers(self) -> torch.optim.Optimizer:
        trainable = [p for p in self.parameters() if p.requires_grad]
        return torch.optim.Adam(trainable, lr=self.hparams.lr, betas=tuple(self.hparams.betas),
                                weight_decay=self.hparams.weight_decay)


def save_checkpoint(module: SegmentationModule, path: Path) -> Path:
    """Save a module, trained or not, as a Lightning checkpoint (``load_from_checkpoint`` reads it)."""
    from lightning import Trainer

    trainer = Trainer(logger=False, enable_checkpointing=False, enable_progress_bar=False)
    trainer.strategy.connect(module)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    trainer.save_checkpoint(path)
    return Path(path)
