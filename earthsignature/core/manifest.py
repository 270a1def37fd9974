"""The model manifest: the one description of an exported model that everything downstream reads.

It travels with every exported model (beside ``model.onnx`` in MLflow and in the Triton repository):
name, version, task, input bands in order, ground resolution, normalization statistics, recommended
tile size and overlap, output classes (code, name, color) and where the model came from. The Triton
config, the monitor's preprocessing, COG color tables and API category names are all derived from it;
nothing is restated by hand. No torch here: services read manifests without the training stack.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from earthsignature.core.classes import LandCoverClass
from earthsignature.core.normalization import NormalizationStats

FORMAT_VERSION = 1
TASKS = ("land_cover", "burnt_area", "crops", "pilot")
OUTPUT_KINDS = ("probabilities", "logits")
#: The tile a model is run on and the overlap between neighbouring tiles, unless its export says otherwise.
DEFAULT_TILE_SIZE = 256
DEFAULT_OVERLAP = 32
#: An int8 model is refused below this share of held-out pixels classified as its float export does.
INT8_MIN_AGREEMENT = 0.99


class ManifestError(ValueError):
    """A manifest that is missing a field or contradicts itself."""


#: What a model's training data were: scenes from the project's fixture writers are "synthetic".
DATA_KINDS = ("real", "synthetic", "unknown")


@dataclass(frozen=True)
class ModelCard:
    """What a model was trained and tested on, carried wherever its maps appear: made once from the training
    run (``from_training``), then the same record in the training summary, the manifest, the registry, the
    catalog, API responses, STAC items and pilot pictures (``to_dict`` is its one JSON form). A model
    trained on synthetic scenes says so."""

    training_data: str = "unknown"  # the data set, e.g. "bigearthnet (clc_level3)"
    data_kind: str = "unknown"  # one of DATA_KINDS
    test_set: str = ""  # where the test metrics come from
    test_metrics: Mapping[str, float] = field(default_factory=dict)  # miou, oa, ana...

    @classmethod
    def from_training(cls, data: Mapping[str, Any], test_results: Mapping[str, float]) -> ModelCard:
        """The card of a training run: its data set's provenance (name, kind, test set) and its test results
        as Lightning reports them (``test_miou``...; the loss is not a metric of the model)."""
        metrics = {str(k).removeprefix("test_"): float(v) for k, v in test_results.items() if str(k) != "test_loss"}
        return cls.from_dict({"training_data": data.get("name"), "data_kind": data.get("kind"),
                              "test_set": data.get("test_set"), "test_metrics": metrics})

    def to_dict(self) -> dict[str, Any]:
        return {"training_data": self.training_data, "data_kind": self.data_kind, "test_set": self.test_set,
                "test_metrics": dict(self.test_metrics)}

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> ModelCard:
        kind = str(values.get("data_kind") or "unknown")
        return cls(str(values.get("training_data") or "unknown"), kind if kind in DATA_KINDS else "unknown",
                   str(values.get("test_set") or ""),
                   {str(k): float(v) for k, v in dict(values.get("test_metrics") or {}).items()})

    def line(self) -> str:
        """One line for a caption: ``trained on synthetic data (bigearthnet); test mIoU 0.42 on ...``."""
        kind = {"synthetic": "synthetic data, not meaningful on real images", "real": "real data"}.get(
            self.data_kind, "data of unknown origin")
        text = f"trained on {kind} ({self.training_data})"
        if "miou" in self.test_metrics:
            text += f"; test mIoU {self.test_metrics['miou']:.2f}" + (f" on {self.test_set}" if self.test_set else "")
        return text


@dataclass(frozen=True)
class Quantization:
    """How an int8 model was made from its float export, and how closely the two agree."""

    method: str  # the quantizer and its choices (format, weight and activation types, calibration)
    calibration_products: tuple[str, ...]  # the products whose tiles calibrated the activation ranges
    calibration_tiles: int
    parity_tiles: int  # other tiles of the same products, held out from calibration
    argmax_agreement: float  # share of their valid pixels classified alike by the int8 and float models
    min_agreement: float  # below it the quantization was to be refused

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> Quantization:
        return cls(**{**values, "calibration_products": tuple(values["calibration_products"])})


@dataclass(frozen=True)
class ModelManifest:
    name: str
    task: str
    bands: tuple[str, ...]
    resolution: float  # metres per pixel of the model input
    normalization: NormalizationStats  # x' = (x - min)/(max - min) - mean[band], the training split's
    classes: tuple[LandCoverClass, ...]  # by output channel
    nomenclature: str
    tile_size: int = DEFAULT_TILE_SIZE
    overlap: int = DEFAULT_OVERLAP
    version: str | None = None  # the registry version; set when the model is registered
    input_name: str = "image"
    output_name: str = "probabilities"  # [N, classes, H, W]
    #: What the output holds: "probabilities" (the softmax is in the graph; every export since it was
    #: added) or "logits" (earlier exports: the model service applies the softmax).
    output_kind: str = "probabilities"
    #: float32, or float16: half the bytes between a Triton server and its clients, and in memory
    output_dtype: str = "float32"
    #: Set on int8 models (``export --int8``): their weights and activations are 8-bit integers.
    quantization: Quantization | None = None
    card: ModelCard = field(default_factory=ModelCard)  # what it was trained and tested on
    source: Mapping[str, Any] = field(default_factory=dict)  # checkpoint, training run, git commit
    format_version: int = FORMAT_VERSION

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ManifestError(f"task must be one of {TASKS}, not {self.task!r}")
        if not self.bands:
            raise ManifestError("a model needs at least one input band")
        if [c.index for c in self.classes] != list(range(len(self.classes))):
            raise ManifestError("classes must be listed by output channel, 0..n-1")
        if self.normalization.bands != self.bands:
            raise ManifestError(f"the normalization statistics are for bands {self.normalization.bands}, "
                                f"the model takes {self.bands}")
        if self.output_dtype not in ("float32", "float16"):
            raise ManifestError(f"output_dtype must be float32 or float16, not {self.output_dtype!r}")
        if self.output_kind not in OUTPUT_KINDS:
            raise ManifestError(f"output_kind must be one of {OUTPUT_KINDS}, not {self.output_kind!r}")
        if not 0 <= self.overlap < self.tile_size:
            raise ManifestError(f"overlap {self.overlap} must be in [0, tile_size {self.tile_size})")

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def precision(self) -> str:
        """``int8`` for a quantized model, else ``float32`` (its output may still leave as float16)."""
        return "int8" if self.quantization is not None else "float32"

    @property
    def model_id(self) -> str:
        return f"{self.name}:{self.version or 'unregistered'}"

    def normalize(self, digital_numbers: np.ndarray) -> np.ndarray:
        """Preprocess [..., bands, H, W] digital numbers exactly as in training (float32)."""
        if digital_numbers.shape[-3] != len(self.bands):
            raise ManifestError(
                f"{self.name} takes {len(self.bands)} bands ({', '.join(self.bands)}), "
                f"got an input with {digital_numbers.shape[-3]}")
        return self.normalization.apply(digital_numbers)

    def colormap(self) -> dict[int, tuple[int, int, int, int]]:
        """Output channel -> RGBA, for GeoTIFF color tables."""
        return {c.index: (*c.color, 255) for c in self.classes}

    def with_version(self, version: str) -> ModelManifest:
        return replace(self, version=str(version))

    def to_dict(self) -> dict[str, Any]:
        values = asdict(self)
        values["bands"] = list(self.bands)
        values["classes"] = [c.to_dict() for c in self.classes]
        values["normalization"] = self.normalization.to_dict()
        values["source"] = dict(self.source)
        values["card"] = self.card.to_dict()
        if self.quantization is not None:
            values["quantization"]["calibration_products"] = list(self.quantization.calibration_products)
        return values

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> ModelManifest:
        try:
            if int(values.get("format_version", FORMAT_VERSION)) > FORMAT_VERSION:
                raise ManifestError(f"manifest format {values['format_version']} is newer than this code reads")
            classes = tuple(LandCoverClass.from_dict(c) for c in values["classes"])
            known = {k: values[k] for k in cls.__dataclass_fields__ if k in values}
            known.setdefault("output_kind", "logits")  # manifests written before the softmax moved in the graph
            quantization = Quantization.from_dict(values["quantization"]) if values.get("quantization") else None
            # manifests written before the record named its bands: the model's
            normalization = NormalizationStats.from_dict({"bands": values["bands"], **values["normalization"]})
            source = dict(values.get("source") or {})
            card = (ModelCard.from_dict(values["card"]) if "card" in values  # earlier: inside the source
                    else ModelCard.from_training(source.get("training_data") or {}, source.get("test_metrics") or {}))
            return cls(**{**known, "bands": tuple(values["bands"]), "classes": classes,
                          "resolution": float(values["resolution"]), "quantization": quantization,
                          "normalization": normalization, "card": card})
        except ManifestError:
            raise
        except (KeyError, TypeError, ValueError) as error:
            raise ManifestError(f"not a model manifest: {error!r}") from error

    def save(self, path: Path) -> Path:
        path = Path(path)
        path.write_text(json.dumps(self.to_dict(), indent=1) + "\n")
        return path

    @classmethod
    def load(cls, path: Path) -> ModelManifest:
        try:
            return cls.from_dict(json.loads(Path(path).read_text()))
        except json.JSONDecodeError as error:
            raise ManifestError(f"{path}: not JSON ({error})") from error

