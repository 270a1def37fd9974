"""Segmentation metrics, all derived from one confusion matrix so they agree with each other.

``cm[t, p]`` counts pixels of true class ``t`` predicted as ``p`` (torchmetrics'
``MulticlassConfusionMatrix`` accumulates it, skipping the ignore index). Definitions:

* **overall accuracy** (OA): correctly classified pixels / all labelled pixels, ``trace(cm) / sum(cm)``.
* **average normalized accuracy** (ANA, the seed's Table 2 metric): the mean over classes of the
  diagonal of the row-normalised confusion matrix, i.e. the mean per-class recall
  ``cm[c, c] / sum_p cm[c, p]``, over the classes present in the ground truth. The seed describes it as
  "(TP + TN) / all" per class, normalised: averaging recall over classes is the reading that gives its
  figures (61.4 % over 43 classes) and the 21 % / 31 % it quotes from Ulmas & Liiv's normalised
  confusion matrices. Unlike OA it is not dominated by frequent classes.
* **IoU** per class: ``cm[c, c] / (sum_p cm[c, p] + sum_t cm[t, c] - cm[c, c])``; **mean IoU** over the
  classes that appear in the ground truth or the prediction (a class absent from both is undefined,
  not zero).

An extra last column/row may hold predictions outside the evaluated classes (a CLC model scored on
HRL predicting water where HRL has no class): they count as errors, never as a class.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class SegmentationScores:
    overall_accuracy: float
    average_normalized_accuracy: float
    mean_iou: float
    per_class_iou: list[float]  # nan where the class is absent from truth and prediction
    per_class_recall: list[float]  # nan where the class is absent from the truth

    def as_metrics(self, prefix: str) -> dict[str, float]:
        return {f"{prefix}oa": self.overall_accuracy, f"{prefix}ana": self.average_normalized_accuracy,
                f"{prefix}miou": self.mean_iou}


def scores_from_confusion(cm: Tensor, num_classes: int | None = None) -> SegmentationScores:
    """Scores of the first ``num_classes`` classes (default all) of a square confusion matrix."""
    cm = cm.double()
    k = num_classes or cm.shape[0]
    diagonal = cm.diagonal()[:k]
    truth = cm.sum(dim=1)[:k]
    predicted = cm.sum(dim=0)[:k]
    total = cm.sum()
    nan = torch.tensor(float("nan"), dtype=torch.float64)
    recall = torch.where(truth > 0, diagonal / truth.clamp(min=1), nan)
    union = truth + predicted - diagonal
    iou = torch.where(union > 0, diagonal / union.clamp(min=1), nan)
    return SegmentationScores(
        overall_accuracy=float(diagonal.sum() / total) if total > 0 else float("nan"),
        average_normalized_accuracy=float(recall.nanmean()),
        mean_iou=float(iou.nanmean()),
        per_class_iou=iou.tolist(),
        per_class_recall=recall.tolist(),
    )
