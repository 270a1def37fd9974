"""Experiment tracking: what every run leaves in MLflow and in its run folder.

Params: the full resolved Hydra config, flattened (``data.batch_size``...). Tags: the git commit (and
whether the tree was dirty). Metrics: per epoch, by Lightning's MLFlowLogger. Artifacts: loss curves,
the confusion matrix (CLC names and colors) and per-class IoU (CSV and bar chart) of the test split,
and the best checkpoint. Every file is also written to the run folder, so a run without MLflow
(``logger=none``) leaves the same pictures behind.
"""

from __future__ import annotations

import csv
import hashlib
import json
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
from lightning import Callback, LightningModule, Trainer
from lightning.pytorch.loggers import MLFlowLogger

from earthsignature.core.config import PACKAGE_DIR
from earthsignature.train.metrics import scores_from_confusion
from earthsignature.train.plots import confusion_matrix_figure, iou_bar_chart, loss_curves_figure


def flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"data": {"bands": [...]}}`` -> ``{"data.bands": "[...]"}``."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def artifact_location(tracking_uri: str, root: str | None, experiment: str) -> str | None:
    """Where a new experiment keeps its artifacts: ``root/<experiment>`` for a local store (sqlite or files),
    the server's own store (None) for an http(s) tracking server."""
    if root is None or tracking_uri.startswith(("http://", "https://", "databricks")):
        return None
    return str(Path(root) / experiment)


def ensure_experiment(tracking_uri: str, name: str, root: str | None) -> str:
    """The id of experiment ``name``, created with its artifact location when it does not exist yet."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    found = client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    location = artifact_location(tracking_uri, root, name)
    return client.create_experiment(name, artifact_location=Path(location).resolve().as_uri() if location else None)


def run_name(experiment: str | None, overrides: list[str]) -> str:
    """A run's name from what was asked: ``smoke trainer.max_epochs=5 model.base_width=8`` (the experiment
    choice itself and paths left out), so runs of a sweep can be told apart."""
    shown = [o for o in overrides if not o.startswith(("experiment=", "run_dir=", "logger.", "hydra."))]
    return " ".join([experiment or "run", *shown])[:250]


def weights_digest(module: LightningModule) -> str:
    """SHA-256 of a model's parameters and buffers, by name: equal digests, equal weights."""
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def git_state() -> dict[str, str]:
    """The commit the code comes from, and whether the working tree differed from it."""
    def git(*args: str) -> str:
        result = subprocess.run(["git", *args], cwd=PACKAGE_DIR, capture_output=True, text=True, check=False)
        return result.stdout.strip() if result.returncode == 0 else ""

    commit = git("rev-parse", "HEAD")
    if not commit:
        return {}
    return {"mlflow.source.git.commit": commit, "git_dirty": str(bool(git("status", "--porcelain")))}


class RunReport(Callback):
    """Writes the run's pictures and tables into ``run_dir`` and logs them (and the config) to MLflow."""

    def __init__(self, config: Mapping[str, Any], run_dir: Path):
        self.config = dict(config)
        self.run_dir = Path(run_dir)
        self.history: dict[str, list[float]] = {"train_loss": [], "val_loss": []}

    @staticmethod
    def _mlflow(trainer: Trainer) -> MLFlowLogger | None:
        return next((lg for lg in trainer.loggers if isinstance(lg, MLFlowLogger)), None)

    def _save(self, trainer: Trainer, path: Path) -> None:
        logger = self._mlflow(trainer)
        if logger is not None and trainer.is_global_zero:
            logger.experiment.log_artifact(logger.run_id, str(path))

    def _save_figure(self, trainer: Trainer, figure: plt.Figure, name: str) -> None:
        path = self.run_dir / name
        figure.savefig(path, dpi=120)
        plt.close(figure)
        self._save(trainer, path)

    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        logger = self._mlflow(trainer)
        if logger is not None:
            logger.log_hyperparams(flatten(self.config))
            for key, value in git_state().items():
                logger.experiment.set_tag(logger.run_id, key, value)

    def _record(self, trainer: Trainer, name: str) -> None:
        value = trainer.callback_metrics.get(name)
        if value is not None:
            self.history[name].append(float(value))

    # Each series in its own hook: validation runs before the training epoch's mean loss is logged.
    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._record(trainer, "train_loss")

    def on_validation_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not trainer.sanity_checking:
            self._record(trainer, "val_loss")

    def on_fit_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        # every rank records what it ends with: under DDP the digests must all be the same
        self.run_dir.mkdir(parents=True, exist_ok=True)
        (self.run_dir / f"weights-rank{trainer.global_rank}.sha256").write_text(weights_digest(pl_module) + "\n")
        if not trainer.is_global_zero:
            return
        if any(self.history.values()):
            history_file = self.run_dir / "loss_history.json"
            history_file.write_text(json.dumps(self.history, indent=1))
            self._save(trainer, history_file)
            self._save_figure(trainer, loss_curves_figure(self.history), "loss_curves.png")
        best = getattr(trainer.checkpoint_callback, "best_model_path", "")
        if best:
            self._save(trainer, Path(best))

    def on_test_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        confusion = pl_module.last_confusion.get("test")
        if confusion is None or not trainer.is_global_zero:
            return
        nomenclature = pl_module.nomenclature
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self._save_figure(trainer, confusion_matrix_figure(confusion, nomenclature), "confusion_matrix.png")
        scores = scores_from_confusion(confusion)
        self._save_figure(trainer, iou_bar_chart(scores.per_class_iou, nomenclature), "per_class_iou.png")
        path = self.run_dir / "per_class_iou.csv"
        with path.open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["index", "code", "name", "iou", "recall", "pixels"])
            for cls in nomenclature:
                writer.writerow([cls.index, cls.code, cls.name, scores.per_class_iou[cls.index],
                                 scores.per_class_recall[cls.index], int(confusion[cls.index].sum())])
        self._save(trainer, path)
