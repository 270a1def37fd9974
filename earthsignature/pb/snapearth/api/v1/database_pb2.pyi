import datetime

from earthsignature.pb.geobufproto import geobuf_pb2 as _geobuf_pb2
from google.api import annotations_pb2 as _annotations_pb2
from google.protobuf import descriptor_pb2 as _descriptor_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from earthsignature.pb.snapearth.api.v1 import segmentation_pb2 as _segmentation_pb2
from earthsignature.pb.snapearth.api.v1 import statistics_pb2 as _statistics_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class CreateProductRequest(_message.Message):
    __slots__ = ("data", "segmentation", "cloud_mask", "product_id", "start_date", "end_date", "tile_id", "platform", "processing_level", "cloud_cover", "model_name", "model_version", "confidence", "classes", "quicklook_png", "model_card")
    DATA_FIELD_NUMBER: _ClassVar[int]
    SEGMENTATION_FIELD_NUMBER: _ClassVar[int]
    CLOUD_MASK_FIELD_NUMBER: _ClassVar[int]
    PRODUCT_ID_FIELD_NUMBER: _ClassVar[int]
    START_DATE_FIELD_NUMBER: _ClassVar[int]
    END_DATE_FIELD_NUMBER: _ClassVar[int]
    TILE_ID_FIELD_NUMBER: _ClassVar[int]
    PLATFORM_FIELD_NUMBER: _ClassVar[int]
    PROCESSING_LEVEL_FIELD_NUMBER: _ClassVar[int]
    CLOUD_COVER_FIELD_NUMBER: _ClassVar[int]
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    CLASSES_FIELD_NUMBER: _ClassVar[int]
    QUICKLOOK_PNG_FIELD_NUMBER: _ClassVar[int]
    MODEL_CARD_FIELD_NUMBER: _ClassVar[int]
    data: _geobuf_pb2.Data
    segmentation: _segmentation_pb2.Raster
    cloud_mask: _segmentation_pb2.Raster
    product_id: str
    start_date: _timestamp_pb2.Timestamp
    end_date: _timestamp_pb2.Timestamp
    tile_id: str
    platform: str
    processing_level: str
    cloud_cover: float
    model_name: str
    model_version: str
    confidence: _segmentation_pb2.Raster
    classes: _containers.RepeatedCompositeFieldContainer[_segmentation_pb2.ClassStatistic]
    quicklook_png: bytes
    model_card: _segmentation_pb2.ModelCard
    def __init__(self, data: _Optional[_Union[_geobuf_pb2.Data, _Mapping]] = ..., segmentation: _Optional[_Union[_segmentation_pb2.Raster, _Mapping]] = ..., cloud_mask: _Optional[_Union[_segmentation_pb2.Raster, _Mapping]] = ..., product_id: _Optional[str] = ..., start_date: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_date: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., tile_id: _Optional[str] = ..., platform: _Optional[str] = ..., processing_level: _Optional[str] = ..., cloud_cover: _Optional[float] = ..., model_name: _Optional[str] = ..., model_version: _Optional[str] = ..., confidence: _Optional[_Union[_segmentation_pb2.Raster, _Mapping]] = ..., classes: _Optional[_Iterable[_Union[_segmentation_pb2.ClassStatistic, _Mapping]]] = ..., quicklook_png: _Optional[bytes] = ..., model_card: _Optional[_Union[_segmentation_pb2.ModelCard, _Mapping]] = ...) -> None: ...

class CreateProductResponse(_message.Message):
    __slots__ = ("product_id", "segmentation_id", "created")
    PRODUCT_ID_FIELD_NUMBER: _ClassVar[int]
    SEGMENTATION_ID_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    product_id: str
    segmentation_id: str
    created: bool
    def __init__(self, product_id: _Optional[str] = ..., segmentation_id: _Optional[str] = ..., created: _Optional[bool] = ...) -> None: ...

class ListSegmentationRequest(_message.Message):
    __slots__ = ("wkt", "start_date", "end_date", "product_ids", "categories", "n_results", "page_token", "raster_encoding", "min_category_fraction", "model_names", "max_cloud_cover", "tile_ids", "max_pixels")
    WKT_FIELD_NUMBER: _ClassVar[int]
    START_DATE_FIELD_NUMBER: _ClassVar[int]
    END_DATE_FIELD_NUMBER: _ClassVar[int]
    PRODUCT_IDS_FIELD_NUMBER: _ClassVar[int]
    CATEGORIES_FIELD_NUMBER: _ClassVar[int]
    N_RESULTS_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    RASTER_ENCODING_FIELD_NUMBER: _ClassVar[int]
    MIN_CATEGORY_FRACTION_FIELD_NUMBER: _ClassVar[int]
    MODEL_NAMES_FIELD_NUMBER: _ClassVar[int]
    MAX_CLOUD_COVER_FIELD_NUMBER: _ClassVar[int]
    TILE_IDS_FIELD_NUMBER: _ClassVar[int]
    MAX_PIXELS_FIELD_NUMBER: _ClassVar[int]
    wkt: str
    start_date: _timestamp_pb2.Timestamp
    end_date: _timestamp_pb2.Timestamp
    product_ids: _containers.RepeatedScalarFieldContainer[str]
    categories: _containers.RepeatedScalarFieldContainer[str]
    n_results: int
    page_token: str
    raster_encoding: _segmentation_pb2.RasterEncoding
    min_category_fraction: float
    model_names: _containers.RepeatedScalarFieldContainer[str]
    max_cloud_cover: float
    tile_ids: _containers.RepeatedScalarFieldContainer[str]
    max_pixels: int
    def __init__(self, wkt: _Optional[str] = ..., start_date: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_date: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., product_ids: _Optional[_Iterable[str]] = ..., categories: _Optional[_Iterable[str]] = ..., n_results: _Optional[int] = ..., page_token: _Optional[str] = ..., raster_encoding: _Optional[_Union[_segmentation_pb2.RasterEncoding, str]] = ..., min_category_fraction: _Optional[float] = ..., model_names: _Optional[_Iterable[str]] = ..., max_cloud_cover: _Optional[float] = ..., tile_ids: _Optional[_Iterable[str]] = ..., max_pixels: _Optional[int] = ...) -> None: ...

class SearchSegmentationRequest(_message.Message):
    __slots__ = ("query", "n_results", "descriptor_set", "page_token", "raster_encoding", "max_pixels")
    QUERY_FIELD_NUMBER: _ClassVar[int]
    N_RESULTS_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTOR_SET_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    RASTER_ENCODING_FIELD_NUMBER: _ClassVar[int]
    MAX_PIXELS_FIELD_NUMBER: _ClassVar[int]
    query: str
    n_results: int
    descriptor_set: _descriptor_pb2.FileDescriptorSet
    page_token: str
    raster_encoding: _segmentation_pb2.RasterEncoding
    max_pixels: int
    def __init__(self, query: _Optional[str] = ..., n_results: _Optional[int] = ..., descriptor_set: _Optional[_Union[_descriptor_pb2.FileDescriptorSet, _Mapping]] = ..., page_token: _Optional[str] = ..., raster_encoding: _Optional[_Union[_segmentation_pb2.RasterEncoding, str]] = ..., max_pixels: _Optional[int] = ...) -> None: ...

class SegmentationResponse(_message.Message):
    __slots__ = ("wkt", "segmentation", "cloud_mask", "product_id", "quicklook", "start_date", "end_date", "model_name", "model_version", "classes", "footprint", "segmentation_polygons", "confidence", "tile_id", "cloud_cover", "page_token", "model_card", "item_url", "map_url")
    WKT_FIELD_NUMBER: _ClassVar[int]
    SEGMENTATION_FIELD_NUMBER: _ClassVar[int]
    CLOUD_MASK_FIELD_NUMBER: _ClassVar[int]
    PRODUCT_ID_FIELD_NUMBER: _ClassVar[int]
    QUICKLOOK_FIELD_NUMBER: _ClassVar[int]
    START_DATE_FIELD_NUMBER: _ClassVar[int]
    END_DATE_FIELD_NUMBER: _ClassVar[int]
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    CLASSES_FIELD_NUMBER: _ClassVar[int]
    FOOTPRINT_FIELD_NUMBER: _ClassVar[int]
    SEGMENTATION_POLYGONS_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    TILE_ID_FIELD_NUMBER: _ClassVar[int]
    CLOUD_COVER_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    MODEL_CARD_FIELD_NUMBER: _ClassVar[int]
    ITEM_URL_FIELD_NUMBER: _ClassVar[int]
    MAP_URL_FIELD_NUMBER: _ClassVar[int]
    wkt: str
    segmentation: _segmentation_pb2.Raster
    cloud_mask: _segmentation_pb2.Raster
    product_id: str
    quicklook: str
    start_date: _timestamp_pb2.Timestamp
    end_date: _timestamp_pb2.Timestamp
    model_name: str
    model_version: str
    classes: _containers.RepeatedCompositeFieldContainer[_segmentation_pb2.ClassStatistic]
    footprint: _geobuf_pb2.Data
    segmentation_polygons: _geobuf_pb2.Data
    confidence: _segmentation_pb2.Raster
    tile_id: str
    cloud_cover: float
    page_token: str
    model_card: _segmentation_pb2.ModelCard
    item_url: str
    map_url: str
    def __init__(self, wkt: _Optional[str] = ..., segmentation: _Optional[_Union[_segmentation_pb2.Raster, _Mapping]] = ..., cloud_mask: _Optional[_Union[_segmentation_pb2.Raster, _Mapping]] = ..., product_id: _Optional[str] = ..., quicklook: _Optional[str] = ..., start_date: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_date: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., model_name: _Optional[str] = ..., model_version: _Optional[str] = ..., classes: _Optional[_Iterable[_Union[_segmentation_pb2.ClassStatistic, _Mapping]]] = ..., footprint: _Optional[_Union[_geobuf_pb2.Data, _Mapping]] = ..., segmentation_polygons: _Optional[_Union[_geobuf_pb2.Data, _Mapping]] = ..., confidence: _Optional[_Union[_segmentation_pb2.Raster, _Mapping]] = ..., tile_id: _Optional[str] = ..., cloud_cover: _Optional[float] = ..., page_token: _Optional[str] = ..., model_card: _Optional[_Union[_segmentation_pb2.ModelCard, _Mapping]] = ..., item_url: _Optional[str] = ..., map_url: _Optional[str] = ...) -> None: ...
