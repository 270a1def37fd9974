"""A trained model's way to production, as the CLI and the demo both run it: export to ONNX (parity
checked), register as a version, promote an alias, deploy a version into a Triton repository."""

from __future__ import annotations

import tempfile
from pathlib import Path

from earthsignature.core.layout import ModelFolder
from earthsignature.core.manifest import DEFAULT_OVERLAP, DEFAULT_TILE_SIZE, ModelManifest
from earthsignature.export.onnx_export import ParityReport, export_checkpoint
from earthsignature.export.registry import ModelRegistry
from earthsignature.export.triton_repository import ServingOptions, write_model


def export_and_register(checkpoint: Path, out: Path, name: str, registry: ModelRegistry | None,
                        tile_size: int = DEFAULT_TILE_SIZE, overlap: int = DEFAULT_OVERLAP,
                        tolerance: float = 1e-3, float16_output: bool = False
                        ) -> tuple[ModelFolder, ModelManifest, ParityReport]:
    """Export ``checkpoint`` into the model folder ``out``; with a registry, register it as the next
    version (the folder's manifest then carries that version)."""
    _, manifest, report = export_checkpoint(checkpoint, out, name, tile_size, overlap, tolerance,
                                            float16_output=float16_output)
    folder = ModelFolder(Path(out))
    if registry is not None:
        manifest = registry.register(folder.onnx, manifest, report.as_metrics())
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
