"""The smoke experiments' synthetic data sets: written by the entry points, only read by training."""

from __future__ import annotations

from pathlib import Path

import pytest

from earthsignature.cli.ml import _sweeps
from earthsignature.core.config import load_config
from earthsignature.core.layout import DatasetFolder
from earthsignature.embedded.fixtures import data_configs, write_missing_fixtures
from earthsignature.train.train import build_datamodule


def test_training_reads_data_sets_and_never_writes_one(tmp_path: Path) -> None:
    cfg = load_config(None, "train", ["experiment=smoke", f"data.root={tmp_path / 'ben'}"])
    datamodule = build_datamodule(cfg.data, cfg.ignore_index)
    with pytest.raises(FileNotFoundError, match=r"no data set at .*ben: set data.root .* `earthsignature train`"):
        datamodule.prepare_data()
    assert not (tmp_path / "ben").exists()


def test_the_entry_points_write_each_configured_fixture_once(tmp_path: Path) -> None:
    cfg = load_config(None, "evaluate", [
        "checkpoint=c.ckpt", f"report_dir={tmp_path / 'report'}",
        f"test_sets.clc.data.root={tmp_path / 'ben'}", "test_sets.clc.data.fixture={patches_per_tile: 2}",
        f"test_sets.burnt_area.data.root={tmp_path / 'burnt'}",
        "test_sets.burnt_area.data.fixture={n_samples: 4, size: 32, codes: [312, 334]}",
        f"test_sets.hrl.data.root={tmp_path}"])  # present (real data, say): left alone
    assert len(data_configs(cfg)) == len(cfg.test_sets)
    written = write_missing_fixtures(cfg)
    assert set(written) >= {tmp_path / "ben", tmp_path / "burnt"} and tmp_path not in written
    assert DatasetFolder(tmp_path / "ben").kind == DatasetFolder(tmp_path / "burnt").kind == "synthetic"
    assert DatasetFolder(tmp_path).kind == "real"
    assert not set(write_missing_fixtures(cfg)) & {tmp_path / "ben", tmp_path / "burnt"}  # written once


@pytest.mark.parametrize(("override", "sweeps"), [
    ("model.base_width=8,16", True), ("seed=range(1,4)", True), ("data.fixture={codes: [1, 2]}", False),
    ("optimizer.lr=1e-3", False), ("data.bands=[B02,B03]", False)])
def test_a_sweep_override_is_told_from_a_plain_one(override: str, sweeps: bool) -> None:
    assert _sweeps(override) is sweeps
