"""The monitor's outputs: COGs, a quicklook, and the CreateProduct request that publishes them.

The segmenter's GeoTIFFs become Cloud-Optimized GeoTIFFs in the product's work folder; the request to
the Database service carries the class map, confidence and cloud mask (zstd), the legend from the model
manifest, the product's footprint as geobuf and its metadata, and a quicklook PNG of the true-color
bands. It goes out over gRPC with the internal certificate.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import geobuf
import numpy as np
import rasterio
import rasterio.shutil
from rasterio.enums import Resampling
from shapely.geometry import mapping

from earthsignature.core import raster_codec
from earthsignature.core.classes import ClassShare
from earthsignature.core.cog import copy_as_cog
from earthsignature.core.manifest import ModelManifest
from earthsignature.core.product import REMOTE_READ_OPTIONS, Sentinel2Product
from earthsignature.pb.snapearth.api.v1 import database_pb2, segmentation_pb2
from earthsignature.service.monitor.records import Segmentation

QUICKLOOK_PIXELS = 512


def to_cog(path: Path) -> Path:
    """Rewrite a tiled GeoTIFF as a COG beside it (``name.cog.tif``); return the COG."""
    return copy_as_cog(path, path.with_suffix(".cog.tif"))


def quicklook_png(product: Sentinel2Product, size: int = QUICKLOOK_PIXELS) -> bytes:
    """A true-color preview (B04, B03, B02), reflectance 0..0.3 stretched to 0..255."""
    with rasterio.Env(**REMOTE_READ_OPTIONS), rasterio.open(product.band_path("B04")) as dataset:
        scale = max(dataset.width, dataset.height) / size
        shape = (max(1, round(dataset.height / scale)), max(1, round(dataset.width / scale)))
    rgb = np.stack([product.reflectance(product.read(b, out_shape=shape, resampling=Resampling.average))
                    for b in ("B04", "B03", "B02")])
    image = np.clip(np.nan_to_num(rgb) / 0.3 * 255, 0, 255).astype(np.uint8)
    profile = {"driver": "PNG", "width": shape[1], "height": shape[0], "count": 3, "dtype": "uint8"}
    with warnings.catch_warnings():  # a preview picture carries no georeferencing, on purpose
        warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
        with rasterio.io.MemoryFile() as memory:
            with memory.open(**profile) as dataset:
                dataset.write(image)
            return memory.read()


def _raster(path: Path) -> segmentation_pb2.Raster:
    with rasterio.open(path) as dataset:
        data = dataset.read(1)
        return raster_codec.encode(data, segmentation_pb2.RASTER_ENCODING_ZSTD, list(dataset.transform.to_gdal()),
                                   dataset.crs.to_string(), None if dataset.nodata is None else int(dataset.nodata))


def create_request(product: Sentinel2Product, manifest: ModelManifest, result: Segmentation,
                   quicklook: bytes | None = None) -> database_pb2.CreateProductRequest:
    request = database_pb2.CreateProductRequest(
        product_id=product.product_id, tile_id=product.tile_id, platform=product.mission,
        processing_level=product.level, cloud_cover=product.cloud_cover, model_name=manifest.name,
        model_version=str(manifest.version or "0"), quicklook_png=quicklook or b"")
    feature = {"type": "Feature", "geometry": mapping(product.footprint),
               "properties": {"product_id": product.product_id}}
    request.data.ParseFromString(geobuf.encode(feature))
    request.start_date.FromDatetime(product.start_time)
    request.end_date.FromDatetime(product.stop_time)
    request.model_card.CopyFrom(raster_codec.model_card_message(manifest.card))
    request.segmentation.CopyFrom(_raster(result.classes))
    request.confidence.CopyFrom(_raster(result.confidence))
    request.cloud_mask.CopyFrom(_raster(result.cloud_mask))
    # the server computes the fractions from the map it stores
    request.classes.extend(raster_codec.class_statistic(ClassShare(cls, int(result.pixel_counts[cls.index]), 0.0))
                           for cls in manifest.classes)
    return request

