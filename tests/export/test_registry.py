"""The MLflow model registry: versions, aliases, gates, fetching (on a real SQLite store)."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest

from earthsignature.export.onnx_export import export_checkpoint
from earthsignature.export.registry import ModelRegistry, RegistryError


@pytest.fixture(scope="module")
def registry(tiny_checkpoints, tmp_path_factory: pytest.TempPathFactory) -> tuple[ModelRegistry, list]:
    tmp = tmp_path_factory.mktemp("registry")
    registry = ModelRegistry(f"sqlite:///{tmp / 'mlflow.db'}")
    registered = []
    for number, checkpoint in enumerate(tiny_checkpoints, start=1):
        onnx_path, manifest, report = export_checkpoint(checkpoint, tmp / f"v{number}", "clc-tiny")
        metrics = {**report.as_metrics(), "test_miou": 0.4 + 0.2 * number}  # v1 0.6, v2 0.8
        registered.append(registry.register(onnx_path, manifest, metrics))
    return registry, registered


def test_each_export_is_a_new_version(registry) -> None:
    registry, registered = registry
    assert [m.version for m in registered] == ["1", "2"]
    versions = registry.versions("clc-tiny")
    assert [v.version for v in versions] == ["1", "2"]
    assert versions[1].metrics["test_miou"] == pytest.approx(0.8)
    assert versions[0].metrics["parity_argmax_agreement"] > 0.999


def test_promotion_moves_the_alias(registry) -> None:
    registry, _ = registry
    registry.promote("clc-tiny", "1", "champion")
    assert registry.resolve("clc-tiny@champion") == ("clc-tiny", "1")
    registry.promote("clc-tiny", "2", "champion", ["test_miou>=0.7"])
    assert registry.resolve("clc-tiny@champion") == ("clc-tiny", "2")
    aliases = {v.version: v.aliases for v in registry.versions("clc-tiny")}
    assert aliases == {"1": (), "2": ("champion",)}
    assert registry.resolve("clc-tiny/1") == ("clc-tiny", "1")


def test_gates_refuse_with_the_reason(registry) -> None:
    registry, _ = registry
    with pytest.raises(RegistryError, match=r"test_miou = 0\.6000, required >= 0\.7"):
        registry.promote("clc-tiny", "1", "challenger", ["test_miou>=0.7"])
    with pytest.raises(RegistryError, match="val_ana not recorded"):
        registry.promote("clc-tiny", "2", "challenger", ["val_ana>0.1"])
    with pytest.raises(RegistryError, match="is not METRIC>=VALUE"):
        registry.promote("clc-tiny", "2", "challenger", ["test_miou is great"])
    with pytest.raises(RegistryError, match="has no alias @challenger"):
        registry.resolve("clc-tiny@challenger")  # nothing was promoted
    with pytest.raises(RegistryError, match="has no version 9"):
        registry.promote("clc-tiny", "9", "champion")
    with pytest.raises(RegistryError, match="no registered model named 'lulc'"):
        registry.versions("lulc")


def test_fetch_returns_the_model_and_its_versioned_manifest(registry, tmp_path: Path) -> None:
    registry, registered = registry
    onnx_path, manifest = registry.fetch("clc-tiny", "2", tmp_path)
    assert manifest == registered[1] and manifest.version == "2"
    onnx.checker.check_model(str(onnx_path), full_check=True)  # self-contained: no external data file
    assert sorted(p.name for p in tmp_path.iterdir()) == ["manifest.json", "model.onnx"]


def test_the_experiments_gate_is_enforced_by_default_and_says_why(tiny_checkpoints, tmp_path) -> None:
    """A version carries the gate its experiment declared: a minimum test metric, and beating @champion on the
    same test set; promote refuses a version that misses it, unless told to ignore it."""
    import dataclasses

    registry = ModelRegistry(f"sqlite:///{tmp_path / 'mlflow.db'}")
    gate = {"minimum": {"test_miou": 0.5}, "beat_champion": True}
    versions = []
    for number, miou in enumerate((0.6, 0.3, 0.7, 0.65), start=1):
        onnx_path, manifest, report = export_checkpoint(tiny_checkpoints[0], tmp_path / f"v{number}", "clc-gated")
        manifest = dataclasses.replace(manifest, source={**manifest.source, "promotion": gate})
        versions.append(registry.register(onnx_path, manifest, {**report.as_metrics(), "test_miou": miou}).version)
    assert registry.declared_gate("clc-gated", "1") == gate
    registry.promote("clc-gated", "1", "champion")  # 0.6 >= 0.5, no champion yet
    with pytest.raises(RegistryError, match=r"test_miou = 0\.3000, required >= 0\.5 \(the experiment's gate\)"):
        registry.promote("clc-gated", "2", "champion")
    registry.promote("clc-gated", "3", "champion")  # 0.7 beats the champion's 0.6
    with pytest.raises(RegistryError, match=r"does not beat @champion \(version 3: 0\.7000\)"):
        registry.promote("clc-gated", "4", "champion")  # 0.65: above the minimum, below the champion
    assert registry.resolve("clc-gated@champion") == ("clc-gated", "3")
    registry.promote("clc-gated", "2", "challenger", gate=False)  # an operator's explicit choice
    assert registry.resolve("clc-gated@challenger") == ("clc-gated", "2")
