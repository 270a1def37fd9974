"""Pictures of a run: confusion matrix and per-class IoU with the nomenclature's names and colors,
and loss curves. Each returns a matplotlib Figure (the caller saves or logs it)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure
from torch import Tensor

from earthsignature.core.classes import Nomenclature


def _present(confusion: np.ndarray) -> np.ndarray:
    """Indices of classes seen in the truth or the prediction (44-class matrices are mostly empty)."""
    return np.flatnonzero((confusion.sum(0) + confusion.sum(1)) > 0)


def confusion_matrix_figure(confusion: Tensor | np.ndarray, nomenclature: Nomenclature) -> Figure:
    """Row-normalised confusion matrix (rows: truth); tick labels carry class codes and colors."""
    cm = np.asarray(confusion, dtype=float)
    keep = _present(cm)
    cm = cm[np.ix_(keep, keep)]
    normalised = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    size = max(5.0, 0.35 * len(keep) + 3)
    fig, ax = plt.subplots(figsize=(size, size))
    image = ax.imshow(normalised, cmap="Blues", vmin=0, vmax=1)
    labels = [f"{nomenclature.by_index(int(i)).code} {nomenclature.by_index(int(i)).name[:28]}" for i in keep]
    ax.set_xticks(range(len(keep)), labels, rotation=90, fontsize=7)
    ax.set_yticks(range(len(keep)), labels, fontsize=7)
    for tick_x, tick_y, index in zip(ax.get_xticklabels(), ax.get_yticklabels(), keep, strict=True):
        color = np.array(nomenclature.by_index(int(index)).color) / 255
        for tick in (tick_x, tick_y):
            tick.set_bbox({"facecolor": color, "edgecolor": "none", "alpha": 0.6, "pad": 1})
    if len(keep) <= 20:
        for (row, col), value in np.ndenumerate(normalised):
            if value >= 0.01:
                ax.text(col, row, f"{value:.2f}", ha="center", va="center", fontsize=6,
                        color="white" if value > 0.6 else "black")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    fig.colorbar(image, ax=ax, fraction=0.046)
    fig.tight_layout()
    return fig


def iou_bar_chart(per_class_iou: Sequence[float], nomenclature: Nomenclature) -> Figure:
    """Per-class IoU as bars in the class colors (undefined classes left out)."""
    values = np.asarray(per_class_iou, dtype=float)
    keep = np.flatnonzero(~np.isnan(values))
    fig, ax = plt.subplots(figsize=(max(5.0, 0.3 * len(keep) + 2), 4))
    colors = [np.array(nomenclature.by_index(int(i)).color) / 255 for i in keep]
    ax.bar(range(len(keep)), values[keep], color=colors, edgecolor="black", linewidth=0.5)
    ax.set_xticks(range(len(keep)), [str(nomenclature.by_index(int(i)).code) for i in keep], rotation=90)
    ax.set_ylim(0, 1)
    ax.set_ylabel("IoU")
    ax.set_title(f"per-class IoU (mean {np.nanmean(values):.3f})")
    fig.tight_layout()
    return fig


def loss_curves_figure(history: Mapping[str, Sequence[float]]) -> Figure:
    """One line per logged series (train_loss, val_loss) against the epoch."""
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, values in history.items():
        ax.plot(range(1, len(values) + 1), values, marker="o", markersize=3, label=name)
    ax.set_xlabel("epoch")
    ax.set_ylabel("cross-entropy")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig
