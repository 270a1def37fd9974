"""Metrics against hand-computed values."""

from __future__ import annotations

import math

import pytest
import torch
from torchmetrics.classification import MulticlassConfusionMatrix

from earthsignature.train.metrics import scores_from_confusion


def test_scores_by_hand() -> None:
    # rows: truth, columns: prediction; class 3 never occurs
    cm = torch.tensor([[5, 1, 0, 0], [2, 3, 1, 0], [0, 0, 4, 0], [0, 0, 0, 0]])
    scores = scores_from_confusion(cm)
    assert scores.overall_accuracy == pytest.approx(12 / 16)
    assert scores.per_class_recall[:3] == pytest.approx([5 / 6, 3 / 6, 4 / 4])
    assert math.isnan(scores.per_class_recall[3])
    assert scores.average_normalized_accuracy == pytest.approx((5 / 6 + 0.5 + 1) / 3)
    assert scores.per_class_iou[:3] == pytest.approx([5 / 8, 3 / 7, 4 / 5])
    assert math.isnan(scores.per_class_iou[3])
    assert scores.mean_iou == pytest.approx((5 / 8 + 3 / 7 + 4 / 5) / 3)


def test_predictions_outside_the_evaluated_classes_count_as_errors() -> None:
    # 2 evaluated classes + an "other" column for predictions that map to neither
    cm = torch.tensor([[3, 0, 1], [0, 2, 2], [0, 0, 0]])
    scores = scores_from_confusion(cm, num_classes=2)
    assert scores.overall_accuracy == pytest.approx(5 / 8)
    assert scores.per_class_iou == pytest.approx([3 / 4, 2 / 4])
    assert len(scores.per_class_iou) == 2


def test_ignore_index_is_respected_end_to_end() -> None:
    metric = MulticlassConfusionMatrix(3, ignore_index=255)
    target = torch.tensor([[0, 1, 255], [2, 255, 1]])
    prediction = torch.tensor([[0, 2, 1], [2, 0, 1]])
    metric.update(prediction, target)
    scores = scores_from_confusion(metric.compute())
    assert scores.overall_accuracy == pytest.approx(3 / 4)  # the two ignored pixels are not counted
