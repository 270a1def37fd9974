"""Ingestion: a segmented product (``Submission``) into COGs in the raster store and rows in the catalog, all or
nothing.

Rasters are written first under names derived from product, model and version — the class map with its
legend files, confidence and cloud mask as sent, and the observed map with its cell counts (``observations``:
what pilots count, clouds and no data apart) — then the catalog rows go in one transaction. If anything
fails, the rasters written for this request are deleted, so a failed ingestion leaves no trace. Creating the
same product and model version again is a no-op that answers with the existing ids.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
from affine import Affine
from rasterio.errors import CRSError
from rasterio.warp import transform_bounds
from shapely.errors import ShapelyError
from shapely.geometry import box
from shapely.geometry.base import BaseGeometry
from sqlalchemy import exc as sa_exc

from earthsignature.core.classes import ClassShare, LandCoverClass
from earthsignature.core.cog import (
    CLASS_NODATA,
    CONFIDENCE_NODATA,
    LAYER_DESCRIPTIONS,
    LAYER_NODATA,
    class_tags,
    gdal_aux_xml,
    legend_sidecars,
    qgis_style,
)
from earthsignature.core.manifest import ModelCard
from earthsignature.core.nomenclature import clc_level3
from earthsignature.core.product import split_at_antimeridian
from earthsignature.core.sentinel2 import ProductName
from earthsignature.service.catalog.catalog import (
    Catalog,
    ProductRecord,
    SegmentationRecord,
)
from earthsignature.service.catalog.observations import (
    CELL,
    CellCounts,
    Observed,
    Tallies,
    cells_url,
    observe,
    tallies,
    value_counts,
)
from earthsignature.service.catalog.raster_store import SAFE_PART, RasterStore, RasterWindow, UnsafePath

log = logging.getLogger(__name__)


#: The observed map (``observations``): tiled in cells, full resolution only (statistics never read overviews;
#: pictures are drawn from the class map's and the cloud mask's own overviews).
OBSERVED_COG_OPTIONS = {"BLOCKSIZE": str(CELL), "OVERVIEWS": "NONE"}
OBSERVED_DESCRIPTION = ("observed: land-cover class under a clear sky (pixel value = class index); {cloud} = cloud, "
                        "cloud shadow or cirrus; no data elsewhere")


class IngestError(ValueError):
    """A submission that cannot be stored as sent; the message says what to fix."""


@dataclass(frozen=True)
class Stored:
    product_id: str
    segmentation_id: int
    created: bool


@dataclass(frozen=True)
class Submission:
    """A segmented product as the monitor sends it, decoded (the API's ``wire`` builds it from CreateProduct):
    what ``ingest`` checks and stores. Empty fields are filled from the Sentinel-2 product name."""

    product_id: str
    model_name: str
    model_version: str
    footprint: BaseGeometry  # EPSG:4326
    classes: RasterWindow  # the class map with its grid and no-data value
    #: pixel value -> class; None: CLC level 3 by class index (the seed's rasters carry no legend)
    legend: Mapping[int, LandCoverClass] | None = None
    tile_id: str = ""
    platform: str = ""
    processing_level: str = ""
    start: datetime | None = None
    end: datetime | None = None
    cloud_cover: float | None = None
    #: "confidence" and "cloud_mask", as sent (the same grid as the class map)
    layers: Mapping[str, RasterWindow] = field(default_factory=dict)
    model_card: ModelCard | None = None
    quicklook_png: bytes = b""


def _checked_footprint(footprint: BaseGeometry) -> BaseGeometry:
    try:
        valid = footprint.geom_type in ("Polygon", "MultiPolygon") and footprint.is_valid
    except (ShapelyError, ValueError) as error:
        raise IngestError("data does not hold a GeoJSON footprint geometry") from error
    if not valid:
        raise IngestError(f"the footprint must be a valid (multi)polygon in EPSG:4326, got {footprint.geom_type}")
    if not (footprint.bounds[0] >= -180 and footprint.bounds[2] <= 180 and footprint.bounds[1] >= -90
            and footprint.bounds[3] <= 90):
        raise IngestError("the footprint must be in EPSG:4326 (longitude, latitude)")
    # a ring whose longitudes jump from 179 to -179 would be stored as a band around the whole Earth
    return split_at_antimeridian(footprint)


def product_record(submission: Submission, quicklook_url: str | None) -> ProductRecord:
    footprint = _checked_footprint(submission.footprint)
    product_id = submission.product_id
    if not product_id:
        raise IngestError("product_id is required (field or footprint property)")
    try:
        name = ProductName.parse(product_id)
    except ValueError:
        name = None
    start = submission.start or (name.sensing_time if name else None)
    if start is None:
        raise IngestError("start_date is required (or a Sentinel-2 product id it can be read from)")
    end = submission.end or start
    if end < start:
        raise IngestError("end_date is before start_date")
    return ProductRecord(
        product_id=product_id, tile_id=submission.tile_id or (name.tile_id if name else ""),
        platform=submission.platform or (name.mission if name else ""),
        processing_level=submission.processing_level or (name.level if name else ""),
        start_time=start, end_time=end, footprint=footprint, cloud_cover=submission.cloud_cover,
        quicklook_url=quicklook_url)


def class_shares(legend: Mapping[int, LandCoverClass] | None, present: Iterable[int], clear: Mapping[int, int]
                 ) -> list[ClassShare]:
    """Per-class clear pixels (``clear``: pixels of each class value under a clear sky) and their share of the
    clear pixels; names and colors from the submission's legend, or CLC level 3 by class index when it has none
    (the seed's rasters). Every value the map holds (``present``, under clouds too) must be in the legend."""
    known = dict(legend) if legend else {c.index: c for c in clc_level3()}
    unknown = sorted(v for v in present if v not in known)
    if unknown:
        raise IngestError(f"pixel values {unknown[:10]} have no class in the legend (classes)")
    total = sum(clear.values())
    # a legend is kept whole (absent classes with 0 pixels), so every class of the model is a known category;
    # without one (seed clients), only the classes present
    listed = sorted(known) if legend else sorted(present)
    return [ClassShare(known[v], clear.get(v, 0), clear.get(v, 0) / total if total else 0.0) for v in listed]


@dataclass(frozen=True)
class _Prepared:
    """A submission checked and counted, ready to store: the class map as stored, its observed map and the
    counts of both."""

    product: ProductRecord
    model_name: str
    model_version: str
    values: np.ndarray
    nodata: int
    observed: Observed
    cells: CellCounts
    tallies: Tallies  # the observed map's clear, clouded and no-data pixels
    classes: list[ClassShare]
    extras: dict[str, np.ndarray]


def _prepare(submission: Submission, model_name: str, model_version: str) -> _Prepared:
    raster = submission.classes
    if raster.data.dtype.kind not in "ui":
        raise IngestError(f"segmentation must hold integer class values, got {raster.data.dtype}")
    product = product_record(submission, None)
    _check_grid(raster.data.shape, raster.transform, raster.crs, product.footprint)
    extras = {name: _extra_layer(name, layer, raster.data.shape) for name, layer in submission.layers.items()}
    values, nodata = _class_values(raster.data, raster.nodata)
    try:
        observed = observe(values, nodata, extras.get("cloud_mask"))
    except ValueError as error:
        raise IngestError(str(error)) from error
    cells = CellCounts.of(observed.data)
    totals = cells.totals()
    present = [v for v in value_counts(values) if v != nodata]
    clear = {v: n for v, n in totals.items() if v not in (observed.cloud, observed.nodata)}
    classes = class_shares(submission.legend, present, clear)
    return _Prepared(product, model_name, model_version, values, nodata, observed, cells,
                     tallies(totals, observed.cloud, observed.nodata), classes, extras)


class StorageFailure(RuntimeError):
    """Storing failed after validation (the database or the store); the message says truthfully what
    was kept."""


class OutcomeUnknown(StorageFailure):
    """The connection broke while the catalog committed, and the database cannot be asked whether the commit
    landed: every file is kept (a committed row may name them). ``settle`` decides once the database answers
    again; ``store check`` removes what is still left over."""

    def __init__(self, message: str, key: tuple[str, str, str], raster_url: str, files: list[str]):
        super().__init__(message)
        self.key, self.raster_url, self.files = key, raster_url, files


#: Errors after which a commit may or may not have reached the database.
CONNECTION_LOST = (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.DisconnectionError)


def _landing(catalog: Catalog, key: tuple[str, str, str], raster_url: str) -> bool | None:
    """Whether the rows naming ``raster_url`` were committed for this product and model version; None while
    the database cannot be asked."""
    try:
        return catalog.committed_url(*key) == raster_url
    except CONNECTION_LOST:
        return None


def settle(unknown: OutcomeUnknown, catalog: Catalog, store: RasterStore) -> bool:
    """The files of an unknown outcome removed if their rows did not land (kept if they did); False while the
    database still cannot be asked."""
    landed = _landing(catalog, unknown.key, unknown.raster_url)
    if landed is False:
        _remove(unknown.files, store)
    return landed is not None
OUTCOME_CHECKS = (0.0, 0.5, 2.0)  # seconds to wait before each attempt to ask the database what landed


def ingest(submission: Submission, catalog: Catalog, store: RasterStore) -> Stored:
    """Store the submission's maps under names of their own (a folder per request), then the catalog rows.

    Concurrent identical requests each write their own files; the catalog lets one commit (a lock per
    product and model), and the others delete only what they wrote. A file that a committed row names is
    never deleted here."""
    model_name, model_version = submission.model_name or "unknown", submission.model_version or "0"
    for field_name, value in (("product_id", submission.product_id), ("model_name", model_name),
                              ("model_version", model_version)):
        if not SAFE_PART.fullmatch(value):
            raise IngestError(f"{field_name} {value[:40]!r} is not an identifier (letters, digits, '_', '.', '-')")
    existing = catalog.find_segmentation(submission.product_id, model_name, model_version)
    if existing is not None:
        if store.exists(existing.raster_url):
            return Stored(submission.product_id, existing.id, False)
        catalog.remove_segmentation(existing.id)  # its map was lost: a re-send stores it again
    prepared = _prepare(submission, model_name, model_version)
    written: list[str] = []
    try:
        stored = _store(submission, catalog, store, prepared, written)
    except (IngestError, UnsafePath, OutcomeUnknown):  # the last: nothing may be deleted
        _remove(written, store)
        raise
    except Exception as error:
        left = _remove(written, store)
        kept = "nothing was kept" if not left else (
            f"{len(left)} file(s) could not be removed; `earthsignature store check --repair` removes them")
        raise StorageFailure(f"could not store the product, {kept}") from error
    if not stored.created:  # another request committed the same product and model first: ours are spare
        _remove(written, store)
    return stored


def _store(submission: Submission, catalog: Catalog, store: RasterStore, prepared: _Prepared,
           written: list[str]) -> Stored:
    product, model_name, model_version = prepared.product, prepared.model_name, prepared.model_version
    raster, values, nodata, classes = submission.classes, prepared.values, prepared.nodata, prepared.classes
    data, transform, crs = raster.data, raster.transform, raster.crs
    folder = (product.product_id, model_name, model_version, uuid.uuid4().hex[:16])  # this request's own
    colormap = {c.land_cover.index: (*c.land_cover.color, 255) for c in classes} if values.dtype == np.uint8 else None
    legend = [c.land_cover for c in classes]
    raster_url = store.write_cog(store.url_for(*folder, "classes.tif"), values, crs, transform, nodata, colormap,
                                 LAYER_DESCRIPTIONS["classes"], class_tags(legend))
    written.append(raster_url)
    aux_url, style_url = legend_sidecars(raster_url)  # named by the map's URL, not by a column
    written.append(store.write_bytes(aux_url, gdal_aux_xml(legend).encode()))
    written.append(store.write_bytes(style_url, qgis_style(legend, nodata).encode()))
    observed = prepared.observed
    observed_url = store.write_cog(store.url_for(*folder, "observed.tif"), observed.data, crs, transform,
                                   observed.nodata, description=OBSERVED_DESCRIPTION.format(cloud=observed.cloud),
                                   options=OBSERVED_COG_OPTIONS)
    written.append(observed_url)
    written.append(store.write_bytes(cells_url(observed_url), prepared.cells.to_bytes()))
    extras = prepared.extras
    urls = {}
    for name, layer in extras.items():
        urls[name] = store.write_cog(store.url_for(*folder, f"{name}.tif"), layer, crs, transform, LAYER_NODATA[name],
                                     description=LAYER_DESCRIPTIONS[name])
        written.append(urls[name])
    quicklook_url = None
    if submission.quicklook_png:
        quicklook_url = store.url_for(product.product_id, f"quicklook-{folder[-1]}.png")
        written.append(store.write_bytes(quicklook_url, submission.quicklook_png))
    product = dataclasses.replace(product, quicklook_url=quicklook_url)
    segmentation = SegmentationRecord(model_name, model_version, raster_url, crs, transform.to_gdal(), data.shape[1],
                                      data.shape[0], classes, urls.get("confidence"), urls.get("cloud_mask"),
                                      submission.model_card, observed_url, prepared.tallies)
    try:
        segmentation_id, created = catalog.add(product, segmentation)
    except CONNECTION_LOST as error:
        if _landed(catalog, product.product_id, model_name, model_version, raster_url, written) is False:
            raise  # known not to be committed: the caller deletes what this request wrote
        segmentation_id, created = catalog.find_segmentation(product.product_id, model_name, model_version).id, True
        log.warning("%s %s %s: the commit's answer was lost, but the row is there", product.product_id,
                    model_name, model_version, exc_info=error)
    if created and quicklook_url and catalog.product_quicklook(product.product_id) != quicklook_url:
        written.remove(quicklook_url)  # the product was stored before with its own quicklook
        store.delete(quicklook_url)
    if created:
        written.clear()  # committed: these files belong to the catalog now
    return Stored(product.product_id, segmentation_id, created)


def _landed(catalog: Catalog, product_id: str, model_name: str, model_version: str, raster_url: str,
            written: list[str]) -> bool:
    """After a broken connection: whether this request's rows were committed (True) or not (False); when the
    database cannot be asked, ``OutcomeUnknown`` with every written file kept."""
    key = (product_id, model_name, model_version)
    for wait in OUTCOME_CHECKS:
        time.sleep(wait)
        landed = _landing(catalog, key, raster_url)
        if landed is not None:
            return landed
    kept = list(written)
    written.clear()
    raise OutcomeUnknown("the catalog connection broke while committing and the database cannot be reached "
                         "to tell whether the product was stored: outcome unknown, re-send the same request "
                         "(re-sends are idempotent); its files are kept until the database can tell",
                         key, raster_url, kept)


def _class_values(data: np.ndarray, nodata: int | None) -> tuple[np.ndarray, int]:
    """The class map in the smallest type that holds its classes, never truncated, with its no-data value.

    The no-data value is not a class: a map whose classes fit 0..253 is Byte (and keeps its colour table)
    whatever no-data value it was sent with; its no-data pixels become ``CLASS_NODATA`` (254 is the observed
    map's cloud, ``observations``)."""
    missing = data == nodata if nodata is not None else np.zeros(data.shape, dtype=bool)
    classes = data[~missing]
    highest = int(classes.max()) if classes.size else 0
    if highest < Observed.markers(np.dtype(np.uint8))[0]:
        values = data.astype(np.uint8)
        values[missing] = CLASS_NODATA
        return values, CLASS_NODATA
    cloud16, nodata16 = Observed.markers(np.dtype(np.uint16))
    if highest < cloud16 and (nodata is None or 0 <= nodata <= nodata16):
        return data.astype(np.uint16), nodata16 if nodata is None else int(nodata)
    raise IngestError(f"class values must be below {cloud16}, the map holds {highest}")


def _extra_layer(name: str, raster: RasterWindow, shape: tuple[int, int]) -> np.ndarray:
    layer = raster.data
    if layer.shape != shape:
        raise IngestError(f"{name} is {layer.shape[0]} x {layer.shape[1]}, the segmentation {shape[0]} x {shape[1]}")
    if layer.dtype.kind not in "ui" or (layer.size and (int(layer.max()) > 255 or int(layer.min()) < 0)):
        raise IngestError(f"{name} must hold integers in 0..255 (uint8), got {layer.dtype} values")
    layer = layer.astype(np.uint8)
    if name == "confidence" and raster.nodata == 255:
        # the earlier encoding (0..254, 255 = no data): stored in today's (1..255, 0 = no data)
        return np.where(layer == 255, CONFIDENCE_NODATA, np.minimum(layer, 254) + 1).astype(np.uint8)
    return layer


def _check_grid(shape: tuple[int, int], transform: Affine, crs: str, footprint: BaseGeometry) -> None:
    """The map must lie where its footprint says, in its CRS (a UTM grid labelled EPSG:4326 does not)."""
    height, width = shape
    left, top = transform @ (0, 0)
    right, bottom = transform @ (width, height)
    try:
        bounds = transform_bounds(crs, "EPSG:4326", min(left, right), min(top, bottom), max(left, right),
                                  max(top, bottom), densify_pts=21)
    except (CRSError, ValueError) as error:
        raise IngestError(f"the segmentation's grid cannot be placed on the Earth in {crs[:40]!r}") from error
    west, south, east, north = bounds
    if not all(math.isfinite(v) for v in bounds) or not (min(west, east) >= -180 and max(west, east) <= 180
                                                         and -90 <= south <= north <= 90):
        raise IngestError("the segmentation's geotransform does not fit its crs (its corners are not on the Earth)")
    # a grid across the antimeridian has its west bound east of its east bound (GDAL's convention)
    area = box(*bounds) if west <= east else box(west, south, 180, north).union(box(-180, south, east, north))
    if not area.buffer(0.05).intersects(footprint):
        raise IngestError("the segmentation's grid does not overlap the footprint: check geotransform and crs")


def _remove(urls: list[str], store: RasterStore) -> list[str]:
    """Delete files this request wrote and nobody references; the ones that could not be deleted."""
    left = []
    for url in urls:
        try:
            store.delete(url)
        except OSError:
            left.append(url)
    return left
