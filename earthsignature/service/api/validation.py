"""Every field of the three requests checked at the edge, before any work: lengths, characters, ranges,
enums, finite numbers, timestamps, geometry, identifiers that may become store paths, raster headers and
their consistency. A failure is ``InvalidArgument`` naming the field; values are echoed only as bounded
excerpts. What needs the decoded pixels (legend coverage, footprint vs raster) is checked by ingestion.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time

from google.protobuf.timestamp_pb2 import Timestamp
from rasterio.crs import CRS
from rasterio.errors import CRSError
from shapely import wkt as shapely_wkt
from shapely.errors import ShapelyError
from shapely.geometry.base import BaseGeometry

from earthsignature.core import raster_codec
from earthsignature.core.manifest import DATA_KINDS
from earthsignature.core.sentinel2 import is_tile_id
from earthsignature.pb.snapearth.api.v1 import database_pb2, segmentation_pb2, statistics_pb2
from earthsignature.service.api.errors import InvalidArgument, excerpt
from earthsignature.service.catalog.areas import area_problem
from earthsignature.service.catalog.raster_store import SAFE_PART

E = segmentation_pb2.RasterEncoding
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_CONTROL_BUT_SPACE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")  # tabs and line breaks are spaces
MAX_CARD_TEXT, MAX_CARD_METRICS = 200, 32
MAX_LENGTHS = {"product_id": 128, "model_name": 64, "model_version": 32, "platform": 16,
               "processing_level": 8, "category": 128, "query": 2_000, "wkt": 100_000, "page_token": 256,
               "crs": 4_096, "class name": 128}
MAX_ITEMS = 100  # repeated filters
MAX_CLASSES = 1_000
MAX_SIDE = 20_000  # pixels: a 10 m Sentinel-2 product is 10980
MAX_QUICKLOOK_BYTES = 8 * 1024 * 1024
MAX_FOOTPRINT_BYTES = 1024 * 1024
MAX_GEOBUF_PRECISION = 12  # decimal digits of coordinates (geobuf computes 10 ** precision)
# protobuf Timestamp's own range: 0001-01-01 .. 9999-12-31
_MIN_SECONDS, _MAX_SECONDS = -62_135_596_800, 253_402_300_799
AREA_TYPES = ("Polygon", "MultiPolygon", "Point", "MultiPoint", "LineString", "MultiLineString", "GeometryCollection")


def text(field: str, value: str, max_length: int, spaces: bool = False) -> str:
    """``spaces``: tabs and line breaks are allowed (free text such as a query)."""
    if len(value) > max_length:
        raise InvalidArgument(field, f"must have at most {max_length} characters, got {len(value)}")
    if (_CONTROL_BUT_SPACE if spaces else _CONTROL).search(value):
        raise InvalidArgument(field, f"must not hold control characters: {excerpt(value)}")
    return value


def identifier(field: str, value: str, max_length: int = 128, required: bool = False) -> str:
    if not value:
        if required:
            raise InvalidArgument(field, "is required")
        return value
    text(field, value, max_length)
    if not SAFE_PART.fullmatch(value):  # identifiers name folders in the raster store
        raise InvalidArgument(field, "is not an identifier (letters, digits, '_', '.', '-'; a letter or "
                                     f"digit first): {excerpt(value)}")
    return value


def identifiers(field: str, values: Sequence[str], max_length: int) -> tuple[str, ...]:
    items(field, values)
    return tuple(identifier(f"{field}[{k}]", v, max_length, required=True) for k, v in enumerate(values))


def tile_ids(field: str, values: Sequence[str]) -> tuple[str, ...]:
    items(field, values)
    for k, value in enumerate(values):
        if not is_tile_id(value):
            raise InvalidArgument(f"{field}[{k}]", f"is not an MGRS tile such as 34SGH: {excerpt(value)}")
    return tuple(values)


def items(field: str, values: Sequence[object]) -> None:
    if len(values) > MAX_ITEMS:
        raise InvalidArgument(field, f"must hold at most {MAX_ITEMS} values, got {len(values)}")


def finite(field: str, value: float, low: float, high: float) -> float:
    if not (math.isfinite(value) and low <= value <= high):
        raise InvalidArgument(field, f"must be a number in [{low:g}, {high:g}], got {excerpt(value)}")
    return value


def timestamp(field: str, stamp: Timestamp) -> datetime:
    if not (_MIN_SECONDS <= stamp.seconds <= _MAX_SECONDS and 0 <= stamp.nanos < 1_000_000_000):
        raise InvalidArgument(field, "is not a valid timestamp (years 1..9999)")
    return stamp.ToDatetime(tzinfo=UTC)


def encoding(field: str, value: int) -> int:
    if value not in E.values():
        raise InvalidArgument(field, f"is an unknown raster encoding ({value}); known: {', '.join(E.keys())}")
    return value


def area(field: str, value: str) -> BaseGeometry:
    text(field, value, MAX_LENGTHS["wkt"])
    try:
        return checked_area(field, shapely_wkt.loads(value))  # a curve raises NotImplementedError on use
    except (ShapelyError, ValueError, TypeError, NotImplementedError):
        raise InvalidArgument(field, f"is not Well-Known Text of a {' or '.join(AREA_TYPES)}: "
                                     f"{excerpt(value)}") from None


def checked_area(field: str, geometry: BaseGeometry) -> BaseGeometry:
    """An area (parsed from WKT or GeoJSON) PostGIS can intersect: a polygon, EPSG:4326 bounds, valid, not huge."""
    if geometry.is_empty or geometry.geom_type not in AREA_TYPES:  # curves (CIRCULARSTRING...) included
        raise InvalidArgument(field, f"must be a non-empty {' or '.join(AREA_TYPES)}, got {geometry.geom_type}")
    problem = area_problem(geometry)
    if problem:
        raise InvalidArgument(field, problem)
    return geometry


def categories(field: str, tokens: Iterable[str]) -> tuple[str, ...]:
    """Class names or codes (a code has at most 9 digits: the wire's int32)."""
    tokens = list(tokens)
    items(field, tokens)
    for k, token in enumerate(tokens):
        text(f"{field}[{k}]", token, MAX_LENGTHS["category"])
        stripped = token.strip()
        if not stripped:
            raise InvalidArgument(f"{field}[{k}]", "is empty")
        if stripped.isascii() and stripped.isdigit() and len(stripped) > 9:
            raise InvalidArgument(f"{field}[{k}]", f"a class code has at most 9 digits, got {len(stripped)}")
    return tuple(tokens)


# --- the requests -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ListArea:
    """What checking a ListSegmentationRequest parsed: its area and period (None where not asked)."""

    area: BaseGeometry | None
    start: datetime | None
    end: datetime | None


def list_request(request: database_pb2.ListSegmentationRequest) -> ListArea:
    """Check every field; the parsed area and period, so nobody parses them again."""
    shape = area("wkt", request.wkt) if request.HasField("wkt") and request.wkt.strip() else None
    start, end = (timestamp(name, getattr(request, name)) if request.HasField(name) else None
                  for name in ("start_date", "end_date"))
    if start and end and start > end:
        raise InvalidArgument("start_date", f"{start:%Y-%m-%d %H:%M} is after end_date {end:%Y-%m-%d %H:%M}")
    identifiers("product_ids", request.product_ids, MAX_LENGTHS["product_id"])
    identifiers("model_names", request.model_names, MAX_LENGTHS["model_name"])
    tile_ids("tile_ids", request.tile_ids)
    categories("categories", request.categories)
    finite("min_category_fraction", request.min_category_fraction, 0, 1)
    if request.HasField("max_cloud_cover"):
        finite("max_cloud_cover", request.max_cloud_cover, 0, 100)
    _output(request)
    return ListArea(shape, start, end)


def statistics_request(request: statistics_pb2.AreaStatisticsRequest) -> ListArea:
    """Check every field of an area statistics request: an area and a model are required."""
    if not request.wkt.strip():
        raise InvalidArgument("wkt", "is required: the area to count (WKT, EPSG:4326)")
    shape = area("wkt", request.wkt)
    identifier("model_name", request.model_name, MAX_LENGTHS["model_name"], required=True)
    start, end = (timestamp(name, getattr(request, name)) if request.HasField(name) else None
                  for name in ("start_date", "end_date"))
    if start and end and start > end:
        raise InvalidArgument("start_date", f"{start:%Y-%m-%d %H:%M} is after end_date {end:%Y-%m-%d %H:%M}")
    categories("categories", request.categories)
    return ListArea(shape, start, end)


def change_request(request: statistics_pb2.AreaChangeRequest) -> tuple[BaseGeometry, tuple, tuple]:
    """Check every field of a change request: the area, the model and both periods' starts are required; a
    period without an end ends with its start's day (UTC). The area and the two (start, end) periods."""
    if not request.wkt.strip():
        raise InvalidArgument("wkt", "is required: the area to compare (WKT, EPSG:4326)")
    shape = area("wkt", request.wkt)
    identifier("model_name", request.model_name, MAX_LENGTHS["model_name"], required=True)
    periods = []
    for period in ("before", "after"):
        if not request.HasField(f"{period}_start"):
            raise InvalidArgument(f"{period}_start", "is required: the first day of the period")
        start = timestamp(f"{period}_start", getattr(request, f"{period}_start"))
        end = (timestamp(f"{period}_end", getattr(request, f"{period}_end")) if request.HasField(f"{period}_end")
               else datetime.combine(start.date(), time.max, tzinfo=UTC))
        if start > end:
            raise InvalidArgument(f"{period}_start", f"{start:%Y-%m-%d %H:%M} is after {period}_end "
                                                     f"{end:%Y-%m-%d %H:%M}")
        periods.append((start, end))
    categories("from_categories", request.from_categories)
    categories("to_categories", request.to_categories)
    return shape, periods[0], periods[1]


def search_request(request: database_pb2.SearchSegmentationRequest) -> None:
    text("query", request.query, MAX_LENGTHS["query"], spaces=True)
    _output(request)


def _output(request: database_pb2.ListSegmentationRequest | database_pb2.SearchSegmentationRequest) -> None:
    text("page_token", request.page_token, MAX_LENGTHS["page_token"])
    encoding("raster_encoding", request.raster_encoding)


def create_request(request: database_pb2.CreateProductRequest) -> None:
    for name in ("product_id", "model_name", "model_version"):
        identifier(name, getattr(request, name), MAX_LENGTHS[name])
    if request.tile_id and not is_tile_id(request.tile_id):
        raise InvalidArgument("tile_id", f"is not an MGRS tile such as 34SGH: {excerpt(request.tile_id)}")
    for name in ("platform", "processing_level"):
        identifier(name, getattr(request, name), MAX_LENGTHS[name])
    finite("cloud_cover", request.cloud_cover, 0, 100)
    for name in ("start_date", "end_date"):
        if request.HasField(name):
            timestamp(name, getattr(request, name))
    _footprint_header(request.data)
    if not request.HasField("segmentation"):
        raise InvalidArgument("segmentation", "is required")
    raster_header("segmentation", request.segmentation, georeferenced=True)
    for name in ("cloud_mask", "confidence"):
        if request.HasField(name):
            raster_header(name, getattr(request, name), georeferenced=True)
            _same_grid(name, getattr(request, name), request.segmentation)
    _legend(request.classes)
    if request.HasField("model_card"):
        _model_card(request.model_card)
    if request.quicklook_png and (len(request.quicklook_png) > MAX_QUICKLOOK_BYTES
                                  or not request.quicklook_png.startswith(b"\x89PNG\r\n\x1a\n")):
        raise InvalidArgument("quicklook_png", f"must be a PNG file of at most {MAX_QUICKLOOK_BYTES} bytes")


def _model_card(card) -> None:
    for name in ("training_data", "test_set"):
        text(f"model_card.{name}", getattr(card, name), MAX_CARD_TEXT)
    if card.data_kind and card.data_kind not in DATA_KINDS:
        raise InvalidArgument("model_card.data_kind", f"must be one of {', '.join(DATA_KINDS)}, "
                                                      f"not {excerpt(card.data_kind)}")
    if len(card.test_metrics) > MAX_CARD_METRICS:
        raise InvalidArgument("model_card.test_metrics", f"at most {MAX_CARD_METRICS} metrics")
    for key, value in card.test_metrics.items():
        identifier("model_card.test_metrics key", key, 32)
        finite(f"model_card.test_metrics[{key}]", value, -1e9, 1e9)


def _footprint_header(data) -> None:
    """Bounds geobuf's decoder relies on: it computes 10 ** precision and sizes by dimensions."""
    if data.ByteSize() > MAX_FOOTPRINT_BYTES:
        raise InvalidArgument("data", f"(the footprint) must be at most {MAX_FOOTPRINT_BYTES} bytes, got "
                                      f"{data.ByteSize()}")
    if data.precision > MAX_GEOBUF_PRECISION:
        raise InvalidArgument("data.precision", f"must be at most {MAX_GEOBUF_PRECISION}, got {data.precision}")
    if data.dimensions not in (0, 2, 3):
        raise InvalidArgument("data.dimensions", f"must be 2 or 3, got {data.dimensions}")


def raster_header(field: str, raster: segmentation_pb2.Raster, georeferenced: bool) -> None:
    """Size, encoding, dtype, nodata and georeferencing of a raster, before its pixels are decoded."""
    if not (0 < raster.height <= MAX_SIDE and 0 < raster.width <= MAX_SIDE):
        raise InvalidArgument(field, f"must be 1..{MAX_SIDE} pixels high and wide, got {raster.height} x "
                                     f"{raster.width}")
    encoding(f"{field}.encoding", raster.encoding)
    if raster.encoding not in (E.RASTER_ENCODING_UNSPECIFIED, E.RASTER_ENCODING_LEGACY_UINT32) and \
            raster.encoding != E.RASTER_ENCODING_GEOBUF_POLYGONS and raster.data:
        raise InvalidArgument(f"{field}.data", "must be empty: only the legacy encoding carries pixels in data")
    if raster.encoding == E.RASTER_ENCODING_GEOBUF_POLYGONS:
        raise InvalidArgument(f"{field}.encoding", "must carry pixels: polygons are an answer format")
    if raster.dtype and raster.dtype not in raster_codec.DTYPES:
        raise InvalidArgument(f"{field}.dtype", f"must be one of {', '.join(raster_codec.DTYPES)}, got "
                                                f"{excerpt(raster.dtype)}")
    if georeferenced:
        _geotransform(f"{field}.geotransform", raster.geotransform)
        text(f"{field}.crs", raster.crs, MAX_LENGTHS["crs"])
        try:
            crs = CRS.from_user_input(raster.crs)
        except (CRSError, ValueError, TypeError):
            raise InvalidArgument(f"{field}.crs", "is not a coordinate reference system (EPSG:32634 or WKT): "
                                                  f"{excerpt(raster.crs)}") from None
        if not (crs.is_projected or crs.is_geographic):
            raise InvalidArgument(f"{field}.crs", "must be a projected or geographic CRS")


def _geotransform(field: str, values: Sequence[float]) -> None:
    if len(values) != 6:
        raise InvalidArgument(field, f"must hold 6 numbers (x0, dx, rx, y0, ry, dy), got {len(values)}")
    if not all(math.isfinite(v) for v in values):
        raise InvalidArgument(field, "must hold finite numbers")
    _, dx, rx, _, ry, dy = values
    if dx * dy - rx * ry == 0:
        raise InvalidArgument(field, "describes a degenerate grid (zero pixel size)")


def _same_grid(field: str, raster: segmentation_pb2.Raster, reference: segmentation_pb2.Raster) -> None:
    if (raster.height, raster.width) != (reference.height, reference.width):
        raise InvalidArgument(field, f"is {raster.height} x {raster.width}, the segmentation "
                                     f"{reference.height} x {reference.width}")
    if list(raster.geotransform) != list(reference.geotransform) or raster.crs != reference.crs:
        raise InvalidArgument(field, "must share the segmentation's geotransform and crs")


def _legend(classes: Sequence) -> None:
    if len(classes) > MAX_CLASSES:
        raise InvalidArgument("classes", f"must hold at most {MAX_CLASSES} classes, got {len(classes)}")
    values = set()
    for k, cls in enumerate(classes):
        if cls.value in values:
            raise InvalidArgument(f"classes[{k}].value", f"({cls.value}) is listed twice")
        if cls.value >= 65_534:  # the observed map's two highest values are clouds and no data (observations)
            raise InvalidArgument(f"classes[{k}].value", f"must be below 65534, got {cls.value}")
        values.add(cls.value)
        text(f"classes[{k}].name", cls.name, MAX_LENGTHS["class name"])
        if not cls.name.strip():
            raise InvalidArgument(f"classes[{k}].name", "is empty")
        if cls.color > 0xFFFFFF:
            raise InvalidArgument(f"classes[{k}].color", "must be 0xRRGGBB")
