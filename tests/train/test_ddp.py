"""Real multi-process training: two ranks with DistributedDataParallel on CPU (gloo), through the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import torch
from mlflow.tracking import MlflowClient

from earthsignature.train.module import SegmentationModule
from earthsignature.train.tracking import weights_digest

TINY = ["experiment=smoke", "trainer.devices=2", "trainer.strategy=ddp", "trainer.accelerator=cpu",
        "data.fixture.patches_per_tile=4", "model.base_width=4", "model.depth=2", "trainer.enable_progress_bar=false"]


def train(tmp_path: Path, *overrides: str) -> dict:
    environment = {**os.environ, "EARTHSIGNATURE_HOME": str(tmp_path / "home")}
    command = [sys.executable, "-m", "earthsignature.cli", "train", *TINY, f"run_dir={tmp_path / 'run'}",
               f"logger.tracking_uri=sqlite:///{tmp_path / 'mlflow.db'}", *overrides]
    result = subprocess.run(command, env=environment, capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    return json.loads((tmp_path / "run" / "summary.json").read_text())


def digests(run: Path) -> set[str]:
    return {path.read_text().strip() for path in run.glob("weights-rank*.sha256")}


def test_two_ranks_train_alike_log_once_and_resume(tmp_path) -> None:
    run = tmp_path / "run"
    summary = train(tmp_path, "trainer.max_epochs=2")
    assert sorted(p.name for p in run.glob("weights-rank*.sha256")) == ["weights-rank0.sha256", "weights-rank1.sha256"]
    (digest,) = digests(run)  # both ranks end with the same weights...
    last = SegmentationModule.load_from_checkpoint(run / "checkpoints" / "last.ckpt", map_location="cpu")
    assert weights_digest(last) == digest  # ...the ones rank 0 checkpointed
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    (experiment,) = [e for e in client.search_experiments() if e.name == "smoke"]
    runs = client.search_runs([experiment.experiment_id])
    assert [r.info.run_id for r in runs] == [summary["mlflow_run_id"]]  # one run, by rank 0
    assert runs[0].info.run_name.startswith("smoke trainer.devices=2")  # named by what was asked
    assert "trainer.max_epochs=2" in runs[0].info.run_name
    assert len(client.get_metric_history(runs[0].info.run_id, "val_loss")) == 2  # one value per epoch, not per rank

    resumed = train(tmp_path, "trainer.max_epochs=3", "resume=last")
    assert resumed["epochs"] == 3 and len(digests(run)) == 1 and digests(run) != {digest}
    checkpoint = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert checkpoint["epoch"] == 2  # epochs 0 and 1 from the first run, epoch 2 after resuming
