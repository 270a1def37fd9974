"""Synthetic land-cover scenes: label maps with smooth organic regions and class-specific spectra.

No real Sentinel-2 product or data set can be downloaded here, so the fixture writers fill real on-disk
formats with this content. It is designed to be *learnable*: every CLC level-3 class has its own
reflectance spectrum (an archetype for its land-cover family, perturbed per class), so a model trained
on it reaches a high IoU, and maps look like land cover. Everything is deterministic given a seed.

Coordinates are continuous and expressed in *base pixels* (10 m), so the same scene can be sampled at
10, 20 or 60 m and over any window, which keeps a full 10980 x 10980 product bounded in memory.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy.ndimage import map_coordinates
from scipy.spatial import cKDTree

from earthsignature.core.nomenclature import clc_level3
from earthsignature.core.sentinel2 import BANDS, BANDS_BY_NAME

# Archetype reflectances for the 13 bands (B01..B12, B8A in ESA order), by land-cover family.
_ARCHETYPES: dict[str, tuple[float, ...]] = {
    #            B01   B02   B03   B04   B05   B06   B07   B08   B8A   B09   B10    B11   B12
    "urban":    (0.10, 0.10, 0.11, 0.12, 0.14, 0.15, 0.16, 0.17, 0.17, 0.17, 0.050, 0.22, 0.20),
    "crop":     (0.05, 0.05, 0.08, 0.06, 0.12, 0.25, 0.30, 0.32, 0.33, 0.33, 0.010, 0.22, 0.13),
    "forest":   (0.03, 0.03, 0.05, 0.03, 0.07, 0.20, 0.26, 0.28, 0.29, 0.29, 0.005, 0.15, 0.07),
    "shrub":    (0.05, 0.05, 0.08, 0.07, 0.12, 0.22, 0.26, 0.28, 0.29, 0.29, 0.010, 0.25, 0.15),
    "bare":     (0.15, 0.17, 0.22, 0.26, 0.28, 0.29, 0.30, 0.31, 0.32, 0.32, 0.050, 0.36, 0.32),
    "burnt":    (0.04, 0.04, 0.05, 0.06, 0.07, 0.08, 0.09, 0.09, 0.10, 0.10, 0.010, 0.16, 0.15),
    "snow":     (0.85, 0.85, 0.83, 0.80, 0.78, 0.75, 0.72, 0.70, 0.68, 0.60, 0.100, 0.10, 0.08),
    "wetland":  (0.04, 0.04, 0.06, 0.05, 0.08, 0.14, 0.17, 0.18, 0.18, 0.18, 0.005, 0.10, 0.05),
    "water":    (0.06, 0.06, 0.05, 0.03, 0.02, 0.015, 0.012, 0.010, 0.008, 0.005, 0.001, 0.005, 0.003),
    "cloud":    (0.55, 0.55, 0.56, 0.58, 0.58, 0.59, 0.60, 0.60, 0.60, 0.45, 0.300, 0.40, 0.30),
}
_BAND_POSITION = {b.name: i for i, b in enumerate(BANDS)}


def _family(code: int) -> str:
    if code == 334:
        return "burnt"
    if code == 335:
        return "snow"
    if code in (331, 332, 131, 132, 133):
        return "bare"
    return {1: "urban", 2: "crop", 4: "wetland", 5: "water"}.get(code // 100) or (
        "forest" if code // 10 == 31 else "shrub"
    )


def class_signature(code: int) -> np.ndarray:
    """Reflectance spectrum (13 bands) of a CLC level-3 class: its family's archetype, scaled per band
    by up to +-35 % with a perturbation seeded by the class code (so classes of a family differ)."""
    perturbation = np.random.default_rng(code).uniform(-0.35, 0.35, size=len(BANDS))
    return np.clip(np.asarray(_ARCHETYPES[_family(code)]) * (1 + perturbation), 0.001, 1.0)


@dataclass
class LabelField:
    """A random partition of the plane into organic regions, each labelled with a class code.

    Regions are the Voronoi cells of random seeds, seen through a smooth random warp, so their borders
    meander like field and forest edges. ``feature_size`` is the typical region diameter in base pixels.
    """

    height: int
    width: int
    codes: Sequence[int]
    seed: int = 0
    feature_size: float = 24.0
    weights: Sequence[float] | None = None
    _tree: cKDTree = field(init=False, repr=False)
    _labels: np.ndarray = field(init=False, repr=False)
    _warp: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        rng = np.random.default_rng(self.seed)
        n_regions = max(len(self.codes), int(self.height * self.width / self.feature_size**2))
        seeds = rng.uniform((0, 0), (self.height, self.width), size=(n_regions, 2))
        probabilities = None
        if self.weights is not None:
            probabilities = np.asarray(self.weights, dtype=float) / np.sum(self.weights)
        self._labels = rng.choice(np.asarray(self.codes), size=n_regions, p=probabilities)
        self._tree = cKDTree(seeds)
        grid = (int(self.height / self.feature_size) + 3, int(self.width / self.feature_size) + 3)
        self._warp = rng.normal(0, 0.45 * self.feature_size, size=(2, *grid)).astype(np.float32)

    def sample(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """Class codes at base-pixel coordinates (arrays of the same shape)."""
        grid_coords = np.stack([rows / self.feature_size + 1, cols / self.feature_size + 1])
        dr = map_coordinates(self._warp[0], grid_coords, order=1, mode="nearest")
        dc = map_coordinates(self._warp[1], grid_coords, order=1, mode="nearest")
        points = np.stack([(rows + dr).ravel(), (cols + dc).ravel()], axis=1)
        _, nearest = self._tree.query(points, workers=-1)
        return self._labels[nearest].reshape(rows.shape)

    def window(self, row_off: int, col_off: int, height: int, width: int, scale: int = 1) -> np.ndarray:
        """Codes of a window of a grid whose pixels are ``scale`` base pixels wide (sampled at centres)."""
        rows = (np.arange(row_off, row_off + height) + 0.5) * scale
        cols = (np.arange(col_off, col_off + width) + 0.5) * scale
        return self.sample(*np.meshgrid(rows, cols, indexing="ij"))


@dataclass
class SmoothField:
    """A smooth random field in about [-1, 1], defined in base-pixel coordinates (so any window at any
    resolution samples the same field); blobs are about ``scale`` base pixels wide."""

    height: int
    width: int
    scale: float
    seed: int = 0
    _coarse: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        grid = (int(self.height / self.scale) + 4, int(self.width / self.scale) + 4)
        self._coarse = np.random.default_rng(self.seed).uniform(-1, 1, size=grid).astype(np.float32)

    def window(self, row_off: int, col_off: int, height: int, width: int, scale: int = 1) -> np.ndarray:
        rows = ((np.arange(row_off, row_off + height) + 0.5) * scale / self.scale + 1).astype(np.float32)
        cols = ((np.arange(col_off, col_off + width) + 0.5) * scale / self.scale + 1).astype(np.float32)
        grid = np.meshgrid(rows, cols, indexing="ij")
        return map_coordinates(self._coarse, grid, order=3, mode="nearest")


def smooth_noise(shape: tuple[int, int], scale: float, rng: np.random.Generator) -> np.ndarray:
    """A smooth random field of ``shape`` (texture that need not agree across windows)."""
    seed = int(rng.integers(2**31))
    return SmoothField(shape[0], shape[1], scale, seed).window(0, 0, *shape)


def render_reflectance(codes: np.ndarray, band_name: str, rng: np.random.Generator,
                       noise: float = 0.01, texture: float = 0.06) -> np.ndarray:
    """Surface reflectance of one band over a label map: class spectrum x smooth brightness texture,
    plus white noise. float32."""
    position = _BAND_POSITION[BANDS_BY_NAME[band_name].name]
    lut = np.zeros(1000, dtype=np.float32)
    for cls in clc_level3():
        lut[cls.code] = class_signature(cls.code)[position]
    base = lut[codes]
    shading = 1 + texture * smooth_noise(codes.shape, scale=16, rng=rng)
    return (base * shading + rng.normal(0, noise, size=codes.shape)).astype(np.float32)


def cloud_signature(band_name: str) -> float:
    return _ARCHETYPES["cloud"][_BAND_POSITION[BANDS_BY_NAME[band_name].name]]
