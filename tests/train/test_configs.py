"""Every experiment in experiments/ composes with the command it is written for."""

from __future__ import annotations

from pathlib import Path

import pytest

from earthsignature.core.config import CONFIG_DIR, load_config
from earthsignature.train.evaluate import evaluate

COMMAND_OF = {
    "smoke": "train", "clc": "train",
    "smoke_burnt_area": "finetune", "burnt_area": "finetune",
    "smoke_crops": "finetune", "crops": "finetune", "crops_full": "finetune",
    "smoke_table2": "evaluate", "hrl": "evaluate", "urban_atlas": "evaluate",
}
REQUIRED = {"train": ["run_dir=r"], "finetune": ["run_dir=r", "pretrained=p.ckpt"],
            "evaluate": ["report_dir=r", "checkpoint=c.ckpt"]}


def test_every_experiment_file_is_known() -> None:
    assert {p.stem for p in (CONFIG_DIR / "experiment").glob("*.yaml")} == set(COMMAND_OF)


@pytest.mark.parametrize("experiment", sorted(COMMAND_OF))
def test_experiment_composes(experiment: str) -> None:
    command = COMMAND_OF[experiment]
    cfg = load_config(None, command, [f"experiment={experiment}", *REQUIRED[command]])
    if command in ("train", "finetune"):
        assert cfg.data.family in ("bigearthnet", "pairs") and cfg.trainer.max_epochs > 0
        assert Path(cfg.data.root).name  # every data set has a root
    else:
        assert set(cfg.only or cfg.test_sets) <= set(cfg.test_sets)


def test_the_seed_protocol_is_the_default() -> None:
    cfg = load_config(None, "train", ["run_dir=r"])
    assert (cfg.optimizer.lr, list(cfg.optimizer.betas)) == (1e-3, [0.9, 0.999])
    assert (cfg.data.batch_size, cfg.trainer.max_epochs) == (128, 34)
    assert list(cfg.data.bands) == ["B02", "B03", "B04", "B08"] and cfg.data.taxonomy == "clc_level3"
    assert (cfg.checkpoint.monitor, cfg.checkpoint.mode) == ("val_loss", "min")
    assert load_config(None, "train", ["run_dir=r", "trainer=ddp"]).trainer.strategy == "ddp"


def test_each_fine_tune_experiment_sets_its_task_data_and_depth() -> None:
    """An experiment's task, data and head|full are what it says (finetune.yaml used to override them)."""
    expected = {"burnt_area": ("burnt_area", "burnt_area", "head"), "crops": ("crops", "crops", "head"),
                "crops_full": ("crops", "crops", "full"), "smoke_crops": ("crops", "crops", "head")}
    for experiment, (task, kind, depth) in expected.items():
        cfg = load_config(None, "finetune", [f"experiment={experiment}", *REQUIRED["finetune"]])
        assert (cfg.task, cfg.data.kind, cfg.finetune) == (task, kind, depth), experiment
    assert load_config(None, "finetune", ["experiment=crops_full", *REQUIRED["finetune"]]).optimizer.lr == 1e-4


def test_evaluate_rejects_unknown_test_sets() -> None:
    cfg = load_config(None, "evaluate", ["checkpoint=c.ckpt", "report_dir=r", "only=[cadastre]"])
    with pytest.raises(ValueError, match=r"unknown test sets \['cadastre'\]"):
        evaluate(cfg)
