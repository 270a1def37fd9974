"""Trust no provider's filter: products a search returns beyond the day or the area asked are skipped before
any work, whatever the provider and the layout, and `monitor status` counts them."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from shapely.geometry import box, shape

from earthsignature.core.tiling_grid import tile
from earthsignature.embedded.stac_provider import COG_ITEMS, LocalStacServer
from earthsignature.samples.safe_writer import ProductSpec, write_product
from earthsignature.samples.stac_item_writer import write_cog_item
from earthsignature.service.monitor.asked import Asked

DAY = date(2021, 8, 1)
MIDNIGHT = datetime(2021, 8, 1, tzinfo=UTC)


def area_around(tile_id: str):
    """A box a little larger than the tile's first few kilometres (where the small sample products lie)."""
    corners = shape({"type": "Polygon", "coordinates": [tile(tile_id).footprint_lonlat(5000, 5000)]}).bounds
    return box(corners[0] - 0.1, corners[1] - 0.1, corners[2] + 0.1, corners[3] + 0.1)


@pytest.mark.parametrize(("acquired", "inside"), [
    (MIDNIGHT - timedelta(seconds=1), False), (MIDNIGHT, True), (MIDNIGHT + timedelta(hours=23, seconds=3599), True),
    (MIDNIGHT + timedelta(days=1), False), (datetime(2021, 8, 1, 1, 30, tzinfo=UTC).astimezone(
        datetime.now().astimezone().tzinfo), True),
    (datetime(2021, 8, 1, 23, 30), True),  # no zone: UTC
])
def test_the_day_asked_is_utc_and_excludes_its_end(acquired, inside) -> None:
    asked = Asked(MIDNIGHT, MIDNIGHT + timedelta(days=1), area_around("34SGH"))
    footprint = area_around("34SGH").centroid.buffer(0.01)
    assert (asked.problem(acquired, footprint) is None) == inside


def test_a_footprint_must_meet_the_area() -> None:
    asked = Asked(MIDNIGHT, MIDNIGHT + timedelta(days=1), area_around("34SGH"))
    assert "outside the area" in asked.problem(MIDNIGHT, area_around("31TCJ"))
    assert asked.problem(MIDNIGHT, None) == "no footprint"
    bow_tie = shape({"type": "Polygon", "coordinates": [[(23, 38), (24, 39), (24, 38), (23, 39), (23, 38)]]})
    asked_there = Asked(MIDNIGHT, MIDNIGHT + timedelta(days=1), box(22, 37, 25, 40))
    assert asked_there.problem(MIDNIGHT, bow_tie) is None  # an invalid ring is mended, not a crash


def test_a_static_catalog_returning_every_day_is_checked(tmp_path) -> None:
    """Earth Search-style items carry only ``datetime``: EODAG's static-catalog search returns them for any day.
    Products a second either side of the day, and one outside the area, are skipped with the reason."""
    from earthsignature.service.monitor.runner import LOCAL_COLLECTIONS
    from earthsignature.service.monitor.source import ProductSource, local_provider_yaml

    times = {"before": MIDNIGHT - timedelta(seconds=1), "first": MIDNIGHT,
             "last": MIDNIGHT + timedelta(hours=23, minutes=59, seconds=59), "after": MIDNIGHT + timedelta(days=1)}
    served, names = tmp_path / "served", {}
    for number, (label, moment) in enumerate(times.items()):
        # Earth Search names an item by satellite, tile and day: the day's two products come from two satellites
        safe = write_product(tmp_path / "safe", ProductSpec(tile_id="34SGH", sensing_time=moment, size=60,
                                                            seed=number, mission="S2B" if label == "last" else "S2A"))
        names[label] = write_cog_item(safe, served / COG_ITEMS).name
    elsewhere = write_product(tmp_path / "safe", ProductSpec(tile_id="31TCJ", sensing_time=MIDNIGHT, size=60))
    names["elsewhere"] = write_cog_item(elsewhere, served / COG_ITEMS).name
    with LocalStacServer(served) as stac:
        yaml = local_provider_yaml("local_s2", stac.catalog_url, tmp_path / "products", LOCAL_COLLECTIONS)
        source = ProductSource("local_s2", tmp_path / "products", yaml, "S2_MSI_L2A_COG")
        skipped: list = []
        kept = [found.product_id for found, _ in source.search(DAY, area_around("34SGH").wkt, skipped=skipped)]
    reasons = {found.product_id: reason for found, reason in skipped}
    assert len(kept) == 2 and all("_20210801T" in p and "T34SGH" in p for p in kept), kept
    outside_the_day = {p for p, r in reasons.items() if "outside 2021-08-01 00:00 to 2021-08-02 00:00 UTC" in r}
    assert {p[11:26] for p in outside_the_day} == {"20210731T235959", "20210802T000000"}
    # the other tile: the provider's own geometry filter, or ours, leaves it out
    assert not any("T31TCJ" in p for p in kept) and all(r == "a footprint outside the area" for p, r in
                                                        reasons.items() if "T31TCJ" in p)


def test_monitor_status_counts_the_skipped(tmp_path) -> None:
    """What the day's search recorded as skipped is what `monitor status` says, with each reason."""
    import json

    from click.testing import CliRunner

    from earthsignature.cli import main
    from earthsignature.core.layout import MonitorWorkFolder

    search = MonitorWorkFolder(tmp_path / "work").search(DAY)
    search.parent.mkdir(parents=True)
    search.write_text(json.dumps({"day": DAY.isoformat(), "products": [], "skipped": [
        {"product_id": "S2A_MSIL2A_20200223T092031_N0214_R093_T34SGH_20200223T120000",
         "reason": "acquired 2020-02-23 09:20:31 UTC, outside 2021-08-01 00:00 to 2021-08-02 00:00 UTC"},
        {"product_id": "S2A_MSIL2A_20210801T092031_N0500_R093_T01XDA_20210801T120000",
         "reason": "a footprint outside the area"}]}))
    status = CliRunner().invoke(main, ["monitor", "status", "--date", DAY.isoformat(),
                                       f"monitor.work_dir={tmp_path / 'work'}"])
    assert status.exit_code == 0, status.output
    assert "2 products outside the day or the area skipped" in status.output
    assert "T01XDA_20210801T120000: a footprint outside the area" in status.output
