"""How much: the area of each class inside an area, per acquisition date, counted on the stored maps.

The rules, stated once (the README repeats them):

* **Which pixels.** A pixel is inside the area when its centre is (GDAL's rasterization rule), on each map's
  own grid; its area is the grid's (a 10 m pixel is 0.01 ha).
* **What they count as.** The observed map (``observations``): a clear pixel counts for its class; clouds and
  no data count apart, never as a class.
* **Dates.** A date is the UTC day of a product's acquisition start. Where maps of one day overlap
  (neighbouring MGRS tiles share about 10 km), each point counts once: in the first map that covers it,
  in order of tile id then product id (a map counts the part of the area inside its footprint and outside
  the footprints of the maps before it). Of a product segmented by several versions of the model, the newest
  stored one counts.
* **Uncovered.** The part of the area no map's footprint holds, measured on the WGS 84 ellipsoid.

A map stored with its observed map and cell counts is counted fast: the cells wholly inside its part of the
area add up their stored counts, and only the cells its edge crosses are read and rasterized (a small area,
mostly edge, is read in one go). A map stored
before (no observed map) is counted directly from its class map and cloud mask; both give the same numbers.
"""

from __future__ import annotations

import functools
import itertools
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date

import numpy as np
import pyproj
import shapely
from affine import Affine
from geoalchemy2.shape import to_shape
from rasterio.features import geometry_mask
from shapely.geometry import Polygon, mapping
from shapely.geometry.base import BaseGeometry
from shapely.ops import unary_union

from earthsignature.core.classes import LandCoverClass
from earthsignature.core.product import split_at_antimeridian
from earthsignature.service.catalog.observations import CellCounts, Observed, cells_url, observe
from earthsignature.service.catalog.raster_store import RasterStore
from earthsignature.service.catalog.tables import Segmentation

#: Longest edge, in degrees, of an area's outline before it is reprojected: an edge straight in longitude and
#: latitude (as GeoJSON draws it) stays within a few centimetres of the same edge on a UTM grid.
DENSIFY_DEGREES = 0.002
SQUARE_METRES_PER_HECTARE = 10_000.0
#: When at least one in this many of the cells an area touches is an edge cell (a small area), its window is
#: read in one go rather than edge run by edge run (measured: benchmarks/area_statistics.py).
EDGE_SHARE_READ_WHOLE = 4
_GEOD = pyproj.Geod(ellps="WGS84")


@dataclass(frozen=True)
class ClassArea:
    land_cover: LandCoverClass
    hectares: float


@dataclass(frozen=True)
class DateStatistics:
    """One acquisition date inside the area: each class's clear area, and the area clouded, without data and
    not covered by any map (hectares). ``area_ha`` is the area asked, on the ellipsoid; the parts add up to it
    within a pixel's width along its edge."""

    day: date
    products: tuple[str, ...]
    area_ha: float
    classes: tuple[ClassArea, ...]
    clear_ha: float
    cloud_ha: float
    nodata_ha: float
    uncovered_ha: float


def geodesic_hectares(geometry: BaseGeometry) -> float:
    """The area of a geometry in EPSG:4326 on the WGS 84 ellipsoid."""
    return abs(_GEOD.geometry_area_perimeter(geometry)[0]) / SQUARE_METRES_PER_HECTARE if not geometry.is_empty else 0.0


def latest_versions(segmentations: Iterable[Segmentation]) -> list[Segmentation]:
    """One segmentation per product: the newest stored version of the model."""
    newest: dict[str, Segmentation] = {}
    for segmentation in segmentations:
        kept = newest.get(segmentation.product.product_id)
        if kept is None or segmentation.id > kept.id:
            newest[segmentation.product.product_id] = segmentation
    return list(newest.values())


def by_date(segmentations: Iterable[Segmentation]) -> dict[date, list[Segmentation]]:
    """Maps grouped by the UTC day of their acquisition, each day's in counting order (tile id, product id)."""
    days: dict[date, list[Segmentation]] = defaultdict(list)
    for segmentation in segmentations:
        days[segmentation.product.start_time.astimezone(UTC).date()].append(segmentation)
    return {day: sorted(maps, key=lambda s: (s.product.tile_id, s.product.product_id))
            for day, maps in sorted(days.items())}


def coverage(segmentation: Segmentation) -> BaseGeometry:
    """Where a map can count (EPSG:4326): its footprint, within its grid's outline (a footprint given as a
    longitude/latitude box reaches past a UTM grid's corners, where the map has no pixels)."""
    return to_shape(segmentation.product.footprint).intersection(
        _grid_outline(segmentation.crs, tuple(segmentation.geotransform), segmentation.width, segmentation.height))


@functools.lru_cache(maxsize=4096)  # a grid's outline never changes, and a tile's grid is the same every day
def _grid_outline(crs: str, geotransform: tuple[float, ...], width: int, height: int) -> BaseGeometry:
    transform = Affine.from_gdal(*geotransform)
    corners = [transform @ corner for corner in ((0, 0), (width, 0), (width, height), (0, height))]
    outline = shapely.segmentize(Polygon(corners), max(abs(transform.a), abs(transform.e)) * 100)
    to_lonlat = pyproj.Transformer.from_crs(crs, "EPSG:4326", always_xy=True)
    ring = np.column_stack(to_lonlat.transform(*np.asarray(outline.exterior.coords).T))
    return split_at_antimeridian(Polygon(ring))


def own_regions(area: BaseGeometry, maps: Sequence[Segmentation]) -> list[BaseGeometry]:
    """Each map's part of the area (EPSG:4326): inside its coverage, outside the coverage of the maps before it."""
    regions, taken = [], None
    for segmentation in maps:
        covered = coverage(segmentation)
        region = area.intersection(covered)
        if taken is not None:
            region = region.difference(taken)
        taken = covered if taken is None else taken.union(covered)
        regions.append(region)
    return regions


def in_map_crs(region: BaseGeometry, crs: str) -> BaseGeometry:
    """A region in EPSG:4326 on a map's grid CRS, its edges densified first (parts across the antimeridian
    meet again on a UTM grid)."""
    transformer = pyproj.Transformer.from_crs("EPSG:4326", crs, always_xy=True)
    dense = shapely.segmentize(region, DENSIFY_DEGREES)
    projected = shapely.transform(dense, lambda xy: np.column_stack(transformer.transform(xy[:, 0], xy[:, 1])))
    return shapely.make_valid(unary_union(list(getattr(projected, "geoms", [projected]))))


@dataclass(frozen=True)
class MapCount:
    """Pixels of each observed value a map holds inside a region, and the area of one of its pixels."""

    counts: dict[int, int]
    cloud: int
    nodata: int
    pixel_m2: float


def grid(segmentation: Segmentation) -> tuple[Affine, int, int]:
    """A map's grid: its transform, width and height."""
    return Affine.from_gdal(*segmentation.geotransform), segmentation.width, segmentation.height


def _window_counts(values: np.ndarray, region: BaseGeometry, transform: Affine,
                   window: tuple[int, int, int, int]) -> dict[int, int]:
    """Pixels of each value of ``values`` (a window (row, column, rows, columns) of a grid with ``transform``)
    whose centres are inside ``region``."""
    row0, col0, _, _ = window
    inside = inside_mask(region, values.shape, transform @ Affine.translation(col0, row0))
    counted = np.bincount(values[inside].ravel(), minlength=int(np.iinfo(values.dtype).max) + 1)
    return {int(v): int(counted[v]) for v in np.flatnonzero(counted)}


def inside_mask(region: BaseGeometry, shape: tuple[int, int], transform: Affine) -> np.ndarray:
    """Which pixels of a window (its shape and transform) have their centre inside ``region``. The region is
    clipped to the window (a pixel beyond) first: a window at an area's edge rasterizes a few of its vertices,
    not all of them."""
    corners = [transform @ (col, row) for col in (-1, shape[1] + 1) for row in (-1, shape[0] + 1)]
    xs, ys = [x for x, _ in corners], [y for _, y in corners]
    clipped = shapely.clip_by_rect(region, min(xs), min(ys), max(xs), max(ys))
    if clipped.is_empty:
        return np.zeros(shape, dtype=bool)
    return geometry_mask([mapping(clipped)], shape, transform, invert=True)


def read_observed(segmentation: Segmentation, store: RasterStore, window: tuple[int, int, int, int]) -> Observed:
    """The observed map of a window (row, column, rows, columns) of a map: read from its observed map, or made
    from its class map and cloud mask (maps stored before observed maps)."""
    if segmentation.observed_url:
        values = store.read_pixels(segmentation.observed_url, *window)
        return Observed(values, *Observed.markers(values.dtype))
    return _observed_from_layers(segmentation, store, window)


def _observed_from_layers(segmentation: Segmentation, store: RasterStore, window: tuple[int, int, int, int]
                          ) -> Observed:
    """The observed map of a window made from the map's class map and cloud mask."""
    classes = store.read_pixels(segmentation.raster_url, *window)
    cloud_mask = store.read_pixels(segmentation.cloud_mask_url, *window) if segmentation.cloud_mask_url else None
    return observe(classes, store.nodata(segmentation.raster_url), cloud_mask)


def count_directly(segmentation: Segmentation, region: BaseGeometry, store: RasterStore) -> MapCount:
    """Read the class map and cloud mask under the region at full resolution and count: the reference, and the
    way maps stored without an observed map are counted. ``region`` is on the map's grid CRS."""
    transform, width, height = grid(segmentation)
    window = pixel_window(region, transform, width, height)
    if window is None:
        return MapCount({}, *Observed.markers(np.dtype(np.uint8)), pixel_m2(transform))
    observed = _observed_from_layers(segmentation, store, window)
    return MapCount(_window_counts(observed.data, region, transform, window), observed.cloud, observed.nodata,
                    pixel_m2(transform))


def count_by_cells(segmentation: Segmentation, region: BaseGeometry, store: RasterStore) -> MapCount:
    """Count a map with an observed map: whole cells from their stored counts, edge cells read and rasterized.
    ``region`` is on the map's grid CRS."""
    transform, width, height = grid(segmentation)
    cells = CellCounts.from_bytes(store.read_bytes(cells_url(segmentation.observed_url)))
    cloud, nodata = Observed.markers(cells.dtype)
    window = pixel_window(region, transform, width, height)
    if window is None:
        return MapCount({}, cloud, nodata, pixel_m2(transform))
    whole, edges = _cells_touched(region, transform, cells, (height, width), window)
    if edges.sum() * EDGE_SHARE_READ_WHOLE >= whole.sum() + edges.sum():  # a small area: one read is faster
        values = store.read_pixels(segmentation.observed_url, *window)
        return MapCount(_window_counts(values, region, transform, window), cloud, nodata, pixel_m2(transform))
    counted = dict(zip(cells.values.tolist(), cells.counts[whole].sum(axis=0, dtype=np.int64).tolist(), strict=True))
    size = cells.cell
    for row, first, last in _runs(edges):  # a run of neighbouring edge cells is one read
        run = (row * size, first * size, min(size, height - row * size), min((last - first + 1) * size,
                                                                             width - first * size))
        values = store.read_pixels(segmentation.observed_url, *run)
        for value, pixels in _window_counts(values, region, transform, run).items():
            counted[value] = counted.get(value, 0) + pixels
    return MapCount({v: n for v, n in counted.items() if n}, cloud, nodata, pixel_m2(transform))


def pixel_m2(transform: Affine) -> float:
    """The area of one pixel of a grid (square metres in a UTM grid)."""
    return abs(transform.a * transform.e - transform.b * transform.d)


def pixel_window(region: BaseGeometry, transform: Affine, width: int, height: int
                  ) -> tuple[int, int, int, int] | None:
    """(row, column, rows, columns) of the map's pixels under the region's bounds; None when none."""
    if region.is_empty:
        return None
    west, south, east, north = region.bounds
    corners = [~transform @ (x, y) for x in (west, east) for y in (south, north)]
    col0 = max(0, int(np.floor(min(c for c, _ in corners))))
    col1 = min(width, int(np.ceil(max(c for c, _ in corners))))
    row0 = max(0, int(np.floor(min(r for _, r in corners))))
    row1 = min(height, int(np.ceil(max(r for _, r in corners))))
    if col1 <= col0 or row1 <= row0:
        return None
    return row0, col0, row1 - row0, col1 - col0


def _cells_touched(region: BaseGeometry, transform: Affine, cells: CellCounts, shape: tuple[int, int],
                   window: tuple[int, int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Boolean [rows, cols] masks of the cells wholly inside the region and of those its edge crosses."""
    row0, col0, rows, cols = window
    size = cells.cell
    rows_of_cells, cols_of_cells = cells.counts.shape[:2]
    first_row, last_row = row0 // size, min(rows_of_cells - 1, (row0 + rows - 1) // size)
    first_col, last_col = col0 // size, min(cols_of_cells - 1, (col0 + cols - 1) // size)
    r, c = np.meshgrid(np.arange(first_row, last_row + 1), np.arange(first_col, last_col + 1), indexing="ij")
    # each cell's extent on the map's grid (the last row and column of cells clipped to the map)
    height, width = shape
    corners = [transform @ (c * size, r * size), transform @ (np.minimum((c + 1) * size, width),
                                                              np.minimum((r + 1) * size, height))]
    xs, ys = (np.stack([corners[0][k], corners[1][k]]) for k in (0, 1))
    boxes = shapely.box(xs.min(axis=0), ys.min(axis=0), xs.max(axis=0), ys.max(axis=0))
    shapely.prepare(region)
    inside = shapely.covers(region, boxes)
    crossing = shapely.intersects(region, boxes) & ~inside
    whole = np.zeros((rows_of_cells, cols_of_cells), dtype=bool)
    edges = np.zeros_like(whole)
    whole[first_row:last_row + 1, first_col:last_col + 1] = inside
    edges[first_row:last_row + 1, first_col:last_col + 1] = crossing
    return whole, edges


def _runs(edges: np.ndarray) -> Iterable[tuple[int, int, int]]:
    """(cell row, first cell column, last cell column) of each run of neighbouring edge cells in a row."""
    for row in np.flatnonzero(edges.any(axis=1)):
        columns = np.flatnonzero(edges[row])
        for _, group in itertools.groupby(enumerate(columns), key=lambda pair: pair[1] - pair[0]):
            run = [column for _, column in group]
            yield int(row), run[0], run[-1]


def count_map(segmentation: Segmentation, region: BaseGeometry, store: RasterStore) -> MapCount:
    """A map's pixels of each observed value inside ``region`` (EPSG:4326), by cells when it has an observed
    map, directly otherwise."""
    if region.is_empty:  # the maps before it cover its part of the area
        return MapCount({}, 0, 0, 0.0)
    local = in_map_crs(region, segmentation.crs)
    counter = count_by_cells if segmentation.observed_url else count_directly
    return counter(segmentation, local, store)


@dataclass(frozen=True)
class DatePlan:
    """One date inside an area: its maps in counting order, each with its own part of the area, and the area
    no map covers (hectares)."""

    day: date
    maps: tuple[Segmentation, ...]
    regions: tuple[BaseGeometry, ...]
    uncovered_ha: float


def plan(area: BaseGeometry, segmentations: Iterable[Segmentation]) -> list[DatePlan]:
    """The dates of the maps found for an area (one version per product), oldest first."""
    plans = []
    for day, maps in by_date(latest_versions(segmentations)).items():
        regions = own_regions(area, maps)
        covered = unary_union([coverage(m) for m in maps])
        plans.append(DatePlan(day, tuple(maps), tuple(regions), geodesic_hectares(area.difference(covered))))
    return plans


def summarize(date_plan: DatePlan, counts: Sequence[MapCount], area_ha: float,
              keep: Callable[[LandCoverClass], bool] = lambda _: True) -> DateStatistics:
    """A date's counts in hectares, by class (every class of the maps' legends that ``keep`` keeps)."""
    classes: dict[tuple[int, str], list] = {}
    clear = cloud = nodata = 0.0
    for segmentation, count in zip(date_plan.maps, counts, strict=True):
        legend = {statistic.value: statistic.to_share().land_cover for statistic in segmentation.classes}
        for land_cover in legend.values():
            classes.setdefault((land_cover.code, land_cover.name), [land_cover, 0.0])
        for value, pixels in count.counts.items():
            hectares = pixels * count.pixel_m2 / SQUARE_METRES_PER_HECTARE
            if value == count.cloud:
                cloud += hectares
            elif value == count.nodata:
                nodata += hectares
            else:
                clear += hectares
                land_cover = legend[value]
                classes.setdefault((land_cover.code, land_cover.name), [land_cover, 0.0])[1] += hectares
    rows = tuple(ClassArea(land_cover, hectares) for land_cover, hectares in
                 sorted(classes.values(), key=lambda entry: entry[0].code) if keep(land_cover))
    return DateStatistics(date_plan.day, tuple(m.product.product_id for m in date_plan.maps), area_ha, rows,
                          clear, cloud, nodata, date_plan.uncovered_ha)
