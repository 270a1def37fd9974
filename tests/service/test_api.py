"""The Database service end to end: real PostGIS, real gRPC server with real TLS on 127.0.0.1."""

from __future__ import annotations

import re
from pathlib import Path

import grpc
import numpy as np
import pytest
import rasterio
import sqlalchemy as sa
from grpc_health.v1 import health_pb2, health_pb2_grpc
from shapely.geometry import box, shape

from earthsignature.client import EarthSignatureClient, Encoding
from earthsignature.core import raster_codec
from earthsignature.core.tiling_grid import tile
from earthsignature.pb.snapearth.api.v1 import database_pb2
from earthsignature.samples.requests import class_map, product_request
from earthsignature.service.api.auth import TlsFiles
from earthsignature.service.api.server import build_server

pytestmark = pytest.mark.postgis


@pytest.fixture
def api(postgis_db, certs, tmp_path):
    tls = TlsFiles(certs.ca.cert_path, certs.server[1], certs.server[0], certs.ca.revoked_path)
    with build_server(postgis_db, str(tmp_path / "store"), "127.0.0.1:0", tls,
                      max_request_bytes=4 * 1024 * 1024) as server:
        address, catalog = f"127.0.0.1:{server.port}", server.catalog

        def client(who: str = "pilot", ca=None) -> EarthSignatureClient:
            key, cert = getattr(certs, who)
            return EarthSignatureClient(address, ca=ca or certs.ca.cert_path, cert=cert, key=key, timeout_s=30)

        yield client, catalog, tmp_path / "store", address


def seed(client) -> None:
    with client("internal") as internal:
        internal.create(product_request(1, "34SGH", day=0, burnt_share=0.3, cloud=5))
        internal.create(product_request(2, "31TCJ", day=1, cloud=40))
        internal.create(product_request(3, "33UUP", day=2, model="burnt-unet", cloud=10))


def tiles(results) -> list[str]:
    return [r.tile_id for r in results]


def test_create_then_list_by_every_filter(api) -> None:
    client, _, _, _ = api
    seed(client)
    geometry = tile("34SGH")
    inside = box(*[v + d for v, d in zip(shape({"type": "Polygon", "coordinates": [
        geometry.footprint_lonlat(1200, 1200)]}).bounds, (0.001, 0.001, -0.001, -0.001), strict=True)])
    with client() as pilot:
        assert tiles(pilot.list()) == ["33UUP", "31TCJ", "34SGH"]
        assert tiles(pilot.list(wkt=inside.wkt)) == ["34SGH"]
        assert tiles(pilot.list(start="2021-08-02T00:00:00", end="2021-08-02T23:59:59")) == ["31TCJ"]
        first = next(pilot.list(wkt=inside.wkt))
        assert tiles(pilot.list(product_ids=[first.product_id])) == ["34SGH"]
        assert tiles(pilot.list(categories=["Burnt areas"])) == ["34SGH"]
        assert tiles(pilot.list(categories=["334"], min_category_fraction=0.5)) == []
        assert tiles(pilot.list(tile_ids=["T31TCJ"])) == ["31TCJ"]
        assert tiles(pilot.search("burnt")) == ["33UUP", "34SGH"]  # a class name, a model name
        assert tiles(pilot.search('class:"burnt areas" cloud<20')) == ["34SGH"]
        assert tiles(pilot.search("after:2021-08-02 before:2021-08-02T23:59 forests")) == ["31TCJ"]


def test_responses_carry_georeferenced_maps(api) -> None:
    client, _, _, _ = api
    seed(client)
    with client() as pilot:
        result = next(pilot.list(product_ids=[product_request(1).product_id]))
    expected = class_map(120, 1, 0.3)
    assert np.array_equal(result.classes, expected)
    geometry = tile("34SGH")
    assert result.transform.c == geometry.ulx and result.transform.f == geometry.uly and result.crs == "EPSG:32634"
    assert result.start.isoformat() == "2021-08-01T09:21:00+00:00" and result.model == "clc-unet:1"
    clear = expected[result.cloud_mask == 0]  # shares count clear pixels only: clouds are not land cover
    assert {v: (s.pixel_count, round(s.fraction, 3)) for v, s in result.legend.items()} == {
        v: (int((clear == v).sum()), round(float((clear == v).mean()), 3)) for v in np.unique(expected)}
    assert (result.legend[2].land_cover.code, result.legend[2].land_cover.name) == (334, "Burnt areas")
    assert result.cloud_mask.sum() == 10 * 120 and result.footprint["type"] == "MultiPolygon"


def test_area_queries_clip_and_downsample(api) -> None:
    client, _, _, _ = api
    seed(client)
    geometry = tile("34SGH")
    west_half = shape({"type": "Polygon", "coordinates": [geometry.footprint_lonlat(600, 1200)]})
    with client() as pilot:
        clipped = next(pilot.list(wkt=west_half.wkt, product_ids=[product_request(1).product_id]))
        small = next(pilot.list(product_ids=[product_request(1).product_id], max_pixels=60 * 60))
    # the west half (60 px) plus at most a few pixels of margin where the lon/lat box meets the UTM grid
    assert 60 <= clipped.classes.shape[1] <= 64 and clipped.classes.shape[0] >= 118
    assert small.classes.shape == (60, 60) and small.transform.a == pytest.approx(20.0)


def test_legacy_and_polygon_encodings(api) -> None:
    client, _, _, _ = api
    seed(client)
    product_id = product_request(1).product_id
    with client() as pilot:
        compressed = next(pilot.list(product_ids=[product_id]))
        legacy = next(pilot.list(product_ids=[product_id], encoding=Encoding.RASTER_ENCODING_LEGACY_UINT32))
        polygons = next(pilot.list(product_ids=[product_id], encoding=Encoding.RASTER_ENCODING_GEOBUF_POLYGONS))
    assert np.array_equal(legacy.classes, compressed.classes)
    assert legacy.wire_bytes > 20 * compressed.wire_bytes  # the seed's form: a varint per pixel
    names = {f["properties"]["name"] for f in polygons.polygons["features"]}
    assert names == {"Coniferous forest", "Non-irrigated arable land", "Burnt areas", "Water bodies"}


def test_paging_and_idempotent_create(api) -> None:
    client, catalog, _, _ = api
    with client("internal") as internal:
        for number in range(5):
            assert internal.create(product_request(number, day=number)).created
        again = internal.create(product_request(2, day=2))
    assert not again.created
    with catalog.engine.connect() as connection:
        assert connection.execute(sa.text("SELECT count(*) FROM segmentations")).scalar_one() == 5
    with client() as pilot:
        seen, token = [], ""
        while True:
            page = list(pilot.list(n_results=2, page_token=token))
            if not page:
                break
            seen += [r.product_id for r in page]
            token = page[-1].page_token
    assert len(seen) == len(set(seen)) == 5


@pytest.mark.parametrize(("kwargs", "status", "message"), [
    ({"wkt": "POLYGON((1 2, 3"}, grpc.StatusCode.INVALID_ARGUMENT, "wkt is not Well-Known Text"),
    ({"wkt": "POLYGON((500 0, 501 0, 501 1, 500 0))"}, grpc.StatusCode.INVALID_ARGUMENT, "EPSG:4326"),
    ({"start": "2021-09-01", "end": "2021-08-01"}, grpc.StatusCode.INVALID_ARGUMENT, "is after end_date"),
    ({"categories": ["Bananas"]}, grpc.StatusCode.INVALID_ARGUMENT, "unknown category 'Bananas'"),
    ({"n_results": 101}, grpc.StatusCode.INVALID_ARGUMENT, r"n_results must be in 1\.\.100"),
    ({"page_token": "forged"}, grpc.StatusCode.INVALID_ARGUMENT, "not one this server issued"),
])
def test_bad_list_requests(api, kwargs, status, message) -> None:
    client, _, _, _ = api
    seed(client)
    with client() as pilot, pytest.raises(grpc.RpcError) as raised:
        list(pilot.list(**kwargs))
    assert raised.value.code() == status
    assert re.search(message, raised.value.details())


def test_bad_text_query_names_the_position(api) -> None:
    client, _, _, _ = api
    with client() as pilot, pytest.raises(grpc.RpcError) as raised:
        list(pilot.search("forest cloud>20"))
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "query error at position 12" in raised.value.details()


def test_bad_and_oversize_creates(api) -> None:
    client, _, store, _ = api
    request = product_request(1)
    del request.classes[2:]  # the map holds values 2 and 3 that the legend no longer names
    request.segmentation.CopyFrom(product_request(1, burnt_share=0.3).segmentation)
    with client("internal") as internal:
        with pytest.raises(grpc.RpcError) as raised:
            internal.create(request)
        assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "no class in the legend" in raised.value.details()
        assert not [p for p in store.rglob("*") if p.is_file()]
        # the server takes requests up to 4 MB here (256 MB by default)
        assert internal.create(product_request(1, size=1200, encoding=Encoding.RASTER_ENCODING_RAW)).created
        with pytest.raises(grpc.RpcError) as raised:
            internal.create(product_request(2, size=2400, encoding=Encoding.RASTER_ENCODING_RAW))  # 5.8 MB
        assert raised.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_a_failure_half_way_leaves_nothing(api, monkeypatch) -> None:
    client, catalog, store, _ = api

    def broken_add(*args, **kwargs):
        raise RuntimeError("database went away")

    monkeypatch.setattr(catalog, "add", broken_add)
    with client("internal") as internal, pytest.raises(grpc.RpcError) as raised:
        internal.create(product_request(1))
    assert raised.value.code() == grpc.StatusCode.INTERNAL and "nothing was kept" in raised.value.details()
    assert not [p for p in store.rglob("*") if p.is_file()]  # the COGs written before the failure are gone
    with catalog.engine.connect() as connection:
        assert connection.execute(sa.text("SELECT count(*) FROM products")).scalar_one() == 0


def test_roles_certificates_and_revocation(api, certs) -> None:
    client, _, _, address = api
    with client("pilot") as pilot, pytest.raises(grpc.RpcError) as raised:
        pilot.create(product_request(1))
    assert raised.value.code() == grpc.StatusCode.PERMISSION_DENIED and "internal role" in raised.value.details()
    with client("pilot") as pilot, pytest.raises(grpc.RpcError) as raised:  # the role first, whatever the request
        pilot.stub.CreateProduct(database_pb2.CreateProductRequest(), timeout=30)
    assert raised.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with client("foreign", ca=certs.ca.cert_path) as mallory, pytest.raises(grpc.RpcError) as raised:
        list(mallory.list())  # a certificate from another CA: refused in the handshake
    assert raised.value.code() == grpc.StatusCode.UNAVAILABLE
    channel = grpc.secure_channel(address, grpc.ssl_channel_credentials(certs.ca.cert_path.read_bytes()))
    with pytest.raises(grpc.RpcError) as raised:  # no client certificate at all
        health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
    assert raised.value.code() == grpc.StatusCode.UNAVAILABLE
    channel.close()
    from cryptography import x509

    serial = x509.load_pem_x509_certificate(certs.pilot[1].read_bytes()).serial_number
    certs.ca.revoke(serial)
    try:
        with client("pilot") as pilot, pytest.raises(grpc.RpcError) as raised:
            list(pilot.list())
        assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED and f"{serial:X}" in raised.value.details()
    finally:
        certs.ca.revoked_path.write_text("[]\n")


def test_health_and_reflection(api, certs) -> None:
    _, _, _, address = api
    key, cert = certs.pilot
    credentials = grpc.ssl_channel_credentials(certs.ca.cert_path.read_bytes(), key.read_bytes(), cert.read_bytes())
    with grpc.secure_channel(address, credentials) as channel:
        status = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service="snapearth.api.v1.DatabaseProductService"), timeout=10)
        assert status.status == health_pb2.HealthCheckResponse.SERVING
        from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        answers = stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]))
        services = {s.name for s in next(answers).list_services_response.service}
    assert "snapearth.api.v1.DatabaseProductService" in services and "grpc.health.v1.Health" in services


def test_a_class_absent_from_every_map_is_known_but_matches_nothing(api) -> None:
    client, _, _, _ = api
    with client("internal") as internal:
        internal.create(product_request(1, burnt_share=0.0))  # the legend names Burnt areas; no pixel is burnt
    with client() as pilot:
        assert list(pilot.list(categories=["Burnt areas"])) == []  # a known category, no match: not an error
        assert len(list(pilot.list(categories=["Coniferous forest"]))) == 1
        assert list(pilot.search("burnt")) == []  # full text indexes the classes present only
        (result,) = list(pilot.list())
    assert result.legend[2].land_cover.name == "Burnt areas" and result.legend[2].fraction == 0.0


def test_a_footprint_across_the_antimeridian_is_split_and_found_from_either_side(api) -> None:
    client, _, _, _ = api
    request = product_request(3, "01XDA", size=240)  # its ring jumps from 179.94 to -179.99 degrees
    with client("internal") as internal:
        internal.create(request)
    with client() as pilot:
        for lon in (179.95, -179.99):
            area = box(lon - 0.005, 72.955, lon + 0.005, 72.965).wkt
            found = list(pilot.list(wkt=area))
            assert [r.tile_id for r in found] == ["01XDA"], lon
            assert shape(found[0].footprint).geom_type == "MultiPolygon"
        assert not list(pilot.list(wkt=box(0, 72.955, 1, 72.965).wkt))  # not a band around the Earth


def test_the_model_card_travels_with_every_map(api) -> None:
    from earthsignature.core import raster_codec
    from earthsignature.core.manifest import ModelCard

    client, _, _, _ = api
    card = ModelCard("bigearthnet (clc_level3)", "synthetic", "bigearthnet (clc_level3) test split",
                     {"miou": 0.42, "oa": 0.8})
    request = product_request(4, "34SGH")
    request.model_card.CopyFrom(raster_codec.model_card_message(card))
    with client("internal") as internal:
        internal.create(request)
        bad = product_request(5, "31TCJ")
        bad.model_card.data_kind = "imaginary"
        with pytest.raises(grpc.RpcError) as refused:
            internal.create(bad)
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "model_card.data_kind" in refused.value.details()
        bad.model_card.data_kind, bad.model_card.test_metrics["miou"] = "real", float("nan")
        with pytest.raises(grpc.RpcError, match=r"model_card.test_metrics\[miou\]"):
            internal.create(bad)
    with client() as pilot:
        (result,) = list(pilot.list(product_ids=[request.product_id]))
    assert result.model_card == card and "[model trained on synthetic data]" in result.summary()
    assert "synthetic data, not meaningful on real images" in result.model_card.line()


def test_stored_class_maps_carry_their_legend_and_confidence_keeps_zero_for_no_data(api) -> None:
    import xml.etree.ElementTree as ET

    import rasterio

    from earthsignature.core import raster_codec
    from earthsignature.core.cog import legend_sidecars
    from earthsignature.pb.snapearth.api.v1 import segmentation_pb2

    client, catalog, _, _ = api
    request = product_request(1, burnt_share=0.3)
    earlier = np.full((120, 120), 200, dtype=np.uint8)  # the earlier confidence encoding: 0..254, 255 no data
    earlier[:5], earlier[5:10] = 255, 254
    request.confidence.CopyFrom(raster_codec.encode(earlier, segmentation_pb2.RASTER_ENCODING_ZSTD,
                                                    list(request.segmentation.geotransform), request.segmentation.crs,
                                                    255))
    with client("internal") as internal:
        internal.create(request)
    row = catalog.find_segmentation(request.product_id, "clc-unet", "1")
    names = {c.value: c.name for c in request.classes}
    with rasterio.open(row.raster_url) as classes:
        assert "class" in classes.descriptions[0]
        assert {int(k.removeprefix("CLASS_")): v for k, v in classes.tags(1).items() if k.startswith("CLASS_")} \
            == names
    aux, style = legend_sidecars(row.raster_url)
    band = ET.parse(aux).getroot().find("PAMRasterBand")
    categories = [c.text or "" for c in band.find("CategoryNames")]
    assert {v: categories[v] for v in names} == names and band.find("GDALRasterAttributeTable") is not None
    labels = {int(e.get("value")): e.get("label") for e in ET.parse(style).getroot().iter("paletteEntry")}
    assert labels == names
    with rasterio.open(row.confidence_url) as confidence:
        stored = confidence.read(1)
        assert confidence.nodata == 0
    assert (stored[:5] == 0).all() and (stored[5:10] == 255).all() and (stored[10:] == 201).all()


def _commit_then_lose_the_answer(catalog, monkeypatch, database_down_after: bool, landed: bool = True) -> None:
    """The connection breaks during the commit, before its answer arrives (as when PostgreSQL stops with
    ``-m immediate`` mid-commit), after the commit reached the database or (``landed`` False) before;
    optionally the database stays unreachable afterwards."""
    import psycopg

    add, find = catalog.add, catalog.committed_url

    def add_then_break(*args, **kwargs):
        if landed:
            add(*args, **kwargs)
        raise sa.exc.OperationalError("COMMIT", {}, psycopg.OperationalError("server closed the connection"))

    def unreachable(*args, **kwargs):
        raise sa.exc.OperationalError("SELECT", {}, psycopg.OperationalError("connection refused"))

    monkeypatch.setattr(catalog, "add", add_then_break)
    monkeypatch.setattr(catalog, "committed_url", unreachable if database_down_after else find)
    monkeypatch.setattr("earthsignature.service.catalog.ingest.OUTCOME_CHECKS", (0.0, 0.0))


def test_a_lost_commit_answer_keeps_the_committed_files(api, monkeypatch) -> None:
    """The server asks the database what landed before deleting anything: the row is there, so are its files."""
    client, catalog, _, _ = api
    _commit_then_lose_the_answer(catalog, monkeypatch, database_down_after=False)
    with client("internal") as internal:
        answer = internal.create(product_request(1))
    assert answer.created
    monkeypatch.undo()
    with client("pilot") as pilot:
        (found,) = list(pilot.list(max_pixels=64))
    assert found.classes.size > 0  # its map was not deleted
    with catalog.engine.connect() as connection:
        urls = connection.execute(sa.text("SELECT raster_url, confidence_url FROM segmentations")).one()
    assert all(Path(url).is_file() for url in urls if url)


def test_an_unknown_commit_outcome_is_unavailable_and_keeps_everything(api, certs, monkeypatch) -> None:
    """UNAVAILABLE ("outcome unknown, re-send"), every file kept; the re-send (the client's own retry does it)
    finds the committed row."""
    client, catalog, store, address = api
    _commit_then_lose_the_answer(catalog, monkeypatch, database_down_after=True)
    key, cert = certs.internal
    with EarthSignatureClient(address, ca=certs.ca.cert_path, cert=cert, key=key, retries=0) as internal, \
            pytest.raises(grpc.RpcError) as raised:
        internal.create(product_request(1))
    assert raised.value.code() == grpc.StatusCode.UNAVAILABLE and "outcome unknown" in raised.value.details()
    kept = {p for p in store.rglob("*") if p.is_file()}
    assert any(p.name == "classes.tif" for p in kept)
    monkeypatch.undo()
    with client("internal") as internal:  # the re-send finds the committed row: nothing is stored twice
        again = internal.create(product_request(1))
    assert not again.created
    assert {p for p in store.rglob("*") if p.is_file()} == kept


def test_a_failed_ingestion_leaves_no_empty_folder(api, monkeypatch) -> None:
    client, catalog, store, _ = api
    monkeypatch.setattr(catalog, "add", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("refused")))
    with client("internal") as internal, pytest.raises(grpc.RpcError):
        internal.create(product_request(1))
    assert not list(store.rglob("*"))  # neither files nor the folders made for them


def test_an_unknown_outcome_that_did_not_land_is_settled_by_the_next_ingestion(api, certs, monkeypatch) -> None:
    """Files kept for an unknown outcome are removed once the database can tell that their rows did not land:
    the re-send stores the product once, and no file of the lost attempt is left over."""
    client, catalog, store, address = api
    _commit_then_lose_the_answer(catalog, monkeypatch, database_down_after=True, landed=False)
    key, cert = certs.internal
    with EarthSignatureClient(address, ca=certs.ca.cert_path, cert=cert, key=key, retries=0) as internal, \
            pytest.raises(grpc.RpcError) as raised:
        internal.create(product_request(1))
    assert raised.value.code() == grpc.StatusCode.UNAVAILABLE
    first_attempt = {p for p in store.rglob("*") if p.is_file()}
    assert first_attempt
    monkeypatch.undo()
    with client("internal") as internal:
        assert internal.create(product_request(1)).created
    kept = {p for p in store.rglob("*") if p.is_file()}
    assert not kept & first_attempt and kept  # the lost attempt's files are gone, the stored ones are there
    with catalog.engine.connect() as connection:
        urls = connection.execute(sa.text("SELECT raster_url, confidence_url FROM segmentations")).one()
    assert {Path(u) for u in urls if u} <= kept


@pytest.mark.parametrize("nodata", [255, 0])
def test_a_map_with_a_no_data_edge_keeps_its_colours(api, nodata) -> None:
    """The no-data value is not a class: a class map with a no-data edge is stored as Byte with its colour
    table (it was widened to 16 bits, and lost its colours, when no-data was 255)."""
    import rasterio

    client, catalog, _, _ = api
    request = product_request(1)
    classes = raster_codec.decode(request.segmentation) + (1 if nodata == 0 else 0)  # 0 free for no data
    classes[:, :7] = nodata
    segmentation = raster_codec.encode(classes, Encoding.RASTER_ENCODING_ZSTD, list(request.segmentation.geotransform),
                                       request.segmentation.crs, nodata)
    request.segmentation.CopyFrom(segmentation)
    if nodata == 0:
        for cls in request.classes:
            cls.value += 1
    with client("internal") as internal:
        internal.create(request)
    with catalog.engine.connect() as connection:
        url = connection.execute(sa.text("SELECT raster_url FROM segmentations")).scalar_one()
    with rasterio.open(url) as stored:
        assert stored.dtypes[0] == "uint8" and stored.nodata == 255
        colours = stored.colormap(1)
        data = stored.read(1)
    assert (data[:, :7] == 255).all()
    for cls in request.classes:
        if (data == cls.value).any():
            assert colours[cls.value][:3] == raster_codec.unpack_rgb(cls.color)


def test_an_item_across_the_antimeridian_has_its_bbox_west_of_east() -> None:
    """RFC 7946 / STAC: a bbox across the antimeridian has west > east (not -180..180, a band round the Earth)."""
    from shapely.geometry import MultiPolygon

    from earthsignature.service.api.stac_items import bbox

    across = MultiPolygon([box(179.5, 65.6, 180, 66.7), box(-180, 65.7, -179.4, 66.6)])
    assert bbox(across) == [179.5, 65.6, -179.4, 66.7]
    apart = MultiPolygon([box(10, 40, 11, 41), box(12, 40, 13, 41)])
    assert bbox(apart) == [10, 40, 13, 41]
    assert bbox(box(179, 1, 180, 2)) == [179, 1, 180, 2]


def test_pixels_outside_the_area_are_no_data_and_a_map_inside_it_is_whole(api) -> None:
    client, _, _, _ = api
    seed(client)
    (west, north), _, (east, south), *_ = tile("34SGH").footprint_lonlat(1200, 1200)
    product = [product_request(1).product_id]
    triangle = f"POLYGON(({west} {north}, {east} {north}, {west} {south}, {west} {north}))"
    region = box(west - 1, south - 1, east + 1, north + 1).wkt
    with client() as pilot:
        cut = next(pilot.list(wkt=triangle, product_ids=product))
        whole = next(pilot.list(wkt=region, product_ids=product))
    assert cut.nodata is not None and (cut.classes[-5:, -5:] == cut.nodata).all()  # the corner outside
    assert (cut.classes[:5, :5] != cut.nodata).all()
    assert whole.classes.shape == (120, 120) and not (whole.classes == whole.nodata).any()


def test_every_cog_a_pilot_gets_is_valid_with_its_legend_and_class_overviews(api, tmp_path) -> None:
    """The stored COGs, a gRPC answer's COG and the client's saved COG: rio-cogeo's validator passes; a class
    map's overviews hold class values only (nearest neighbour, never averaged), with its colour table and
    class names, on a map large enough to have overviews and with a no-data edge."""
    from rio_cogeo.cogeo import cog_validate

    client, _, store, _ = api
    request = product_request(7, "34SGH", size=1100, burnt_share=0.3)
    classes = raster_codec.decode(request.segmentation)
    classes[:, 1000:] = 255  # a no-data edge: the map stays Byte, with its colours
    request.segmentation.CopyFrom(raster_codec.encode(classes, Encoding.RASTER_ENCODING_ZSTD,
                                                      list(request.segmentation.geotransform),
                                                      request.segmentation.crs, 255))
    with client("internal") as internal:
        internal.create(request)
    with client() as pilot:
        message = next(pilot.list_messages(product_ids=[request.product_id], encoding=Encoding.RASTER_ENCODING_COG,
                                           max_pixels=2_000_000))
        result = next(pilot.list(product_ids=[request.product_id], max_pixels=2_000_000))
    answered = tmp_path / "answer.tif"
    answered.write_bytes(message.segmentation.encoded_data)
    saved = result.save_geotiff(tmp_path / "saved.tif")
    stored = sorted(Path(store).rglob("*.tif"))
    assert {p.name for p in stored} >= {"classes.tif", "observed.tif", "cloud_mask.tif"}
    legend = {c.value: c for c in request.classes}
    for path in [*stored, answered, saved]:
        valid, errors, _ = cog_validate(str(path))
        assert valid, (path.name, errors)
    for path in (p for p in [*stored, answered, saved] if p.name != "cloud_mask.tif" and "observed" not in p.name):
        with rasterio.open(path) as dataset:
            assert dataset.dtypes[0] == "uint8" and dataset.overviews(1), path.name
            overview = dataset.read(1, out_shape=(dataset.height // 4, dataset.width // 4))
            assert set(np.unique(overview)) <= {*legend, 255}, path.name  # never an averaged class
            colours = dataset.colormap(1)
            assert all(colours[v][:3] == raster_codec.unpack_rgb(c.color) for v, c in legend.items()), path.name
            assert dataset.tags(1)["CLASS_2"] == "Burnt areas", path.name
