"""int8 export for CPUs: calibrated on product tiles, checked on held-out ones, refused below its bound."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import rasterio
import torch
from click.testing import CliRunner
from tritonclient.grpc import model_config_pb2 as mc

from earthsignature.core.layout import ModelFolder
from earthsignature.core.manifest import INT8_MIN_AGREEMENT, ModelManifest
from earthsignature.core.nomenclature import clc_level3
from earthsignature.core.readers import open_product
from earthsignature.export.onnx_export import ExportError, export_checkpoint
from earthsignature.export.quantize import argmax_agreement, product_tiles, quantize_export
from earthsignature.export.release import Int8Request, export_and_register
from earthsignature.export.triton_repository import ServingOptions, parse_config, write_model
from earthsignature.samples.safe_writer import ProductSpec, write_product
from earthsignature.service.inference.backends import OnnxRuntimeBackend
from earthsignature.service.inference.product_input import ProductInput
from earthsignature.service.inference.segmenter import segment_product
from earthsignature.train.module import SegmentationModule, save_checkpoint

BANDS = ["B02", "B03", "B04", "B08"]
TILE, OVERLAP = 64, 16


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A product and a small UNet trained on its own land cover for a few seconds: a model with decided
    classes (an untrained one gives every pixel the same class, and any quantization agrees with it)."""
    tmp = tmp_path_factory.mktemp("int8")
    spec = ProductSpec(size=600, seed=4, cloud_cover=10, nodata_fraction=0.1, feature_size=20)
    product = write_product(tmp / "products", spec)
    torch.manual_seed(1)
    nomenclature = clc_level3()
    module = SegmentationModule(model={"name": "unet", "base_width": 8, "depth": 2}, nomenclature_name="clc_level3",
                                classes=nomenclature.to_records(), bands=BANDS,
                                normalization={"bands": BANDS, "minimum": 0.0, "maximum": 10000.0,
                                               "mean": [0.1, 0.12, 0.11, 0.3]})
    _, manifest, _ = export_checkpoint(save_checkpoint(module, tmp / "untrained.ckpt"), tmp / "untrained", "t", TILE)
    with ProductInput(open_product(product), manifest) as source:
        image, _ = source.strip(0, source.height)
    index = {code: k for k, code in enumerate(nomenclature.codes)}
    target = torch.from_numpy(np.vectorize(index.get)(spec.labels(spec.size, spec.size, 1))).long()
    optimizer = torch.optim.Adam(module.model.parameters(), lr=1e-2)
    corners = np.random.default_rng(0).integers(0, spec.size - 128, (500, 2))
    for row, col in corners:
        x = torch.from_numpy(image[None, :, row:row + 128, col:col + 128])
        loss = torch.nn.functional.cross_entropy(module.model(x), target[None, row:row + 128, col:col + 128])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return product, save_checkpoint(module.eval(), tmp / "trained.ckpt")


@pytest.fixture(scope="module")
def float_model(scene, tmp_path_factory: pytest.TempPathFactory) -> ModelFolder:
    folder = ModelFolder(tmp_path_factory.mktemp("float"))
    export_checkpoint(scene[1], folder.path, "clc-int8", TILE, OVERLAP)
    return folder


@pytest.fixture(scope="module")
def tiles(scene, float_model):
    return product_tiles([scene[0]], ModelManifest.load(float_model.manifest), calibration=16, held_out=16)


@pytest.fixture(scope="module")
def int8_model(float_model, tiles, tmp_path_factory: pytest.TempPathFactory) -> tuple[ModelFolder, ModelManifest]:
    return quantize_export(float_model.path, tiles, tmp_path_factory.mktemp("int8"), min_agreement=0.9)


def test_calibration_and_parity_tiles_are_disjoint_valid_product_tiles(tiles) -> None:
    assert tiles.calibration.shape == tiles.held_out.shape == (16, 4, TILE, TILE)
    assert tiles.held_out_valid.shape == (16, TILE, TILE) and tiles.held_out_valid.mean() >= 0.9
    flat = {t.tobytes() for t in tiles.calibration}
    assert not flat & {t.tobytes() for t in tiles.held_out}  # held out: never seen by the calibrator
    assert tiles.products[0].endswith(".SAFE")


def test_the_int8_model_is_quantized_and_says_how(int8_model, float_model, tiles) -> None:
    folder, manifest = int8_model
    graph = onnx.load(str(folder.onnx)).graph
    ops = [node.op_type for node in graph.node]
    assert ops.count("QuantizeLinear") > 5 and ops.count("DequantizeLinear") > 5
    assert sum(i.data_type == onnx.TensorProto.INT8 for i in graph.initializer) >= 4  # int8 weights
    assert all(node.op_type not in ("QuantizeLinear", "DequantizeLinear") for node in graph.node
               if "softmax" in node.output[0])  # the softmax is float: probabilities keep their resolution
    record = manifest.quantization
    assert manifest.precision == "int8" and record.calibration_tiles == record.parity_tiles == 16
    assert record.calibration_products == tiles.products and "QDQ" in record.method
    recount = argmax_agreement(float_model.onnx, folder.onnx, manifest, tiles.held_out, tiles.held_out_valid)
    assert record.argmax_agreement == recount and 0.9 <= recount < 1.0
    assert ModelManifest.load(folder.manifest) == manifest  # the record survives the file
    assert json.loads(folder.manifest.read_text())["quantization"]["min_agreement"] == 0.9
    probabilities = ort.InferenceSession(str(folder.onnx)).run(None, {"image": tiles.held_out[:2]})[0]
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)


def test_below_its_bound_the_quantization_is_refused_and_writes_nothing(int8_model, float_model, tiles,
                                                                       tmp_path) -> None:
    measured = int8_model[1].quantization.argmax_agreement
    with pytest.raises(ExportError, match=rf"agrees with the float one on {measured:.4f} .* keep the float model"):
        quantize_export(float_model.path, tiles, tmp_path / "refused", min_agreement=(measured + 1) / 2)
    assert not (tmp_path / "refused").exists()
    assert Int8Request([]).min_agreement == INT8_MIN_AGREEMENT == 0.99  # the bound an export gets by default


def test_the_int8_model_segments_a_product_like_the_float_one(int8_model, float_model, scene, tmp_path) -> None:
    maps = []
    for folder in (float_model, int8_model[0]):
        manifest = ModelManifest.load(folder.manifest)
        with ProductInput(open_product(scene[0]), manifest) as source:
            result = segment_product(source, OnnxRuntimeBackend(folder.onnx, manifest), tmp_path / manifest.precision)
        with rasterio.open(result.classes_path) as dataset:
            maps.append(dataset.read(1))
    valid = maps[0] != 255
    assert ((maps[1] == 255) == ~valid).all()  # no-data is the input's, whatever the precision
    assert (maps[0][valid] == maps[1][valid]).mean() > 0.9


def test_triton_serves_int8_on_cpu_instances_only(int8_model, tmp_path) -> None:
    folder, manifest = int8_model
    version = write_model(tmp_path, folder.onnx, manifest.with_version("1"))
    assert ModelManifest.load(ModelFolder(version).manifest).precision == "int8"
    config = parse_config(tmp_path / "clc-int8" / "config.pbtxt")
    assert (config.input[0].data_type, config.output[0].data_type) == (mc.TYPE_FP32, mc.TYPE_FP32)
    assert config.instance_group[0].kind == mc.ModelInstanceGroup.KIND_CPU
    with pytest.raises(ValueError, match=r"int8, quantized for CPUs .* float export on GPU instances"):
        write_model(tmp_path, folder.onnx, manifest.with_version("2"), ServingOptions(instance_kind="gpu"))


def test_export_int8_end_to_end_through_the_cli(scene, tmp_path) -> None:
    from earthsignature.cli import main

    product, checkpoint = scene
    runner = CliRunner()
    refused = runner.invoke(main, ["export", str(checkpoint), "--name", "clc-int8", "--int8", "--no-register"])
    assert refused.exit_code == 2 and "--int8 needs --calibration" in refused.output
    tracking = f"sqlite:///{tmp_path / 'mlflow.db'}"
    args = ["export", str(checkpoint), "--name", "clc-int8", "--out", str(tmp_path / "out"), "--tile-size", str(TILE),
            "--overlap", str(OVERLAP), "--int8", "--calibration", str(product), "--tracking-uri", tracking]
    strict = runner.invoke(main, [*args, "--min-agreement", "0.9999"])
    assert strict.exit_code == 1 and "below the 0.9999 asked" in strict.output and not (tmp_path / "out").exists()
    result = runner.invoke(main, [*args, "--min-agreement", "0.9"])
    assert result.exit_code == 0, result.output
    assert "int8: argmax agreement with the float model 0.9" in result.output
    manifest = ModelManifest.load(tmp_path / "out" / "manifest.json")
    assert manifest.precision == "int8" and manifest.version == "1"
    from mlflow.tracking import MlflowClient

    assert MlflowClient(tracking).get_model_version("clc-int8", "1").tags["precision"] == "int8"


def test_calibration_products_must_be_ones_the_model_reads(float_model, tmp_path) -> None:
    l1c = write_product(tmp_path / "l1c", ProductSpec(level="L1C", size=120))
    with pytest.raises(ExportError, match=r"L1C.*cannot calibrate the model: .* convert it with to_l2a"):
        product_tiles([l1c], ModelManifest.load(float_model.manifest))


def test_int8_needs_enough_tiles(scene, float_model, tmp_path) -> None:
    with pytest.raises(ExportError, match=r"needs 400 mostly valid tiles of 64 px; the products given hold \d+"):
        export_and_register(scene[1], tmp_path / "out", "clc-int8", None, TILE, OVERLAP,
                            int8=Int8Request([scene[0]], calibration_tiles=200, parity_tiles=200))
    assert not (tmp_path / "out").exists()
