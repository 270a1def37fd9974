"""What changed: the classes of an area at two dates (or two periods) compared pixel by pixel.

The rules, beside those of ``area_statistics`` (pixel centres, the grids' own pixel areas, clouds and no data
never a class):

* **One observation per pixel and period.** Of the maps of a period covering a pixel, the clearest, most
  confident observation counts: a clear pixel before a clouded one before no data; among clear ones, the
  highest confidence (``confidence.tif``); then the latest.
* **Compared on the maps' own grids.** Pixels are compared on each tile's grid (the maps of one tile share
  it); where tiles overlap, each point belongs to the first tile, by tile id, whose maps cover it.
* **What could not be compared, and why.** A pixel inside the area is compared when it is clear in both
  periods; otherwise it counts as clouded (in either period), without data (in either), or without a map
  (one period has no map of that tile there), in that order of precedence: no map, no data, cloud. The area
  outside every tile's maps is uncovered.

The transitions asked for (``from`` classes to ``to`` classes, any class where none is named) make the
change map: one COG per tile grid, its values the transitions (1, 2, ... by area), with colours (the class
reached) and names ("Coniferous forest -> Burnt areas"); 0 where nothing asked changed, 255 (65535) where
the pixel could not be compared or is outside the area.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
from affine import Affine
from shapely.geometry.base import BaseGeometry
from shapely.ops import unary_union

from earthsignature.core.classes import LandCoverClass
from earthsignature.service.catalog.area_statistics import (
    SQUARE_METRES_PER_HECTARE,
    coverage,
    geodesic_hectares,
    grid,
    in_map_crs,
    inside_mask,
    latest_versions,
    pixel_m2,
    pixel_window,
    read_observed,
)
from earthsignature.service.catalog.raster_store import RasterStore
from earthsignature.service.catalog.tables import Segmentation

#: How good an observation is: no data < cloud < clear (then the confidence decides).
_NODATA, _CLOUD, _CLEAR = 0, 1, 2
#: Why a pixel could not be compared, in order of precedence.
REASONS = ("no_map", "nodata", "cloud")


@dataclass(frozen=True)
class Transition:
    before: LandCoverClass
    after: LandCoverClass
    hectares: float
    value: int = 0  # its value in the change map (0: not drawn, a transition not asked for or no change)

    @property
    def name(self) -> str:
        return f"{self.before.name} -> {self.after.name}"


@dataclass(frozen=True)
class ChangeMap:
    """The change map on one tile's grid, over the window of the area."""

    tile_id: str
    data: np.ndarray
    transform: Affine
    crs: str
    nodata: int


@dataclass(frozen=True)
class Change:
    """The transition matrix over the pixels compared (hectares), what could not be compared and why, the
    change maps of the transitions asked for, and the products each period counted."""

    area_ha: float
    matrix: tuple[Transition, ...]  # every transition found, unchanged pixels (A -> A) included
    compared_ha: float
    not_compared_ha: dict[str, float]  # by reason: no_map, nodata, cloud
    uncovered_ha: float
    maps: tuple[ChangeMap, ...]
    before_products: tuple[str, ...]
    after_products: tuple[str, ...]
    drawn: tuple[Transition, ...] = field(default=())  # the transitions in the change maps, by value


@dataclass
class _Composite:
    """The best observation so far of each pixel of a window, and how good it is."""

    values: np.ndarray
    rank: np.ndarray
    confidence: np.ndarray
    present: np.ndarray  # whether any map of the period covers the pixel

    @classmethod
    def empty(cls, shape: tuple[int, int], dtype: np.dtype) -> _Composite:
        return cls(np.zeros(shape, dtype=dtype), np.full(shape, -1, dtype=np.int8), np.zeros(shape, np.uint8),
                   np.zeros(shape, dtype=bool))

    def add(self, values: np.ndarray, cloud: int, nodata: int, confidence: np.ndarray, covered: np.ndarray) -> None:
        rank = np.where(values == nodata, _NODATA, np.where(values == cloud, _CLOUD, _CLEAR)).astype(np.int8)
        rank[~covered] = -1
        better = (rank > self.rank) | ((rank == self.rank) & (rank == _CLEAR) & (confidence >= self.confidence))
        self.values[better] = values[better]
        self.rank[better] = rank[better]
        self.confidence[better] = confidence[better]
        self.present |= covered


def grids(before: Iterable[Segmentation], after: Iterable[Segmentation]
          ) -> list[tuple[Segmentation, list[Segmentation], list[Segmentation]]]:
    """The periods' maps grouped by grid (crs, geotransform, size), in tile id order: (a map of the grid, its
    maps before, its maps after), each period's oldest first."""
    groups: dict[tuple, tuple[list, list]] = defaultdict(lambda: ([], []))
    for period, maps in enumerate((before, after)):
        for segmentation in maps:
            key = (segmentation.crs, tuple(segmentation.geotransform), segmentation.width, segmentation.height)
            groups[key][period].append(segmentation)
    ordered = []
    for key, periods in groups.items():
        first, second = (sorted(maps, key=lambda s: (s.product.start_time, s.id)) for maps in periods)
        reference = (first or second)[0]
        ordered.append(((reference.product.tile_id, key), (reference, first, second)))
    return [entry for _, entry in sorted(ordered, key=lambda item: item[0])]


def _composite(maps: Sequence[Segmentation], window: tuple[int, int, int, int], store: RasterStore,
               transform: Affine, dtype: np.dtype) -> _Composite:
    row0, col0, rows, cols = window
    composite = _Composite.empty((rows, cols), dtype)
    window_transform = transform @ Affine.translation(col0, row0)
    for segmentation in maps:
        observed = read_observed(segmentation, store, window)
        confidence = (store.read_pixels(segmentation.confidence_url, row0, col0, rows, cols)
                      if segmentation.confidence_url else np.zeros((rows, cols), np.uint8))
        covered = inside_mask(in_map_crs(coverage(segmentation), segmentation.crs), (rows, cols), window_transform)
        composite.add(observed.data.astype(dtype), observed.cloud, observed.nodata, confidence, covered)
    return composite


def compare(area: BaseGeometry, before: Iterable[Segmentation], after: Iterable[Segmentation], store: RasterStore,
            from_values: frozenset[int] = frozenset(), to_values: frozenset[int] = frozenset(),
            check: Callable[[], None] = lambda: None) -> Change:
    """Compare the two periods' maps inside ``area`` (EPSG:4326); draw the transitions from ``from_values`` to
    ``to_values`` (class values; empty: any class) in the change maps. ``check`` is called before each tile's
    comparison (a deadline raises there)."""
    before, after = latest_versions(before), latest_versions(after)
    legend = _legend([*before, *after])
    pairs: dict[tuple[int, int], float] = defaultdict(float)
    reasons = dict.fromkeys(REASONS, 0.0)
    compared = 0.0
    taken = None
    windows = []
    for reference, group_before, group_after in grids(before, after):
        covered = unary_union([coverage(s) for s in (*group_before, *group_after)])
        region = area.intersection(covered) if taken is None else area.intersection(covered).difference(taken)
        taken = covered if taken is None else taken.union(covered)
        if region.is_empty:
            continue
        check()
        found = _compare_on_grid(reference, group_before, group_after, region, store)
        if found is None:
            continue
        for pair, pixels in found.pairs.items():
            pairs[pair] += pixels * found.pixel_ha
        for reason, pixels in found.reasons.items():
            reasons[reason] += pixels * found.pixel_ha
        compared += sum(found.pairs.values()) * found.pixel_ha
        windows.append((reference, found))
    matrix = tuple(Transition(legend[b], legend[a], hectares) for (b, a), hectares in
                   sorted(pairs.items(), key=lambda item: -item[1]))
    drawn = tuple(Transition(t.before, t.after, t.hectares, value) for value, t in enumerate(
        (t for t in matrix if t.before.index != t.after.index and (not from_values or t.before.index in from_values)
         and (not to_values or t.after.index in to_values)), start=1))
    maps = tuple(_change_map(drawn, reference, found) for reference, found in windows)
    uncovered = geodesic_hectares(area.difference(taken)) if taken is not None else geodesic_hectares(area)
    return Change(geodesic_hectares(area), matrix, compared, reasons, uncovered, maps,
                  tuple(s.product.product_id for s in before), tuple(s.product.product_id for s in after), drawn)


@dataclass(frozen=True)
class _GridComparison:
    """One tile grid's part of a comparison: pixels per (before, after) class pair and per reason not compared,
    and the window's observations for its change map."""

    pairs: dict[tuple[int, int], int]
    reasons: dict[str, int]
    window: tuple[int, int, int, int]
    clear: np.ndarray  # compared pixels (clear in both periods, inside the area)
    before: np.ndarray
    after: np.ndarray
    pixel_ha: float


def _compare_on_grid(reference: Segmentation, before: Sequence[Segmentation], after: Sequence[Segmentation],
                     region: BaseGeometry, store: RasterStore) -> _GridComparison | None:
    transform, width, height = grid(reference)
    local = in_map_crs(region, reference.crs)
    window = pixel_window(local, transform, width, height)
    if window is None:
        return None
    row0, col0, rows, cols = window
    inside = inside_mask(local, (rows, cols), transform @ Affine.translation(col0, row0))
    dtype = np.dtype(np.uint16)  # holds the values of Byte and 16-bit maps alike
    first, second = (_composite(maps, window, store, transform, dtype) for maps in (before, after))
    no_map = inside & ~(first.present & second.present)
    nodata = inside & ~no_map & ((first.rank == _NODATA) | (second.rank == _NODATA))
    cloud = inside & ~no_map & ~nodata & ((first.rank == _CLOUD) | (second.rank == _CLOUD))
    clear = inside & ~no_map & ~nodata & ~cloud
    codes = first.values[clear].astype(np.int64) * 65_536 + second.values[clear]
    found, counts = np.unique(codes, return_counts=True)
    pairs = {(int(code) // 65_536, int(code) % 65_536): int(n) for code, n in zip(found, counts, strict=True)}
    reasons = {"no_map": int(no_map.sum()), "nodata": int(nodata.sum()), "cloud": int(cloud.sum())}
    return _GridComparison(pairs, reasons, window, clear, first.values, second.values,
                           pixel_m2(transform) / SQUARE_METRES_PER_HECTARE)


def _change_map(drawn: Sequence[Transition], reference: Segmentation, found: _GridComparison) -> ChangeMap:
    dtype = np.dtype(np.uint8 if len(drawn) < 255 else np.uint16)
    nodata = int(np.iinfo(dtype).max)
    data = np.full(found.clear.shape, nodata, dtype=dtype)
    data[found.clear] = 0
    for transition in drawn:
        data[found.clear & (found.before == transition.before.index) & (found.after == transition.after.index)] = (
            transition.value)
    transform, _, _ = grid(reference)
    row0, col0, _, _ = found.window
    return ChangeMap(reference.product.tile_id, data, transform @ Affine.translation(col0, row0), reference.crs,
                     nodata)


def _legend(maps: Sequence[Segmentation]) -> dict[int, LandCoverClass]:
    """Class value -> class, from the maps' legends (the newest map's wins)."""
    legend: dict[int, LandCoverClass] = {}
    for segmentation in sorted(maps, key=lambda s: s.id):
        legend.update({statistic.value: statistic.to_share().land_cover for statistic in segmentation.classes})
    return legend


MAP_DESCRIPTION = "change: the transition asked for (see the category names); 0 unchanged or not asked for"
#: The change maps' value 0: unchanged, or a change that was not asked for.
UNCHANGED = LandCoverClass(0, "Unchanged, or a change not asked for", (235, 235, 235), 0)


def map_legend(drawn: Sequence[Transition]) -> list[LandCoverClass]:
    """The change maps' classes: 0, then each transition drawn, in the colour of the class it reached."""
    return [UNCHANGED, *(LandCoverClass(t.after.code, t.name, t.after.color, t.value) for t in drawn)]
