"""ONNX export, parity verification and the model manifest."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from earthsignature.core.manifest import ManifestError, ModelCard, ModelManifest
from earthsignature.core.normalization import NormalizationStats
from earthsignature.data.normalization import normalize_tensor
from earthsignature.export.onnx_export import ExportError, export_checkpoint
from earthsignature.train.module import SegmentationModule


@pytest.fixture(scope="module")
def exported(tiny_checkpoints, tmp_path_factory: pytest.TempPathFactory):
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = export_checkpoint(tiny_checkpoints[0], tmp_path_factory.mktemp("export"), "clc-tiny", 128, 16)
    # torch.export-based: none of the TorchScript exporter's deprecation warnings
    assert not [w for w in caught if "TorchScript" in str(w.message) or "torch.onnx" in (w.filename or "")]
    return result


def test_export_writes_a_checked_dynamic_onnx_model(exported) -> None:
    onnx_path, _, report = exported
    model = onnx.load(str(onnx_path))
    onnx.checker.check_model(model, full_check=True)
    assert max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) == 18
    assert not any(init.data_location == onnx.TensorProto.EXTERNAL for init in model.graph.initializer)
    (image,), (probabilities,) = model.graph.input, model.graph.output
    assert (image.name, probabilities.name) == ("image", "probabilities")
    dims = [d.dim_param or d.dim_value for d in image.type.tensor_type.shape.dim]
    assert dims == ["batch", 4, "height", "width"]
    assert [d.dim_param or d.dim_value for d in probabilities.type.tensor_type.shape.dim] == [
        "batch", 44, "height", "width"]
    assert report.max_abs_diff < 1e-5 and report.argmax_agreement > 0.999
    assert (97, 131) in [(h, w) for _, h, w in report.shapes]  # odd sizes are checked too


def test_onnx_matches_pytorch_on_a_new_input(exported, tiny_checkpoints) -> None:
    import onnxruntime as ort

    onnx_path, _, _ = exported
    network = SegmentationModule.load_from_checkpoint(tiny_checkpoints[0], map_location="cpu").model.eval()
    x = torch.randn(2, 4, 75, 53)
    with torch.no_grad():
        reference = torch.softmax(network(x), dim=1).numpy()  # the softmax is part of the exported graph
    result = ort.InferenceSession(str(onnx_path)).run(None, {"image": x.numpy()})[0]
    np.testing.assert_allclose(result, reference, atol=1e-5)
    np.testing.assert_allclose(result.sum(axis=1), 1.0, atol=1e-5)


def test_manifest_describes_the_model(exported, tiny_checkpoints) -> None:
    onnx_path, manifest, _ = exported
    module = SegmentationModule.load_from_checkpoint(tiny_checkpoints[0], map_location="cpu")
    assert manifest.name == "clc-tiny" and manifest.task == "land_cover" and manifest.version is None
    assert manifest.bands == ("B02", "B03", "B04", "B08") and manifest.resolution == 10.0
    assert (manifest.tile_size, manifest.overlap) == (128, 16)
    assert manifest.num_classes == 44 and manifest.classes[23].name == "Coniferous forest"
    assert manifest.classes[23].color == (0, 166, 0) and manifest.nomenclature == "clc_level3"
    assert manifest.source["checkpoint"] == str(tiny_checkpoints[0])
    # preprocessing from the manifest is the training preprocessing, to the bit
    digital_numbers = np.random.default_rng(0).integers(1, 9000, (4, 16, 16)).astype(np.uint16)
    stats = NormalizationStats.from_dict(dict(module.hparams.normalization))
    expected = normalize_tensor(stats, torch.from_numpy(digital_numbers.astype(np.float32))).numpy()
    np.testing.assert_array_equal(manifest.normalize(digital_numbers), expected)  # bit-identical
    assert ModelManifest.load(onnx_path.parent / "manifest.json") == manifest


def test_manifest_round_trip_and_errors(exported, tmp_path: Path) -> None:
    _, manifest, _ = exported
    versioned = manifest.with_version("7")
    assert ModelManifest.load(versioned.save(tmp_path / "m.json")) == versioned
    assert versioned.model_id == "clc-tiny:7" and versioned.colormap()[0] == (230, 0, 77, 255)
    record = json.loads((tmp_path / "m.json").read_text())
    assert record["normalization"]["bands"] == ["B02", "B03", "B04", "B08"]  # one record, its bands named
    with pytest.raises(ManifestError, match=r"statistics are for bands \('B02', 'B03', 'B04', 'B08'\), the model"):
        ModelManifest.from_dict({**record, "bands": ["B02"]})
    earlier = {k: v for k, v in record["normalization"].items() if k != "bands"}  # before the record had them
    assert ModelManifest.from_dict({**record, "normalization": earlier}) == versioned
    with pytest.raises(ManifestError, match=r"not a model manifest: .*maximum 0\.0 must exceed minimum 0\.0"):
        ModelManifest.from_dict({**record, "normalization": {**earlier, "maximum": 0.0}})
    legacy = {key: value for key, value in record.items() if key != "card"}  # before the card had its field
    legacy["source"] = {"training_data": {"name": "bigearthnet", "kind": "synthetic", "test_set": "its test split"},
                        "test_metrics": {"test_miou": 0.5, "test_loss": 1.2}}
    assert ModelManifest.from_dict(legacy).card == ModelCard("bigearthnet", "synthetic", "its test split",
                                                             {"miou": 0.5})
    with pytest.raises(ManifestError, match="task must be one of"):
        ModelManifest.from_dict({**record, "task": "weather"})
    with pytest.raises(ManifestError, match="newer than this code reads"):
        ModelManifest.from_dict({**record, "format_version": 99})
    with pytest.raises(ManifestError, match="not a model manifest"):
        ModelManifest.from_dict({"name": "x"})
    with pytest.raises(ManifestError, match="takes 4 bands"):
        manifest.normalize(np.zeros((3, 8, 8)))


def test_export_fails_above_tolerance_and_writes_nothing(tiny_checkpoints, tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="ONNX and PyTorch disagree"):
        export_checkpoint(tiny_checkpoints[0], tmp_path / "out", "clc-tiny", tolerance=0.0)
    assert not (tmp_path / "out").exists()
