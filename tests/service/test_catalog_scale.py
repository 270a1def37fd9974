"""The catalog at a useful size (30,000 segmentations laid out as the ingestion of Europe makes them): the
main queries read their indexes (plan shapes from EXPLAIN, never timings), and the migrations upgrade a
catalog that holds data."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from shapely.geometry import box

from earthsignature.samples.catalog_rows import write_catalog
from earthsignature.service.catalog.catalog import Catalog, Filters, PageKey
from earthsignature.service.catalog.items import item_id
from earthsignature.service.catalog.raster_store import RasterStore
from earthsignature.service.catalog.schema import alembic_config, head_revision, upgrade

pytestmark = pytest.mark.postgis
SEGMENTATIONS = 30_000
AREA = box(1.2, 43.4, 1.7, 43.9)  # around Toulouse
MONTH = (datetime(2023, 1, 1, tzinfo=UTC), datetime(2023, 1, 31, 23, 59, 59, tzinfo=UTC))


@pytest.fixture(scope="module")
def catalog(module_db: str, tmp_path_factory: pytest.TempPathFactory):
    upgrade(module_db)
    write_catalog(module_db, SEGMENTATIONS, RasterStore(str(tmp_path_factory.mktemp("store"))))
    catalog = Catalog(module_db, pool_size=1)
    yield catalog
    catalog.dispose()


def nodes(plan: dict) -> list[dict]:
    """Every node of an EXPLAIN plan, depth first."""
    return [plan, *(node for child in plan.get("Plans", []) for node in nodes(child))]


def indexes(plan: dict) -> set[str]:
    """The indexes a plan reads."""
    return {node["Index Name"] for node in nodes(plan) if "Index Name" in node}


def read_whole(plan: dict) -> set[str]:
    """The tables a plan reads from end to end."""
    return {node["Relation Name"] for node in nodes(plan) if node["Node Type"] == "Seq Scan"}


def test_the_catalog_is_laid_out_as_ingestion_makes_it(catalog: Catalog) -> None:
    with catalog.engine.connect() as connection:
        counts = connection.execute(sa.text(
            "SELECT (SELECT count(*) FROM products), (SELECT count(*) FROM segmentations), "
            "(SELECT count(DISTINCT model_name) FROM segmentations), "
            "(SELECT count(*) FROM segmentations WHERE search_document @@ plainto_tsquery('english', 'forest'))"
        )).one()
    assert counts[:3] == (SEGMENTATIONS // 3, SEGMENTATIONS, 3) and counts[3] > 0
    found = catalog.search(Filters(area=AREA, start=MONTH[0], end=MONTH[1], limit=5))
    assert found and all(row.segmentation.product.start_time <= MONTH[1] for row in found)
    assert all(abs(sum(c.fraction for c in row.segmentation.classes) - 1) < 1e-6 for row in found)


def test_an_area_and_a_month_read_one_index_of_both(catalog: Catalog) -> None:
    plan = catalog.plan(Filters(area=AREA, start=MONTH[0], end=MONTH[1], limit=11))
    assert not read_whole(plan) & {"products", "segmentations"}
    assert "ix_products_footprint_time" in indexes(plan) and "ix_products_start_time" not in indexes(plan)


def test_items_by_id_are_found_by_product_name(catalog: Catalog) -> None:
    with catalog.engine.connect() as connection:
        picked = connection.execute(sa.text(
            "SELECT p.product_id, s.model_name, s.model_version FROM segmentations s JOIN products p "
            "ON p.id = s.product_pk WHERE s.id IN (7, 7007, 17007)")).all()
    ids = tuple(item_id(product, model, version) for product, model, version in picked)
    assert len(catalog.search(Filters(item_ids=ids, limit=10))) == 3
    plan = catalog.plan(Filters(item_ids=ids, limit=10))
    assert "uq_products_product_id" in indexes(plan) and not read_whole(plan)


def test_a_filter_on_a_class_share_reads_the_share_index(catalog: Catalog) -> None:
    tree = {"op": ">", "args": [{"property": "fraction:burnt"}, 0.2]}
    found = catalog.search(Filters(expression=tree, limit=20))
    assert found and all(next(c.fraction for c in row.segmentation.classes if c.name == "Burnt") > 0.2
                         for row in found)
    assert "ix_class_statistics_share" in indexes(catalog.plan(Filters(expression=tree, limit=11)))
    # "less than" also holds for maps without the class (share 0): the maps of the other models
    below = {"op": "<", "args": [{"property": "fraction:burnt"}, 0.2]}
    assert {row.segmentation.model_name for row in catalog.search(Filters(expression=below, limit=30))} == {
        "clc-unet", "burnt-area", "crops"}


def test_a_share_filter_reads_the_newest_matching_maps_first(catalog: Catalog) -> None:
    """Every result must meet the share condition: only a few pages of the newest maps that hold the class
    so are gathered, in time order, from a share index; under ``or`` all of them are. Both page
    alike, and a page the few newest cannot fill (another condition refuses them) is searched again."""
    share = {"op": ">", "args": [{"property": "fraction:burnt"}, 0.2]}
    everything = {"op": "or", "args": [share, False]}  # the same maps, the condition not a top-level one
    for tree, gathered in ((share, 40), (everything, None)):
        plan = catalog.plan(Filters(expression=tree, limit=10))
        (ids,) = [node for node in nodes(plan) if node.get("Parent Relationship") == "InitPlan"]
        assert indexes(ids) & {"ix_class_statistics_share", "ix_class_statistics_share_time"}
        assert (ids["Node Type"], ids["Plan Rows"]) == ("Limit", gathered) if gathered else ids["Node Type"] != "Limit"
        assert not read_whole(plan) and "pk_segmentations" in indexes(plan)  # then the maps found by id

    def pages(filters: Filters, count: int = 4) -> list[int]:
        ids, token = [], ""
        for _ in range(count):
            page = catalog.search(dataclasses.replace(filters, page_token=token))
            ids += [found.segmentation.id for found in page]
            if len(page) < filters.limit:
                break
            last = page[-1].segmentation
            token = PageKey(last.product.start_time, last.id).token()
        return ids

    newest = pages(Filters(expression=share, limit=10))
    assert len(newest) == 40 and newest == pages(Filters(expression=everything, limit=10))
    oldest = catalog.search(Filters(expression=everything, limit=1000))[-1].segmentation
    rare = Filters(expression=share, tile_ids=(oldest.product.tile_id,), limit=10)
    found = pages(rare, 100)
    assert oldest.id in found and found == pages(dataclasses.replace(rare, expression=everything), 100)
    # numberMatched: every match counted, the products joined only when a condition reads them (the tile)
    with catalog.engine.connect() as connection:
        matches = connection.execute(sa.text(
            "SELECT count(*) FROM class_statistics WHERE name = 'Burnt' AND pixel_count > 0 AND fraction > 0.2"
        )).scalar_one()
    assert catalog.search_counted(Filters(expression=share), cap=100_000)[1] == matches > 40
    assert catalog.search_counted(rare, cap=100_000)[1] == len(found)


def test_a_deep_page_starts_where_the_token_points(catalog: Catalog) -> None:
    with catalog.engine.connect() as connection:
        start_time, segmentation_id = connection.execute(sa.text(
            "SELECT p.start_time, s.id FROM segmentations s JOIN products p ON p.id = s.product_pk "
            "ORDER BY p.start_time DESC, s.id DESC OFFSET 20000 LIMIT 1")).one()
    filters = Filters(page_token=PageKey(start_time, segmentation_id).token(), limit=11)
    page = catalog.search(filters)
    assert page and all((r.segmentation.product.start_time, r.segmentation.id) < (start_time, segmentation_id)
                        for r in page)
    plan = catalog.plan(filters)  # the time index, entered at the token's time (not read from the newest)
    entries = [node.get("Index Cond", "") for node in nodes(plan) if node.get("Index Name") == "ix_products_start_time"]
    assert any("start_time <=" in entry for entry in entries) and "products" not in read_whole(plan)


def test_migrating_a_catalog_that_holds_data(postgis_db: str, tmp_path: Path) -> None:
    """From earlier revisions, with maps in them, to the head and back: nothing lost, the indexes built, each
statistic dated by its product."""
    assert upgrade(postgis_db, "0002") == "0002"
    write_catalog(postgis_db, 3_000, RasterStore(str(tmp_path / "store")))
    engine = sa.create_engine(postgis_db)

    def state() -> tuple:
        with engine.connect() as connection:
            return connection.execute(sa.text(
                # rounded: 0005 rewrites the rows, and a float sum's last digits follow their order
                "SELECT count(*), round(sum(fraction)::numeric, 9), count(DISTINCT segmentation_id) "
                "FROM class_statistics")).one()

    def new_indexes() -> set[str]:
        with engine.connect() as connection:
            return set(connection.execute(sa.text(
                "SELECT indexname FROM pg_indexes WHERE indexname IN ('ix_class_statistics_share', "
                "'ix_class_statistics_share_time', 'ix_products_footprint_time', 'ix_products_footprint')"
            )).scalars())

    def misdated() -> int:
        """Statistics whose acquisition start is not their product's (0005 copies it)."""
        with engine.connect() as connection:
            return connection.execute(sa.text(
                "SELECT count(*) FROM class_statistics c JOIN segmentations s ON s.id = c.segmentation_id "
                "JOIN products p ON p.id = s.product_pk WHERE c.start_time IS DISTINCT FROM p.start_time")).scalar_one()

    before = state()
    assert new_indexes() == {"ix_products_footprint"}
    assert upgrade(postgis_db) == head_revision() == "0005"
    assert state() == before and misdated() == 0
    assert new_indexes() == {"ix_class_statistics_share", "ix_class_statistics_share_time",
                             "ix_products_footprint_time"}
    command.downgrade(alembic_config(postgis_db), "0002")
    assert state() == before and new_indexes() == {"ix_products_footprint"}
    engine.dispose()
