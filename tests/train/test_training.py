"""Training end to end on fixture data: Hydra config, MLflow tracking, resume, head-only fine-tuning."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import mlflow
import pytest
import torch
from mlflow.tracking import MlflowClient

from earthsignature.core.config import load_config
from earthsignature.embedded.fixtures import write_missing_fixtures
from earthsignature.train.module import SegmentationModule
from earthsignature.train.train import train

TINY = [
    "experiment=smoke",
    "data.fixture.patches_per_tile=4",
    "data.batch_size=4",
    "model.base_width=4",
    "model.depth=2",
    "trainer.max_epochs=2",
    "trainer.enable_progress_bar=false",
    "trainer.log_every_n_steps=1",
]


def _config(tmp: Path, *extra: str, tracking: bool = True):
    logger = ([f"logger.tracking_uri=sqlite:///{tmp / 'mlflow.db'}", f"logger.artifact_location={tmp / 'artifacts'}"]
              if tracking else ["logger=none"])
    return load_config(None, "train", [*TINY, f"data.root={tmp / 'ben'}", f"run_dir={tmp / 'run'}",
                                       *logger, *extra])


def fit(cfg) -> dict:
    """Train as ``earthsignature train`` does: the configured synthetic data set written first."""
    write_missing_fixtures(cfg)
    return train(cfg)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    tmp = tmp_path_factory.mktemp("train")
    summary = fit(_config(tmp))
    # a stable copy: a later run in the same folder (resume) may replace the best checkpoint
    shutil.copy(summary["best_checkpoint"], tmp / "pretrained.ckpt")
    return tmp, summary


def test_training_writes_checkpoints_report_and_summary(trained) -> None:
    tmp, summary = trained
    run_dir = tmp / "run"
    assert Path(summary["best_checkpoint"]).exists() and (run_dir / "checkpoints" / "last.ckpt").exists()
    assert "=" not in summary["best_checkpoint"]  # usable as a Hydra override value
    assert summary["epochs"] == 2
    assert set(summary["test"]) == {"test_loss", "test_oa", "test_ana", "test_miou"}
    assert json.loads((run_dir / "summary.json").read_text()) == summary
    for picture in ("loss_curves.png", "confusion_matrix.png", "per_class_iou.png"):
        assert (run_dir / picture).read_bytes().startswith(b"\x89PNG")
    rows = (run_dir / "per_class_iou.csv").read_text().splitlines()
    assert rows[0] == "index,code,name,iou,recall,pixels" and len(rows) == 45
    assert (tmp / "ben" / "earthsignature-stats-B02-B03-B04-B08.json").exists()  # cached next to data


def test_mlflow_run_has_config_metrics_artifacts_and_commit(trained) -> None:
    tmp, summary = trained
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp / 'mlflow.db'}")
    run = client.get_run(summary["mlflow_run_id"])
    assert run.data.params["data.taxonomy"] == "clc_level3"
    assert run.data.params["optimizer.lr"] == "0.001" and run.data.params["model.base_width"] == "4"
    history = client.get_metric_history(run.info.run_id, "val_loss")
    assert len(history) == 2  # one value per epoch
    assert {"train_loss", "val_miou", "val_ana", "val_oa", "test_miou"} <= set(run.data.metrics)
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"confusion_matrix.png", "per_class_iou.csv", "per_class_iou.png", "loss_curves.png"} <= artifacts
    assert any(a.endswith(".ckpt") for a in artifacts)
    assert len(run.data.tags["mlflow.source.git.commit"]) == 40
    assert run.info.artifact_uri.startswith((tmp / "artifacts").as_uri())  # the configured store, not ./mlruns
    # the loss curves are the per-epoch metrics, epoch for epoch (validation runs before the
    # training epoch's mean is logged: a naive reader shifts the training curve by one epoch)
    curves = json.loads((tmp / "run" / "loss_history.json").read_text())
    for name in ("train_loss", "val_loss"):
        metric = sorted(client.get_metric_history(run.info.run_id, name), key=lambda m: m.step)
        logged = [m.value for m in metric]
        assert curves[name] == pytest.approx(logged)
    mlflow.set_tracking_uri("")  # do not leak the store into other tests


def test_a_registered_version_keeps_lineage_signature_manifest_and_model_card(trained) -> None:
    from earthsignature.export.onnx_export import export_checkpoint
    from earthsignature.export.registry import ModelRegistry

    tmp, summary = trained
    assert summary["data"]["kind"] == "synthetic" and summary["data"]["name"].startswith("bigearthnet")
    onnx_path, manifest, report = export_checkpoint(Path(summary["best_checkpoint"]), tmp / "export", "clc-lineage")
    assert manifest.card.data_kind == "synthetic" and "miou" in manifest.card.test_metrics
    # one record, made once from the run: the summary's card is the manifest's, as it is, and stays in the file
    assert manifest.card.to_dict() == summary["model_card"] == json.loads(
        (tmp / "export" / "manifest.json").read_text())["card"]
    assert "test_metrics" not in manifest.source and "training_data" not in manifest.source
    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    registry = ModelRegistry(uri, artifact_root=str(tmp / "artifacts"))
    registered = registry.register(onnx_path, manifest, report.as_metrics())
    (version,) = registry.versions("clc-lineage")
    assert version.run_id == summary["mlflow_run_id"]  # registered from its training run: lineage in the UI
    info = mlflow.models.get_model_info(f"models:/clc-lineage/{registered.version}")
    (image,), (scores,) = info.signature.inputs.to_dict(), info.signature.outputs.to_dict()
    assert image["tensor-spec"] == {"dtype": "float32", "shape": (-1, 4, -1, -1)} and image["name"] == "image"
    assert scores["tensor-spec"]["shape"] == (-1, 44, -1, -1)
    assert info.saved_input_example_info is not None and info.metadata["model_card"]["data_kind"] == "synthetic"
    registered_version = registry.client.get_model_version("clc-lineage", registered.version)
    tags = registered_version.tags
    assert tags["data_kind"] == "synthetic" and len(tags["git_commit"]) == 40 and tags["data_source"]
    # the run's and the version's descriptions say what the model card says
    assert registered_version.description == manifest.card.line()
    run = registry.client.get_run(summary["mlflow_run_id"])
    note = run.data.tags["mlflow.note.content"]
    assert note.startswith("trained on synthetic data") and "test mIoU" in note
    # the data set as the run's dataset input: where, what, how many samples per split, real or synthetic
    (used,) = run.inputs.dataset_inputs
    tags = {tag.key: tag.value for tag in used.tags}
    assert used.dataset.name == summary["data"]["name"] and summary["data"]["root"] in used.dataset.source
    assert tags["mlflow.data.context"] == "training" and tags["kind"] == "synthetic"
    assert int(tags["train_samples"]) > 0 and {"val_samples", "test_samples"} <= set(tags)
    assert len(used.dataset.digest) == 12
    _, fetched = registry.fetch("clc-lineage", registered.version, tmp / "fetched")
    assert fetched.version == registered.version and fetched.card == manifest.card  # the manifest inside
    mlflow.set_tracking_uri("")


def test_checkpoint_carries_what_inference_needs(trained) -> None:
    _, summary = trained
    module = SegmentationModule.load_from_checkpoint(summary["best_checkpoint"], map_location="cpu")
    assert module.hparams.bands == ["B02", "B03", "B04", "B08"]
    assert len(module.nomenclature) == 44 and module.nomenclature.by_code(312).name == "Coniferous forest"
    stats = module.normalization
    assert stats.maximum > stats.minimum and len(stats.mean) == 4


def test_resume_continues_from_the_last_checkpoint(trained, capfd) -> None:
    tmp, _ = trained
    summary = fit(_config(tmp, "resume=last", "trainer.max_epochs=3", tracking=False))
    assert summary["epochs"] == 3  # one more epoch, not three
    # no terminal here: one line per epoch (losses, validation metrics, seconds), no progress bar
    lines = [line for line in capfd.readouterr().err.splitlines() if line.startswith("epoch ")]
    assert len(lines) == 1 and lines[0].startswith("epoch 3/3: train_loss ") and "val_miou" in lines[0]
    last = torch.load(tmp / "run" / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert last["epoch"] == 2 and last["global_step"] == 3 * 2  # 6 training patches / batch 4 = 2 steps


def test_head_only_finetuning_changes_only_the_head(trained, tmp_path: Path) -> None:
    tmp, _ = trained
    pretrained = SegmentationModule.load_from_checkpoint(tmp / "pretrained.ckpt", map_location="cpu")
    cfg = load_config(None, "finetune", [
        f"pretrained={tmp / 'pretrained.ckpt'}", f"data.root={tmp_path / 'burnt'}",
        "data.batch_size=4", "data.num_workers=0",
        "data.fixture={n_samples: 12, size: 32, codes: [312, 334]}",
        "trainer.max_epochs=2", "trainer.enable_progress_bar=false", "trainer.accelerator=cpu",
        f"run_dir={tmp_path / 'run'}", "logger=none"])
    result = fit(cfg)
    tuned = SegmentationModule.load_from_checkpoint(result["best_checkpoint"], map_location="cpu")
    assert tuned.nomenclature.names == ["Not burnt", "Burnt"] and tuned.hparams.finetune == "head"
    assert tuned.hparams.normalization == pretrained.hparams.normalization
    before, after = pretrained.model.state_dict(), tuned.model.state_dict()
    body = [k for k in after if not k.startswith("head.")]
    assert body and all(torch.equal(before[k], after[k]) for k in body)  # incl. batch-norm statistics
    assert after["head.weight"].shape == (2, 4, 1, 1)
    assert result["trainable_parameters"] == 2 * 4 + 2


@pytest.mark.parametrize("experiment", ["smoke_crops", "crops_full"])
def test_crops_fine_tunes_from_the_clc_model(trained, tmp_path: Path, experiment: str) -> None:
    tmp, _ = trained
    pretrained = SegmentationModule.load_from_checkpoint(tmp / "pretrained.ckpt", map_location="cpu")
    cfg = load_config(None, "finetune", [
        f"experiment={experiment}", f"pretrained={tmp / 'pretrained.ckpt'}", f"data.root={tmp_path / 'crops'}",
        "data.batch_size=4", "data.num_workers=0",
        "data.fixture={n_samples: 12, size: 32, codes: [211, 213, 221, 311]}",
        "trainer.max_epochs=2", "trainer.enable_progress_bar=false", "trainer.accelerator=cpu",
        f"run_dir={tmp_path / 'run'}", "logger=none"])
    result = fit(cfg)
    tuned = SegmentationModule.load_from_checkpoint(result["best_checkpoint"], map_location="cpu")
    assert tuned.hparams.task == "crops" and len(tuned.nomenclature) == 11
    assert tuned.nomenclature.by_code(3).name == "Maize" and tuned.nomenclature.by_code(99).name == "Other"
    assert result["data"] == {"name": "crops", "root": str(tmp_path / "crops"), "kind": "synthetic",
                              "test_set": "crops test split"}
    before, after = pretrained.model.state_dict(), tuned.model.state_dict()
    body = [k for k in after if not k.startswith("head.") and k.endswith("weight")]
    changed = [k for k in body if not torch.equal(before[k], after[k])]
    if experiment == "crops_full":
        assert tuned.hparams.finetune == "full" and len(changed) == len(body)  # every layer learnt
    else:
        assert tuned.hparams.finetune == "head" and not changed


def test_a_fine_tune_logs_the_pretrained_architecture(trained, tmp_path: Path) -> None:
    """The MLflow run of a fine-tune records the architecture it really has (the pre-trained model's width and
    depth), not the config's default, and the name it was given: read back through MLflow's client."""
    from mlflow.tracking import MlflowClient

    tmp, _ = trained
    pretrained = SegmentationModule.load_from_checkpoint(tmp / "pretrained.ckpt", map_location="cpu")
    tracking = f"sqlite:///{tmp_path / 'mlflow.db'}"
    cfg = load_config(None, "finetune", [
        f"pretrained={tmp / 'pretrained.ckpt'}", f"data.root={tmp_path / 'burnt'}", "data.batch_size=4",
        "data.num_workers=0", "data.fixture={n_samples: 12, size: 32, codes: [312, 334]}", "trainer.max_epochs=1",
        "trainer.accelerator=cpu", f"run_dir={tmp_path / 'run'}", f"logger.tracking_uri={tracking}",
        f"logger.artifact_location={tmp_path / 'artifacts'}", "logger.run_name='burnt_area (a test)'"])
    assert cfg.model.base_width != pretrained.hparams["model"]["base_width"]  # the default differs
    run_id = fit(cfg)["mlflow_run_id"]
    run = MlflowClient(tracking).get_run(run_id)
    assert run.data.params["model.base_width"] == str(pretrained.hparams["model"]["base_width"])
    assert run.data.params["model.depth"] == str(pretrained.hparams["model"]["depth"])
    assert run.info.run_name == "burnt_area (a test)"
