"""The MLflow model registry: exported models become versions, aliases (``champion``) promote them.

Each registered version holds the ONNX model (``models:/NAME/VERSION``) and, in its run, the manifest
(``manifest.json``), the parity figures and the training run's test metrics, so a promotion can be
gated on a metric (``test_miou>=0.5``). Any MLflow tracking URI works; the default is the project's
local SQLite store.
"""

from __future__ import annotations

import operator
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

import mlflow
import onnx
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from earthsignature.core.layout import ModelFolder
from earthsignature.core.manifest import ModelManifest

_GATE = re.compile(r"^\s*([\w.\-/]+)\s*(>=|<=|>|<|==)\s*([-+0-9.eE]+)\s*$")
_OPERATORS = {">=": operator.ge, "<=": operator.le, ">": operator.gt, "<": operator.lt, "==": operator.eq}
_REFERENCE = re.compile(r"^(?P<name>[\w.\-]+)(?:@(?P<alias>[\w\-]+)|[/:](?P<version>\d+))$")


class RegistryError(RuntimeError):
    """A model, version or alias that does not exist, or a refused promotion; the message says which."""


@dataclass(frozen=True)
class VersionInfo:
    name: str
    version: str
    aliases: tuple[str, ...]
    metrics: dict[str, float]
    run_id: str
    created: int


class ModelRegistry:
    def __init__(self, tracking_uri: str, experiment: str = "models"):
        self.tracking_uri = tracking_uri
        self.experiment = experiment
        self.client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)

    def register(self, onnx_path: Path, manifest: ModelManifest, metrics: dict[str, float]) -> ModelManifest:
        """Log the ONNX model, manifest and metrics in a new run; register it as the next version."""
        mlflow.set_tracking_uri(self.tracking_uri)
        mlflow.set_registry_uri(self.tracking_uri)
        mlflow.set_experiment(self.experiment)
        test_metrics = {f"test_{k.removeprefix('test_')}": float(v)
                        for k, v in dict(manifest.source.get("test_metrics", {})).items()}
        with mlflow.start_run(run_name=f"export {manifest.name}") as run:
            mlflow.log_params({"task": manifest.task, "bands": ",".join(manifest.bands),
                               "classes": manifest.num_classes, "nomenclature": manifest.nomenclature,
                               "tile_size": manifest.tile_size, "overlap": manifest.overlap})
            mlflow.log_metrics({**metrics, **test_metrics})
            if "training_run_id" in manifest.source:
                mlflow.set_tag("training_run_id", manifest.source["training_run_id"])
            # one self-contained file (models here are far below protobuf's 2 GB limit)
            info = mlflow.onnx.log_model(onnx.load(str(onnx_path)), name="model",
                                         registered_model_name=manifest.name, save_as_external_data=False)
            version = str(info.registered_model_version)
            registered = manifest.with_version(version)
            mlflow.log_dict(registered.to_dict(), ModelFolder.MANIFEST_NAME)
        self.client.set_model_version_tag(manifest.name, version, "task", manifest.task)
        self.client.set_model_version_tag(manifest.name, version, "export_run_id", run.info.run_id)
        return registered

    def versions(self, name: str | None = None) -> list[VersionInfo]:
        query = f"name='{name}'" if name else ""
        found = self.client.search_model_versions(query)
        if name and not found:
            raise RegistryError(f"no registered model named {name!r}")
        aliases: dict[tuple[str, str], list[str]] = {}
        for model_name in {v.name for v in found}:
            for alias, version in self.client.get_registered_model(model_name).aliases.items():
                aliases.setdefault((model_name, str(version)), []).append(alias)
        infos = []
        for v in found:
            metrics = self.client.get_run(v.run_id).data.metrics if v.run_id else {}
            infos.append(VersionInfo(v.name, str(v.version), tuple(sorted(aliases.get((v.name, str(v.version)), []))),
                                     dict(metrics), v.run_id or "", int(v.creation_timestamp or 0)))
        return sorted(infos, key=lambda i: (i.name, int(i.version)))

    def promote(self, name: str, version: str, alias: str, require: list[str] = ()) -> VersionInfo:
        """Point ``alias`` at ``version`` if every gate (``metric>=value``) holds."""
        info = self._version(name, version)
        failures = []
        for gate in require:
            match = _GATE.match(gate)
            if not match:
                raise RegistryError(f"gate {gate!r} is not METRIC>=VALUE (or >, <, <=, ==)")
            metric, op, threshold = match.group(1), match.group(2), float(match.group(3))
            if metric not in info.metrics:
                failures.append(f"{metric} not recorded (recorded: {', '.join(sorted(info.metrics))})")
            elif not _OPERATORS[op](info.metrics[metric], threshold):
                failures.append(f"{metric} = {info.metrics[metric]:.4f}, required {op} {threshold}")
        if failures:
            raise RegistryError(f"promotion of {name} version {version} to @{alias} refused: " + "; ".join(failures))
        self.client.set_registered_model_alias(name, alias, version)
        return self._version(name, version)

    def resolve(self, reference: str) -> tuple[str, str]:
        """``NAME@alias``, ``NAME/3`` or ``NAME:3`` -> (name, version)."""
        match = _REFERENCE.match(reference)
        if not match:
            raise RegistryError(f"{reference!r} is not NAME@alias or NAME/VERSION")
        name = match.group("name")
        if match.group("alias"):
            try:
                return name, str(self.client.get_model_version_by_alias(name, match.group("alias")).version)
            except MlflowException as error:
                raise RegistryError(f"{name} has no alias @{match.group('alias')}") from error
        return name, self._version(name, match.group("version")).version

    def fetch(self, name: str, version: str, dest: Path) -> tuple[Path, ModelManifest]:
        """Download version ``version``'s ONNX file and manifest into ``dest``."""
        info = self._version(name, version)
        dest = Path(dest)
        dest.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory() as tmp:
            source = self.client.get_model_version_download_uri(name, version)
            model_dir = Path(mlflow.artifacts.download_artifacts(
                artifact_uri=source, dst_path=tmp, tracking_uri=self.tracking_uri))
            onnx_files = list(model_dir.rglob("*.onnx"))
            if len(onnx_files) != 1:
                raise RegistryError(f"{name} version {version} holds {len(onnx_files)} ONNX files, expected 1")
            target = ModelFolder(dest).onnx
            onnx_files[0].replace(target)
        manifest_file = Path(mlflow.artifacts.download_artifacts(
            run_id=info.run_id, artifact_path=ModelFolder.MANIFEST_NAME, dst_path=str(dest),
            tracking_uri=self.tracking_uri))
        return target, ModelManifest.load(manifest_file)

    def _version(self, name: str, version: str) -> VersionInfo:
        for info in self.versions(name):
            if info.version == str(version):
                return info
        raise RegistryError(f"{name} has no version {version}")
