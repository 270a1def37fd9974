"""Sentinel-2 product names and tiling-grid geometry."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from earthsignature.core.sentinel2 import ProductName, band, tile

NAME = "S2B_MSIL2A_20210801T092031_N0301_R093_T34SGH_20210801T122519"


def test_product_name_round_trip() -> None:
    name = ProductName.parse(NAME + ".SAFE")
    assert (name.mission, name.level, name.baseline, name.relative_orbit, name.tile_id) == (
        "S2B", "L2A", "0301", 93, "34SGH")
    assert name.sensing_time == datetime(2021, 8, 1, 9, 20, 31, tzinfo=UTC)
    assert str(name) == NAME
    assert ProductName.parse(f"/data/{NAME}.zip") == name


def test_bad_product_names() -> None:
    for bad in ("S2A_MSIL3A_20210801T092031_N0301_R093_T34SGH_20210801T122519",
                "LC08_L1TP_190031_20210801", NAME.replace("T34SGH", "T34SIH")):
        with pytest.raises(ValueError, match="not a Sentinel-2 product name"):
            ProductName.parse(bad)


@pytest.mark.parametrize(("tile_id", "epsg", "ulx", "uly"), [
    ("31TCJ", 32631, 300_000, 4_900_000),  # Toulouse: ESA's MTD_TL gives ULX 300000, ULY 4900020
    ("33UUP", 32633, 300_000, 5_400_000),
    ("32TQM", 32632, 700_000, 4_700_000),  # even zone: row letters start at F
])
def test_tile_origin(tile_id: str, epsg: int, ulx: float, uly: float) -> None:
    geometry = tile(tile_id)
    assert (geometry.epsg, geometry.ulx, geometry.uly) == (epsg, ulx, uly)


def test_tile_footprint_is_where_the_tile_is() -> None:
    ring = tile("T31TCJ").footprint_lonlat()
    lons, lats = zip(*ring, strict=True)
    assert ring[0] == ring[-1]
    assert 0.4 < min(lons) < 0.6 and 1.8 < max(lons) < 1.9  # west of Toulouse, 109.8 km wide
    assert 43.2 < min(lats) < 43.3 and 44.2 < max(lats) < 44.3


def test_bad_tiles_and_bands() -> None:
    with pytest.raises(ValueError, match="not an MGRS tile"):
        tile("34SG")
    with pytest.raises(ValueError, match="do not exist in UTM zone 31"):
        tile("31TJJ")  # zone 31 columns are A..H
    with pytest.raises(ValueError, match="northern-hemisphere"):
        tile("34HGH")
    assert band("b8a").resolution == 20
    with pytest.raises(ValueError, match="unknown Sentinel-2 band"):
        band("B13")


def test_tile_ids_as_people_write_them() -> None:
    from earthsignature.core.sentinel2 import is_tile_id

    assert all(is_tile_id(t) for t in ("34SGH", "T34SGH", "t31tcj", "01WCP"))
    assert not any(is_tile_id(t) for t in ("34SIH", "34SGO", "3SGH", "34SGHX", "../x", "", "34 SGH"))
