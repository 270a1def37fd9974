"""The gRPC protocol: faithful to the seed's appendix, geobuf-compatible, and generated code fresh."""

from __future__ import annotations

import geobuf
import geobuf.geobuf_pb2 as reference_geobuf
import pytest
from google.api import annotations_pb2
from google.protobuf.descriptor import FieldDescriptor

from earthsignature import protogen
from earthsignature.pb.geobufproto import geobuf_pb2
from earthsignature.pb.snapearth.api.v1 import database_pb2, database_pb2_grpc, segmentation_pb2

# The appendix, message by message: (field, number in the appendix's order, type, repeated?)
SEED_FIELDS = {
    segmentation_pb2.Raster: [("height", 1, "int32", False), ("width", 2, "int32", False),
                              ("data", 3, "uint32", True)],
    database_pb2.CreateProductRequest: [("data", 1, "geobufproto.Data", False),
                                        ("segmentation", 2, "snapearth.api.v1.Raster", False),
                                        ("cloud_mask", 3, "snapearth.api.v1.Raster", False)],
    database_pb2.ListSegmentationRequest: [
        ("wkt", 1, "string", False), ("start_date", 2, "google.protobuf.Timestamp", False),
        ("end_date", 3, "google.protobuf.Timestamp", False), ("product_ids", 4, "string", True),
        ("categories", 5, "string", True), ("n_results", 6, "int32", False)],
    database_pb2.SearchSegmentationRequest: [
        ("query", 1, "string", False), ("n_results", 2, "int32", False),
        ("descriptor_set", 3, "google.protobuf.FileDescriptorSet", False)],
    database_pb2.SegmentationResponse: [
        ("wkt", 1, "string", False), ("segmentation", 2, "snapearth.api.v1.Raster", False),
        ("cloud_mask", 3, "snapearth.api.v1.Raster", False), ("product_id", 4, "string", False),
        ("quicklook", 5, "string", False)],
}
_SCALAR_NAMES = {FieldDescriptor.TYPE_INT32: "int32", FieldDescriptor.TYPE_UINT32: "uint32",
                 FieldDescriptor.TYPE_STRING: "string"}


def _type_name(field: FieldDescriptor) -> str:
    return field.message_type.full_name if field.message_type else _SCALAR_NAMES[field.type]


@pytest.mark.parametrize("message", list(SEED_FIELDS), ids=lambda m: m.DESCRIPTOR.name)
def test_seed_fields_keep_their_numbers_types_and_labels(message) -> None:
    fields = message.DESCRIPTOR.fields_by_name
    for name, number, type_name, repeated in SEED_FIELDS[message]:
        field = fields[name]
        assert field.number == number, name
        assert _type_name(field) == type_name, name
        assert field.is_repeated == repeated, name
    # additions come after the seed's fields, never between them
    seed_numbers = {number for _, number, _, _ in SEED_FIELDS[message]}
    added = [f.number for f in message.DESCRIPTOR.fields if f.number not in seed_numbers]
    assert min(added) > max(seed_numbers)


def test_optional_seed_fields_have_presence() -> None:
    request = database_pb2.ListSegmentationRequest()
    assert not request.HasField("wkt") and not request.HasField("n_results")
    request.n_results = 0
    assert request.HasField("n_results")
    assert database_pb2.CreateProductRequest.DESCRIPTOR.fields_by_name["cloud_mask"].has_presence


def test_service_methods_and_http_bindings() -> None:
    service = database_pb2.DESCRIPTOR.services_by_name["DatabaseProductService"]
    methods = {m.name: m for m in service.methods}
    assert set(methods) == {"ListSegmentation", "CreateProduct", "SearchSegmentation", "AreaStatistics", "AreaChange"}
    assert methods["ListSegmentation"].output_type.name == "SegmentationResponse"
    assert methods["CreateProduct"].output_type.name == "CreateProductResponse"
    assert methods["AreaStatistics"].output_type.name == "AreaStatisticsResponse"
    assert methods["AreaChange"].output_type.name == "AreaChangeResponse"
    streaming = {name: (m.client_streaming, m.server_streaming) for name, m in methods.items()}
    assert streaming == {"ListSegmentation": (False, True), "SearchSegmentation": (False, True),
                         "CreateProduct": (False, False), "AreaStatistics": (False, False),
                         "AreaChange": (False, False)}
    http = {name: m.GetOptions().Extensions[annotations_pb2.http].get for name, m in methods.items()}
    assert http == {"ListSegmentation": "/v1/segmentation:list", "SearchSegmentation": "/v1/segmentation:search",
                    "CreateProduct": "", "AreaStatistics": "/v1/statistics:area",
                    "AreaChange": "/v1/statistics:change"}
    assert hasattr(database_pb2_grpc, "DatabaseProductServiceStub")


def _wire_layout(descriptor) -> tuple:
    """Field numbers and wire types (string and bytes share one), recursively: what decides parsing."""
    def wire(field: FieldDescriptor) -> int:
        return FieldDescriptor.TYPE_BYTES if field.type == FieldDescriptor.TYPE_STRING else field.type

    fields = {f.name: (f.number, wire(f), f.is_repeated) for f in descriptor.fields}
    nested = {n.name: _wire_layout(n) for n in descriptor.nested_types}
    return fields, nested


def test_geobuf_schema_is_wire_compatible_with_the_geobuf_library() -> None:
    assert _wire_layout(geobuf_pb2.Data.DESCRIPTOR) == _wire_layout(reference_geobuf.Data.DESCRIPTOR)


@pytest.mark.parametrize(("geojson_type", "coordinates"), [
    ("Point", [23.3, 38.8]), ("MultiPoint", [[23.3, 38.8], [23.4, 38.9]]),
    ("LineString", [[23.3, 38.8], [23.4, 38.9]]), ("MultiLineString", [[[23.3, 38.8], [23.4, 38.9]]]),
    ("Polygon", [[[23.3, 38.8], [24.7, 38.8], [24.7, 37.8], [23.3, 38.8]]]),
    ("MultiPolygon", [[[[23.3, 38.8], [24.7, 38.8], [24.7, 37.8], [23.3, 38.8]]]]),
])
def test_geometry_type_numbers_are_what_the_library_writes(geojson_type: str, coordinates) -> None:
    # The appendix's enum (POINT=0 .. GEOMETRYCOLLECTION=6) is the public one the encoder writes;
    # the library's bundled .proto names its enum differently, but its encoder uses these numbers.
    encoded = geobuf.encode({"type": geojson_type, "coordinates": coordinates})
    geometry_type = geobuf_pb2.Data.FromString(encoded).geometry.type
    assert geobuf_pb2.Data.Geometry.Type.Name(geometry_type) == geojson_type.upper()


def test_geobuf_labels_follow_the_appendix() -> None:
    # The appendix (and mapbox's public schema) mark these required; the library's copy relaxes them.
    assert geobuf_pb2.Data.Feature.DESCRIPTOR.fields_by_name["geometry"].is_required
    assert geobuf_pb2.Data.Geometry.DESCRIPTOR.fields_by_name["type"].is_required
    assert geobuf_pb2.Data.Value.DESCRIPTOR.fields_by_name["json_value"].type == FieldDescriptor.TYPE_STRING
    assert geobuf_pb2.Data.DESCRIPTOR.fields_by_name["precision"].default_value == 6


def test_geobuf_library_output_parses_as_our_data() -> None:
    feature = {"type": "Feature", "properties": {"product_id": "S2A_X", "cloud": 4.5},
               "geometry": {"type": "Polygon",
                            "coordinates": [[[23.3, 38.8], [24.7, 38.8], [24.7, 37.8], [23.3, 38.8]]]}}
    message = geobuf_pb2.Data.FromString(geobuf.encode(feature))
    assert message.WhichOneof("data_type") == "feature"
    assert message.feature.geometry.type == geobuf_pb2.Data.Geometry.POLYGON
    assert list(message.keys) == ["product_id", "cloud"]
    # and back: our message decodes to the same GeoJSON through the library
    assert geobuf.decode(message.SerializeToString()) == feature


def test_a_seed_client_reads_our_legacy_raster() -> None:
    """Bytes we send with the legacy encoding parse with a message that has only the seed's fields."""
    ours = segmentation_pb2.Raster(height=2, width=3, data=[111, 112, 312, 312, 523, 111],
                                   geotransform=[700000, 10, 0, 4300000, 0, -10], crs="EPSG:32634")
    seed_view = _seed_raster_class().FromString(ours.SerializeToString())
    assert (seed_view.height, seed_view.width, list(seed_view.data)) == (2, 3, [111, 112, 312, 312, 523, 111])


def _seed_raster_class():
    """A Raster message built from the appendix alone, as a seed client would have generated it."""
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    file = descriptor_pb2.FileDescriptorProto(name="seed.proto", package="seed", syntax="proto3")
    raster = file.message_type.add(name="Raster")
    for name, number, kind, label in (("height", 1, FieldDescriptor.TYPE_INT32, 1),
                                      ("width", 2, FieldDescriptor.TYPE_INT32, 1),
                                      ("data", 3, FieldDescriptor.TYPE_UINT32, 3)):
        raster.field.add(name=name, number=number, type=kind, label=label)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("seed.Raster"))


def test_generated_code_is_fresh() -> None:
    assert protogen.stale_files() == [], "run `make proto` and commit earthsignature/pb"


def test_stale_code_is_detected(tmp_path) -> None:
    import shutil

    copy = tmp_path / "pb"
    shutil.copytree(protogen.PACKAGE_OUT, copy, ignore=shutil.ignore_patterns("__pycache__"))
    target = copy / "snapearth" / "api" / "v1" / "database_pb2.py"
    target.write_text(target.read_text().replace("ListSegmentation", "ListSegmentations", 1))
    (copy / "snapearth" / "api" / "v1" / "obsolete_pb2.py").write_text("")
    stale = protogen.stale_files(copy)
    assert "snapearth/api/v1/database_pb2.py" in stale
    assert "snapearth/api/v1/obsolete_pb2.py (no longer generated)" in stale
