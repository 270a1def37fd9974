"""The MLflow model registry: exported models become versions, aliases (``champion``) promote them.

Each registered version holds the ONNX model (``models:/NAME/VERSION``) and, in its run, the manifest
(``manifest.json``), the parity figures and the training run's test metrics, so a promotion can be
gated on a metric (``test_miou>=0.5``). Any MLflow tracking URI works; the default is the project's
local SQLite store.
"""

from __future__ import annotations

import json
import operator
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import onnx
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from earthsignature.core.layout import ModelFolder
from earthsignature.core.manifest import ModelManifest

_GATE = re.compile(r"^\s*([\w.\-/]+)\s*(>=|<=|>|<|==)\s*([-+0-9.eE]+)\s*$")
_OPERATORS = {">=": operator.ge, "<=": operator.le, ">": operator.gt, "<": operator.lt, "==": operator.eq}
_REFERENCE = re.compile(r"^(?P<name>[\w.\-]+)(?:@(?P<alias>[\w\-]+)|[/:](?P<version>\d+))$")


def _signature(manifest: ModelManifest):
    """An input example (one small normalised tile) and the signature: any batch and tile size, the
    manifest's bands in, one score per class out."""
    import numpy as np
    from mlflow.models import ModelSignature
    from mlflow.types.schema import Schema, TensorSpec

    example = np.random.default_rng(0).normal(0, 0.2, (1, len(manifest.bands), 32, 32)).astype(np.float32)
    inputs = Schema([TensorSpec(np.dtype("float32"), (-1, len(manifest.bands), -1, -1), manifest.input_name)])
    outputs = Schema([TensorSpec(np.dtype(manifest.output_dtype), (-1, manifest.num_classes, -1, -1),
                                 manifest.output_name)])
    return example, ModelSignature(inputs=inputs, outputs=outputs)


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


#: The version tag holding the gate its experiment declared (``PromotionGate`` as JSON).
GATE_TAG = "promotion_gate"


class ModelRegistry:
    def __init__(self, tracking_uri: str, experiment: str = "models", artifact_root: str | None = None):
        self.tracking_uri = tracking_uri
        self.experiment, self.artifact_root = experiment, artifact_root
        self.client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)

    def register(self, onnx_path: Path, manifest: ModelManifest, metrics: dict[str, float]) -> ModelManifest:
        """Log the ONNX model (with its signature, an input example and its manifest inside) and register it
        as the next version: into its training run when this store has it (lineage: the version links to
        the run that trained it), else into a new run of the ``models`` experiment."""
        mlflow.set_tracking_uri(self.tracking_uri)
        mlflow.set_registry_uri(self.tracking_uri)
        card = manifest.card
        training_run = self._training_run(manifest)
        with self._run(manifest, training_run) as run, tempfile.TemporaryDirectory() as tmp:
            mlflow.log_metrics({k: float(v) for k, v in metrics.items()})  # parity figures (parity_*)
            if training_run is None:  # the training run has them otherwise
                mlflow.log_metrics({f"test_{k}": v for k, v in card.test_metrics.items()})
            manifest_file = Path(tmp) / ModelFolder.MANIFEST_NAME
            manifest.save(manifest_file)
            model = onnx.load(str(onnx_path))
            example, signature = _signature(manifest)
            # one self-contained file (models here are far below protobuf's 2 GB limit)
            info = mlflow.onnx.log_model(model, name="model", registered_model_name=manifest.name,
                                         save_as_external_data=False, signature=signature, input_example=example,
                                         extra_files=[str(manifest_file)],
                                         metadata={"task": manifest.task, "model_card": card.to_dict()})
            version = str(info.registered_model_version)
            registered = manifest.with_version(version)
            mlflow.log_dict(registered.to_dict(), ModelFolder.MANIFEST_NAME)
        gate = manifest.source.get("promotion") or {}
        tags = {"task": manifest.task, "precision": manifest.precision, "run_id": run.info.run_id,
                "data_source": card.training_data, "data_kind": card.data_kind, "test_set": card.test_set,
                "git_commit": self._git_commit(training_run),
                GATE_TAG: json.dumps(gate, sort_keys=True) if gate.get("minimum") or gate.get("beat_champion")
                else ""}
        for key, value in tags.items():
            if value:
                self.client.set_model_version_tag(manifest.name, version, key, value)
        self.client.update_model_version(manifest.name, version, description=card.line())  # the UI's description
        return registered

    def _training_run(self, manifest: ModelManifest) -> str | None:
        run_id = manifest.source.get("training_run_id")
        if not run_id:
            return None
        try:
            return self.client.get_run(run_id).info.run_id
        except MlflowException:
            return None  # trained against another tracking store

    def _run(self, manifest: ModelManifest, training_run: str | None):
        if training_run is not None:
            return mlflow.start_run(run_id=training_run)
        from earthsignature.train.tracking import ensure_experiment

        experiment = ensure_experiment(self.tracking_uri, self.experiment, self.artifact_root)
        return mlflow.start_run(experiment_id=experiment, run_name=f"export {manifest.name}")

    def _git_commit(self, training_run: str | None) -> str:
        if training_run is not None:
            return self.client.get_run(training_run).data.tags.get("mlflow.source.git.commit", "")
        from earthsignature.train.tracking import git_state

        return git_state().get("mlflow.source.git.commit", "")

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

    def promote(self, name: str, version: str, alias: str, require: list[str] = (), gate: bool = True
                ) -> VersionInfo:
        """Point ``alias`` at ``version`` if the gate its experiment declared holds (``gate``: enforced unless
        False) and every ``require`` (``metric>=value``) too; otherwise ``RegistryError`` with every reason."""
        info = self._version(name, version)
        failures = [failure for rule in require for failure in self._rule_failures(info, rule)]
        if gate:
            failures += self._gate_failures(info)
        if failures:
            raise RegistryError(f"promotion of {name} version {version} to @{alias} refused: " + "; ".join(failures))
        self.client.set_registered_model_alias(name, alias, version)
        return self._version(name, version)

    def declared_gate(self, name: str, version: str) -> dict[str, Any]:
        """The gate the version's experiment declared (``PromotionGate`` as a dict; empty: none)."""
        tags = self.client.get_model_version(name, version).tags
        return json.loads(tags[GATE_TAG]) if tags.get(GATE_TAG) else {}

    @staticmethod
    def _rule_failures(info: VersionInfo, rule: str) -> list[str]:
        match = _GATE.match(rule)
        if not match:
            raise RegistryError(f"gate {rule!r} is not METRIC>=VALUE (or >, <, <=, ==)")
        metric, op, threshold = match.group(1), match.group(2), float(match.group(3))
        if metric not in info.metrics:
            return [f"{metric} not recorded (recorded: {', '.join(sorted(info.metrics))})"]
        if not _OPERATORS[op](info.metrics[metric], threshold):
            return [f"{metric} = {info.metrics[metric]:.4f}, required {op} {threshold}"]
        return []

    def _gate_failures(self, info: VersionInfo) -> list[str]:
        """Why the version misses its declared gate: a minimum not reached, or the champion not beaten on the
        same test set."""
        declared = self.declared_gate(info.name, info.version)
        minimum = {str(k): float(v) for k, v in (declared.get("minimum") or {}).items()}
        failures = [f"{failure} (the experiment's gate)" for metric, value in minimum.items()
                    for failure in self._rule_failures(info, f"{metric}>={value}")]
        if declared.get("beat_champion"):
            failures += self._champion_failures(info, list(minimum) or ["test_miou"])
        return failures

    def _champion_failures(self, info: VersionInfo, metrics: list[str]) -> list[str]:
        try:
            champion = self._version(info.name, self.resolve(f"{info.name}@champion")[1])
        except RegistryError:
            return []  # no champion yet: the first version to pass its minimum becomes one
        if champion.version == info.version:
            return []
        tested_on = {v.version: self.client.get_model_version(info.name, v.version).tags.get("test_set", "")
                     for v in (info, champion)}
        if tested_on[info.version] != tested_on[champion.version]:
            return [f"cannot compare with @champion (version {champion.version}): tested on "
                    f"{tested_on[champion.version]!r}, this version on {tested_on[info.version]!r}"]
        not_beaten = [metric for metric in metrics if metric in champion.metrics
                  and not info.metrics.get(metric, float("-inf")) > champion.metrics[metric]]
        return [f"{metric} = {info.metrics.get(metric, float('nan')):.4f} does not beat @champion (version "
                f"{champion.version}: {champion.metrics[metric]:.4f})" for metric in not_beaten]

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
            inside = list(model_dir.rglob(ModelFolder.MANIFEST_NAME))
            if inside:  # the manifest travels inside the model (versions registered before: in the run)
                manifest = ModelManifest.load(inside[0]).with_version(version)
                manifest.save(ModelFolder(dest).manifest)
                return target, manifest
        manifest_file = Path(mlflow.artifacts.download_artifacts(
            run_id=info.run_id, artifact_path=ModelFolder.MANIFEST_NAME, dst_path=str(dest),
            tracking_uri=self.tracking_uri))
        return target, ModelManifest.load(manifest_file)

    def _version(self, name: str, version: str) -> VersionInfo:
        for info in self.versions(name):
            if info.version == str(version):
                return info
        raise RegistryError(f"{name} has no version {version}")
