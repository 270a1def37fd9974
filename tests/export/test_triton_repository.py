"""The Triton model repository layout and config.pbtxt, validated with Triton's protobuf schema."""

from __future__ import annotations

from pathlib import Path

import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as mc

from earthsignature.export.onnx_export import export_checkpoint
from earthsignature.export.triton_repository import ServingOptions, parse_config, write_model


@pytest.fixture(scope="module")
def export(tiny_checkpoints, tmp_path_factory: pytest.TempPathFactory):
    onnx_path, manifest, _ = export_checkpoint(tiny_checkpoints[0], tmp_path_factory.mktemp("e"), "clc-tiny")
    return onnx_path, manifest


def test_layout_and_config(export, tmp_path: Path) -> None:
    onnx_path, manifest = export
    options = ServingOptions(max_batch_size=16, preferred_batch_sizes=(4, 8), max_queue_delay_us=250,
                             instance_kind="gpu", instance_count=2, num_versions=3)
    folder = write_model(tmp_path, onnx_path, manifest.with_version("1"), options)
    assert folder == tmp_path / "clc-tiny" / "1"
    assert sorted(p.name for p in folder.iterdir()) == ["manifest.json", "model.onnx"]
    labels = (tmp_path / "clc-tiny" / "labels.txt").read_text().splitlines()
    assert len(labels) == 44 and labels[23] == "Coniferous forest"
    config = parse_config(tmp_path / "clc-tiny" / "config.pbtxt")
    assert config.name == "clc-tiny" and config.platform == "onnxruntime_onnx" and config.max_batch_size == 16
    assert (config.input[0].name, config.input[0].data_type, list(config.input[0].dims)) == (
        "image", mc.TYPE_FP32, [4, -1, -1])
    assert (config.output[0].name, list(config.output[0].dims), config.output[0].label_filename) == (
        "probabilities", [44, -1, -1], "labels.txt")
    assert list(config.dynamic_batching.preferred_batch_size) == [4, 8]
    assert config.dynamic_batching.max_queue_delay_microseconds == 250
    assert (config.instance_group[0].kind, config.instance_group[0].count) == (mc.ModelInstanceGroup.KIND_GPU, 2)
    assert config.version_policy.latest.num_versions == 3


def test_new_versions_are_added_beside_the_old(export, tmp_path: Path) -> None:
    onnx_path, manifest = export
    write_model(tmp_path, onnx_path, manifest.with_version("1"))
    write_model(tmp_path, onnx_path, manifest.with_version("2"), ServingOptions(backend="python"))
    model_dir = tmp_path / "clc-tiny"
    assert sorted(p.name for p in model_dir.iterdir()) == ["1", "2", "config.pbtxt", "labels.txt", "manifest.json"]
    assert (model_dir / "2" / "model.py").exists() and parse_config(model_dir / "config.pbtxt").backend == "python"
    assert '"version": "2"' in (model_dir / "manifest.json").read_text()
    write_model(tmp_path, onnx_path, manifest.with_version("1"))  # re-deploying an old version
    assert '"version": "2"' in (model_dir / "manifest.json").read_text()  # the newest stays described


def test_schema_rejects_what_triton_would(tmp_path: Path) -> None:
    bad = tmp_path / "config.pbtxt"
    bad.write_text('name: "x"\nplatform: "onnxruntime_onnx"\nmax_batch: 4\n')
    with pytest.raises(text_format.ParseError, match="max_batch"):
        parse_config(bad)


def test_bad_options_and_versions(export, tmp_path: Path) -> None:
    onnx_path, manifest = export
    with pytest.raises(ValueError, match="positive integers"):
        write_model(tmp_path, onnx_path, manifest)  # unregistered: no version
    with pytest.raises(ValueError, match="exceed"):
        ServingOptions(max_batch_size=4, preferred_batch_sizes=(8,))
    with pytest.raises(ValueError, match="backend must be"):
        ServingOptions(backend="tensorrt")
