"""Change between two periods against a per-pixel reference: the clearest, most confident observation of each
period, clouds and no data and missing maps apart, the transitions asked for drawn in the change map."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.features import geometry_mask
from rasterio.warp import transform_bounds
from shapely.geometry import box, mapping

from earthsignature.core.product import gdal_path
from earthsignature.service.catalog import change
from earthsignature.service.catalog.area_statistics import in_map_crs
from earthsignature.service.catalog.observations import observe

from .stored_maps import DAY, LEGEND, found, store_map

pytestmark = pytest.mark.postgis
ORIGIN, SHAPE = (400_000, 4_850_000), (400, 500)


def observation(segmentation) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A whole map's (observed values, rank: 0 no data / 1 cloud / 2 clear, confidence)."""
    layers = {}
    for name, url in (("classes", segmentation.raster_url), ("cloud", segmentation.cloud_mask_url),
                      ("confidence", segmentation.confidence_url)):
        with rasterio.open(gdal_path(url)) as dataset:
            layers[name] = dataset.read(1)
    observed = observe(layers["classes"], 255, layers["cloud"])
    rank = np.where(observed.data == observed.nodata, 0, np.where(observed.data == observed.cloud, 1, 2))
    return observed.data, rank, layers["confidence"]


def reference(maps) -> tuple[np.ndarray, np.ndarray]:
    """Per pixel, the best observation of a period: clear before cloud before no data, then the highest
    confidence, then the latest (maps oldest first)."""
    stacked = [observation(m) for m in sorted(maps, key=lambda m: m.product.start_time)]
    score = np.stack([(rank * 256 + np.where(rank == 2, confidence, 0)) * len(stacked) + k
                      for k, (_, rank, confidence) in enumerate(stacked)])
    best = np.argmax(score, axis=0)
    values = np.choose(best, [values for values, _, _ in stacked])
    ranks = np.choose(best, [rank for _, rank, _ in stacked])
    return values, ranks


def test_change_between_two_periods_matches_a_per_pixel_reference(stored) -> None:
    catalog, store = stored
    # before: two dates of 31TCJ (composited); after: one date of 31TCJ and, east of it, one of 31TDJ
    for number, day in ((1, 0), (2, 2), (3, 40)):
        store_map(catalog, store, number, "31TCJ", "EPSG:32631", ORIGIN, SHAPE, day=day,
                  nodata_columns=40 if number == 3 else 0)
    store_map(catalog, store, 4, "31TDJ", "EPSG:32631", (404_000, 4_849_000), SHAPE, day=41)
    west, south, east, north = transform_bounds("EPSG:32631", "EPSG:4326", 401_000, 4_847_000, 407_000,
                                                4_849_500)
    area = box(west, south, east, north)
    before = found(catalog, area, DAY - timedelta(days=1), DAY + timedelta(days=5))
    after = found(catalog, area, DAY + timedelta(days=30), DAY + timedelta(days=50))
    assert (len(before), len(after)) == (2, 2)
    burnt = LEGEND[2].index
    result = change.compare(area, before, after, store, to_values=frozenset({burnt}))

    # the reference on 31TCJ's grid: 31TCJ's maps come first, so the whole part of the area it covers is its
    tcj_after = [m for m in after if m.product.tile_id == "31TCJ"]
    first, first_rank = reference(before)
    second, second_rank = reference(tcj_after)
    transform = Affine(10.0, 0, ORIGIN[0], 0, -10.0, ORIGIN[1])
    inside = geometry_mask([mapping(in_map_crs(area, "EPSG:32631"))], SHAPE, transform, invert=True)
    nodata = inside & ((first_rank == 0) | (second_rank == 0))
    cloud = inside & ~nodata & ((first_rank == 1) | (second_rank == 1))
    clear = inside & ~nodata & ~cloud
    pairs, counts = np.unique(first[clear].astype(int) * 1000 + second[clear], return_counts=True)
    expected = {(LEGEND[p // 1000].name, LEGEND[p % 1000].name): n * 0.01 for p, n in zip(pairs, counts, strict=True)}
    got = {(t.before.name, t.after.name): t.hectares for t in result.matrix}
    # 31TDJ's part of the area (east of 31TCJ) has no map before: not compared, for want of a map
    assert got == pytest.approx(expected)
    assert result.not_compared_ha["cloud"] == pytest.approx(cloud.sum() * 0.01)
    assert result.not_compared_ha["nodata"] == pytest.approx(nodata.sum() * 0.01) and nodata.sum() > 0
    assert result.not_compared_ha["no_map"] > 0 and result.compared_ha == pytest.approx(clear.sum() * 0.01)

    # the change map: every pixel that became burnt (and was not burnt) carries its transition's value
    drawn = {t.value: (t.before.index, t.after.index) for t in result.drawn}
    assert drawn and all(after == burnt and before != burnt for before, after in drawn.values())
    tcj = next(m for m in result.maps if m.tile_id == "31TCJ")
    col0, row0 = (round(v) for v in ~transform @ (tcj.transform.c, tcj.transform.f))
    rows, cols = tcj.data.shape
    window = (slice(row0, row0 + rows), slice(col0, col0 + cols))
    became_burnt = clear[window] & (second[window] == burnt) & (first[window] != burnt)
    assert np.array_equal((tcj.data > 0) & (tcj.data != tcj.nodata), became_burnt) and became_burnt.any()
    assert np.array_equal(tcj.data == tcj.nodata, ~clear[window])
    for value, (before_value, _) in drawn.items():
        assert np.array_equal(tcj.data == value, became_burnt & (first[window] == before_value))
