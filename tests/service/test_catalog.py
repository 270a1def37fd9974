"""The catalog on a real PostGIS: transactional, idempotent inserts and every filter."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from shapely.geometry import box

from earthsignature.core.classes import ClassShare, LandCoverClass
from earthsignature.core.raster_codec import unpack_rgb
from earthsignature.service.catalog.catalog import (
    Catalog,
    CatalogError,
    Filters,
    ProductRecord,
    SegmentationRecord,
)
from earthsignature.service.catalog.schema import upgrade

pytestmark = pytest.mark.postgis
DAY = datetime(2021, 8, 1, 9, 0, tzinfo=UTC)


def product(number: int, tile: str = "34SGH", lon: float = 23.0, day: int = 0, cloud: float = 5.0) -> ProductRecord:
    start = DAY + timedelta(days=day, minutes=number)
    return ProductRecord(f"S2A_MSIL2A_{start:%Y%m%dT%H%M%S}_N0500_R093_T{tile}_X{number}", tile, "S2A", "L2A",
                         start, start + timedelta(seconds=5), box(lon, 38.0, lon + 1.0, 39.0), cloud)


def segmentation(model: str = "clc-unet", version: str = "1", burnt: float = 0.0) -> SegmentationRecord:
    classes = [ClassShare(LandCoverClass(312, "Coniferous forest", unpack_rgb(0x00A600), 0), 600, 0.6 - burnt),
               ClassShare(LandCoverClass(211, "Non-irrigated arable land", unpack_rgb(0xFFFFA8), 1), 400, 0.4)]
    if burnt:
        classes.append(ClassShare(LandCoverClass(334, "Burnt areas", unpack_rgb(0), 2), int(1000 * burnt), burnt))
    return SegmentationRecord(model, version, f"file:///r/{model}/{version}.tif", "EPSG:32634",
                              [700000.0, 10, 0, 4300000.0, 0, -10], 100, 100, classes)  # mixed int/float


@pytest.fixture
def catalog(postgis_db: str):
    upgrade(postgis_db)
    catalog = Catalog(postgis_db, pool_size=2)
    yield catalog
    catalog.dispose()


def count(catalog: Catalog, table: str) -> int:
    with catalog.engine.connect() as connection:
        return connection.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one()


def test_add_is_idempotent(catalog: Catalog) -> None:
    first, created = catalog.add(product(1), segmentation())
    again, created_again = catalog.add(product(1), segmentation())
    assert created and not created_again and first == again
    other, _ = catalog.add(product(1), segmentation(model="burnt-unet"))  # same product, second model
    assert other != first
    counts = [count(catalog, table) for table in ("products", "segmentations", "class_statistics")]
    assert counts == [1, 2, 4]


def test_a_failed_insert_leaves_nothing(catalog: Catalog) -> None:
    broken = segmentation()
    broken = SegmentationRecord(**{**broken.__dict__, "classes": [*broken.classes, broken.classes[0]]})  # dup value
    with pytest.raises(sa.exc.IntegrityError):
        catalog.add(product(2), broken)
    assert count(catalog, "products") == 0 and count(catalog, "segmentations") == 0


def test_filters(catalog: Catalog) -> None:
    catalog.add(product(1, "34SGH", lon=23.0, day=0, cloud=5), segmentation(burnt=0.2))
    catalog.add(product(2, "31TCJ", lon=1.0, day=1, cloud=40), segmentation())
    catalog.add(product(3, "33UUP", lon=12.0, day=2, cloud=10), segmentation(model="burnt-unet"))

    def tiles(**kwargs) -> list[str]:
        return [f.segmentation.product.tile_id for f in catalog.search(Filters(**kwargs))]

    assert tiles() == ["33UUP", "31TCJ", "34SGH"]  # newest first
    assert tiles(area=box(23.5, 38.5, 23.6, 38.6)) == ["34SGH"]
    assert tiles(area=box(50, 50, 51, 51)) == []
    assert tiles(start=DAY + timedelta(days=1), end=DAY + timedelta(days=1, hours=23)) == ["31TCJ"]
    assert tiles(product_ids=(product(2, "31TCJ", day=1).product_id,)) == ["31TCJ"]
    assert tiles(tile_ids=("T34SGH", "33uup")) == ["33UUP", "34SGH"]
    assert tiles(model_names=("burnt-unet",)) == ["33UUP"]
    assert tiles(max_cloud_cover=10) == ["33UUP", "34SGH"]
    assert tiles(category_codes=(334,)) == ["34SGH"]
    assert tiles(category_names=("burnt areas",), min_category_fraction=0.25) == []
    assert tiles(category_names=("non-irrigated arable land",), min_category_fraction=0.4) == ["33UUP", "31TCJ",
                                                                                              "34SGH"]
    assert tiles(words="burnt") == ["33UUP", "34SGH"]  # a class name and a model name
    assert tiles(words="forests 31TCJ") == ["31TCJ"]  # stemming: forests ~ forest
    assert catalog.known_category("Burnt Areas") and catalog.known_category("312")
    assert not catalog.known_category("bananas")


def test_paging_is_stable(catalog: Catalog) -> None:
    for number in range(5):
        catalog.add(product(number, day=number), segmentation())
    seen, token = [], ""
    while True:
        page = catalog.search(Filters(limit=2, page_token=token))
        if not page:
            break
        seen += [f.segmentation.id for f in page]
        token = page[-1].page_key.token()
        catalog.add(product(99, day=-5), segmentation())  # an old product arriving between pages
    assert len(seen) == 6 and len(set(seen)) == 6
    with pytest.raises(CatalogError, match="not one this server issued"):
        catalog.search(Filters(page_token="garbage!"))
    # the page before a key: the answers just newer than it, newest first, as the forward pages had them
    everything = [f.segmentation.id for f in catalog.search(Filters(limit=100))]
    third = catalog.search(Filters(limit=2, page_token=catalog.search(Filters(limit=4))[-1].page_key.token()))
    before = catalog.search(Filters(limit=2, page_token=third[0].page_key.before().token()))
    assert [f.segmentation.id for f in before] == everything[2:4]
    sideways = base64.urlsafe_b64encode(json.dumps({"t": "2021-08-01T00:00:00+00:00", "id": 1, "d": "up"}).encode())
    with pytest.raises(CatalogError, match="not one this server issued"):
        catalog.search(Filters(page_token=sideways.decode()))


def test_count_is_exact_up_to_its_cap_and_ignores_the_page(catalog: Catalog) -> None:
    for number in range(5):
        catalog.add(product(number, day=number), segmentation(burnt=0.3 if number % 2 else 0.0))
    everything = Filters(limit=2)
    assert catalog.search_counted(everything, cap=10)[1] == 5 and catalog.search_counted(everything, cap=5)[1] == 5
    assert catalog.search_counted(everything, cap=4)[1] is None  # more than the cap: not counted
    second_page = Filters(limit=2, page_token=catalog.search(everything)[-1].page_key.token())
    assert catalog.search_counted(second_page, cap=10)[1] == 5  # all pages, wherever the page starts
    assert catalog.search_counted(Filters(category_names=("burnt areas",)), cap=10)[1] == 2
    page, matched = catalog.search_counted(second_page, cap=10)  # what a STAC page asks, in one session
    assert [f.segmentation.id for f in page] == [f.segmentation.id for f in catalog.search(second_page)]
    assert len(page) == 2 and matched == 5 and catalog.search_counted(everything, cap=4)[1] is None


def test_item_ids_name_product_model_and_version_and_read_back() -> None:
    from earthsignature.service.catalog.items import item_id, item_keys

    identifier = item_id("S2A_MSIL2A_X-1", "clc-unet-smoke", "2.0-rc")
    assert identifier == "S2A_MSIL2A_X-1-clc-unet-smoke-v2.0-rc"
    keys = item_keys(identifier)
    assert ("S2A_MSIL2A_X-1", "clc-unet-smoke", "2.0-rc") in keys  # among the few ways '-' may split it
    assert item_keys(identifier, "clc-unet-smoke") == [("S2A_MSIL2A_X-1", "clc-unet-smoke", "2.0-rc")]
    assert item_keys("no-version-here", "clc") == [] and item_keys("-clc-v1") == [] and item_keys("") == []


def test_the_same_product_in_two_collections_is_two_items(catalog: Catalog) -> None:
    from earthsignature.service.catalog.items import item_id

    catalog.add(product(1), segmentation(model="clc-unet"))
    catalog.add(product(1), segmentation(model="burnt-unet"))
    ids = [item_id(product(1).product_id, model, "1") for model in ("clc-unet", "burnt-unet")]
    assert len(set(ids)) == 2
    assert [f.segmentation.model_name for f in catalog.search(Filters(item_ids=ids[:1]))] == ["clc-unet"]
    assert len(catalog.search(Filters(item_ids=ids))) == 2
