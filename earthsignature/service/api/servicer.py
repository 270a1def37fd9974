"""The seed's ``DatabaseProductService`` over the catalog and the raster store.

Every call first identifies the caller from its client certificate (role ``internal`` or ``pilot``; a
revoked serial is UNAUTHENTICATED); bad input is answered with INVALID_ARGUMENT and a message that says
what to fix, never with UNKNOWN. Responses carry the segmentation clipped to the asked area (all of it
without an area), downsampled through the COG overviews when it exceeds the pixel budget.
"""

from __future__ import annotations

import logging
import urllib.parse
from collections.abc import Iterator

import geobuf
import grpc
from geoalchemy2.shape import to_shape
from rasterio.errors import RasterioError
from shapely.geometry import mapping
from shapely.geometry.base import BaseGeometry

from earthsignature.core import raster_codec
from earthsignature.core.classes import class_code
from earthsignature.core.manifest import ModelCard
from earthsignature.core.settings import ApiLimits
from earthsignature.pb.geobufproto import geobuf_pb2
from earthsignature.pb.snapearth.api.v1 import database_pb2, database_pb2_grpc, segmentation_pb2
from earthsignature.service.api import stac_items, validation
from earthsignature.service.api.auth import (
    ROLES,
    AuthError,
    Caller,
    RevocationList,
    RevocationUnavailable,
    caller_from_pem,
    format_serial,
)
from earthsignature.service.api.budget import Deadline
from earthsignature.service.api.errors import (
    DATABASE_DOWN,
    ApiError,
    InvalidArgument,
    PermissionDenied,
    ResourceExhausted,
    Unauthenticated,
    Unavailable,
    as_api_error,
    excerpt,
)
from earthsignature.service.catalog import query_language
from earthsignature.service.catalog.catalog import Catalog, CatalogError, Filters, Found
from earthsignature.service.catalog.ingest import IngestError, OutcomeUnknown, StorageFailure, ingest
from earthsignature.service.catalog.parser_pool import ParserPool
from earthsignature.service.catalog.raster_store import RasterStore, UnsafePath
from earthsignature.service.catalog.stac_filter import item_id

log = logging.getLogger(__name__)
E = segmentation_pb2.RasterEncoding


class Undecodable:
    """What the server's deserializer hands over for bytes that are not the expected message."""

    def __init__(self, message_name: str):
        self.message_name = message_name


#: Errors of a stored raster that cannot be read: that product is left out of the answer.
UNREADABLE_RASTER = (RasterioError, OSError, raster_codec.RasterCodecError)


#: The HTTP app's route to a product's quicklook.
QUICKLOOK_PATH = "/v1/products/{product_id}/quicklook.png"


def quicklook_route(product_id: str) -> str:
    return QUICKLOOK_PATH.format(product_id=urllib.parse.quote(product_id, safe=""))


class DatabaseService(database_pb2_grpc.DatabaseProductServiceServicer):
    def __init__(self, catalog: Catalog, store: RasterStore, limits: ApiLimits | None = None,
                 revoked: RevocationList | None = None, insecure: bool = False, public_url: str | None = None):
        self.catalog, self.store, self.limits = catalog, store, limits or ApiLimits()
        #: the HTTP app's address for links in responses; None: no HTTP app, no links
        self.public_url = public_url.rstrip("/") if public_url else None
        self.revoked = revoked or RevocationList(None)
        self.insecure = insecure
        #: CQL2 filters are parsed in these worker processes, each parse under a time and memory budget
        self.parsers = ParserPool(self.limits.parse_processes, self.limits.parse_timeout_s,
                                  self.limits.parse_memory_mb)

    def close(self) -> None:
        """Stop the parser processes (the server is stopping)."""
        self.parsers.close()

    def deadline(self, context) -> Deadline:
        """This request's budget: ``limits.request_deadline_s``, or the gRPC client's own shorter deadline."""
        remaining = context.time_remaining() if hasattr(context, "time_remaining") else None
        return Deadline.within(self.limits.request_deadline_s, remaining)

    # -- the three calls: authorize, validate, answer; errors become status codes here only ------------

    def CreateProduct(self, request, context):
        return _answer(context, lambda: self._create(request, context))

    def ListSegmentation(self, request, context):
        yield from _stream(context, lambda: self._list(request, context))

    def SearchSegmentation(self, request, context):
        yield from _stream(context, lambda: self._search(request, context))

    def map_links(self, segmentation) -> tuple[str, str]:
        """The segmentation's STAC item and class-map COG as the HTTP app serves them ("" without one)."""
        if not self.public_url:
            return "", ""
        item = item_id(segmentation.product.product_id, segmentation.model_version)
        return (self.public_url + stac_items.item_route(segmentation.model_name, item),
                self.public_url + stac_items.map_file_route(segmentation.model_name, item, "classes.tif"))

    def quicklook_link(self, product) -> str:
        """The quicklook as the HTTP app serves it (``/v1/products/<id>/quicklook.png``): a pilot can open it
        from anywhere; the store's own path means nothing outside the server."""
        if not product.quicklook_url or not self.public_url:
            return ""
        return f"{self.public_url}{quicklook_route(product.product_id)}"

    # -- authorization ------------------------------------------------------------------------------

    def caller(self, context: grpc.ServicerContext, required: str | None = None) -> Caller:
        if self.insecure:  # explicit local development mode: every caller is internal
            return Caller("insecure-local", "internal", 0)
        certificates = context.auth_context().get("x509_pem_cert")
        if not certificates:
            raise Unauthenticated("a client certificate signed by the project CA is required")
        try:
            caller = caller_from_pem(certificates[0])
        except AuthError as error:
            raise Unauthenticated(str(error)) from error
        try:
            revoked = caller.serial in self.revoked
        except RevocationUnavailable as error:
            raise Unavailable(str(error)) from error
        if revoked:
            raise Unauthenticated(f"certificate serial {format_serial(caller.serial)} is revoked")
        if caller.role not in ROLES:
            raise PermissionDenied(f"certificate of {excerpt(caller.common_name)} has no role")
        if required and caller.role != required:
            raise PermissionDenied(f"{excerpt(caller.common_name)} ({caller.role}) may not do this: the {required} "
                                   "role is required")
        return caller

    # -- CreateProduct ------------------------------------------------------------------------------

    def _create(self, request, context) -> database_pb2.CreateProductResponse:
        self.caller(context, "internal")
        _decoded(request)
        validation.create_request(request)
        try:
            stored = ingest(request, self.catalog, self.store)
        except (IngestError, UnsafePath) as error:
            raise InvalidArgument(None, str(error)) from error
        except StorageFailure as error:  # the cause decides the code; the message says what was kept
            log.error("CreateProduct %s: %s", request.product_id, error, exc_info=error.__cause__)
            lost = isinstance(error, OutcomeUnknown) or isinstance(error.__cause__, DATABASE_DOWN)
            code = Unavailable if lost else ApiError
            raise code(str(error)) from error
        log.info("product %s segmentation %s (%s)", stored.product_id, stored.segmentation_id,
                 "created" if stored.created else "already there")
        return database_pb2.CreateProductResponse(product_id=stored.product_id,
                                                  segmentation_id=str(stored.segmentation_id), created=stored.created)

    # -- queries ------------------------------------------------------------------------------------

    def _list(self, request, context) -> Iterator:
        deadline = self.deadline(context)
        self.caller(context)
        _decoded(request)
        checked = validation.list_request(request)
        yield from self._respond(self._list_filters(request, checked), request.raster_encoding, request.max_pixels,
                                 deadline)

    def _search(self, request, context) -> Iterator:
        deadline = self.deadline(context)
        self.caller(context)
        _decoded(request)
        validation.search_request(request)
        try:
            parsed = query_language.parse(request.query)
        except query_language.QuerySyntaxError as error:
            raise InvalidArgument(None, str(error)) from error
        codes, names = self._categories(validation.categories("query class", parsed.categories))
        filters = Filters(area=parsed.area, start=parsed.start, end=parsed.end,
                          product_ids=validation.identifiers("query product", parsed.product_ids,
                                                             validation.MAX_LENGTHS["product_id"]),
                          tile_ids=validation.tile_ids("query tile", parsed.tile_ids),
                          model_names=validation.identifiers("query model", parsed.model_names,
                                                             validation.MAX_LENGTHS["model_name"]),
                          category_codes=codes, category_names=names,
                          min_category_fraction=parsed.min_fraction, max_cloud_cover=parsed.max_cloud_cover,
                          words=" ".join(parsed.words),
                          limit=self._limit(request.n_results if request.HasField("n_results") else None),
                          page_token=request.page_token)
        yield from self._respond(filters, request.raster_encoding, request.max_pixels, deadline)

    def _limit(self, asked: int | None) -> int:
        if asked is None or asked == 0:
            return self.limits.default_results
        if asked < 0 or asked > self.limits.max_results:
            raise InvalidArgument("n_results", f"must be in 1..{self.limits.max_results}, got {asked}")
        return asked

    def _categories(self, tokens) -> tuple[tuple[int, ...], tuple[str, ...]]:
        codes, names = [], []
        for token in tokens:
            if not self.catalog.known_category(token):
                raise InvalidArgument(None, f"unknown category {excerpt(token)}: no stored segmentation "
                                                    "has a class with that name or code")
            code = class_code(token)
            if code is not None:
                codes.append(code)
            else:
                names.append(token.strip().lower())
        return tuple(codes), tuple(names)

    def _list_filters(self, request, checked: validation.ListArea) -> Filters:
        codes, names = self._categories(list(request.categories))
        return Filters(
            area=checked.area, start=checked.start, end=checked.end, product_ids=tuple(request.product_ids),
            tile_ids=tuple(request.tile_ids), model_names=tuple(request.model_names), category_codes=codes,
            category_names=names, min_category_fraction=request.min_category_fraction,
            max_cloud_cover=request.max_cloud_cover if request.HasField("max_cloud_cover") else None,
            limit=self._limit(request.n_results if request.HasField("n_results") else None),
            page_token=request.page_token)

    def _respond(self, filters: Filters, encoding: int, max_pixels: int, deadline: Deadline) -> Iterator:
        if max_pixels < 0 or max_pixels > self.limits.max_pixels:
            raise InvalidArgument("max_pixels", f"must be in 0..{self.limits.max_pixels}, got {max_pixels}")
        try:
            found = self.catalog.search(filters)
        except CatalogError as error:
            raise InvalidArgument(None, str(error)) from error
        for sent, item in enumerate(found):
            deadline.check(f"after {sent} of {len(found)} results: ask fewer results (n_results), a smaller area "
                           "or a lower max_pixels")
            product_id = item.segmentation.product.product_id
            try:
                response = self._response(item, filters.area, encoding or self.limits.default_encoding,
                                          max_pixels or self.limits.default_pixels)
            except UNREADABLE_RASTER as error:  # one damaged map must not fail the whole answer
                log.error("left %s (%s) out of an answer: its stored raster is unreadable: %s", product_id,
                          item.segmentation.model_name, error)
                continue
            if response.ByteSize() > self.limits.max_response_bytes:
                raise ResourceExhausted(f"the response for {product_id} would be {response.ByteSize()} bytes "
                                        f"(limit {self.limits.max_response_bytes}): ask a smaller area, a lower "
                                        "max_pixels or a compressed encoding")
            yield response

    def _response(self, item: Found, area: BaseGeometry | None, encoding: int, max_pixels: int):
        segmentation, product = item.segmentation, item.segmentation.product
        footprint = to_shape(product.footprint)
        response = database_pb2.SegmentationResponse(
            wkt=footprint.wkt, product_id=product.product_id, quicklook=self.quicklook_link(product),
            model_name=segmentation.model_name, model_version=segmentation.model_version,
            tile_id=product.tile_id, cloud_cover=product.cloud_cover or 0.0, page_token=item.page_key.token(),
            footprint=geobuf_pb2.Data.FromString(geobuf.encode(mapping(footprint))))
        response.item_url, response.map_url = self.map_links(segmentation)
        response.start_date.FromDatetime(product.start_time)
        response.end_date.FromDatetime(product.end_time)
        if segmentation.model_card:
            response.model_card.CopyFrom(raster_codec.model_card_message(ModelCard(**segmentation.model_card)))
        shares = [row.to_share() for row in segmentation.classes]
        response.classes.extend(raster_codec.class_statistic(share) for share in shares)
        window = self.store.read(segmentation.raster_url, area, max_pixels)
        if window is None:  # footprint intersects the area, the raster's valid part does not
            window = self.store.read(segmentation.raster_url, None, 1)
        classes = {share.land_cover.index: share.land_cover for share in shares}
        if encoding == E.RASTER_ENCODING_GEOBUF_POLYGONS:
            response.segmentation_polygons.CopyFrom(raster_codec.class_polygons(
                window.data, window.transform, window.crs, classes, window.nodata))
            response.segmentation.CopyFrom(segmentation_pb2.Raster(height=window.data.shape[0],
                                                                   width=window.data.shape[1],
                                                                   geotransform=window.geotransform, crs=window.crs))
        else:
            response.segmentation.CopyFrom(raster_codec.encode(window.data, encoding, window.geotransform,
                                                               window.crs, window.nodata))
        for field_name, url in (("cloud_mask", segmentation.cloud_mask_url),
                                ("confidence", segmentation.confidence_url)):
            if url:
                extra = self.store.read(url, area, max_pixels) or self.store.read(url, None, 1)
                extra_encoding = raster_codec.DEFAULT_ENCODING if encoding == E.RASTER_ENCODING_GEOBUF_POLYGONS \
                    else encoding
                getattr(response, field_name).CopyFrom(raster_codec.encode(
                    extra.data, extra_encoding, extra.geotransform, extra.crs, extra.nodata))
        return response


def _decoded(request) -> None:
    if isinstance(request, Undecodable):
        raise InvalidArgument(None, f"the bytes received are not a {request.message_name} message")


def _abort(context: grpc.ServicerContext, error: Exception) -> None:
    """The status code for ``error``, by cause; nothing of the server's internals in the message."""
    answer = as_api_error(error)
    context.abort(answer.code, answer.message)


def _answer(context: grpc.ServicerContext, call):
    try:
        return call()
    except Exception as error:
        _abort(context, error)


def _stream(context: grpc.ServicerContext, produce) -> Iterator:
    try:
        yield from produce()
    except Exception as error:
        _abort(context, error)
