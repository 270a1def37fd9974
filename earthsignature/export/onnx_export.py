"""Export a trained checkpoint to ONNX with its manifest, checked and verified against PyTorch.

The ONNX graph takes ``image`` [batch, bands, height, width] (all three dynamic) of *normalised*
inputs and returns ``probabilities`` [batch, classes, height, width]: the network's logits with the
softmax over classes appended to the graph, as element-wise operations (ONNX Runtime runs those about
20 times faster than numpy, and than its own ``Softmax`` on axis 1, which transposes). Export runs the
ONNX checker, then feeds random inputs of several sizes (odd ones included) to PyTorch and ONNX Runtime
and compares: the largest absolute probability difference and the share of pixels whose argmax agrees.
Above the tolerance the export fails and writes nothing.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import torch

from earthsignature.core.layout import ModelFolder
from earthsignature.core.manifest import DEFAULT_OVERLAP, DEFAULT_TILE_SIZE, TASKS, ModelCard, ModelManifest
from earthsignature.core.normalization import NormalizationStats
from earthsignature.train.module import SegmentationModule

OPSET = 18
PARITY_SHAPES = ((1, 120, 120), (2, 97, 131), (3, 64, 64))
RESOLUTION_M = 10.0  # the models read 10 m grids (20 m and 60 m bands are resampled to it)


LOGITS = "logits"  # the network's own output, inside the graph
#: The name of every node of the appended softmax begins so (int8 quantization leaves them in float32).
SOFTMAX_PREFIX = "softmax/"


def append_softmax(onnx_path: Path, logits: str, probabilities: str, float16: bool = False) -> None:
    """Replace the graph's output ``logits`` [N, C, H, W] by ``probabilities``, the softmax over C written
    as ReduceMax, Sub, Exp, ReduceSum and Div (opset 18: both reductions take their axes as an input)."""
    model = onnx.load(str(onnx_path))
    (output,) = model.graph.output
    dims = output.type.tensor_type.shape.dim
    axes = onnx.helper.make_tensor("softmax_axes", onnx.TensorProto.INT64, [1], [1])
    nodes = [
        onnx.helper.make_node("ReduceMax", [logits, "softmax_axes"], ["softmax_max"], keepdims=1),
        onnx.helper.make_node("Sub", [logits, "softmax_max"], ["softmax_shifted"]),
        onnx.helper.make_node("Exp", ["softmax_shifted"], ["softmax_exp"]),
        onnx.helper.make_node("ReduceSum", ["softmax_exp", "softmax_axes"], ["softmax_sum"], keepdims=1),
        onnx.helper.make_node("Div", ["softmax_exp", "softmax_sum"], ["softmax_probabilities" if float16
                                                                      else probabilities]),
    ]
    if float16:  # computed in float32, handed over in float16
        nodes.append(onnx.helper.make_node("Cast", ["softmax_probabilities"], [probabilities],
                                           to=onnx.TensorProto.FLOAT16))
    for node in nodes:
        node.name = f"{SOFTMAX_PREFIX}{node.op_type}"
    model.graph.initializer.append(axes)
    model.graph.node.extend(nodes)
    model.graph.output.remove(output)
    model.graph.output.append(onnx.helper.make_tensor_value_info(
        probabilities, onnx.TensorProto.FLOAT16 if float16 else onnx.TensorProto.FLOAT,
        [d.dim_param or d.dim_value for d in dims]))
    onnx.save(model, str(onnx_path))


class ExportError(RuntimeError):
    """The exported model is invalid or disagrees with PyTorch."""


@dataclass(frozen=True)
class ParityReport:
    max_abs_diff: float  # of class probabilities
    argmax_agreement: float
    shapes: tuple[tuple[int, int, int], ...]

    def as_metrics(self) -> dict[str, float]:
        return {"parity_max_abs_probability_diff": self.max_abs_diff,
                "parity_argmax_agreement": self.argmax_agreement}


def manifest_for(module: SegmentationModule, name: str, checkpoint: Path, tile_size: int, overlap: int,
                 source: dict[str, Any] | None = None) -> ModelManifest:
    hparams = module.hparams
    return ModelManifest(
        name=name, task=hparams.task if hparams.task in TASKS else "pilot",
        bands=tuple(hparams.bands), resolution=RESOLUTION_M,
        normalization=NormalizationStats.from_dict(dict(hparams.normalization)),
        classes=module.nomenclature.classes, nomenclature=hparams.nomenclature_name,
        tile_size=tile_size, overlap=overlap,
        source={"checkpoint": str(checkpoint), **(source or {})},
    )


def verify_parity(network: torch.nn.Module, onnx_path: Path, in_channels: int,
                  shapes: tuple[tuple[int, int, int], ...] = PARITY_SHAPES, seed: int = 0) -> ParityReport:
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    generator = torch.Generator().manual_seed(seed)
    worst, agree, total = 0.0, 0, 0
    with torch.no_grad():
        for batch, height, width in shapes:
            x = torch.randn(batch, in_channels, height, width, generator=generator)
            reference = torch.softmax(network(x), dim=1).numpy()
            result = session.run(None, {"image": x.numpy()})[0].astype(np.float32)
            if result.shape != reference.shape:
                raise ExportError(f"ONNX output {result.shape} != PyTorch {reference.shape} for input {x.shape}")
            worst = max(worst, float(np.abs(result - reference).max()))
            agree += int((result.argmax(1) == reference.argmax(1)).sum())
            total += reference.shape[0] * height * width
    return ParityReport(worst, agree / total, shapes)


def export_checkpoint(checkpoint: Path, out_dir: Path, name: str, tile_size: int = DEFAULT_TILE_SIZE,
                      overlap: int = DEFAULT_OVERLAP,
                      tolerance: float = 1e-3, min_agreement: float = 0.999, float16_output: bool = False
                      ) -> tuple[Path, ModelManifest, ParityReport]:
    """Write ``out_dir/model.onnx`` and ``out_dir/manifest.json``; return them and the parity report.
    ``float16_output``: the probabilities leave the graph as float16 (half the bytes on a Triton wire)."""
    checkpoint = Path(checkpoint)
    module = SegmentationModule.load_from_checkpoint(checkpoint, map_location="cpu").eval()
    network = module.model.eval()
    source, card = _training_run(checkpoint)
    manifest = dataclasses.replace(manifest_for(module, name, checkpoint, tile_size, overlap, source), card=card,
                                   output_dtype="float16" if float16_output else "float32")
    with tempfile.TemporaryDirectory() as tmp:
        onnx_path = ModelFolder(Path(tmp)).onnx
        example = torch.zeros(1, len(manifest.bands), tile_size, tile_size)
        # the torch.export-based exporter (TorchScript's is deprecated); any batch and tile size
        dims = {0: torch.export.Dim("batch"), 2: torch.export.Dim("height"), 3: torch.export.Dim("width")}
        torch.onnx.export(
            network, (example,), str(onnx_path), input_names=[manifest.input_name], output_names=[LOGITS],
            opset_version=OPSET, dynamo=True, dynamic_shapes=(dims,), external_data=False, verbose=False)
        append_softmax(onnx_path, LOGITS, manifest.output_name, float16_output)
        try:
            onnx.checker.check_model(str(onnx_path), full_check=True)
        except onnx.checker.ValidationError as error:
            raise ExportError(f"the ONNX checker rejects the export: {error}") from error
        report = verify_parity(network, onnx_path, len(manifest.bands))
        if report.max_abs_diff > tolerance or report.argmax_agreement < min_agreement:
            raise ExportError(
                f"ONNX and PyTorch disagree: max |probability diff| {report.max_abs_diff:.2e} "
                f"(tolerance {tolerance:.0e}), argmax agreement {report.argmax_agreement:.5f} "
                f"(minimum {min_agreement})")
        folder = ModelFolder(Path(out_dir))
        folder.path.mkdir(parents=True, exist_ok=True)
        shutil.move(str(onnx_path), folder.onnx)
    manifest.save(folder.manifest)
    return folder.onnx, manifest, report


def _training_run(checkpoint: Path) -> tuple[dict[str, Any], ModelCard]:
    """What the training run left beside its checkpoints (summary.json): its run id and promotion gate, and
    the model card (unknown when there is no summary)."""
    summary_path = checkpoint.parent.parent / "summary.json"
    if not summary_path.exists():
        return {}, ModelCard()
    summary = json.loads(summary_path.read_text())
    source: dict[str, Any] = {"promotion": summary.get("promotion", {})}
    if summary.get("mlflow_run_id"):
        source["training_run_id"] = summary["mlflow_run_id"]
    card = (ModelCard.from_dict(summary["model_card"]) if "model_card" in summary  # earlier runs: from their data
            else ModelCard.from_training(summary.get("data", {}), summary.get("test", {})))
    return source, card
