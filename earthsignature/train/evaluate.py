"""``earthsignature evaluate``: score models on several test sets and write the seed's Table 2.

Each test set is scored with the run's ``checkpoint`` unless it names its own (the seed's CERTH row
scores the fine-tuned burnt-area model). A model is scored on a set with another nomenclature (the CLC
model on HRL or Urban Atlas) by mapping each of its classes to the evaluation class that covers its CLC
codes (``class_mapping``); predictions that fall in no evaluation class count as errors. Inputs are
normalised with the model's own training statistics. The report (Markdown + CSV, with a confusion
matrix picture per set) goes to ``report_dir`` and to MLflow.
"""

from __future__ import annotations

import csv
import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hydra
import matplotlib.pyplot as plt
import mlflow
import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from torch.utils.data import ConcatDataset, DataLoader

from earthsignature.core.classes import Nomenclature
from earthsignature.core.config import CONFIG_DIR
from earthsignature.train.metrics import SegmentationScores, scores_from_confusion
from earthsignature.train.module import SegmentationModule
from earthsignature.train.plots import confusion_matrix_figure
from earthsignature.train.tracking import flatten, git_state
from earthsignature.train.train import build_datamodule


def class_mapping(source: Nomenclature, target: Nomenclature) -> np.ndarray:
    """For each source class index, the target class index it predicts (``len(target)``: none).

    The same nomenclature maps to itself; otherwise a source class goes to the target class that covers
    most of its CLC level-3 codes (CLC 312 -> HRL "Tree cover"; CLC level-2 "Forests" -> "Tree cover").
    """
    if source.name == target.name and source.codes == target.codes:
        return np.arange(len(source))
    lut = target.clc_lut(ignore_index=-1)
    mapping = np.full(len(source), len(target), dtype=np.int64)
    for cls in source:
        votes = Counter(int(lut[code]) for code in cls.clc_codes if lut[code] >= 0)
        if votes:
            mapping[cls.index] = votes.most_common(1)[0][0]
    return mapping


@dataclass(frozen=True)
class EvaluationRow:
    key: str
    label: str
    classes: int
    pixels: int
    scores: SegmentationScores
    model: str


@torch.no_grad()
def evaluate_set(module: SegmentationModule, data: DictConfig, splits: list[str], batch_size: int,
                 num_workers: int, ignore_index: int) -> tuple[np.ndarray, Nomenclature]:
    """Confusion matrix (truth x prediction, with an extra "other" prediction column) of one set."""
    datamodule = build_datamodule(data, ignore_index, stats=dict(module.hparams.normalization))
    datamodule.augment = False
    datamodule.prepare_data()
    datamodule.setup("test")
    target = datamodule.nomenclature
    mapping = torch.from_numpy(class_mapping(module.nomenclature, target))
    k = len(target)
    confusion = torch.zeros((k + 1) * (k + 1), dtype=torch.int64)
    dataset = ConcatDataset([datamodule.datasets["val" if s in ("val", "validation") else s] for s in splits])
    module.eval()
    for batch in DataLoader(dataset, batch_size=batch_size, num_workers=num_workers):
        predicted = mapping[module(batch["image"]).argmax(dim=1)]
        truth = batch["mask"]
        valid = truth != ignore_index
        confusion += torch.bincount(truth[valid] * (k + 1) + predicted[valid], minlength=(k + 1) ** 2)
    return confusion.reshape(k + 1, k + 1).numpy(), target


def write_report(rows: list[EvaluationRow], report_dir: Path) -> tuple[Path, Path]:
    """Table 2 as Markdown and CSV."""
    report_dir.mkdir(parents=True, exist_ok=True)
    csv_path, markdown_path = report_dir / "table2.csv", report_dir / "table2.md"
    with csv_path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["dataset", "classes", "average_normalized_accuracy", "mean_iou", "overall_accuracy",
                         "pixels", "model"])
        for row in rows:
            writer.writerow([row.label, row.classes, f"{row.scores.average_normalized_accuracy:.4f}",
                             f"{row.scores.mean_iou:.4f}", f"{row.scores.overall_accuracy:.4f}", row.pixels,
                             row.model])
    lines = ["| Dataset | Average normalized accuracy | Intersection over union (IoU) | Overall accuracy |",
             "| --- | ---: | ---: | ---: |"]
    lines += [f"| {r.label} ({r.classes} classes) | {100 * r.scores.average_normalized_accuracy:.1f}% "
              f"| {100 * r.scores.mean_iou:.1f}% | {100 * r.scores.overall_accuracy:.1f}% |" for r in rows]
    markdown_path.write_text("\n".join(lines) + "\n")
    return markdown_path, csv_path


def evaluate(cfg: DictConfig) -> list[EvaluationRow]:
    report_dir = Path(cfg.report_dir)
    modules: dict[str, SegmentationModule] = {}
    rows = []
    unknown = set(cfg.only or ()) - set(cfg.test_sets)
    if unknown:
        raise ValueError(f"only names unknown test sets {sorted(unknown)}; known: {sorted(cfg.test_sets)}")
    for key, test_set in cfg.test_sets.items():
        if cfg.only and key not in cfg.only:
            continue
        checkpoint = str(test_set.get("checkpoint") or cfg.checkpoint)
        if checkpoint not in modules:
            modules[checkpoint] = SegmentationModule.load_from_checkpoint(checkpoint, map_location="cpu")
        module = modules[checkpoint]
        confusion, target = evaluate_set(module, test_set.data, list(test_set.splits), cfg.batch_size,
                                         cfg.num_workers, cfg.ignore_index)
        scores = scores_from_confusion(torch.from_numpy(confusion), len(target))
        classes = int(np.count_nonzero(confusion[: len(target)].sum(axis=1)))  # present in the truth
        rows.append(EvaluationRow(key, test_set.label, classes, int(confusion.sum()), scores,
                                  Path(checkpoint).name))
        figure = confusion_matrix_figure(confusion[: len(target), : len(target)], target)
        report_dir.mkdir(parents=True, exist_ok=True)
        figure.savefig(report_dir / f"confusion_{key}.png", dpi=120)
        plt.close(figure)
    markdown, table = write_report(rows, report_dir)
    (report_dir / "table2.json").write_text(json.dumps(
        [{"dataset": r.label, "classes": r.classes, "ana": r.scores.average_normalized_accuracy,
          "miou": r.scores.mean_iou, "oa": r.scores.overall_accuracy} for r in rows], indent=1))
    if cfg.logger.enabled:
        _log_to_mlflow(cfg, rows, report_dir)
    print(markdown.read_text())
    print(f"report: {markdown} {table}")
    return rows


def _log_to_mlflow(cfg: DictConfig, rows: list[EvaluationRow], report_dir: Path) -> None:
    mlflow.set_tracking_uri(cfg.logger.tracking_uri)
    mlflow.set_experiment(cfg.logger.experiment_name)
    with mlflow.start_run(run_name=cfg.logger.run_name or "table2"):
        mlflow.log_params(flatten(OmegaConf.to_container(cfg, resolve=True)))
        mlflow.set_tags(git_state())
        for row in rows:
            mlflow.log_metrics({f"{row.key}_ana": row.scores.average_normalized_accuracy,
                                f"{row.key}_miou": row.scores.mean_iou,
                                f"{row.key}_oa": row.scores.overall_accuracy})
        mlflow.log_artifacts(str(report_dir))


@hydra.main(config_path=str(CONFIG_DIR), config_name="evaluate", version_base="1.3")
def main(cfg: DictConfig) -> Any:
    return evaluate(cfg)


if __name__ == "__main__":
    main()
