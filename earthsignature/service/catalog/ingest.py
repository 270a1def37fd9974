"""CreateProduct: turn a request into COGs in the raster store and rows in the catalog, all or nothing.

Rasters are written first under names derived from product, model and version; then the catalog rows
go in one transaction. If anything fails, the rasters written for this request are deleted, so a failed
ingestion leaves no trace. Creating the same product and model version again is a no-op that answers
with the existing ids.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import geobuf
import numpy as np
from affine import Affine
from shapely.geometry import shape
from shapely.geometry.base import BaseGeometry

from earthsignature.core import raster_codec
from earthsignature.core.classes import ClassShare
from earthsignature.core.nomenclature import clc_level3
from earthsignature.core.sentinel2 import ProductName
from earthsignature.pb.snapearth.api.v1 import database_pb2, segmentation_pb2
from earthsignature.service.catalog.catalog import (
    Catalog,
    ProductRecord,
    SegmentationRecord,
)
from earthsignature.service.catalog.raster_store import RasterStore

NODATA = 255


class IngestError(ValueError):
    """A CreateProduct request that cannot be stored as sent; the message says what to fix."""


@dataclass(frozen=True)
class Stored:
    product_id: str
    segmentation_id: int
    created: bool


def _timestamp(message, present: bool) -> datetime | None:
    return message.ToDatetime(tzinfo=UTC) if present else None


def _footprint_and_properties(data) -> tuple[BaseGeometry, dict]:
    if not data.ByteSize():
        raise IngestError("data (the product footprint as geobuf) is required")
    geojson = geobuf.decode(data.SerializeToString())
    if geojson.get("type") == "FeatureCollection":
        if len(geojson["features"]) != 1:
            raise IngestError("data must hold one footprint feature")
        geojson = geojson["features"][0]
    properties = dict(geojson.get("properties") or {}) if geojson.get("type") == "Feature" else {}
    geometry = geojson.get("geometry", geojson)
    footprint = shape(geometry)
    if footprint.geom_type not in ("Polygon", "MultiPolygon") or not footprint.is_valid:
        raise IngestError(f"the footprint must be a valid (multi)polygon in EPSG:4326, got {footprint.geom_type}")
    if not (footprint.bounds[0] >= -180 and footprint.bounds[2] <= 180 and footprint.bounds[1] >= -90
            and footprint.bounds[3] <= 90):
        raise IngestError("the footprint must be in EPSG:4326 (longitude, latitude)")
    return footprint, properties


def product_record(request: database_pb2.CreateProductRequest, quicklook_url: str | None) -> ProductRecord:
    footprint, properties = _footprint_and_properties(request.data)
    product_id = request.product_id or str(properties.get("product_id", ""))
    if not product_id:
        raise IngestError("product_id is required (field or footprint property)")
    try:
        name = ProductName.parse(product_id)
    except ValueError:
        name = None
    start = _timestamp(request.start_date, request.HasField("start_date")) or (name.sensing_time if name else None)
    if start is None:
        raise IngestError("start_date is required (or a Sentinel-2 product id it can be read from)")
    end = _timestamp(request.end_date, request.HasField("end_date")) or start
    if end < start:
        raise IngestError("end_date is before start_date")
    return ProductRecord(
        product_id=product_id,
        tile_id=request.tile_id or (name.tile_id if name else str(properties.get("tile_id", ""))),
        platform=request.platform or (name.mission if name else str(properties.get("platform", ""))),
        processing_level=request.processing_level or (name.level if name else ""),
        start_time=start, end_time=end, footprint=footprint,
        cloud_cover=request.cloud_cover or properties.get("cloud_cover"), quicklook_url=quicklook_url)


def class_shares(request: database_pb2.CreateProductRequest, data: np.ndarray, nodata: int | None
                 ) -> list[ClassShare]:
    """Per-class pixel counts computed from the raster; names and colors from the request's legend, or
    CLC level 3 by class index when the request has none (the seed's rasters)."""
    legend = {c.value: raster_codec.class_share(c).land_cover for c in request.classes}
    if not legend:
        legend = {c.index: c for c in clc_level3()}
    values, counts = np.unique(data, return_counts=True)
    keep = values != nodata if nodata is not None else np.ones(len(values), dtype=bool)
    total = int(counts[keep].sum())
    unknown = [int(v) for v in values[keep] if int(v) not in legend]
    if unknown:
        raise IngestError(f"pixel values {unknown[:10]} have no class in the legend (classes)")
    found = {int(v): int(n) for v, n in zip(values[keep], counts[keep], strict=True)}
    # a request's legend is kept whole (absent classes with 0 pixels), so every class of the model is a
    # known category; without one (seed clients), only the classes present
    listed = sorted(legend) if request.classes else sorted(found)
    return [ClassShare(legend[v], found.get(v, 0), found.get(v, 0) / total if total else 0.0) for v in listed]


def _georeferenced(raster: segmentation_pb2.Raster, what: str) -> tuple[np.ndarray, Affine, str]:
    try:
        data = raster_codec.decode(raster)
    except raster_codec.RasterCodecError as error:
        raise IngestError(f"{what}: {error}") from error
    if len(raster.geotransform) != 6 or not raster.crs:
        raise IngestError(f"{what}: geotransform (6 numbers) and crs are required to store a map")
    return data, Affine.from_gdal(*raster.geotransform), raster.crs


def ingest(request: database_pb2.CreateProductRequest, catalog: Catalog, store: RasterStore) -> Stored:
    if not request.HasField("segmentation"):
        raise IngestError("segmentation is required")
    model_name = request.model_name or "unknown"
    model_version = request.model_version or "0"
    product_id = request.product_id or str(_footprint_and_properties(request.data)[1].get("product_id", ""))
    existing = catalog.find_segmentation(product_id, model_name, model_version) if product_id else None
    if existing is not None:
        return Stored(product_id, existing.id, False)
    data, transform, crs = _georeferenced(request.segmentation, "segmentation")
    nodata = request.segmentation.nodata if request.segmentation.HasField("nodata") else None
    classes = class_shares(request, data, nodata)
    written: list[str] = []
    folder = (product_id or "unnamed", model_name, model_version)
    try:
        colormap = {c.land_cover.index: (*c.land_cover.color, 255) for c in classes}
        raster_url = store.write_cog(store.url_for(*folder, "classes.tif"), data.astype(np.uint8), crs, transform,
                                     NODATA if nodata is None else nodata, colormap)
        written.append(raster_url)
        urls = {}
        for field_name in ("confidence", "cloud_mask"):
            if request.HasField(field_name):
                extra, extra_transform, extra_crs = _georeferenced(getattr(request, field_name), field_name)
                urls[field_name] = store.write_cog(store.url_for(*folder, f"{field_name}.tif"),
                                                   extra.astype(np.uint8), extra_crs, extra_transform, NODATA)
                written.append(urls[field_name])
        quicklook_url = None
        if request.quicklook_png:
            quicklook_url = store.url_for(product_id, "quicklook.png")
            store.write_bytes(quicklook_url, request.quicklook_png)
            written.append(quicklook_url)
        product = product_record(request, quicklook_url)
        segmentation = SegmentationRecord(model_name, model_version, raster_url, crs, transform.to_gdal(),
                                          data.shape[1], data.shape[0], classes, urls.get("confidence"),
                                          urls.get("cloud_mask"))
        segmentation_id, created = catalog.add(product, segmentation)
        return Stored(product.product_id, segmentation_id, created)
    except BaseException:
        _remove_unreferenced(written, store, catalog, product_id, model_name, model_version)
        raise


def _remove_unreferenced(written: list[str], store: RasterStore, catalog: Catalog, product_id: str,
                         model_name: str, model_version: str) -> None:
    """Delete what a failed request wrote, except files the catalog references (a concurrent request for
    the same product may have committed them; the quicklook belongs to the product, not one model)."""
    segmentation_kept = catalog.find_segmentation(product_id, model_name, model_version) is not None
    product_kept = catalog.product_exists(product_id)
    for url in written:
        if not (product_kept if url.endswith("quicklook.png") else segmentation_kept):
            store.delete(url)
