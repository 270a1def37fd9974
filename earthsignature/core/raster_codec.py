"""Rasters on the wire: every ``RasterEncoding`` of the protocol, both ways, and class polygons.

The seed's form (``LEGACY_UINT32``: one varint per pixel in ``data``) stays readable by seed clients;
the default is zstd-compressed bytes with their dtype, georeferencing and CRS. ``GEOBUF_POLYGONS``
returns the map as class polygons in EPSG:4326, a geobuf FeatureCollection with code and name per
feature, the vector alternative the seed planned to measure against rasters (benchmarks/api.py).
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence

import geobuf
import numpy as np
import rasterio
import rasterio.shutil
import zstandard
from affine import Affine
from rasterio.features import shapes
from rasterio.io import MemoryFile
from rasterio.warp import transform_geom

from earthsignature.core.classes import ClassShare, LandCoverClass
from earthsignature.core.cog import class_tags, cog_bytes
from earthsignature.core.manifest import ModelCard
from earthsignature.pb.geobufproto import geobuf_pb2
from earthsignature.pb.snapearth.api.v1 import segmentation_pb2 as pb

E = pb.RasterEncoding
DEFAULT_ENCODING = E.RASTER_ENCODING_ZSTD
DTYPES = ("uint8", "uint16", "uint32", "int16", "int32", "float32")


def pack_rgb(color: tuple[int, int, int]) -> int:
    """(r, g, b) -> 0xRRGGBB, the form ``ClassStatistic.color`` carries."""
    red, green, blue = color
    return (red << 16) | (green << 8) | blue


def unpack_rgb(value: int) -> tuple[int, int, int]:
    """0xRRGGBB -> (r, g, b)."""
    return (value >> 16) & 255, (value >> 8) & 255, value & 255


def class_statistic(share: ClassShare) -> pb.ClassStatistic:
    """A class of a map as the wire carries it (its pixel value is the class's index)."""
    cls = share.land_cover
    return pb.ClassStatistic(value=cls.index, code=cls.code, name=cls.name, color=pack_rgb(cls.color),
                             pixel_count=share.pixel_count, fraction=share.fraction)


def model_card_message(card: ModelCard) -> pb.ModelCard:
    return pb.ModelCard(training_data=card.training_data, data_kind=card.data_kind, test_set=card.test_set,
                        test_metrics={k: float(v) for k, v in card.test_metrics.items()})


def model_card(message: pb.ModelCard) -> ModelCard:
    return ModelCard(message.training_data or "unknown", message.data_kind or "unknown", message.test_set,
                     dict(message.test_metrics))


def class_share(message: pb.ClassStatistic) -> ClassShare:
    """The wire's ``ClassStatistic`` as the class record every part uses."""
    cls = LandCoverClass(message.code, message.name, unpack_rgb(message.color), message.value)
    return ClassShare(cls, message.pixel_count, message.fraction)


class RasterCodecError(ValueError):
    """A raster message that cannot be decoded; the message says why."""


def encode(data: np.ndarray, encoding: int, geotransform: Sequence[float] = (), crs: str = "",
           nodata: int | None = None, legend: Sequence[LandCoverClass] = (), description: str = "") -> pb.Raster:
    """A ``Raster`` message holding ``data`` [H, W] in ``encoding`` (UNSPECIFIED means the default). A COG is
    written as every stored map is (``core.cog``): nearest-neighbour overviews, and for a class map its
    ``legend``'s colour table (Byte maps) and class names."""
    encoding = encoding or DEFAULT_ENCODING
    height, width = data.shape
    raster = pb.Raster(height=height, width=width, encoding=encoding, geotransform=list(geotransform), crs=crs,
                       dtype=data.dtype.name)
    if nodata is not None:
        raster.nodata = int(nodata)
    raw = np.ascontiguousarray(data).astype(data.dtype.newbyteorder("<"), copy=False).tobytes()
    if encoding == E.RASTER_ENCODING_LEGACY_UINT32:
        raster.data.extend(data.astype(np.uint32).ravel().tolist())
    elif encoding == E.RASTER_ENCODING_RAW:
        raster.encoded_data = raw
    elif encoding == E.RASTER_ENCODING_DEFLATE:
        raster.encoded_data = zlib.compress(raw, 6)
    elif encoding == E.RASTER_ENCODING_ZSTD:
        raster.encoded_data = zstandard.ZstdCompressor(level=3).compress(raw)
    elif encoding == E.RASTER_ENCODING_COG:
        colormap = {c.index: (*c.color, 255) for c in legend} if legend and data.dtype == np.uint8 else None
        transform = Affine.from_gdal(*geotransform) if len(geotransform) == 6 else Affine.identity()
        raster.encoded_data = cog_bytes(data, crs or None, transform, nodata, colormap, description,
                                        class_tags(legend) if legend else None)
    elif encoding == E.RASTER_ENCODING_PNG:
        raster.encoded_data = _png(data, nodata)
    else:
        raise RasterCodecError(f"cannot encode a raster as {E.Name(encoding)}")
    return raster


def _png(data: np.ndarray, nodata: int | None) -> bytes:
    """A single-band PNG (GDAL's PNG driver writes by copy only)."""
    if data.dtype not in (np.uint8, np.uint16):
        raise RasterCodecError(f"PNG carries 8 or 16-bit pixels, not {data.dtype}")
    profile = {"driver": "GTiff", "width": data.shape[1], "height": data.shape[0], "count": 1,
               "dtype": data.dtype.name, "nodata": nodata}
    with MemoryFile() as source, source.open(**profile) as dataset:
        dataset.write(data, 1)
        with MemoryFile() as target:
            rasterio.shutil.copy(dataset, target.name, driver="PNG")
            return target.read()


def decode(raster: pb.Raster) -> np.ndarray:
    """The pixels of a ``Raster`` message as [height, width]."""
    height, width = raster.height, raster.width
    if height <= 0 or width <= 0:
        raise RasterCodecError(f"raster size must be positive, got {height} x {width}")
    encoding = raster.encoding
    if encoding in (E.RASTER_ENCODING_UNSPECIFIED, E.RASTER_ENCODING_LEGACY_UINT32):
        if len(raster.data) != height * width:
            raise RasterCodecError(f"data holds {len(raster.data)} values for {height} x {width} pixels")
        values = np.fromiter(raster.data, dtype=np.uint32, count=height * width).reshape(height, width)
        return values.astype(np.uint8) if values.size and values.max() < 256 else values
    if encoding in (E.RASTER_ENCODING_PNG, E.RASTER_ENCODING_COG):
        return _decode_image(raster)
    if raster.dtype not in DTYPES:
        raise RasterCodecError(f"dtype must be one of {DTYPES}, not {raster.dtype!r}")
    dtype = np.dtype(raster.dtype).newbyteorder("<")
    expected = height * width * dtype.itemsize
    payload = _inflate(bytes(raster.encoded_data), encoding, expected)
    if len(payload) != expected:
        raise RasterCodecError(f"payload is {len(payload)} bytes, {height} x {width} {raster.dtype} needs "
                               f"{height * width * dtype.itemsize}")
    return np.frombuffer(payload, dtype=dtype).reshape(height, width).astype(dtype.newbyteorder("="))


def _inflate(payload: bytes, encoding: int, expected: int) -> bytes:
    """Decompress at most ``expected`` + 1 bytes: a payload that inflates beyond its declared size is
    refused without ever being inflated whole."""
    try:
        if encoding == E.RASTER_ENCODING_DEFLATE:
            inflater = zlib.decompressobj()
            return inflater.decompress(payload, expected + 1)
        if encoding == E.RASTER_ENCODING_ZSTD:
            reader = zstandard.ZstdDecompressor().stream_reader(payload)
            return reader.read(expected + 1)
        if encoding == E.RASTER_ENCODING_RAW:
            return payload
    except (zlib.error, zstandard.ZstdError) as error:
        raise RasterCodecError(f"corrupt {E.Name(encoding)} payload: {error}") from error
    raise RasterCodecError(f"cannot decode a raster encoded as {E.Name(encoding)}")


def _decode_image(raster: pb.Raster) -> np.ndarray:
    """A PNG or COG payload, its size checked against the message before its pixels are read."""
    try:
        with MemoryFile(bytes(raster.encoded_data)) as memory, memory.open() as dataset:
            if (dataset.height, dataset.width) != (raster.height, raster.width) or dataset.count < 1:
                raise RasterCodecError(f"image is {dataset.height} x {dataset.width}, the message says "
                                       f"{raster.height} x {raster.width}")
            return dataset.read(1)
    except rasterio.errors.RasterioError as error:
        raise RasterCodecError(f"not a readable {E.Name(raster.encoding)} image") from error


def class_polygons(data: np.ndarray, transform: Affine, crs: str, classes: dict[int, LandCoverClass],
                   nodata: int | None = None) -> geobuf_pb2.Data:
    """The class map as polygons in EPSG:4326: a geobuf FeatureCollection whose features carry the pixel
    ``value``, class ``code`` and ``name``."""
    valid = None if nodata is None else data != nodata
    features = []
    for geometry, value in shapes(data.astype(np.int32), mask=valid, transform=transform, connectivity=4):
        cls = classes.get(int(value))
        code, name = (cls.code, cls.name) if cls else (int(value), str(int(value)))
        features.append({"type": "Feature", "geometry": transform_geom(crs, "EPSG:4326", geometry),
                         "properties": {"value": int(value), "code": code, "name": name}})
    encoded = geobuf.encode({"type": "FeatureCollection", "features": features}, 6)
    return geobuf_pb2.Data.FromString(encoded)
