"""Sentinel-2 bands and product names."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from earthsignature.core.sentinel2 import ProductName, band

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


def test_bad_bands() -> None:
    assert band("b8a").resolution == 20
    with pytest.raises(ValueError, match="unknown Sentinel-2 band"):
        band("B13")


def test_tile_ids_as_people_write_them() -> None:
    from earthsignature.core.sentinel2 import is_tile_id

    assert all(is_tile_id(t) for t in ("34SGH", "T34SGH", "t31tcj", "01WCP"))
    assert not any(is_tile_id(t) for t in ("34SIH", "34SGO", "3SGH", "34SGHX", "../x", "", "34 SGH",
                                           "٣٤SGH", "３４SGH", "34ſGH", "ｔ34SGH"))
    with pytest.raises(ValueError, match="not a Sentinel-2 product name"):
        ProductName.parse(NAME.replace("20210801T092031", "２０２１0801T092031"))  # not ASCII digits
