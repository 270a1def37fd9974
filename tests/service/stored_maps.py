"""Class maps with clouds, no-data edges and confidence stored by the real ingestion, for the area statistics and
change tests: blocky fields, cloud blobs, a slanted swath edge, on real UTM grids."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import rasterio
from affine import Affine
from rasterio.warp import transform_bounds
from shapely.geometry import Polygon, box
from shapely.geometry.base import BaseGeometry

from earthsignature.core.classes import LandCoverClass
from earthsignature.core.cog import CLASS_NODATA, CLOUD_MASK_NODATA
from earthsignature.core.product import split_at_antimeridian
from earthsignature.service.catalog.catalog import Catalog, Filters
from earthsignature.service.catalog.ingest import Submission, ingest
from earthsignature.service.catalog.raster_store import RasterStore, RasterWindow

DAY = datetime(2023, 8, 14, 10, 0, tzinfo=UTC)
LEGEND = {0: LandCoverClass(312, "Coniferous forest", (0, 166, 0), 0),
          1: LandCoverClass(211, "Non-irrigated arable land", (255, 255, 168), 1),
          2: LandCoverClass(334, "Burnt areas", (0, 0, 0), 2),
          3: LandCoverClass(512, "Water bodies", (128, 242, 230), 3)}


def class_map(shape: tuple[int, int], seed: int, nodata_columns: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Blocky classes (fields of 1..40 pixels), a cloud mask with blobs, and a no-data edge on the east."""
    rng = np.random.default_rng(seed)
    rows, cols = shape
    coarse = rng.integers(0, len(LEGEND), (rows // 8 + 1, cols // 8 + 1))
    classes = np.kron(coarse, np.ones((8, 8), dtype=np.int64))[:rows, :cols].astype(np.uint8)
    noise = rng.random(shape) < 0.05
    classes[noise] = rng.integers(0, len(LEGEND), int(noise.sum()))
    yy, xx = np.mgrid[:rows, :cols]
    cloud = np.zeros(shape, dtype=np.uint8)
    for _ in range(4):
        cy, cx, radius = rng.integers(0, rows), rng.integers(0, cols), rng.integers(20, 90)
        cloud[(yy - cy) ** 2 + (xx - cx) ** 2 < radius ** 2] = 1
    cloud[:5, :] = CLOUD_MASK_NODATA  # the scene classification has no data on the northern rows
    if nodata_columns:  # a slanted swath edge: no class, and (further east) no scene classification either
        classes[xx >= cols - nodata_columns - (yy // 10) % 20] = CLASS_NODATA
        cloud[:, cols - nodata_columns // 2:] = CLOUD_MASK_NODATA
    return classes, cloud


def store_map(catalog: Catalog, store: RasterStore, number: int, tile: str, crs: str, origin: tuple[float, float],
              shape: tuple[int, int], day: int = 0, nodata_columns: int = 0) -> None:
    classes, cloud = class_map(shape, number, nodata_columns)
    transform = Affine(10.0, 0, origin[0], 0, -10.0, origin[1])
    west, south, east, north = transform_bounds(crs, "EPSG:4326", *rasterio.transform.array_bounds(
        shape[0], shape[1], transform), densify_pts=21)
    # across the antimeridian (west > east): the ring as a provider sends it, longitudes jumping at 180
    footprint = box(west, south, east, north) if west <= east else split_at_antimeridian(
        Polygon([(west, south), (east, south), (east, north), (west, north)]))
    start = DAY + timedelta(days=day, minutes=number)
    confidence = np.random.default_rng(number + 1000).integers(1, 256, shape).astype(np.uint8)
    ingest(Submission(
        product_id=f"S2B_MSIL2A_{start:%Y%m%dT%H%M%S}_N0509_R022_T{tile}_{start:%Y%m%dT%H%M%S}",
        model_name="clc-unet", model_version="1", footprint=footprint,
        classes=RasterWindow(classes, transform, crs, CLASS_NODATA), legend=LEGEND, start=start, end=start,
        layers={"cloud_mask": RasterWindow(cloud, transform, crs, CLOUD_MASK_NODATA),
                "confidence": RasterWindow(confidence, transform, crs, 0)}), catalog, store)


def found(catalog: Catalog, area: BaseGeometry, start: datetime | None = None, end: datetime | None = None):
    """The stored maps of clc-unet intersecting the area (in a period), newest first."""
    filters = Filters(area=area, start=start, end=end, model_names=("clc-unet",), limit=100)
    return [item.segmentation for item in catalog.search(filters)]
