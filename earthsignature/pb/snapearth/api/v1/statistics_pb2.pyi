import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from earthsignature.pb.snapearth.api.v1 import segmentation_pb2 as _segmentation_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class AreaStatisticsRequest(_message.Message):
    __slots__ = ("wkt", "model_name", "start_date", "end_date", "categories")
    WKT_FIELD_NUMBER: _ClassVar[int]
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    START_DATE_FIELD_NUMBER: _ClassVar[int]
    END_DATE_FIELD_NUMBER: _ClassVar[int]
    CATEGORIES_FIELD_NUMBER: _ClassVar[int]
    wkt: str
    model_name: str
    start_date: _timestamp_pb2.Timestamp
    end_date: _timestamp_pb2.Timestamp
    categories: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, wkt: _Optional[str] = ..., model_name: _Optional[str] = ..., start_date: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_date: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., categories: _Optional[_Iterable[str]] = ...) -> None: ...

class ClassArea(_message.Message):
    __slots__ = ("value", "code", "name", "color", "hectares")
    VALUE_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    COLOR_FIELD_NUMBER: _ClassVar[int]
    HECTARES_FIELD_NUMBER: _ClassVar[int]
    value: int
    code: int
    name: str
    color: int
    hectares: float
    def __init__(self, value: _Optional[int] = ..., code: _Optional[int] = ..., name: _Optional[str] = ..., color: _Optional[int] = ..., hectares: _Optional[float] = ...) -> None: ...

class DateStatistics(_message.Message):
    __slots__ = ("date", "product_ids", "area_hectares", "classes", "clear_hectares", "cloud_hectares", "nodata_hectares", "uncovered_hectares")
    DATE_FIELD_NUMBER: _ClassVar[int]
    PRODUCT_IDS_FIELD_NUMBER: _ClassVar[int]
    AREA_HECTARES_FIELD_NUMBER: _ClassVar[int]
    CLASSES_FIELD_NUMBER: _ClassVar[int]
    CLEAR_HECTARES_FIELD_NUMBER: _ClassVar[int]
    CLOUD_HECTARES_FIELD_NUMBER: _ClassVar[int]
    NODATA_HECTARES_FIELD_NUMBER: _ClassVar[int]
    UNCOVERED_HECTARES_FIELD_NUMBER: _ClassVar[int]
    date: str
    product_ids: _containers.RepeatedScalarFieldContainer[str]
    area_hectares: float
    classes: _containers.RepeatedCompositeFieldContainer[ClassArea]
    clear_hectares: float
    cloud_hectares: float
    nodata_hectares: float
    uncovered_hectares: float
    def __init__(self, date: _Optional[str] = ..., product_ids: _Optional[_Iterable[str]] = ..., area_hectares: _Optional[float] = ..., classes: _Optional[_Iterable[_Union[ClassArea, _Mapping]]] = ..., clear_hectares: _Optional[float] = ..., cloud_hectares: _Optional[float] = ..., nodata_hectares: _Optional[float] = ..., uncovered_hectares: _Optional[float] = ...) -> None: ...

class AreaStatisticsResponse(_message.Message):
    __slots__ = ("model_name", "dates")
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    DATES_FIELD_NUMBER: _ClassVar[int]
    model_name: str
    dates: _containers.RepeatedCompositeFieldContainer[DateStatistics]
    def __init__(self, model_name: _Optional[str] = ..., dates: _Optional[_Iterable[_Union[DateStatistics, _Mapping]]] = ...) -> None: ...

class AreaChangeRequest(_message.Message):
    __slots__ = ("wkt", "model_name", "before_start", "before_end", "after_start", "after_end", "from_categories", "to_categories")
    WKT_FIELD_NUMBER: _ClassVar[int]
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    BEFORE_START_FIELD_NUMBER: _ClassVar[int]
    BEFORE_END_FIELD_NUMBER: _ClassVar[int]
    AFTER_START_FIELD_NUMBER: _ClassVar[int]
    AFTER_END_FIELD_NUMBER: _ClassVar[int]
    FROM_CATEGORIES_FIELD_NUMBER: _ClassVar[int]
    TO_CATEGORIES_FIELD_NUMBER: _ClassVar[int]
    wkt: str
    model_name: str
    before_start: _timestamp_pb2.Timestamp
    before_end: _timestamp_pb2.Timestamp
    after_start: _timestamp_pb2.Timestamp
    after_end: _timestamp_pb2.Timestamp
    from_categories: _containers.RepeatedScalarFieldContainer[str]
    to_categories: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, wkt: _Optional[str] = ..., model_name: _Optional[str] = ..., before_start: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., before_end: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., after_start: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., after_end: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., from_categories: _Optional[_Iterable[str]] = ..., to_categories: _Optional[_Iterable[str]] = ...) -> None: ...

class ClassTransition(_message.Message):
    __slots__ = ("before", "after", "hectares", "map_value")
    BEFORE_FIELD_NUMBER: _ClassVar[int]
    AFTER_FIELD_NUMBER: _ClassVar[int]
    HECTARES_FIELD_NUMBER: _ClassVar[int]
    MAP_VALUE_FIELD_NUMBER: _ClassVar[int]
    before: ClassArea
    after: ClassArea
    hectares: float
    map_value: int
    def __init__(self, before: _Optional[_Union[ClassArea, _Mapping]] = ..., after: _Optional[_Union[ClassArea, _Mapping]] = ..., hectares: _Optional[float] = ..., map_value: _Optional[int] = ...) -> None: ...

class ChangeMap(_message.Message):
    __slots__ = ("tile_id", "map")
    TILE_ID_FIELD_NUMBER: _ClassVar[int]
    MAP_FIELD_NUMBER: _ClassVar[int]
    tile_id: str
    map: _segmentation_pb2.Raster
    def __init__(self, tile_id: _Optional[str] = ..., map: _Optional[_Union[_segmentation_pb2.Raster, _Mapping]] = ...) -> None: ...

class AreaChangeResponse(_message.Message):
    __slots__ = ("model_name", "before_product_ids", "after_product_ids", "area_hectares", "compared_hectares", "cloud_hectares", "nodata_hectares", "no_map_hectares", "uncovered_hectares", "matrix", "maps")
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    BEFORE_PRODUCT_IDS_FIELD_NUMBER: _ClassVar[int]
    AFTER_PRODUCT_IDS_FIELD_NUMBER: _ClassVar[int]
    AREA_HECTARES_FIELD_NUMBER: _ClassVar[int]
    COMPARED_HECTARES_FIELD_NUMBER: _ClassVar[int]
    CLOUD_HECTARES_FIELD_NUMBER: _ClassVar[int]
    NODATA_HECTARES_FIELD_NUMBER: _ClassVar[int]
    NO_MAP_HECTARES_FIELD_NUMBER: _ClassVar[int]
    UNCOVERED_HECTARES_FIELD_NUMBER: _ClassVar[int]
    MATRIX_FIELD_NUMBER: _ClassVar[int]
    MAPS_FIELD_NUMBER: _ClassVar[int]
    model_name: str
    before_product_ids: _containers.RepeatedScalarFieldContainer[str]
    after_product_ids: _containers.RepeatedScalarFieldContainer[str]
    area_hectares: float
    compared_hectares: float
    cloud_hectares: float
    nodata_hectares: float
    no_map_hectares: float
    uncovered_hectares: float
    matrix: _containers.RepeatedCompositeFieldContainer[ClassTransition]
    maps: _containers.RepeatedCompositeFieldContainer[ChangeMap]
    def __init__(self, model_name: _Optional[str] = ..., before_product_ids: _Optional[_Iterable[str]] = ..., after_product_ids: _Optional[_Iterable[str]] = ..., area_hectares: _Optional[float] = ..., compared_hectares: _Optional[float] = ..., cloud_hectares: _Optional[float] = ..., nodata_hectares: _Optional[float] = ..., no_map_hectares: _Optional[float] = ..., uncovered_hectares: _Optional[float] = ..., matrix: _Optional[_Iterable[_Union[ClassTransition, _Mapping]]] = ..., maps: _Optional[_Iterable[_Union[ChangeMap, _Mapping]]] = ...) -> None: ...
