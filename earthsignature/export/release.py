"""A trained model's way to production, as the CLI and the demo both run it: export to ONNX (parity
checked), register as a version, promote an alias, deploy a version into a Triton repository."""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from earthsignature.core.layout import ModelFolder
from earthsignature.core.manifest import DEFAULT_OVERLAP, DEFAULT_TILE_SIZE, INT8_MIN_AGREEMENT, ModelManifest
from earthsignature.export.onnx_export import ParityReport, export_checkpoint
from earthsignature.export.quantize import product_tiles, quantize_export
from earthsignature.export.registry import ModelRegistry
from earthsignature.export.triton_repository import ServingOptions, write_model


@dataclass(frozen=True)
class Int8Request:
    """Quantize the export to int8, calibrated on tiles of these products (``export --int8``)."""

    products: Sequence[Path]
    min_agreement: float = INT8_MIN_AGREEMENT
    calibration_tiles: int = 32
    parity_tiles: int = 32


def export_and_register(checkpoint: Path, out: Path, name: str, registry: ModelRegistry | None,
                        tile_size: int = DEFAULT_TILE_SIZE, overlap: int = DEFAULT_OVERLAP,
                        tolerance: float = 1e-3, float16_output: bool = False, int8: Int8Request | None = None
                        ) -> tuple[ModelFolder, ModelManifest, ParityReport]:
    """Export ``checkpoint`` into the model folder ``out`` (quantized to int8 when asked: the float export
    is then checked against PyTorch and the int8 model against it); with a registry, register it as the
    next version (the folder's manifest then carries that version)."""
    with tempfile.TemporaryDirectory() as tmp:
        float_dir = Path(tmp) / "float32" if int8 else Path(out)
        _, manifest, report = export_checkpoint(checkpoint, float_dir, name, tile_size, overlap, tolerance,
                                                float16_output=float16_output)
        if int8:
            tiles = product_tiles(int8.products, manifest, int8.calibration_tiles, int8.parity_tiles)
            _, manifest = quantize_export(float_dir, tiles, Path(out), int8.min_agreement)
    folder = ModelFolder(Path(out))
    if registry is not None:
        metrics = report.as_metrics()
        if manifest.quantization is not None:
            metrics["int8_argmax_agreement"] = manifest.quantization.argmax_agreement
        manifest = registry.register(folder.onnx, manifest, metrics)
        manifest.save(folder.manifest)
    return folder, manifest, report


def deploy(registry: ModelRegistry, reference: str, repository: Path,
           options: ServingOptions | None = None) -> Path:
    """Write the version ``reference`` names (``NAME@alias``, ``NAME/VERSION``) into a Triton model
    repository; return its version folder."""
    name, version = registry.resolve(reference)
    with tempfile.TemporaryDirectory() as tmp:
        onnx_path, manifest = registry.fetch(name, version, Path(tmp))
        return write_model(repository, onnx_path, manifest.with_version(version), options or ServingOptions())
