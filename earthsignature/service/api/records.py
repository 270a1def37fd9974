"""The service core's typed requests and answers: what a pilot asks for and what the core answers, whatever
carried the question (gRPC, the HTTP bindings, the STAC API, a map link)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from shapely.geometry.base import BaseGeometry

from earthsignature.service.catalog.catalog import Found
from earthsignature.service.catalog.raster_store import RasterWindow


@dataclass(frozen=True)
class MapQuery:
    """Maps by area, period, ids, tiles, models, classes, cloud cover and words (ListSegmentation, and what a
    text query is translated to). ``results`` None: the configured default; ``max_pixels`` 0: the default."""

    area: BaseGeometry | None = None  # EPSG:4326
    start: datetime | None = None
    end: datetime | None = None
    product_ids: tuple[str, ...] = ()
    tile_ids: tuple[str, ...] = ()
    model_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()  # class names or codes
    min_category_fraction: float = 0.0
    max_cloud_cover: float | None = None
    words: str = ""
    results: int | None = None
    page_token: str = ""
    max_pixels: int = 0


@dataclass(frozen=True)
class TextQuery:
    """SearchSegmentation: the query language (``query_language``) and the same paging and size options."""

    text: str
    results: int | None = None
    page_token: str = ""
    max_pixels: int = 0


@dataclass(frozen=True)
class Links:
    """Where the HTTP app serves a segmentation: its STAC item, its class-map COG, its product's quicklook
    ("" when there is no HTTP app, or no quicklook)."""

    item_url: str = ""
    map_url: str = ""
    quicklook_url: str = ""


@dataclass(frozen=True)
class MapAnswer:
    """One segmentation found, with its maps read for the area asked (downsampled to the pixel budget)."""

    found: Found
    classes: RasterWindow
    cloud_mask: RasterWindow | None
    confidence: RasterWindow | None
    links: Links


@dataclass(frozen=True)
class StatisticsQuery:
    """How much of each class an area holds per date (``catalog.area_statistics``): the area, the model whose
    maps count, a period, and optionally the classes to report (names or codes)."""

    area: BaseGeometry  # EPSG:4326
    model_name: str
    start: datetime | None = None
    end: datetime | None = None
    categories: tuple[str, ...] = ()


@dataclass(frozen=True)
class ChangeQuery:
    """What changed inside an area between two periods (``catalog.change``): each period a (start, end), the
    transitions to draw in the change maps from and to classes (names or codes; empty: any)."""

    area: BaseGeometry  # EPSG:4326
    model_name: str
    before: tuple[datetime, datetime]
    after: tuple[datetime, datetime]
    from_categories: tuple[str, ...] = ()
    to_categories: tuple[str, ...] = ()


@dataclass(frozen=True)
class ItemSearch:
    """A STAC item search: the area (bbox or intersects, already a geometry), period, collections, item ids,
    a CQL2 filter (text, or JSON as parsed), a page size and the token of the page to continue after."""

    area: BaseGeometry | None = None
    start: datetime | None = None
    end: datetime | None = None
    collections: tuple[str, ...] = ()
    ids: tuple[str, ...] = ()
    filter: str | dict[str, Any] | None = None
    filter_lang: str | None = None
    limit: int | None = None
    token: str = ""


@dataclass(frozen=True)
class ItemPage:
    found: list[Found]
    next_token: str | None  # None: the last page
    prev_token: str | None = None  # None: the first page
    matched: int | None = None  # items matching the search, all pages (None: more than the count's cap)


@dataclass(frozen=True)
class MapExtent:
    """Where a stored map lies and how fine it is: what a web map needs to show its tiles (TileJSON)."""

    bounds: tuple[float, float, float, float]  # lon/lat west, south, east, north (west > east across 180°)
    resolution_m: float  # a pixel's side on the ground
