"""int8 models for CPUs: ONNX Runtime's static quantization of an exported float model, checked against it.

The float export (``model.onnx``, softmax in the graph) is quantized in the QDQ format: weights as int8 per
output channel, activations as uint8 with ranges calibrated on tiles of real products (each tile's minimum
and maximum, averaged), read and normalised exactly as the monitor reads them (``ProductInput``). The
softmax at the end stays in float32, so the confidence keeps its resolution, and so do the first and last
convolutions. The int8 model is then run beside the float one on *other* tiles of the same products (held
out from calibration): the share of valid pixels whose class (argmax) agrees must reach ``min_agreement``
(0.99 by default), else the quantization is refused and nothing is written.

On CPUs with VNNI or AMX (int8 dot products) ONNX Runtime fuses the QDQ pairs into integer convolutions;
on GPUs the float export is the one to deploy (TensorRT and CUDA want their own precision choices).
"""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quantize_static
from onnxruntime.quantization.shape_inference import quant_pre_process

from earthsignature.core.layout import ModelFolder
from earthsignature.core.manifest import INT8_MIN_AGREEMENT, ModelManifest, Quantization
from earthsignature.core.readers import open_product
from earthsignature.export.onnx_export import LOGITS, SOFTMAX_PREFIX, ExportError
from earthsignature.service.inference.product_input import ProcessingError, ProductInput

METHOD = ("onnxruntime static quantization, QDQ: int8 weights per output channel, uint8 activations "
          "calibrated on product tiles (MinMax, averaged over tiles); softmax, first and last convolutions in float32")
#: A tile is representative when most of it holds data (no-data edges would only stretch the ranges).
MIN_VALID_SHARE = 0.9


@dataclass(frozen=True)
class ProductTiles:
    """Tiles of real products as a model sees them, split in two disjoint sets."""

    calibration: np.ndarray  # [N, bands, tile, tile] normalised float32
    held_out: np.ndarray  # the parity check's tiles, never seen by calibration
    held_out_valid: np.ndarray  # [N, tile, tile] valid-pixel masks of held_out
    products: tuple[str, ...]


def product_tiles(products: Sequence[Path], manifest: ModelManifest, calibration: int = 32, held_out: int = 32,
                  seed: int = 0) -> ProductTiles:
    """``calibration`` + ``held_out`` tiles of the manifest's tile size drawn from strips spread over
    ``products`` (Sentinel-2 L2A: SAFE folders, STAC items), mostly valid, shuffled with ``seed``."""
    tiles, masks = [], []
    wanted = calibration + held_out
    for path in products:
        try:
            source = ProductInput(open_product(path), manifest)
        except ProcessingError as error:  # an L1C product: the models read L2A
            raise ExportError(f"{Path(path).name} cannot calibrate the model: {error}") from error
        with source:
            for image, valid in _strip_tiles(source, wanted):
                tiles.append(image)
                masks.append(valid)
    if len(tiles) < wanted:
        raise ExportError(f"int8 calibration needs {wanted} mostly valid tiles of {manifest.tile_size} px; the "
                          f"products given hold {len(tiles)}: give more (or larger) products")
    order = np.random.default_rng(seed).permutation(len(tiles))[:wanted]
    return ProductTiles(np.stack([tiles[k] for k in order[:calibration]]),
                        np.stack([tiles[k] for k in order[calibration:]]),
                        np.stack([masks[k] for k in order[calibration:]]),
                        tuple(str(Path(p).name) for p in products))


def _strip_tiles(source: ProductInput, wanted: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Mostly valid tiles side by side along a few strips spread evenly down the product."""
    tile = source.manifest.tile_size
    if source.height < tile or source.width < tile:
        return
    per_strip = max(1, source.width // tile)
    strips = min(max(1, -(-wanted // per_strip)) * 2, max(1, source.height // tile))  # twice: edges are no data
    for row in np.linspace(0, source.height - tile, strips).astype(int):
        image, valid = source.strip(int(row), tile)
        for col in range(0, source.width - tile + 1, tile):
            if valid[:, col:col + tile].mean() >= MIN_VALID_SHARE:
                yield image[:, :, col:col + tile].copy(), valid[:, col:col + tile].copy()


class _Tiles(CalibrationDataReader):
    """The calibration tiles, one at a time, as ONNX Runtime's calibrator reads them."""

    def __init__(self, input_name: str, tiles: np.ndarray):
        self._batches = iter([{input_name: tile[None]} for tile in tiles])

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._batches, None)


def argmax_agreement(first: Path, second: Path, manifest: ModelManifest, tiles: np.ndarray,
                     valid: np.ndarray) -> float:
    """Share of the valid pixels of ``tiles`` whose most probable class is the same under both models."""
    same = 0
    sessions = [ort.InferenceSession(str(p), providers=["CPUExecutionProvider"]) for p in (first, second)]
    for tile, mask in zip(tiles, valid, strict=True):
        a, b = (s.run(None, {manifest.input_name: tile[None]})[0][0].argmax(0) for s in sessions)
        same += int((a == b)[mask].sum())
    return same / max(int(valid.sum()), 1)


def quantize_export(float_folder: Path, tiles: ProductTiles, out_dir: Path,
                    min_agreement: float = INT8_MIN_AGREEMENT) -> tuple[ModelFolder, ModelManifest]:
    """Quantize the float model in ``float_folder`` into ``out_dir`` (model.onnx + manifest.json whose
    ``quantization`` says how, on what, and how closely it agrees); refused below ``min_agreement``."""
    source = ModelFolder(Path(float_folder))
    manifest = ModelManifest.load(source.manifest)
    if manifest.quantization is not None:
        raise ExportError(f"{source.onnx} is already int8")
    with tempfile.TemporaryDirectory() as tmp:
        prepared, quantized = Path(tmp) / "prepared.onnx", ModelFolder(Path(tmp)).onnx
        # Shapes and constant folding first, as ONNX Runtime recommends (its symbolic shape inference
        # does not follow dynamic tile sizes through the UNet's crops: ONNX's own inference is used).
        quant_pre_process(str(source.onnx), str(prepared), skip_symbolic_shape=True)
        quantize_static(str(prepared), str(quantized), _Tiles(manifest.input_name, tiles.calibration),
                        quant_format=QuantFormat.QDQ, per_channel=True, weight_type=QuantType.QInt8,
                        activation_type=QuantType.QUInt8, calibrate_method=CalibrationMethod.MinMax,
                        # each range the mean of the tiles' ranges, not the extremes of all: measured
                        # 0.988 -> 0.993 agreement on a trained model, the same on others
                        extra_options={"CalibMovingAverage": True},
                        nodes_to_exclude=_float_nodes(prepared))
        agreement = argmax_agreement(source.onnx, quantized, manifest, tiles.held_out, tiles.held_out_valid)
        if agreement < min_agreement:
            raise ExportError(f"the int8 model agrees with the float one on {agreement:.4f} of the held-out "
                              f"pixels, below the {min_agreement} asked: keep the float model for CPUs")
        record = Quantization(METHOD, tiles.products, len(tiles.calibration), len(tiles.held_out), agreement,
                              min_agreement)
        int8 = dataclasses.replace(manifest, quantization=record)
        folder = ModelFolder(Path(out_dir))
        folder.path.mkdir(parents=True, exist_ok=True)
        shutil.move(str(quantized), folder.onnx)
    int8.save(folder.manifest)
    return folder, int8


def _float_nodes(model_path: Path) -> list[str]:
    """The nodes left in float32: the softmax, and the first and last convolutions (the usual choice: they
    hold few of the operations and most of the sensitivity; measured: 0.3 to 1 point of agreement, no speed)."""
    graph = onnx.load(str(model_path)).graph
    inputs = {i.name for i in graph.input}
    return [node.name for node in graph.node if node.name.startswith(SOFTMAX_PREFIX) or LOGITS in node.output
            or (node.op_type == "Conv" and inputs & set(node.input))]
