"""The seed's protocol and the service core's records, both ways: requests checked field by field
(``validation``) and decoded into ``records`` / ``ingest.Submission``; answers encoded as
``SegmentationResponse`` in the encoding asked. The gRPC servicer and the HTTP bindings (grpc-gateway's JSON
of the same messages) share it, so both carry exactly the same contract."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import UTC

import geobuf
import numpy as np
from affine import Affine
from geoalchemy2.shape import to_shape
from shapely.errors import ShapelyError
from shapely.geometry import mapping, shape
from shapely.geometry.base import BaseGeometry

from earthsignature.core import raster_codec
from earthsignature.core.cog import LAYER_DESCRIPTIONS, class_tags, cog_bytes
from earthsignature.pb.geobufproto import geobuf_pb2
from earthsignature.pb.snapearth.api.v1 import database_pb2, segmentation_pb2, statistics_pb2
from earthsignature.service.api import validation
from earthsignature.service.api.budget import Deadline
from earthsignature.service.api.core import DatabaseCore
from earthsignature.service.api.errors import InvalidArgument, ResourceExhausted
from earthsignature.service.api.records import ChangeQuery, MapAnswer, MapQuery, StatisticsQuery, TextQuery
from earthsignature.service.catalog import change
from earthsignature.service.catalog.area_statistics import DateStatistics
from earthsignature.service.catalog.ingest import Stored, Submission
from earthsignature.service.catalog.raster_store import RasterWindow

E = segmentation_pb2.RasterEncoding


class Undecodable:
    """What the server's deserializer hands over for bytes that are not the expected message."""

    def __init__(self, message_name: str):
        self.message_name = message_name


def decoded(request) -> None:
    if isinstance(request, Undecodable):
        raise InvalidArgument(None, f"the bytes received are not a {request.message_name} message")


# -- requests -------------------------------------------------------------------------------------------------


def _results(request) -> int | None:
    return request.n_results if request.HasField("n_results") else None


def list_query(request: database_pb2.ListSegmentationRequest) -> MapQuery:
    decoded(request)
    checked = validation.list_request(request)
    return MapQuery(
        area=checked.area, start=checked.start, end=checked.end, product_ids=tuple(request.product_ids),
        tile_ids=tuple(request.tile_ids), model_names=tuple(request.model_names),
        categories=tuple(request.categories), min_category_fraction=request.min_category_fraction,
        max_cloud_cover=request.max_cloud_cover if request.HasField("max_cloud_cover") else None,
        results=_results(request), page_token=request.page_token, max_pixels=request.max_pixels)


def statistics_query(request: statistics_pb2.AreaStatisticsRequest) -> StatisticsQuery:
    decoded(request)
    checked = validation.statistics_request(request)
    return StatisticsQuery(checked.area, request.model_name, checked.start, checked.end, tuple(request.categories))


def change_query(request: statistics_pb2.AreaChangeRequest) -> ChangeQuery:
    decoded(request)
    area, before, after = validation.change_request(request)
    return ChangeQuery(area, request.model_name, before, after, tuple(request.from_categories),
                       tuple(request.to_categories))


def text_query(request: database_pb2.SearchSegmentationRequest) -> TextQuery:
    decoded(request)
    validation.search_request(request)
    return TextQuery(request.query, _results(request), request.page_token, request.max_pixels)


def submission(request: database_pb2.CreateProductRequest) -> Submission:
    """A CreateProduct request checked and decoded: footprint (geobuf), rasters, legend, model card."""
    decoded(request)
    validation.create_request(request)
    footprint, properties = _footprint(request.data)
    layers = {name: _raster(getattr(request, name), name) for name in ("confidence", "cloud_mask")
              if request.HasField(name)}
    legend = {c.value: raster_codec.class_share(c).land_cover for c in request.classes} or None
    timestamps = {name: getattr(request, name).ToDatetime(tzinfo=UTC) if request.HasField(name) else None
                  for name in ("start_date", "end_date")}
    return Submission(
        product_id=request.product_id or str(properties.get("product_id", "")),
        model_name=request.model_name, model_version=request.model_version, footprint=footprint,
        classes=_raster(request.segmentation, "segmentation"), legend=legend,
        tile_id=request.tile_id or str(properties.get("tile_id", "")),
        platform=request.platform or str(properties.get("platform", "")),
        processing_level=request.processing_level, start=timestamps["start_date"], end=timestamps["end_date"],
        cloud_cover=request.cloud_cover or _number(properties.get("cloud_cover")), layers=layers,
        model_card=raster_codec.model_card(request.model_card) if request.HasField("model_card") else None,
        quicklook_png=request.quicklook_png)


def _number(value) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _footprint(data) -> tuple[BaseGeometry, dict]:
    """The footprint geometry and the feature's properties; geobuf's decoder trusts its input, so its header
    was bounded by ``validation`` beforehand."""
    if not data.ByteSize():
        raise InvalidArgument("data", "(the product footprint as geobuf) is required")
    try:
        geojson = geobuf.decode(data.SerializeToString())
    except Exception as error:
        raise InvalidArgument("data", "is not a decodable geobuf footprint") from error
    if not isinstance(geojson, dict):
        raise InvalidArgument("data", "must hold a GeoJSON Feature, FeatureCollection or Geometry")
    if geojson.get("type") == "FeatureCollection":
        if len(geojson.get("features") or ()) != 1:
            raise InvalidArgument("data", "must hold one footprint feature")
        geojson = geojson["features"][0]
    try:
        properties = dict(geojson.get("properties") or {}) if geojson.get("type") == "Feature" else {}
        footprint = shape(geojson.get("geometry", geojson))
        footprint.is_valid  # noqa: B018 (GEOS checks coordinates here)
    except (ShapelyError, ValueError, TypeError, KeyError, IndexError, AttributeError) as error:
        raise InvalidArgument("data", "does not hold a GeoJSON footprint geometry") from error
    return footprint, properties


def _raster(raster: segmentation_pb2.Raster, what: str) -> RasterWindow:
    try:
        data = raster_codec.decode(raster)
    except raster_codec.RasterCodecError as error:
        raise InvalidArgument(what, str(error)) from error
    if len(raster.geotransform) != 6 or not raster.crs:
        raise InvalidArgument(what, "geotransform (6 numbers) and crs are required to store a map")
    return RasterWindow(data, Affine.from_gdal(*raster.geotransform), raster.crs,
                        raster.nodata if raster.HasField("nodata") else None)


# -- answers -------------------------------------------------------------------------------------------------


def created(stored: Stored) -> database_pb2.CreateProductResponse:
    return database_pb2.CreateProductResponse(product_id=stored.product_id, segmentation_id=str(stored.segmentation_id),
                                              created=stored.created)


def responses(answers: Iterable[MapAnswer], encoding: int, core: DatabaseCore,
              deadline: Deadline) -> Iterator[database_pb2.SegmentationResponse]:
    """Each answer as its message (``encoding`` 0: the server's default). Encoding is work, done in one of the
    core's work slots like the reading; the message is handed on outside it, since sending may wait on a slow
    reader."""
    limits = core.limits
    for answer in answers:
        yield core.work_slots.run(deadline, "to encode an answer", response, answer,
                                  encoding or limits.default_encoding, limits.max_response_bytes)


def response(answer: MapAnswer, encoding: int, max_bytes: int) -> database_pb2.SegmentationResponse:
    """One answer as the seed's message, its maps in ``encoding``; over ``max_bytes``: RESOURCE_EXHAUSTED."""
    found = answer.found
    segmentation, product = found.segmentation, found.segmentation.product
    footprint = to_shape(product.footprint)
    message = database_pb2.SegmentationResponse(
        wkt=footprint.wkt, product_id=product.product_id, quicklook=answer.links.quicklook_url,
        model_name=segmentation.model_name, model_version=segmentation.model_version, tile_id=product.tile_id,
        cloud_cover=product.cloud_cover or 0.0, page_token=found.page_key.token(),
        footprint=geobuf_pb2.Data.FromString(geobuf.encode(mapping(footprint))),
        item_url=answer.links.item_url, map_url=answer.links.map_url)
    message.start_date.FromDatetime(product.start_time)
    message.end_date.FromDatetime(product.end_time)
    if segmentation.card:
        message.model_card.CopyFrom(raster_codec.model_card_message(segmentation.card))
    shares = [row.to_share() for row in segmentation.classes]
    message.classes.extend(raster_codec.class_statistic(share) for share in shares)
    window = answer.classes
    if encoding == E.RASTER_ENCODING_GEOBUF_POLYGONS:
        classes = {share.land_cover.index: share.land_cover for share in shares}
        message.segmentation_polygons.CopyFrom(raster_codec.class_polygons(
            window.data, window.transform, window.crs, classes, window.nodata))
        message.segmentation.CopyFrom(segmentation_pb2.Raster(height=window.data.shape[0], width=window.data.shape[1],
                                                              geotransform=window.geotransform, crs=window.crs))
    else:
        message.segmentation.CopyFrom(_encoded(window, encoding, "classes", [share.land_cover for share in shares]))
    layer_encoding = raster_codec.DEFAULT_ENCODING if encoding == E.RASTER_ENCODING_GEOBUF_POLYGONS else encoding
    for field_name, layer in (("cloud_mask", answer.cloud_mask), ("confidence", answer.confidence)):
        if layer is not None:
            getattr(message, field_name).CopyFrom(_encoded(layer, layer_encoding, field_name))
    if message.ByteSize() > max_bytes:
        raise ResourceExhausted(f"the response for {product.product_id} would be {message.ByteSize()} bytes (limit "
                                f"{max_bytes}): ask a smaller area, a lower max_pixels or a compressed encoding")
    return message


def _encoded(window: RasterWindow, encoding: int, layer: str, legend=()) -> segmentation_pb2.Raster:
    """A window in ``encoding``; as a COG, with the layer's band description (and a class map's legend)."""
    return raster_codec.encode(window.data, encoding, window.geotransform, window.crs, window.nodata, legend,
                               LAYER_DESCRIPTIONS[layer])


def statistics_response(model_name: str, dates: Iterable[DateStatistics]) -> statistics_pb2.AreaStatisticsResponse:
    return statistics_pb2.AreaStatisticsResponse(model_name=model_name, dates=[
        statistics_pb2.DateStatistics(
            date=day.day.isoformat(), product_ids=list(day.products), area_hectares=day.area_ha,
            classes=[_class_area(row.land_cover, row.hectares) for row in day.classes],
            clear_hectares=day.clear_ha, cloud_hectares=day.cloud_ha, nodata_hectares=day.nodata_ha,
            uncovered_hectares=day.uncovered_ha)
        for day in dates])


def _class_area(land_cover, hectares: float) -> statistics_pb2.ClassArea:
    return statistics_pb2.ClassArea(value=land_cover.index, code=land_cover.code, name=land_cover.name,
                                    color=raster_codec.pack_rgb(land_cover.color), hectares=hectares)


def change_response(model_name: str, found: change.Change) -> statistics_pb2.AreaChangeResponse:
    """A comparison as its message; each change map a COG with its colours and transition names."""
    legend = change.map_legend(found.drawn)
    colormap = {c.index: (*c.color, 255) for c in legend}
    drawn = {(t.before.index, t.after.index): t.value for t in found.drawn}
    maps = []
    for tile_map in found.maps:
        payload = cog_bytes(tile_map.data, tile_map.crs, tile_map.transform, tile_map.nodata,
                            colormap if tile_map.data.dtype == np.uint8 else None, change.MAP_DESCRIPTION,
                            class_tags(legend))
        raster = segmentation_pb2.Raster(
            height=tile_map.data.shape[0], width=tile_map.data.shape[1], encoding=segmentation_pb2.RASTER_ENCODING_COG,
            encoded_data=payload, dtype=tile_map.data.dtype.name, geotransform=list(tile_map.transform.to_gdal()),
            crs=tile_map.crs, nodata=tile_map.nodata)
        maps.append(statistics_pb2.ChangeMap(tile_id=tile_map.tile_id, map=raster))
    return statistics_pb2.AreaChangeResponse(
        model_name=model_name, before_product_ids=list(found.before_products),
        after_product_ids=list(found.after_products), area_hectares=found.area_ha,
        compared_hectares=found.compared_ha, cloud_hectares=found.not_compared_ha["cloud"],
        nodata_hectares=found.not_compared_ha["nodata"], no_map_hectares=found.not_compared_ha["no_map"],
        uncovered_hectares=found.uncovered_ha, maps=maps,
        matrix=[statistics_pb2.ClassTransition(before=_class_area(t.before, 0.0), after=_class_area(t.after, 0.0),
                                               hectares=t.hectares, map_value=drawn.get((t.before.index,
                                                                                         t.after.index), 0))
                for t in found.matrix])
