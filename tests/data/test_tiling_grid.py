"""The Sentinel-2 tiling grid against the geocoding of real products from both hemispheres."""

from __future__ import annotations

import pytest
from pyproj import Transformer

from earthsignature.core.tiling_grid import TILE_SIZE_M, tile

#: (tile, EPSG, ULX, ULY) as real products state them, and where each was read.
REAL_GEOCODING = [
    # MTD_TL.xml <Tile_Geocoding> of real L2A products, stac-utils/stactools tests/data-files/sentinel2/
    ("01CCV", 32701, 300_000, 2_000_020),  # S2B_MSIL2A_20191228T210519_N0212_R071_T01CCV (Antarctica, zone 1)
    ("07HFE", 32707, 600_000, 6_500_020),  # S2A_MSIL2A_20190212T192651_N0212_R013_T07HFE
    ("11SLT", 32611, 300_000, 3_800_040),  # S2A_MSIL2A_20150826T185436_N0212_R070_T11SLT
    # opendatacube/eo-datasets tests/integration/prepare: S2B_MSIL1C_20201011T000249_N0209_R030_T55HFA
    ("55HFA", 32755, 600_000, 6_100_000),
    # bludka/Satellite_Derived_Bathymetry: S2B_MSIL2A_20200121T220909_N0213_R129_T01KCV, MSK_NODATA_B02.gml
    # envelope (west edge, north edge)
    ("01KCV", 32701, 300_000, 8_000_020),
    # a real 46RER product's MTD_TL, as issue "The monitor: ... the real Sentinel-2 grid" quotes it
    ("46RER", 32646, 499_980, 3_100_020),
]


@pytest.mark.parametrize(("tile_id", "epsg", "ulx", "uly"), REAL_GEOCODING)
def test_tile_corners_are_those_of_real_products(tile_id: str, epsg: int, ulx: float, uly: float) -> None:
    geometry = tile(tile_id)
    assert (geometry.epsg, geometry.ulx, geometry.uly) == (epsg, ulx, uly)


def test_a_real_item_footprint_starts_at_the_tile_corner() -> None:
    """Earth Search's item S2A_60HWB_20201111_0_L2A (quoted in the STAC API filter extension's README): its
    valid-data polygon's north-west vertex is the first pixel's centre-ish point, 1 m inside the corner."""
    geometry = tile("60HWB")
    to_utm = Transformer.from_crs("EPSG:4326", geometry.epsg, always_xy=True)
    x, y = to_utm.transform(176.99978104582647, -38.84846679951431)
    assert (round(x) - 1, round(y) + 1) == (geometry.ulx, geometry.uly)


def test_corners_are_on_the_60_m_grid_counted_from_the_equator() -> None:
    for tile_id in ("31TCJ", "34VEN", "38LMK", "50LQK", "52LHL", "39MXR", "01XDA", "60CWS"):
        geometry = tile(tile_id)
        true_northing = geometry.uly - (10_000_000 if geometry.epsg > 32700 else 0)
        assert geometry.ulx % 60 == 0 and true_northing % 60 == 0, tile_id


def test_footprints_in_both_hemispheres_and_across_the_antimeridian() -> None:
    lons, lats = zip(*tile("T31TCJ").footprint_lonlat(), strict=True)
    assert 0.4 < min(lons) < 0.6 and 1.8 < max(lons) < 1.9  # west of Toulouse, 109.8 km wide
    assert 43.2 < min(lats) < 43.3 and 44.2 < max(lats) < 44.3
    lons, lats = zip(*tile("60HWB").footprint_lonlat(), strict=True)  # New Zealand's North Island
    assert -39.9 < min(lats) < max(lats) < -38.8 and 176.9 < min(lons) < max(lons) < 178.3
    ring = tile("01KAB").footprint_lonlat()  # zone 1's west edge: the tile begins east of 180
    assert ring[0][0] > 179 and any(lon < -179 for lon, _ in ring)
    assert tile("31TCJ").footprint_lonlat(TILE_SIZE_M, TILE_SIZE_M) == tile("31TCJ").footprint_lonlat()


def test_what_is_not_a_tile_is_refused() -> None:
    with pytest.raises(ValueError, match="not an MGRS tile"):
        tile("34SG")
    with pytest.raises(ValueError, match="not an MGRS tile"):
        tile("61TCJ")
    for other_script in ("٣٤SGH", "３４SGH", "34ſGH", "34SGH\u0301"):  # digits and letters that are not ASCII
        with pytest.raises(ValueError, match="not an MGRS tile"):
            tile(other_script)
    with pytest.raises(ValueError, match="do not exist in UTM zone 31"):
        tile("31TJJ")  # zone 31 columns are A..H
    with pytest.raises(ValueError, match="not in zone 31, latitude band T"):
        tile("31TCA")  # row A is 2,000 km from band T
    with pytest.raises(ValueError, match="not in zone 32, latitude band X"):
        tile("32XMA")  # Svalbard: zone 32 has no band X
    with pytest.raises(ValueError, match="not in zone 1, latitude band C"):
        tile("01CAV")  # at 72-80 S zone 1 is narrower than its columns
