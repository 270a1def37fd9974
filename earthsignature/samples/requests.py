"""Sample CreateProduct requests, as the monitor sends them: a class map on a real Sentinel-2 tile grid,
its cloud mask, the legend and the footprint (API tests, the API benchmarks and the fuzz harness)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import geobuf
import numpy as np

from earthsignature.core import raster_codec
from earthsignature.core.tiling_grid import tile
from earthsignature.pb.snapearth.api.v1 import database_pb2, segmentation_pb2

#: (pixel value, CLC code, name, 0xRRGGBB) of the sample maps.
CLASSES = [(0, 312, "Coniferous forest", 0x00A600), (1, 211, "Non-irrigated arable land", 0xFFFFA8),
           (2, 334, "Burnt areas", 0x000000), (3, 512, "Water bodies", 0x80F2E6)]


def class_map(size: int, seed: int, burnt_share: float = 0.0) -> np.ndarray:
    """Quadrants of forest, arable land and water, plus an optional burnt strip on the west."""
    data = np.zeros((size, size), dtype=np.uint8)
    data[: size // 2, size // 2:] = 1
    data[size // 2:, : size // 2] = 3
    if burnt_share:
        data[:, : int(size * burnt_share)] = 2
    return np.roll(data, seed, axis=0)


def product_request(number: int, tile_id: str = "34SGH", day: int = 0, size: int = 120, burnt_share: float = 0.0,
                    model: str = "clc-unet", encoding: int = segmentation_pb2.RASTER_ENCODING_ZSTD,
                    cloud: float = 5.0) -> database_pb2.CreateProductRequest:
    geometry = tile(tile_id)
    start = datetime(2021, 8, 1, 9, 20, tzinfo=UTC) + timedelta(days=day, minutes=number)
    product_id = f"S2A_MSIL2A_{start:%Y%m%dT%H%M%S}_N0500_R093_T{tile_id}_{start:%Y%m%dT%H%M%S}"
    footprint = {"type": "Feature", "properties": {"product_id": product_id},
                 "geometry": {"type": "Polygon", "coordinates": [geometry.footprint_lonlat(size * 10, size * 10)]}}
    request = database_pb2.CreateProductRequest(
        product_id=product_id, tile_id=tile_id, platform="S2A", processing_level="L2A", cloud_cover=cloud,
        model_name=model, model_version="1")
    request.data.ParseFromString(geobuf.encode(footprint))
    request.start_date.FromDatetime(start)
    request.end_date.FromDatetime(start + timedelta(seconds=5))
    gdal = [geometry.ulx, 10.0, 0.0, geometry.uly, 0.0, -10.0]
    request.segmentation.CopyFrom(raster_codec.encode(class_map(size, number, burnt_share), encoding, gdal,
                                                      f"EPSG:{geometry.epsg}"))
    clouds = np.zeros((size, size), dtype=np.uint8)
    clouds[:10] = 1
    request.cloud_mask.CopyFrom(raster_codec.encode(clouds, segmentation_pb2.RASTER_ENCODING_ZSTD, gdal,
                                                    f"EPSG:{geometry.epsg}"))
    for value, code, name, color in CLASSES:
        request.classes.add(value=value, code=code, name=name, color=color)
    return request
