"""``earthsignature train`` / ``earthsignature finetune``: one Hydra experiment, one command.

Also runnable as ``python -m earthsignature.train.train experiment=smoke`` (and ``--multirun`` sweeps).
Fine-tuning is training with ``pretrained`` (a checkpoint) and ``finetune`` (head | full) set: the
pre-trained network gets a new head for the data's classes (``conf/finetune.yaml``).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import hydra
import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import MLFlowLogger
from omegaconf import DictConfig, OmegaConf

from earthsignature.core.config import CONFIG_DIR
from earthsignature.core.layout import DatasetFolder
from earthsignature.core.manifest import ModelCard
from earthsignature.data.datamodules import BigEarthNetDataModule, PairsDataModule, SegmentationDataModule
from earthsignature.train.module import SegmentationModule
from earthsignature.train.progress import EpochLines, wants_epoch_lines
from earthsignature.train.tracking import RunReport, ensure_experiment, run_name

_DATA_KEYS = ("root", "bands", "batch_size", "num_workers", "augment", "stats_file")


def build_datamodule(data: DictConfig, ignore_index: int, stats: dict | None = None
                     ) -> SegmentationDataModule:
    """The data module that ``data.family`` names, with a model's ``stats`` when given."""
    values = OmegaConf.to_container(data, resolve=True)
    options: dict[str, Any] = {k: values[k] for k in _DATA_KEYS if k in values}
    options.update(ignore_index=ignore_index, stats=stats)
    if data.family == "bigearthnet":
        return BigEarthNetDataModule(taxonomy=data.taxonomy, source=data.get("source", "geotiff"), **options)
    if data.family == "pairs":
        return PairsDataModule(kind=data.kind, **options)
    raise ValueError(f"unknown data family {data.family!r}; choose bigearthnet or pairs")


def build_module(cfg: DictConfig, datamodule: SegmentationDataModule) -> SegmentationModule:
    """A new model, or (``pretrained`` + ``finetune``) a pre-trained one with a new head."""
    optimizer = OmegaConf.to_container(cfg.optimizer, resolve=True)
    if cfg.pretrained:
        if cfg.finetune not in ("head", "full"):
            raise ValueError("pretrained is set: finetune must be 'head' or 'full'")
        return SegmentationModule.finetune_from(cfg.pretrained, datamodule.nomenclature, cfg.finetune,
                                                task=cfg.task, **optimizer)
    return SegmentationModule(
        model=OmegaConf.to_container(cfg.model, resolve=True), nomenclature_name=datamodule.nomenclature.name,
        classes=datamodule.nomenclature.to_records(), bands=list(datamodule.bands),
        normalization=datamodule.stats.to_dict(), task=cfg.task, ignore_index=cfg.ignore_index,
        **optimizer)


def _logger(cfg: DictConfig) -> MLFlowLogger | bool:
    if not cfg.logger.enabled:
        return False
    ensure_experiment(cfg.logger.tracking_uri, cfg.logger.experiment_name, cfg.logger.get("artifact_location"))
    return MLFlowLogger(experiment_name=cfg.logger.experiment_name, tracking_uri=cfg.logger.tracking_uri,
                        run_name=cfg.logger.run_name or run_name(*_asked()))


def _log_dataset(logger: MLFlowLogger, data: dict[str, str], datamodule: SegmentationDataModule) -> None:
    """The data set as the run's MLflow dataset input: its folder, name, whether it is real or synthetic, the
    samples of each split, and a digest of those sizes with the training images' normalization statistics (a
    fingerprint of the content computed anyway: other images, other statistics)."""
    import warnings

    from mlflow.data.dataset_source_registry import resolve_dataset_source
    from mlflow.data.meta_dataset import MetaDataset
    from mlflow.entities import DatasetInput, InputTag

    sizes = {split: len(dataset) for split, dataset in datamodule.datasets.items()}
    fingerprint = json.dumps({"name": data["name"], "sizes": sizes, "stats": datamodule.stats.to_dict()},
                             sort_keys=True, default=str)
    with warnings.catch_warnings():  # a local folder reads as more than one kind of source: it is a folder
        warnings.simplefilter("ignore", UserWarning)
        source = resolve_dataset_source(data["root"])
    dataset = MetaDataset(source, name=data["name"], digest=hashlib.sha256(fingerprint.encode()).hexdigest()[:12])
    tags = [InputTag("mlflow.data.context", "training"), InputTag("kind", data["kind"]),
            *(InputTag(f"{split}_samples", str(count)) for split, count in sizes.items())]
    logger.experiment.log_inputs(logger.run_id, datasets=[DatasetInput(dataset._to_mlflow_entity(), tags=tags)])


def _provenance(data: DictConfig, datamodule: SegmentationDataModule) -> dict[str, str]:
    """What the model is trained and tested on, for its model card: the data set, and whether a fixture
    writer made it (synthetic) or not."""
    name = _data_choice() or str(data.get("kind") or data.family)
    detail = data.get("taxonomy") or data.get("kind")
    label = f"{name} ({detail})" if detail and detail != name else name
    # a configured fixture writes the set when missing: synthetic even if written before writers marked it
    kind = "synthetic" if data.get("fixture") else DatasetFolder(datamodule.root).kind
    return {"name": label, "root": str(datamodule.root), "kind": kind, "test_set": f"{label} test split"}


def _data_choice() -> str | None:
    from hydra.core.hydra_config import HydraConfig

    return HydraConfig.get().runtime.choices.get("data") if HydraConfig.initialized() else None


def _asked() -> tuple[str | None, list[str]]:
    """The experiment chosen and the overrides given on the command line (none outside a Hydra app)."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return None, []
    hydra = HydraConfig.get()
    return hydra.runtime.choices.get("experiment"), list(hydra.overrides.task)


def _resume_path(cfg: DictConfig, run_dir: Path) -> str | None:
    if cfg.resume == "last":
        last = run_dir / "checkpoints" / "last.ckpt"
        if not last.exists():
            raise FileNotFoundError(f"resume=last but {last} does not exist")
        return str(last)
    return cfg.resume or None


def train(cfg: DictConfig) -> dict[str, Any]:
    """Fit (and test) one experiment; return a summary (also written to ``run_dir/summary.json``)."""
    run_dir = Path(cfg.run_dir)
    L.seed_everything(cfg.seed, workers=True)
    stats = None
    if cfg.pretrained:  # fine-tuning keeps the pre-trained model's input normalization
        pretrained = SegmentationModule.load_from_checkpoint(cfg.pretrained, map_location="cpu")
        stats = pretrained.hparams.normalization
    datamodule = build_datamodule(cfg.data, cfg.ignore_index, stats)
    datamodule.prepare_data()
    datamodule.setup("fit")
    module = build_module(cfg, datamodule)
    checkpoints = ModelCheckpoint(dirpath=run_dir / "checkpoints", monitor=cfg.checkpoint.monitor,
                                  mode=cfg.checkpoint.mode, save_last=True,
                                  # no "=" in names: paths must pass as Hydra overrides (pretrained=...)
                                  filename="best-epoch{epoch:02d}-val_loss{val_loss:.4f}",
                                  auto_insert_metric_name=False)
    logged = OmegaConf.to_container(cfg, resolve=True)
    if cfg.pretrained:  # a fine-tune's architecture is the pre-trained model's, not the config's default
        logged["model"] = dict(module.hparams["model"])
    report = RunReport(logged, run_dir)
    trainer_settings = OmegaConf.to_container(cfg.trainer, resolve=True)
    callbacks = [checkpoints, report]
    if wants_epoch_lines(trainer_settings["enable_progress_bar"]):  # no terminal: a line per epoch, no bar
        trainer_settings["enable_progress_bar"] = False
        callbacks.append(EpochLines())
    trainer = L.Trainer(**trainer_settings, default_root_dir=str(run_dir), logger=_logger(cfg), callbacks=callbacks)
    trainer.fit(module, datamodule=datamodule, ckpt_path=_resume_path(cfg, run_dir))
    best_score = checkpoints.best_model_score
    summary: dict[str, Any] = {
        "data": _provenance(cfg.data, datamodule),
        "best_checkpoint": checkpoints.best_model_path,
        "best_val_loss": None if best_score is None else float(best_score),
        "epochs": trainer.current_epoch,
        "trainable_parameters": sum(p.numel() for p in module.parameters() if p.requires_grad),
    }
    if cfg.test_after_fit:
        (results,) = trainer.test(module, datamodule=datamodule, ckpt_path="best", verbose=False)
        summary["test"] = {k: float(v) for k, v in results.items()}
    summary["promotion"] = OmegaConf.to_container(cfg.promotion, resolve=True)  # the experiment's gate
    card = ModelCard.from_training(summary["data"], summary.get("test", {}))
    summary["model_card"] = card.to_dict()  # what the exported model will carry
    if isinstance(trainer.logger, MLFlowLogger):
        summary["mlflow_run_id"] = trainer.logger.run_id
        # the run's description in the MLflow UI: what its model card says
        trainer.logger.experiment.set_tag(trainer.logger.run_id, "mlflow.note.content", card.line())
        _log_dataset(trainer.logger, summary["data"], datamodule)
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=1))
    return summary


@hydra.main(config_path=str(CONFIG_DIR), config_name="train", version_base="1.3")
def main(cfg: DictConfig) -> None:
    summary = train(cfg)
    print(json.dumps(summary, indent=1))


@hydra.main(config_path=str(CONFIG_DIR), config_name="finetune", version_base="1.3")
def finetune_main(cfg: DictConfig) -> None:
    summary = train(cfg)
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
