from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class RasterEncoding(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RASTER_ENCODING_UNSPECIFIED: _ClassVar[RasterEncoding]
    RASTER_ENCODING_LEGACY_UINT32: _ClassVar[RasterEncoding]
    RASTER_ENCODING_RAW: _ClassVar[RasterEncoding]
    RASTER_ENCODING_PNG: _ClassVar[RasterEncoding]
    RASTER_ENCODING_DEFLATE: _ClassVar[RasterEncoding]
    RASTER_ENCODING_ZSTD: _ClassVar[RasterEncoding]
    RASTER_ENCODING_COG: _ClassVar[RasterEncoding]
    RASTER_ENCODING_GEOBUF_POLYGONS: _ClassVar[RasterEncoding]
RASTER_ENCODING_UNSPECIFIED: RasterEncoding
RASTER_ENCODING_LEGACY_UINT32: RasterEncoding
RASTER_ENCODING_RAW: RasterEncoding
RASTER_ENCODING_PNG: RasterEncoding
RASTER_ENCODING_DEFLATE: RasterEncoding
RASTER_ENCODING_ZSTD: RasterEncoding
RASTER_ENCODING_COG: RasterEncoding
RASTER_ENCODING_GEOBUF_POLYGONS: RasterEncoding

class Raster(_message.Message):
    __slots__ = ("height", "width", "data", "encoding", "encoded_data", "dtype", "geotransform", "crs", "nodata")
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    ENCODING_FIELD_NUMBER: _ClassVar[int]
    ENCODED_DATA_FIELD_NUMBER: _ClassVar[int]
    DTYPE_FIELD_NUMBER: _ClassVar[int]
    GEOTRANSFORM_FIELD_NUMBER: _ClassVar[int]
    CRS_FIELD_NUMBER: _ClassVar[int]
    NODATA_FIELD_NUMBER: _ClassVar[int]
    height: int
    width: int
    data: _containers.RepeatedScalarFieldContainer[int]
    encoding: RasterEncoding
    encoded_data: bytes
    dtype: str
    geotransform: _containers.RepeatedScalarFieldContainer[float]
    crs: str
    nodata: int
    def __init__(self, height: _Optional[int] = ..., width: _Optional[int] = ..., data: _Optional[_Iterable[int]] = ..., encoding: _Optional[_Union[RasterEncoding, str]] = ..., encoded_data: _Optional[bytes] = ..., dtype: _Optional[str] = ..., geotransform: _Optional[_Iterable[float]] = ..., crs: _Optional[str] = ..., nodata: _Optional[int] = ...) -> None: ...

class ClassStatistic(_message.Message):
    __slots__ = ("value", "code", "name", "color", "pixel_count", "fraction")
    VALUE_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    COLOR_FIELD_NUMBER: _ClassVar[int]
    PIXEL_COUNT_FIELD_NUMBER: _ClassVar[int]
    FRACTION_FIELD_NUMBER: _ClassVar[int]
    value: int
    code: int
    name: str
    color: int
    pixel_count: int
    fraction: float
    def __init__(self, value: _Optional[int] = ..., code: _Optional[int] = ..., name: _Optional[str] = ..., color: _Optional[int] = ..., pixel_count: _Optional[int] = ..., fraction: _Optional[float] = ...) -> None: ...

class ModelCard(_message.Message):
    __slots__ = ("training_data", "data_kind", "test_set", "test_metrics")
    class TestMetricsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    TRAINING_DATA_FIELD_NUMBER: _ClassVar[int]
    DATA_KIND_FIELD_NUMBER: _ClassVar[int]
    TEST_SET_FIELD_NUMBER: _ClassVar[int]
    TEST_METRICS_FIELD_NUMBER: _ClassVar[int]
    training_data: str
    data_kind: str
    test_set: str
    test_metrics: _containers.ScalarMap[str, float]
    def __init__(self, training_data: _Optional[str] = ..., data_kind: _Optional[str] = ..., test_set: _Optional[str] = ..., test_metrics: _Optional[_Mapping[str, float]] = ...) -> None: ...
