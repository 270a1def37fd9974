"""The properties a STAC item carries and a CQL2 filter may use, one record each: its SQL over the catalog's
tables, the kind of its values, its JSON-schema entry on ``/queryables`` and its value in an item. The CQL2
translator (``stac_filter``), the queryables schema and the STAC items (``api.stac_items``) all read these
records, so a property cannot be queryable without being in the items, or typed differently in each.

Beside the fixed ones, one family: ``fraction:<class slug>``, the share of a map's clear pixels (valid and
cloud-free, ``observations``) in that class (0 where the class is absent), one property per class name in the
catalog; ``earthsignature:{clear,cloud,nodata}_fraction`` say how much of the map each kind of pixel covers.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from earthsignature.service.catalog.items import item_id_sql
from earthsignature.service.catalog.tables import PRESENT, ClassStatistic, Product, Segmentation, class_slug_sql

FRACTION_PREFIX = "fraction:"


@dataclass
class NewestFirst:
    """A search's page, for a class-share condition that every result must meet (a top-level conjunct):
    only the ``count`` newest maps that meet it, after the page token (``before``: start time and
    segmentation id) and up to the search's end, need be gathered. The translation sets ``applied`` when
    it bounds a condition so; a page the bounded search does not fill is then searched again without."""

    count: int
    before: tuple[datetime, int] | None = None
    until: datetime | None = None
    applied: bool = False


def _platform(name: str) -> str:
    """ESA's satellite name as STAC's ``platform``: S2A -> sentinel-2a."""
    return f"sentinel-{name[1:].lower()}" if name.startswith("S") else name


@dataclass(frozen=True)
class Queryable:
    name: str
    title: str
    kind: str  # string, number, timestamp or geometry: what a CQL2 operand compared with it must be
    sql: Callable[[], sa.ColumnElement]
    #: the item property's value for a stored segmentation; None: an item member, not a property (id, geometry)
    value: Callable[[Segmentation], Any] | None = None
    schema: Mapping[str, Any] = field(default_factory=dict)  # beyond title and type
    #: ``where(compare, number, newest)``: the condition ``sql() <compare> number`` in a form an index answers,
    #: or None where it cannot (then the translator compares ``sql()``); ``newest``, where the condition is
    #: one every result must meet, lets it gather only a page's worth of the newest maps
    where: Callable[[Callable, float, NewestFirst | None], sa.ColumnElement[bool] | None] | None = None

    def schema_entry(self) -> dict[str, Any]:
        types = {"string": {"type": "string"}, "number": {"type": "number"},
                 "timestamp": {"type": "string", "format": "date-time"},
                 "geometry": {"$ref": "https://geojson.org/schema/Geometry.json"}}
        return {"title": self.title, **types[self.kind], **self.schema}


QUERYABLES: tuple[Queryable, ...] = (
    Queryable("id", "Item id (<product id>-<model>-v<model version>)", "string", item_id_sql),
    Queryable("collection", "Collection (model name)", "string", lambda: Segmentation.model_name),
    Queryable("datetime", "Acquisition start", "timestamp", lambda: Product.start_time,
              lambda s: s.product.start_time.isoformat()),
    Queryable("start_datetime", "Acquisition start", "timestamp", lambda: Product.start_time,
              lambda s: s.product.start_time.isoformat()),
    Queryable("end_datetime", "Acquisition end", "timestamp", lambda: Product.end_time,
              lambda s: s.product.end_time.isoformat()),
    Queryable("geometry", "Footprint", "geometry", lambda: Product.footprint),
    Queryable("eo:cloud_cover", "Cloud cover of the product (%)", "number", lambda: Product.cloud_cover,
              lambda s: s.product.cloud_cover, {"minimum": 0, "maximum": 100}),
    Queryable("grid:code", "MGRS tile (MGRS-34SGH)", "string", lambda: sa.func.concat("MGRS-", Product.tile_id),
              lambda s: f"MGRS-{s.product.tile_id}"),
    Queryable("earthsignature:product_id", "Sentinel-2 product name", "string", lambda: Product.product_id,
              lambda s: s.product.product_id),
    # STAC common metadata of the source product (instrument fields)
    Queryable("platform", "Satellite (sentinel-2a, sentinel-2b, sentinel-2c)", "string",
              lambda: sa.case((Product.platform.like("S%"),
                               sa.func.lower(sa.func.concat("sentinel-", sa.func.substr(Product.platform, 2)))),
                              else_=Product.platform),
              lambda s: _platform(s.product.platform)),
    Queryable("constellation", "Constellation (sentinel-2)", "string", lambda: sa.literal("sentinel-2"),
              lambda s: "sentinel-2"),
    Queryable("mission", "Mission (sentinel-2)", "string", lambda: sa.literal("sentinel-2"),
              lambda s: "sentinel-2"),
    Queryable("processing:level", "Processing level of the product (L1C, L2A)", "string",
              lambda: Product.processing_level, lambda s: s.product.processing_level),
    Queryable("earthsignature:model_version", "Model version", "string", lambda: Segmentation.model_version,
              lambda s: s.model_version),
)


def _pixel_share(part: str) -> Queryable:
    """``earthsignature:<part>_fraction``: the share of a map's pixels that are clear, clouded or without data
    (maps stored before clouds were told apart have none)."""

    def sql() -> sa.ColumnElement:
        total = Segmentation.clear_pixels + Segmentation.cloud_pixels + Segmentation.nodata_pixels
        return sa.cast(getattr(Segmentation, f"{part}_pixels"), sa.Float) / sa.func.nullif(total, 0)

    def value(segmentation: Segmentation) -> float | None:
        tallies = segmentation.tallies
        return round(tallies.fraction(part), 6) if tallies is not None else None

    titles = {"clear": "Share of the map's pixels under a clear sky (what class shares count)",
              "cloud": "Share of the map's pixels under clouds, cloud shadows or cirrus",
              "nodata": "Share of the map's pixels without data"}
    return Queryable(f"earthsignature:{part}_fraction", titles[part], "number", sql, value,
                     {"minimum": 0, "maximum": 1})


QUERYABLES += tuple(_pixel_share(part) for part in ("clear", "cloud", "nodata"))
BY_NAME = {queryable.name: queryable for queryable in QUERYABLES}


def class_slug(name: str) -> str:
    """A class name as a property name part: ``Burnt areas`` -> ``burnt_areas``."""
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def _newest(query: sa.Select, newest: NewestFirst) -> sa.ScalarSelect:
    """``query`` over class statistics, in the search's order (newest first), after its page token and up to
    its end, ``newest.count`` rows."""
    if newest.before is not None:
        query = query.where(sa.tuple_(ClassStatistic.start_time, ClassStatistic.segmentation_id)
                            < sa.tuple_(*newest.before))
        query = query.where(ClassStatistic.start_time <= newest.before[0])  # enters the index at the token
    if newest.until is not None:
        query = query.where(ClassStatistic.start_time <= newest.until)
    return (query.order_by(ClassStatistic.start_time.desc(), ClassStatistic.segmentation_id.desc())
            .limit(newest.count).scalar_subquery())


def fraction(class_name: str) -> Queryable:
    """The ``fraction:<slug>`` property of one class."""
    slug = class_slug(class_name)

    present = ClassStatistic.pixel_count > PRESENT  # the share index's predicate

    def sql() -> sa.ColumnElement:
        share = (sa.select(ClassStatistic.fraction)
                 .where(ClassStatistic.segmentation_id == Segmentation.id, present,
                        class_slug_sql(ClassStatistic.name) == slug)
                 .limit(1).scalar_subquery())
        return sa.func.coalesce(share, 0.0)

    def where(compare: Callable, number: float, newest: NewestFirst | None = None) -> sa.ColumnElement[bool] | None:
        """The maps that hold the class in a share that compares so, where a map without the class (share 0)
        cannot match (``> 0.2``, not ``< 0.2``): their ids gathered once from the share indexes, then found by
        id (as a semi-join, PostgreSQL would read every map's statistics, newest first, until enough match).
        With ``newest``: only the newest ``newest.count`` of them after the page token, read in time order
        from the share index by time; else all of them, from the share index."""
        if compare(0.0, number):
            return None
        matching = (class_slug_sql(ClassStatistic.name) == slug, present, compare(ClassStatistic.fraction, number))
        if newest is None:
            ids = sa.select(sa.func.array_agg(ClassStatistic.segmentation_id)).where(*matching).scalar_subquery()
        else:
            newest.applied = True
            ids = sa.func.array(_newest(sa.select(ClassStatistic.segmentation_id).where(*matching), newest))
        # an array, not a set: ANY over an array is a condition the segmentations' key answers
        return Segmentation.id == sa.any_(sa.cast(ids, sa.ARRAY(sa.Integer)))

    def value(segmentation: Segmentation) -> float:
        return next((round(c.fraction, 6) for c in segmentation.classes
                     if c.pixel_count > 0 and class_slug(c.name) == slug), 0.0)

    return Queryable(FRACTION_PREFIX + slug, f"Share of '{class_name}' in the map", "number", sql, value,
                     {"minimum": 0, "maximum": 1}, where)


def queryable(name: str) -> Queryable | None:
    """The record of a property name, a class fraction included (by its slug); None when there is none."""
    if name in BY_NAME:
        return BY_NAME[name]
    slug = name.removeprefix(FRACTION_PREFIX)
    if name.startswith(FRACTION_PREFIX) and re.fullmatch(r"[a-z0-9_]{1,128}", slug):
        return fraction(slug)
    return None


def item_properties(segmentation: Segmentation) -> dict[str, Any]:
    """Every queryable property of a stored segmentation as its STAC item carries it: the fixed ones with a
    value, and a fraction for each class present."""
    properties = {q.name: q.value(segmentation) for q in QUERYABLES if q.value is not None}
    properties = {name: value for name, value in properties.items() if value is not None}
    for statistic in segmentation.classes:
        if statistic.pixel_count > 0:
            properties[FRACTION_PREFIX + class_slug(statistic.name)] = round(statistic.fraction, 6)
    return properties
