"""The seed's ``DatabaseProductService`` over the catalog and the raster store.

Every call first identifies the caller from its client certificate (role ``internal`` or ``pilot``; a
revoked serial is UNAUTHENTICATED); bad input is answered with INVALID_ARGUMENT and a message that says
what to fix, never with UNKNOWN. Responses carry the segmentation clipped to the asked area (all of it
without an area), downsampled through the COG overviews when it exceeds the pixel budget.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC

import geobuf
import grpc
from geoalchemy2.shape import to_shape
from shapely import wkt as shapely_wkt
from shapely.errors import ShapelyError
from shapely.geometry import mapping
from shapely.geometry.base import BaseGeometry

from earthsignature.core import raster_codec
from earthsignature.core.settings import ApiLimits
from earthsignature.pb.geobufproto import geobuf_pb2
from earthsignature.pb.snapearth.api.v1 import database_pb2, database_pb2_grpc, segmentation_pb2
from earthsignature.service.api.auth import ROLES, Caller, RevocationList, caller_from_pem
from earthsignature.service.catalog import query_language
from earthsignature.service.catalog.catalog import Catalog, CatalogError, Filters, Found
from earthsignature.service.catalog.ingest import IngestError, ingest
from earthsignature.service.catalog.raster_store import RasterStore

log = logging.getLogger(__name__)
E = segmentation_pb2.RasterEncoding


class DatabaseService(database_pb2_grpc.DatabaseProductServiceServicer):
    def __init__(self, catalog: Catalog, store: RasterStore, limits: ApiLimits | None = None,
                 revoked: RevocationList | None = None, insecure: bool = False):
        self.catalog, self.store, self.limits = catalog, store, limits or ApiLimits()
        self.revoked = revoked or RevocationList(None)
        self.insecure = insecure

    # -- authorization ------------------------------------------------------------------------------

    def _caller(self, context: grpc.ServicerContext, required: str | None = None) -> Caller:
        if self.insecure:  # explicit local development mode: every caller is internal
            return Caller("insecure-local", "internal", 0)
        certificates = context.auth_context().get("x509_pem_cert")
        if not certificates:
            context.abort(grpc.StatusCode.UNAUTHENTICATED, "a client certificate signed by the project CA is required")
        caller = caller_from_pem(certificates[0])
        if caller.serial in self.revoked:
            context.abort(grpc.StatusCode.UNAUTHENTICATED, f"certificate serial {caller.serial} is revoked")
        if caller.role not in ROLES:
            context.abort(grpc.StatusCode.PERMISSION_DENIED, f"certificate of {caller.common_name!r} has no role")
        if required and caller.role != required:
            context.abort(grpc.StatusCode.PERMISSION_DENIED,
                          f"{caller.common_name!r} ({caller.role}) may not do this: the {required} role is required")
        return caller

    # -- CreateProduct ------------------------------------------------------------------------------

    def CreateProduct(self, request, context):
        self._caller(context, "internal")
        try:
            stored = ingest(request, self.catalog, self.store)
        except IngestError as error:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(error))
        except Exception as error:  # storage failures: nothing was kept (see ingest), say so plainly
            log.exception("CreateProduct failed")
            context.abort(grpc.StatusCode.INTERNAL, f"could not store the product, nothing was kept: {error}")
        log.info("product %s segmentation %s (%s)", stored.product_id, stored.segmentation_id,
                 "created" if stored.created else "already there")
        return database_pb2.CreateProductResponse(product_id=stored.product_id,
                                                  segmentation_id=str(stored.segmentation_id), created=stored.created)

    # -- queries ------------------------------------------------------------------------------------

    def ListSegmentation(self, request, context):
        self._caller(context)
        filters = self._list_filters(request, context)
        yield from self._respond(filters, request.raster_encoding, request.max_pixels, context)

    def SearchSegmentation(self, request, context):
        self._caller(context)
        try:
            parsed = query_language.parse(request.query)
        except query_language.QuerySyntaxError as error:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(error))
        codes, names = self._categories(parsed.categories, context)
        filters = Filters(area=parsed.area, start=parsed.start, end=parsed.end,
                          product_ids=tuple(parsed.product_ids), tile_ids=tuple(parsed.tile_ids),
                          model_names=tuple(parsed.model_names), category_codes=codes, category_names=names,
                          min_category_fraction=parsed.min_fraction, max_cloud_cover=parsed.max_cloud_cover,
                          words=" ".join(parsed.words),
                          limit=self._limit(request.n_results if request.HasField("n_results") else None, context),
                          page_token=request.page_token)
        yield from self._respond(filters, request.raster_encoding, request.max_pixels, context)

    def _limit(self, asked: int | None, context: grpc.ServicerContext) -> int:
        if asked is None or asked == 0:
            return self.limits.default_results
        if asked < 0 or asked > self.limits.max_results:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                          f"n_results must be in 1..{self.limits.max_results}, got {asked}")
        return asked

    def _categories(self, tokens, context) -> tuple[tuple[int, ...], tuple[str, ...]]:
        codes, names = [], []
        for token in tokens:
            if not self.catalog.known_category(token):
                context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                              f"unknown category {token!r}: no stored segmentation has a class with that name or code")
            if token.strip().isdigit():
                codes.append(int(token))
            else:
                names.append(token.strip().lower())
        return tuple(codes), tuple(names)

    def _list_filters(self, request, context) -> Filters:
        area = None
        if request.HasField("wkt") and request.wkt.strip():
            area = self._area(request.wkt, context)
        start = request.start_date.ToDatetime(tzinfo=UTC) if request.HasField("start_date") else None
        end = request.end_date.ToDatetime(tzinfo=UTC) if request.HasField("end_date") else None
        if start and end and start > end:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"start_date {start:%Y-%m-%d %H:%M} is after "
                                                            f"end_date {end:%Y-%m-%d %H:%M}")
        if not 0 <= request.min_category_fraction <= 1:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "min_category_fraction must be in [0, 1]")
        codes, names = self._categories(list(request.categories), context)
        return Filters(
            area=area, start=start, end=end, product_ids=tuple(request.product_ids),
            tile_ids=tuple(request.tile_ids), model_names=tuple(request.model_names), category_codes=codes,
            category_names=names, min_category_fraction=request.min_category_fraction,
            max_cloud_cover=request.max_cloud_cover if request.HasField("max_cloud_cover") else None,
            limit=self._limit(request.n_results if request.HasField("n_results") else None, context),
            page_token=request.page_token)

    @staticmethod
    def _area(text: str, context) -> BaseGeometry:
        try:
            area = shapely_wkt.loads(text)
        except (ShapelyError, ValueError) as error:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"wkt is not Well-Known Text: {error}")
        if area.is_empty or area.geom_type not in ("Polygon", "MultiPolygon", "Point", "LineString"):
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"wkt must be a non-empty polygon, got {area.geom_type}")
        minx, miny, maxx, maxy = area.bounds
        if not (-180 <= minx <= maxx <= 180 and -90 <= miny <= maxy <= 90):
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "wkt must be in EPSG:4326 (longitude latitude)")
        if not area.is_valid:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "wkt is not a valid geometry (self-intersecting?)")
        return area

    def _respond(self, filters: Filters, encoding: int, max_pixels: int, context) -> Iterator:
        if max_pixels < 0 or max_pixels > self.limits.max_pixels:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"max_pixels must be in 0..{self.limits.max_pixels}")
        try:
            found = self.catalog.search(filters)
        except CatalogError as error:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(error))
        for item in found:
            response = self._response(item, filters.area, encoding or self.limits.default_encoding,
                                      max_pixels or self.limits.default_pixels)
            if response.ByteSize() > self.limits.max_response_bytes:
                context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED,
                              f"the response for {item.segmentation.product.product_id} would be "
                              f"{response.ByteSize()} bytes (limit {self.limits.max_response_bytes}): ask a smaller "
                              "area, a lower max_pixels or a compressed encoding")
            yield response

    def _response(self, item: Found, area: BaseGeometry | None, encoding: int, max_pixels: int):
        segmentation, product = item.segmentation, item.segmentation.product
        footprint = to_shape(product.footprint)
        response = database_pb2.SegmentationResponse(
            wkt=footprint.wkt, product_id=product.product_id, quicklook=product.quicklook_url or "",
            model_name=segmentation.model_name, model_version=segmentation.model_version,
            tile_id=product.tile_id, cloud_cover=product.cloud_cover or 0.0, page_token=item.page_key.token(),
            footprint=geobuf_pb2.Data.FromString(geobuf.encode(mapping(footprint))))
        response.start_date.FromDatetime(product.start_time)
        response.end_date.FromDatetime(product.end_time)
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
