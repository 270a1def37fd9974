"""Area statistics against a direct count on the full-resolution COGs: maps that overlap on one date, clouds,
no-data edges, an area across tiles, an area across the antimeridian, a part of the area no map covers."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
from rasterio.features import geometry_mask
from rasterio.warp import transform_bounds
from shapely.geometry import MultiPolygon, Polygon, box, mapping
from shapely.geometry.base import BaseGeometry

from earthsignature.core.product import gdal_path
from earthsignature.service.catalog import area_statistics as stats
from earthsignature.service.catalog.catalog import Catalog
from earthsignature.service.catalog.observations import CellCounts, Observed, cells_url, observe
from earthsignature.service.catalog.raster_store import RasterStore

from .stored_maps import LEGEND, found, store_map

pytestmark = pytest.mark.postgis


def direct_count(segmentation, region: BaseGeometry) -> dict[int, int]:
    """The reference: the whole class map and cloud mask read, the region rasterized on the whole grid."""
    with rasterio.open(gdal_path(segmentation.raster_url)) as dataset:
        classes, transform, nodata = dataset.read(1), dataset.transform, dataset.nodata
    with rasterio.open(gdal_path(segmentation.cloud_mask_url)) as dataset:
        cloud = dataset.read(1)
    observed = observe(classes, int(nodata), cloud)
    inside = geometry_mask([mapping(stats.in_map_crs(region, segmentation.crs))], classes.shape, transform,
                           invert=True)
    values, counts = np.unique(observed.data[inside], return_counts=True)
    return {int(v): int(n) for v, n in zip(values, counts, strict=True)}


def check_against_direct_count(catalog: Catalog, store: RasterStore, area: BaseGeometry) -> list:
    plans = stats.plan(area, found(catalog, area))
    for date_plan in plans:
        for segmentation, region in zip(date_plan.maps, date_plan.regions, strict=True):
            expected = direct_count(segmentation, region)
            by_cells = stats.count_map(segmentation, region, store)
            assert by_cells.counts == expected
            assert stats.count_directly(segmentation, stats.in_map_crs(region, segmentation.crs), store).counts \
                == expected
    return plans


#: Both ways of counting a map with cells: edge runs only (0), and its window in one read (every area small)
BOTH_READS = pytest.mark.parametrize("edge_share", [0, 10**9], ids=["edge-runs", "one-read"])


@BOTH_READS
def test_overlapping_tiles_count_each_pixel_once_and_clouds_apart(stored, monkeypatch, edge_share) -> None:
    monkeypatch.setattr(stats, "EDGE_SHARE_READ_WHOLE", edge_share)
    catalog, store = stored
    # two neighbouring tiles of one day overlapping by 1.5 km, and the first tile again a day later
    store_map(catalog, store, 1, "31TCJ", "EPSG:32631", (400_000, 4_850_000), (600, 700), nodata_columns=60)
    store_map(catalog, store, 2, "31TDJ", "EPSG:32631", (406_850, 4_849_000), (600, 650))
    store_map(catalog, store, 3, "31TCJ", "EPSG:32631", (400_000, 4_850_000), (600, 700), day=1)
    west, south, east, north = (to_lonlat := transform_bounds("EPSG:32631", "EPSG:4326", 402_000, 4_845_000,
                                                              412_000, 4_849_500))
    # a slanted area across both tiles, reaching beyond them to the east (uncovered there)
    area = Polygon([(west, south), (east + 0.02, south + 0.005), (east + 0.01, north), (west + 0.003, north)])
    plans = check_against_direct_count(catalog, store, area)
    assert [len(p.maps) for p in plans] == [2, 1] and to_lonlat
    day_one = plans[0]
    assert day_one.regions[0].intersection(day_one.regions[1]).area == pytest.approx(0, abs=1e-12)  # once
    counts = [stats.count_map(s, r, store) for s, r in zip(day_one.maps, day_one.regions, strict=True)]
    summary = stats.summarize(day_one, counts, stats.geodesic_hectares(area))
    pixels = {}
    for count in counts:
        for value, n in count.counts.items():
            pixels[value] = pixels.get(value, 0) + n
    cloud, nodata = Observed.markers(np.dtype(np.uint8))
    assert summary.cloud_ha == pytest.approx(pixels[cloud] * 0.01) and summary.cloud_ha > 0
    assert summary.nodata_ha == pytest.approx(pixels[nodata] * 0.01) and summary.nodata_ha > 0
    by_name = {row.land_cover.name: row.hectares for row in summary.classes}
    assert by_name["Burnt areas"] == pytest.approx(pixels.get(2, 0) * 0.01)
    assert sum(by_name.values()) == pytest.approx(summary.clear_ha)  # clouds and no data are never a class
    assert summary.uncovered_ha > 0
    # the parts add up to the area asked, within a pixel's width along its edge (and UTM's scale, 0.04 %)
    total = summary.clear_ha + summary.cloud_ha + summary.nodata_ha + summary.uncovered_ha
    edge_ha = area.length / 0.001 * 0.01 * 0.01  # perimeter in ~100 m steps x half a pixel: generous
    assert abs(total - summary.area_ha) < edge_ha + 0.001 * summary.area_ha


def test_cells_and_class_shares_count_clear_pixels(stored) -> None:
    catalog, store = stored
    store_map(catalog, store, 1, "31TCJ", "EPSG:32631", (400_000, 4_850_000), (300, 400), nodata_columns=30)
    segmentation = found(catalog, box(-180, -90, 180, 90))[0]
    cells = CellCounts.from_bytes(store.read_bytes(cells_url(segmentation.observed_url)))
    with rasterio.open(gdal_path(segmentation.observed_url)) as dataset:
        observed = dataset.read(1)
        assert dataset.profile["blockxsize"] == cells.cell
    assert cells.counts.shape[:2] == (3, 4)
    assert cells.counts[2, 3].sum() == (300 - 256) * (400 - 384)  # the last cell, clipped to the map
    cloud, nodata = Observed.markers(np.dtype(np.uint8))
    values, counts = np.unique(observed, return_counts=True)
    totals = dict(zip(values.tolist(), counts.tolist(), strict=True))
    assert cells.totals() == totals
    clear = sum(n for v, n in totals.items() if v not in (cloud, nodata))
    tallies = segmentation.tallies
    assert (tallies.clear, tallies.cloud, tallies.nodata) == (clear, totals[cloud], totals[nodata])
    shares = {s.value: (s.pixel_count, s.fraction) for s in segmentation.classes}
    assert shares == {v: (totals.get(v, 0), pytest.approx(totals.get(v, 0) / clear)) for v in LEGEND}


@BOTH_READS
def test_an_area_across_the_antimeridian(stored, monkeypatch, edge_share) -> None:
    monkeypatch.setattr(stats, "EDGE_SHARE_READ_WHOLE", edge_share)
    catalog, store = stored
    # a map of UTM zone 60 reaching past 180 degrees (its footprint in two parts), and one of zone 1 beside it
    store_map(catalog, store, 1, "60WWT", "EPSG:32660", (633_000, 7_322_000), (500, 600))
    store_map(catalog, store, 2, "01WCN", "EPSG:32601", (361_000, 7_322_500), (500, 500))
    maps = found(catalog, box(-180, -90, 180, 90))
    assert any(isinstance(stats.to_shape(s.product.footprint), MultiPolygon) and
               len(stats.to_shape(s.product.footprint).geoms) == 2 for s in maps)
    south, north = 65.95, 65.98
    area = MultiPolygon([box(179.97, south, 180.0, north), box(-180.0, south, -179.95, north)])
    plans = check_against_direct_count(catalog, store, area)
    assert len(plans) == 1 and len(plans[0].maps) == 2
    counted = [stats.count_map(s, r, store) for s, r in zip(plans[0].maps, plans[0].regions, strict=True)]
    assert all(sum(c.counts.values()) > 0 for c in counted)  # both sides of 180 degrees hold pixels
