"""The seed's input preprocessing: min-max scaling, then channel-wise mean-centering (D3.2, 2.2.1).

``x' = (x - min) / (max - min) - mean[c]``, with the global minimum and maximum digital number of the
training split and the per-band mean of its min-max-scaled values. One record, ``NormalizationStats``,
carries them from the data module (which computes them, ``data.normalization``) to the checkpoint's
hyper-parameters, the model manifest and the model service, which applies them to a product's bands
exactly as training did. No torch here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np

ArrayT = TypeVar("ArrayT")


def scale_and_center(image: ArrayT, minimum: float, maximum: float, mean: ArrayT) -> ArrayT:
    """The preprocessing on a float32 [..., C, H, W] array with ``mean`` shaped [C, 1, 1]: numpy (the model
    service) or torch (training) alike, so both compute the same float32 operations in the same order."""
    return (image - minimum) / (maximum - minimum) - mean


@dataclass(frozen=True)
class NormalizationStats:
    bands: tuple[str, ...]
    minimum: float
    maximum: float
    mean: tuple[float, ...]  # per band, of min-max-scaled values

    def __post_init__(self) -> None:
        if self.maximum <= self.minimum:
            raise ValueError(f"maximum {self.maximum} must exceed minimum {self.minimum}")
        if len(self.mean) != len(self.bands):
            raise ValueError(f"{len(self.mean)} means for {len(self.bands)} bands")

    def apply(self, digital_numbers: np.ndarray) -> np.ndarray:
        """Normalise [..., bands, H, W] digital numbers (numpy, float32)."""
        mean = np.asarray(self.mean, dtype=np.float32).reshape(-1, 1, 1)
        return scale_and_center(np.asarray(digital_numbers, dtype=np.float32), self.minimum, self.maximum, mean)

    def to_dict(self) -> dict[str, Any]:
        return {"bands": list(self.bands), "minimum": self.minimum, "maximum": self.maximum, "mean": list(self.mean)}

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> NormalizationStats:
        return cls(tuple(values["bands"]), float(values["minimum"]), float(values["maximum"]),
                   tuple(float(m) for m in values["mean"]))
