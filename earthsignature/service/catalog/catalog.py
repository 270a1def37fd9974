"""The catalog in PostGIS: store segmented products transactionally, find them by the API's filters.

Queries combine an area (footprint intersection, GiST index), an acquisition period (overlap),
product ids, tiles, models, a cloud-cover ceiling, categories (class codes or names through the
per-class statistics, with a minimum fraction) and free words (PostgreSQL full-text search over class
names and product metadata). Results come newest first, and pages continue from a keyset token
(acquisition time, segmentation id), so pages stay stable while products arrive.
"""

from __future__ import annotations

import base64
import dataclasses
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from geoalchemy2.shape import from_shape
from shapely.geometry import MultiPolygon, Polygon
from shapely.geometry.base import BaseGeometry
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session, contains_eager, selectinload, sessionmaker
from sqlalchemy.sql.util import find_tables

from earthsignature.core.classes import ClassShare, class_code
from earthsignature.core.manifest import ModelCard
from earthsignature.service.catalog import stac_filter
from earthsignature.service.catalog.items import item_keys
from earthsignature.service.catalog.observations import Tallies
from earthsignature.service.catalog.queryables import NewestFirst
from earthsignature.service.catalog.tables import ClassStatistic, Product, Segmentation

SEARCH_CONFIG = "english"
#: A class-share condition first gathers this many pages of the newest maps that meet it (``search``).
SHARE_PAGES = 4
#: the text-search configuration as a constant of its own type (a parameter of type regconfig has no
#: literal form, so EXPLAIN could not show the plan of a text query)
_SEARCH_CONFIG_SQL = sa.literal_column(f"'{SEARCH_CONFIG}'::regconfig")


class CatalogError(ValueError):
    """A request the catalog cannot answer as asked (bad filter, bad token)."""


#: PostgreSQL's SQLSTATEs for a statement it cancelled: statement_timeout, lock_timeout
QUERY_CANCELED, LOCK_NOT_AVAILABLE = "57014", "55P03"


def over_budget(error: BaseException) -> str | None:
    """Which budget PostgreSQL enforced when it ended a statement (``statement`` or ``lock``), or None."""
    state = getattr(getattr(error, "orig", None), "sqlstate", None)
    return {QUERY_CANCELED: "statement", LOCK_NOT_AVAILABLE: "lock"}.get(state)


@dataclass(frozen=True)
class ProductRecord:
    product_id: str
    tile_id: str
    platform: str
    processing_level: str
    start_time: datetime
    end_time: datetime
    footprint: BaseGeometry  # EPSG:4326
    cloud_cover: float | None = None
    quicklook_url: str | None = None


@dataclass(frozen=True)
class SegmentationRecord:
    model_name: str
    model_version: str
    raster_url: str
    crs: str
    geotransform: Sequence[float]
    width: int
    height: int
    classes: Sequence[ClassShare]
    confidence_url: str | None = None
    cloud_mask_url: str | None = None
    model_card: ModelCard | None = None
    observed_url: str | None = None  # the observed map (``observations``), with its cell counts beside it
    tallies: Tallies | None = None  # its clear, clouded and no-data pixels


@dataclass(frozen=True)
class Filters:
    area: BaseGeometry | None = None
    start: datetime | None = None
    end: datetime | None = None
    product_ids: tuple[str, ...] = ()
    tile_ids: tuple[str, ...] = ()
    model_names: tuple[str, ...] = ()
    category_codes: tuple[int, ...] = ()
    category_names: tuple[str, ...] = ()  # lower-case class names
    min_category_fraction: float = 0.0
    max_cloud_cover: float | None = None
    words: str = ""
    item_ids: tuple[str, ...] = ()  # STAC item ids (items.item_id)
    expression: Mapping[str, Any] | None = None  # a CQL2 JSON filter (stac_filter)
    limit: int = 10
    page_token: str = ""

    @property
    def page_key(self) -> PageKey | None:
        """Where the page starts (``CatalogError`` for a token this server did not issue); None: the newest."""
        return PageKey.parse(self.page_token) if self.page_token else None

    @property
    def newer(self) -> bool:
        """Whether the page asked for is the one before its key."""
        key = self.page_key
        return key is not None and key.newer


@dataclass(frozen=True)
class ModelCollection:
    """What the catalog holds of one model: its maps' extent, versions, legend and model card."""

    name: str
    items: int
    bbox: tuple[float, float, float, float]
    start: datetime
    end: datetime
    versions: tuple[str, ...]
    legend: tuple[ClassShare, ...]  # the newest map's legend (pixel counts of that map)
    model_card: ModelCard | None  # the newest map's


@dataclass(frozen=True)
class PageKey:
    """Where a page starts: after (older than) a segmentation, or, ``newer``, just before it (a previous
    page, read oldest first from the key and handed back newest first)."""

    start_time: datetime
    segmentation_id: int
    newer: bool = False

    def token(self) -> str:
        values: dict[str, Any] = {"t": self.start_time.isoformat(), "id": self.segmentation_id}
        if self.newer:
            values["d"] = "newer"
        return base64.urlsafe_b64encode(json.dumps(values).encode()).decode().rstrip("=")

    def before(self) -> PageKey:
        """The key of the page before the one that starts at this answer (which is its first)."""
        return PageKey(self.start_time, self.segmentation_id, newer=True)

    MAX_TOKEN = 256

    @classmethod
    def parse(cls, token: str) -> PageKey:
        """A token this server issued; anything else (however nested or large) is a ``CatalogError``."""
        refused = CatalogError("page_token is not one this server issued")
        if len(token) > cls.MAX_TOKEN:
            raise refused
        try:
            padded = token + "=" * (-len(token) % 4)
            values = json.loads(base64.urlsafe_b64decode(padded.encode()))
            moment, identifier, direction = datetime.fromisoformat(values["t"]), values["id"], values.get("d")
        except (ValueError, KeyError, TypeError, IndexError, AttributeError, RecursionError) as error:
            raise refused from error
        if moment.tzinfo is None or type(identifier) is not int or not 0 < identifier < 2**63 or direction not in (
                None, "newer"):
            raise refused
        return cls(moment, identifier, direction == "newer")


@dataclass
class Found:
    """One query answer: the segmentation with its product and classes, and the key to continue after it."""

    segmentation: Segmentation
    page_key: PageKey = field(init=False)

    def __post_init__(self) -> None:
        self.page_key = PageKey(self.segmentation.product.start_time, self.segmentation.id)


def _tally_columns(tallies: Tallies | None) -> dict[str, int | None]:
    return {"clear_pixels": tallies.clear if tallies else None, "cloud_pixels": tallies.cloud if tallies else None,
            "nodata_pixels": tallies.nodata if tallies else None}


class Catalog:
    def __init__(self, url: str, pool_size: int = 10, statement_timeout_ms: int = 0, lock_timeout_ms: int = 0):
        """``statement_timeout_ms`` / ``lock_timeout_ms``: PostgreSQL cancels any statement of this catalog that
        runs, or waits for a lock, longer (0: no limit); the cancel surfaces as ``OverBudget``."""
        options = f"-c statement_timeout={int(statement_timeout_ms)} -c lock_timeout={int(lock_timeout_ms)}"
        self.engine = sa.create_engine(url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True,
                                       connect_args={"options": options})
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)

    def dispose(self) -> None:
        self.engine.dispose()

    # -- writing ------------------------------------------------------------------------------------

    def find_segmentation(self, product_id: str, model_name: str, model_version: str) -> Segmentation | None:
        with self.sessions() as session:
            return session.scalars(
                sa.select(Segmentation).join(Product)
                .where(Product.product_id == product_id, Segmentation.model_name == model_name,
                       Segmentation.model_version == model_version)
            ).first()

    def committed_url(self, product_id: str, model_name: str, model_version: str) -> str | None:
        """The class map URL of the stored segmentation of this product and model version (None: none stored).
        Asked after a commit whose answer was lost; raises when the database still cannot be reached."""
        found = self.find_segmentation(product_id, model_name, model_version)
        return found.raster_url if found is not None else None

    def remove_segmentation(self, segmentation_id: int) -> None:
        with self.sessions.begin() as session:
            session.execute(sa.delete(Segmentation).where(Segmentation.id == segmentation_id))

    def product_quicklook(self, product_id: str) -> str | None:
        with self.sessions() as session:
            return session.scalar(sa.select(Product.quicklook_url).where(Product.product_id == product_id))

    def add(self, product: ProductRecord, segmentation: SegmentationRecord) -> tuple[int, bool]:
        """Store the segmentation (and its product, once) in one transaction.

        Returns (segmentation id, created). Adding the same product and model version again changes
        nothing and returns the existing id with created False; concurrent adds of the same product and
        model wait for each other (a transaction-scoped advisory lock), so exactly one creates it.
        """
        key = f"{product.product_id}\x1f{segmentation.model_name}\x1f{segmentation.model_version}"
        with self.sessions.begin() as session:
            session.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext(:key))"), {"key": key})
            product_pk, start_time = self._upsert_product(session, product)
            existing = session.scalar(sa.select(Segmentation.id).where(
                Segmentation.product_pk == product_pk, Segmentation.model_name == segmentation.model_name,
                Segmentation.model_version == segmentation.model_version))
            if existing is not None:
                return existing, False
            present = (c.land_cover.name for c in segmentation.classes if c.pixel_count > 0)  # "forest" finds forests
            document = " ".join([product.product_id, product.tile_id, product.platform, product.processing_level,
                                 segmentation.model_name, *present])
            row = Segmentation(
                product_pk=product_pk, model_name=segmentation.model_name,
                model_version=segmentation.model_version, raster_url=segmentation.raster_url,
                confidence_url=segmentation.confidence_url, cloud_mask_url=segmentation.cloud_mask_url,
                crs=segmentation.crs, geotransform=[float(v) for v in segmentation.geotransform],
                width=segmentation.width,
                height=segmentation.height, search_document=sa.func.to_tsvector(SEARCH_CONFIG, document),
                classes=[ClassStatistic.from_share(c, start_time) for c in segmentation.classes],
                model_card=segmentation.model_card.to_dict() if segmentation.model_card else None,
                observed_url=segmentation.observed_url, **_tally_columns(segmentation.tallies))
            session.add(row)
            session.flush()
            return row.id, True

    @staticmethod
    def _upsert_product(session: Session, product: ProductRecord) -> tuple[int, datetime]:
        """The stored product's key and acquisition start (the first store of a product keeps its times)."""
        footprint = product.footprint
        if isinstance(footprint, Polygon):
            footprint = MultiPolygon([footprint])
        values = {"product_id": product.product_id, "tile_id": product.tile_id, "platform": product.platform,
                  "processing_level": product.processing_level, "start_time": product.start_time,
                  "end_time": product.end_time, "footprint": from_shape(footprint, srid=4326),
                  "cloud_cover": product.cloud_cover, "quicklook_url": product.quicklook_url}
        session.execute(insert(Product).values(**values).on_conflict_do_nothing(index_elements=["product_id"]))
        pk, start_time = session.execute(sa.select(Product.id, Product.start_time)
                                         .where(Product.product_id == product.product_id)).one()
        return pk, start_time

    # -- reading ------------------------------------------------------------------------------------

    def known_category(self, token: str) -> bool:
        """Whether any stored segmentation's legend has a class with this code or (case-insensitive) name."""
        with self.sessions() as session:
            code = class_code(token)
            condition = (ClassStatistic.code == code) if code is not None else (
                sa.func.lower(ClassStatistic.name) == token.strip().lower())
            return session.scalar(sa.select(sa.exists().where(condition)))

    def collections(self, name: str | None = None) -> list[ModelCollection]:
        """One summary per model that has maps in the catalog (only ``name``'s when given)."""
        footprint = Product.footprint
        query = (sa.select(Segmentation.model_name, sa.func.count(), sa.func.min(Product.start_time),
                           sa.func.max(Product.end_time), sa.func.array_agg(sa.distinct(Segmentation.model_version)),
                           *(f(sa.func.ST_Extent(footprint)) for f in (sa.func.ST_XMin, sa.func.ST_YMin,
                                                                      sa.func.ST_XMax, sa.func.ST_YMax)))
                 .join(Product).group_by(Segmentation.model_name).order_by(Segmentation.model_name))
        if name is not None:
            query = query.where(Segmentation.model_name == name)
        summaries = []
        with self.sessions() as session:
            for model, count, start, end, versions, *bbox in session.execute(query):
                newest = self._newest(session, model)
                summaries.append(ModelCollection(
                    model, count, tuple(bbox), start, end, tuple(sorted(versions)),
                    tuple(c.to_share() for c in newest.classes), newest.card))
        return summaries

    def legend(self, model_name: str) -> tuple[ClassShare, ...]:
        """The legend of the model's newest map (empty: no map of that model), without summarizing its maps."""
        with self.sessions() as session:
            newest = self._newest(session, model_name)
            return tuple(c.to_share() for c in newest.classes) if newest is not None else ()

    @staticmethod
    def _newest(session: Session, model_name: str) -> Segmentation | None:
        return session.scalars(
            sa.select(Segmentation).where(Segmentation.model_name == model_name)
            .options(selectinload(Segmentation.classes)).order_by(Segmentation.id.desc()).limit(1)).first()

    def has_model(self, model_name: str) -> bool:
        """Whether any map of this model is stored."""
        with self.sessions() as session:
            return session.scalar(sa.select(sa.exists().where(Segmentation.model_name == model_name)))

    def class_names(self, model_name: str | None = None) -> list[str]:
        """Every class name in the legends of the model's maps (of all maps without a model)."""
        query = sa.select(ClassStatistic.name).distinct().join(Segmentation).order_by(ClassStatistic.name)
        if model_name is not None:
            query = query.where(Segmentation.model_name == model_name)
        with self.sessions() as session:
            return list(session.scalars(query))

    def search(self, filters: Filters) -> list[Found]:
        """A page of segmentations, newest first: the newest ones, those older than a page token's key, or,
        for a token to the page before (``PageKey.newer``), the ``limit`` ones just newer than its key. A
        class-share condition that every result must meet gathers only the newest few times a page of the
        maps it holds; should they not fill the page (other conditions refused most), the page is searched
        again with all of them."""
        with self.sessions() as session:
            return self._page(session, filters)

    def search_counted(self, filters: Filters, cap: int) -> tuple[list[Found], int | None]:
        """``search(filters)`` and how many segmentations match ``filters`` on all pages, counted up to ``cap``
        (None beyond it), in one session (one connection, one transaction)."""
        with self.sessions() as session:
            return self._page(session, filters), self._count(session, filters, cap)

    def _page(self, session: Session, filters: Filters) -> list[Found]:
        newest = self._newest_first(filters)
        found = self._found(session, filters, newest)
        if newest is not None and newest.applied and len(found) < filters.limit:
            found = self._found(session, filters, None)
        return found[::-1] if filters.newer else found

    def _found(self, session: Session, filters: Filters, newest: NewestFirst | None) -> list[Found]:
        # the product from the search's own join; the legend by one more query for the whole page
        query = self._search_query(filters, newest).options(contains_eager(Segmentation.product),
                                                            selectinload(Segmentation.classes))
        return [Found(row) for row in session.scalars(query)]

    @staticmethod
    def _newest_first(filters: Filters) -> NewestFirst | None:
        if filters.expression is None or filters.newer:
            return None
        token = filters.page_key
        return NewestFirst(SHARE_PAGES * filters.limit,
                           (token.start_time, token.segmentation_id) if token else None, filters.end)

    def _count(self, session: Session, filters: Filters, cap: int) -> int | None:
        """How many segmentations match ``filters`` (all pages), counted up to ``cap``; None beyond it (a count
        of a whole continent is work no page needs)."""
        conditions = self._conditions(dataclasses.replace(filters, page_token=""))
        matching = sa.select(Segmentation.id)
        if any(Product.__table__ in find_tables(c, check_columns=True) for c in conditions):
            matching = matching.join(Product)  # else every match would be looked up twice for nothing
        for condition in conditions:
            matching = matching.where(condition)
        counted = session.scalar(sa.select(sa.func.count()).select_from(matching.limit(cap + 1).subquery()))
        return counted if counted <= cap else None

    def plan(self, filters: Filters) -> dict:
        """PostgreSQL's plan for ``search(filters)``'s first query (EXPLAIN, not run): which indexes it reads."""
        sql = self._search_query(filters, self._newest_first(filters)).compile(
            self.engine, compile_kwargs={"literal_binds": True})
        with self.engine.connect() as connection:
            return connection.exec_driver_sql(f"EXPLAIN (FORMAT JSON) {sql}").scalar_one()[0]["Plan"]

    def _search_query(self, filters: Filters, newest: NewestFirst | None = None) -> sa.Select:
        query = sa.select(Segmentation).join(Product)
        for condition in self._conditions(filters, newest):
            query = query.where(condition)
        if filters.newer:  # the page before a key: the answers just newer than it, oldest first
            return query.order_by(Product.start_time, Segmentation.id).limit(filters.limit)
        return query.order_by(Product.start_time.desc(), Segmentation.id.desc()).limit(filters.limit)

    @staticmethod
    def _conditions(filters: Filters, newest: NewestFirst | None = None) -> list[sa.ColumnElement[bool]]:
        conditions: list[sa.ColumnElement[bool]] = []
        if filters.area is not None:
            conditions.append(sa.func.ST_Intersects(Product.footprint, from_shape(filters.area, srid=4326)))
        if filters.start is not None:
            conditions.append(Product.end_time >= filters.start)
        if filters.end is not None:
            conditions.append(Product.start_time <= filters.end)
        if filters.product_ids:
            conditions.append(Product.product_id.in_(filters.product_ids))
        if filters.tile_ids:
            conditions.append(Product.tile_id.in_([t.upper().removeprefix("T") for t in filters.tile_ids]))
        if filters.model_names:
            conditions.append(Segmentation.model_name.in_(filters.model_names))
        if filters.max_cloud_cover is not None:
            conditions.append(Product.cloud_cover <= filters.max_cloud_cover)
        if filters.category_codes or filters.category_names:
            matches = []
            if filters.category_codes:
                matches.append(ClassStatistic.code.in_(filters.category_codes))
            if filters.category_names:
                matches.append(sa.func.lower(ClassStatistic.name).in_(filters.category_names))
            conditions.append(sa.exists().where(
                ClassStatistic.segmentation_id == Segmentation.id, sa.or_(*matches), ClassStatistic.pixel_count > 0,
                ClassStatistic.fraction >= filters.min_category_fraction))
        if filters.words.strip():
            conditions.append(Segmentation.search_document.op("@@")(
                sa.func.plainto_tsquery(_SEARCH_CONFIG_SQL, filters.words)))
        if filters.item_ids:  # as (product id, model, version) keys: the products' unique index finds them
            keys = [key for item in filters.item_ids for key in item_keys(item)]
            conditions.append(sa.tuple_(Product.product_id, Segmentation.model_name, Segmentation.model_version)
                              .in_(keys) if keys else sa.false())
        if filters.expression is not None:
            conditions.append(stac_filter.condition(filters.expression, newest=newest))
        key = filters.page_key
        if key is not None:
            order, bound = sa.tuple_(Product.start_time, Segmentation.id), sa.tuple_(key.start_time,
                                                                                     key.segmentation_id)
            # the same bound on the time alone, for the time index to be entered at the key
            conditions += ([order > bound, Product.start_time >= key.start_time] if key.newer
                           else [order < bound, Product.start_time <= key.start_time])
        return conditions
