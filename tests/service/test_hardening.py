"""The Database service under hostile input, races and outages (real PostGIS, gRPC with mutual TLS)."""

from __future__ import annotations

import datetime as dt
import threading
import zlib

import grpc
import numpy as np
import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from earthsignature.cli import main
from earthsignature.client import EarthSignatureClient
from earthsignature.core import raster_codec
from earthsignature.pb.snapearth.api.v1 import database_pb2, segmentation_pb2
from earthsignature.samples.requests import product_request
from earthsignature.service.api.auth import TlsFiles
from earthsignature.service.api.server import MAX_STREAMS_PER_CONNECTION, SERVICE_NAME, build_server
from earthsignature.service.catalog.raster_store import RasterStore
from earthsignature.service.catalog.store_check import check_store

pytestmark = pytest.mark.postgis
INVALID = grpc.StatusCode.INVALID_ARGUMENT
E = segmentation_pb2.RasterEncoding


@pytest.fixture
def api(postgis_db, certs, tmp_path):
    tls = TlsFiles(certs.ca.cert_path, certs.server[1], certs.server[0], certs.ca.revoked_path)
    store = tmp_path / "store"
    with build_server(postgis_db, str(store), "127.0.0.1:0", tls) as server:
        def client(who: str = "internal", timeout_s: float = 30) -> EarthSignatureClient:
            key, cert = getattr(certs, who)
            return EarthSignatureClient(f"127.0.0.1:{server.port}", ca=certs.ca.cert_path, cert=cert, key=key,
                                        timeout_s=timeout_s)

        yield client, server, store


def refused(call) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as raised:
        call()
    assert len(raised.value.details()) < 400  # bounded: never the client's whole value, never a traceback
    return raised.value


def files(folder) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()}


@pytest.mark.parametrize(("field", "value"), [
    ("product_id", "../../outside"), ("product_id", ".."), ("product_id", "a/b"), ("model_name", ".."),
    ("model_version", "1/../../x"), ("product_id", "x\x00y"), ("model_name", "m" * 5000),
])
def test_identifiers_never_become_store_paths(api, tmp_path, field, value) -> None:
    client, _, store = api
    request = product_request(1)
    setattr(request, field, value)
    with client() as internal:
        error = refused(lambda: internal.create(request))
    assert error.code() == INVALID and field in error.details()
    assert not [p for p in tmp_path.rglob("*") if p.is_file() and store not in p.parents]
    assert not store.exists() or not files(store)


def test_an_id_from_the_footprint_properties_is_checked_too(api) -> None:
    client, _, store = api
    request = product_request(1)
    request.product_id = ""
    import geobuf

    feature = geobuf.decode(request.data.SerializeToString())
    feature["properties"]["product_id"] = "../escape"
    request.data.ParseFromString(geobuf.encode(feature))
    with client() as internal:
        assert refused(lambda: internal.create(request)).code() == INVALID
    assert not store.exists() or not files(store)


def test_concurrent_identical_creates_keep_one_segmentation_with_its_files(api) -> None:
    client, server, store = api
    for round_number in range(3):
        request = product_request(round_number + 1)
        answers, errors = [], []

        def send(request=request, answers=answers, errors=errors) -> None:
            try:
                with client() as internal:
                    answers.append(internal.create(request))
            except grpc.RpcError as error:
                errors.append(error.code())

        threads = [threading.Thread(target=send) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert errors == [] and len(answers) == 8
        assert sum(a.created for a in answers) == 1 and len({a.segmentation_id for a in answers}) == 1
    report = check_store(server.catalog, RasterStore(str(store)), min_age_s=0)
    assert report.clean, report.summary()  # every row has its files, no file lacks its row
    with server.catalog.engine.connect() as connection:
        assert connection.execute(sa.text("SELECT count(*) FROM segmentations")).scalar_one() == 3


def test_decoders_check_bounds_before_allocating(api) -> None:
    client, _, _ = api
    bombs = []
    request = product_request(1)
    request.data.precision = 10**9  # geobuf would compute 10 ** precision
    bombs.append(("data.precision", request))
    request = product_request(1)
    request.data.dimensions = 10**6
    bombs.append(("data.dimensions", request))
    for encoding, payload in ((E.RASTER_ENCODING_DEFLATE, zlib.compress(bytes(50_000_000))),
                              (E.RASTER_ENCODING_ZSTD, raster_codec.zstandard.ZstdCompressor().compress(
                                  bytes(50_000_000)))):
        request = product_request(1)
        request.segmentation.encoding, request.segmentation.encoded_data = encoding, payload
        bombs.append(("payload", request))  # declares 120 x 120, inflates to 50 MB
    request = product_request(1)
    request.segmentation.height = request.segmentation.width = 100_000
    bombs.append(("segmentation", request))
    with client() as internal:
        for expected, bomb in bombs:
            error = refused(lambda bomb=bomb: internal.create(bomb))
            assert error.code() == INVALID and expected in error.details(), error.details()


@pytest.mark.parametrize(("change", "expected"), [
    (lambda r: r.segmentation.geotransform.__setitem__(1, float("nan")), "finite"),
    (lambda r: [r.segmentation.geotransform.__setitem__(k, 0.0) for k in range(6)], "degenerate"),
    (lambda r: (r.ClearField("cloud_mask"), setattr(r.segmentation, "crs", "EPSG:4326")), "does not fit its crs"),
    (lambda r: setattr(r.cloud_mask, "height", 60), "cloud_mask"),
    (lambda r: setattr(r.segmentation, "crs", "not a crs"), "segmentation.crs"),
    (lambda r: setattr(r, "cloud_cover", float("inf")), "cloud_cover"),
    (lambda r: r.start_date.__setattr__("seconds", 10**15), "start_date"),
    (lambda r: setattr(r.segmentation, "encoding", 99), "encoding"),
    (lambda r: r.cloud_mask.CopyFrom(raster_codec.encode(np.full((120, 120), 0.5, np.float32), E.RASTER_ENCODING_ZSTD,
                                                         r.segmentation.geotransform, r.segmentation.crs)),
     "cloud_mask must hold integers"),
    (lambda r: r.cloud_mask.CopyFrom(raster_codec.encode(np.full((120, 120), 300, np.uint16), E.RASTER_ENCODING_ZSTD,
                                                         r.segmentation.geotransform, r.segmentation.crs)),
     "cloud_mask must hold integers in 0..255"),
    (lambda r: r.segmentation.CopyFrom(raster_codec.encode(np.full((120, 120), 2.7, np.float32),
                                                           E.RASTER_ENCODING_ZSTD, r.segmentation.geotransform,
                                                           r.segmentation.crs)), "integer class values"),
])
def test_products_that_would_break_later_queries_are_refused(api, change, expected) -> None:
    client, _, _ = api
    request = product_request(1)
    change(request)
    with client() as internal:
        error = refused(lambda: internal.create(request))
    assert error.code() == INVALID and expected in error.details(), error.details()


def test_class_values_above_255_are_kept(api) -> None:
    client, _, _ = api
    request = product_request(1, burnt_share=0.3)
    data = raster_codec.decode(request.segmentation).astype(np.uint16)
    data[data == 2] = 300
    request.segmentation.CopyFrom(raster_codec.encode(data, E.RASTER_ENCODING_ZSTD, request.segmentation.geotransform,
                                                      request.segmentation.crs))
    request.classes[2].value = 300
    with client() as internal:
        internal.create(request)
    with client("pilot") as pilot:
        (result,) = pilot.list()
    assert 300 in np.unique(result.classes) and result.legend[300].land_cover.code == 334


@pytest.mark.parametrize("kwargs", [
    {"categories": ["forest\x00"]}, {"categories": ["9" * 5000]}, {"wkt": "CIRCULARSTRING(0 0, 1 1, 2 0)"},
    {"wkt": "POLYGON((0 0, 1 1" + ", 1 1" * 20_000}, {"product_ids": ["x" * 100_000]},
    {"page_token": "W" * 100}, {"raster_encoding": 77}, {"min_category_fraction": float("nan")},
    {"max_cloud_cover": float("inf")}, {"tile_ids": ["../x"]},
])
def test_hostile_list_requests_are_invalid_arguments(api, kwargs) -> None:
    client, _, _ = api
    request = database_pb2.ListSegmentationRequest(**kwargs)
    with client("pilot") as pilot:
        assert refused(lambda: list(pilot.stub.ListSegmentation(request, timeout=30))).code() == INVALID


def test_out_of_range_timestamps_and_nested_tokens_are_invalid_arguments(api) -> None:
    client, _, _ = api
    import base64
    import json

    nested = base64.urlsafe_b64encode(("[" * 100_000 + "]" * 100_000).encode()).decode()[:250]
    deep = base64.urlsafe_b64encode(json.dumps({"t": "2021-01-01T00:00:00+00:00", "id": 10**30}).encode()).decode()
    requests = [database_pb2.ListSegmentationRequest(page_token=nested),
                database_pb2.ListSegmentationRequest(page_token=deep)]
    request = database_pb2.ListSegmentationRequest()
    request.start_date.seconds = -10**14
    requests.append(request)
    with client("pilot") as pilot:
        for request in requests:
            assert refused(lambda r=request: list(pilot.stub.ListSegmentation(r, timeout=30))).code() == INVALID
        for query in ("class:" + "9" * 5000, "cloud<1e999", "fraction>=nan", "x" * 3000):
            error = refused(lambda q=query: list(pilot.search(q)))
            assert error.code() == INVALID


def test_undecodable_bytes_are_invalid_arguments(api) -> None:
    client, _, _ = api
    garbage = b"\xff\xff\xff\xff garbage"
    with client("internal") as internal:
        create = internal.channel.unary_unary("/snapearth.api.v1.DatabaseProductService/CreateProduct")
        listing = internal.channel.unary_stream("/snapearth.api.v1.DatabaseProductService/ListSegmentation")
        for call in (lambda: create(garbage, timeout=30), lambda: list(listing(garbage, timeout=30))):
            error = refused(call)
            assert error.code() == INVALID and "not a" in error.details()


def test_calls_whose_request_never_arrives_hold_nothing_back(api) -> None:
    """A pilot opens as many calls as one connection may carry (more than the server's handler threads) and
    never sends their requests: other connections are answered at once; that connection's next call waits."""
    client, _, _ = api
    arriving = threading.Event()

    def never_sent():
        arriving.wait(60)
        yield from ()

    with client("pilot") as attacker, client("pilot", timeout_s=5) as pilot:
        stalled = attacker.channel.stream_unary(f"/{SERVICE_NAME}/ListSegmentation")
        calls = [stalled.future(never_sent()) for _ in range(MAX_STREAMS_PER_CONNECTION)]
        try:
            assert [m.product_id for m in pilot.list(n_results=1)] == []  # within its 5 s deadline
            one_more = attacker.channel.unary_stream(f"/{SERVICE_NAME}/ListSegmentation")
            error = refused(lambda: list(one_more(b"", timeout=1.0)))
            assert error.code() == grpc.StatusCode.DEADLINE_EXCEEDED  # queued behind the connection's limit
        finally:
            arriving.set()
            for call in calls:
                call.cancel()


def test_calls_ended_early_hold_nothing_back(api) -> None:
    """Pilots that read one answer of several and hang up, more often than the server has handler threads:
    the server still answers in full."""
    client, _, _ = api
    with client("internal") as internal:
        for number in range(4):
            internal.create(product_request(number))
    with client("pilot", timeout_s=10) as pilot:
        for _ in range(40):
            answers = pilot.stub.ListSegmentation(database_pb2.ListSegmentationRequest(), timeout=30)
            next(answers)
            answers.cancel()
        assert len(list(pilot.list())) == 4  # within its 10 s deadline


def test_compressed_requests_are_refused_before_they_inflate(api) -> None:
    """16 MiB of request squeezed into a few kB by gzip: refused as it arrives, never inflated."""
    client, _, _ = api
    request = database_pb2.ListSegmentationRequest(wkt=" " * (16 * 1024 * 1024))
    with client("pilot") as pilot:
        error = refused(lambda: list(pilot.stub.ListSegmentation(request, compression=grpc.Compression.Gzip,
                                                                 timeout=30)))
    assert error.code() == grpc.StatusCode.UNIMPLEMENTED and "'gzip' is disabled" in error.details()


def test_the_database_going_away_is_unavailable_then_recovers(api, postgis_cluster) -> None:
    client, _, _ = api
    with client() as internal:
        internal.create(product_request(1))
    postgis_cluster.stop()
    try:
        with client("pilot") as pilot:
            error = refused(lambda: list(pilot.list()))
            assert error.code() == grpc.StatusCode.UNAVAILABLE and "retry" in error.details()
        with client() as internal:
            assert refused(lambda: internal.create(product_request(2))).code() == grpc.StatusCode.UNAVAILABLE
    finally:
        postgis_cluster.start()
    with client("pilot") as pilot:  # the same server, no restart
        assert len(list(pilot.list())) == 1


def test_a_corrupt_stored_map_is_left_out_not_fatal(api) -> None:
    client, server, store = api
    with client() as internal:
        internal.create(product_request(1, "34SGH"))
        internal.create(product_request(2, "31TCJ", day=1))
    with server.catalog.engine.connect() as connection:
        url = connection.execute(sa.text(
            "SELECT raster_url FROM segmentations s JOIN products p ON p.id = s.product_pk WHERE p.tile_id = '31TCJ'"
        )).scalar_one()
    RasterStore(str(store)).write_bytes(url, b"not a GeoTIFF")  # damaged behind the service's back
    with client("pilot") as pilot:
        results = list(pilot.list())
    assert [r.tile_id for r in results] == ["34SGH"]


def _certificate(certs, subject: x509.Name):
    """A client certificate signed by the project CA, with a subject the CA's own commands never write."""
    ca_cert = x509.load_pem_x509_certificate(certs.ca.cert_path.read_bytes())
    ca_key = serialization.load_pem_private_key(certs.ca.files.key.read_bytes(), password=None)
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    certificate = (x509.CertificateBuilder().subject_name(subject).issuer_name(ca_cert.subject)
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
                   .sign(ca_key, hashes.SHA256()))
    pem_key = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return pem_key, certificate.public_bytes(serialization.Encoding.PEM)


@pytest.mark.parametrize(("attributes", "status"), [
    ([(NameOID.ORGANIZATIONAL_UNIT_NAME, "pilot")], grpc.StatusCode.UNAUTHENTICATED),  # no CN
    ([(NameOID.COMMON_NAME, "eve"), (NameOID.ORGANIZATIONAL_UNIT_NAME, "pilot"),
      (NameOID.ORGANIZATIONAL_UNIT_NAME, "internal")], grpc.StatusCode.UNAUTHENTICATED),  # two roles
])
def test_a_certificate_must_name_one_caller_and_one_role(api, certs, tmp_path, attributes, status) -> None:
    _, server, _ = api
    key, cert = _certificate(certs, x509.Name([x509.NameAttribute(oid, value) for oid, value in attributes]))
    (tmp_path / "k.pem").write_bytes(key)
    (tmp_path / "c.pem").write_bytes(cert)
    with EarthSignatureClient(f"127.0.0.1:{server.port}", ca=certs.ca.cert_path, cert=tmp_path / "c.pem",
                              key=tmp_path / "k.pem", timeout_s=30) as caller:
        assert refused(lambda: caller.create(product_request(1))).code() == status


@pytest.mark.parametrize("damage", ["delete", "malformed"])
def test_revocation_fails_closed(api, certs, damage) -> None:
    client, _, _ = api
    path = certs.ca.revoked_path
    original = path.read_text()
    path.unlink() if damage == "delete" else path.write_text("{not json")
    try:
        for who in ("pilot", "internal"):
            with client(who) as caller:
                error = refused(lambda caller=caller: list(caller.list()))
            assert error.code() == grpc.StatusCode.UNAVAILABLE and "revocation" in error.details()
    finally:
        path.write_text(original)
    with client("pilot") as pilot:
        assert list(pilot.list()) == []


def test_store_check_finds_and_repairs_orphans_and_missing_files(api, postgis_db, tmp_path) -> None:
    client, server, store = api
    with client() as internal:
        internal.create(product_request(1, "34SGH"))
        internal.create(product_request(2, "31TCJ", day=1))
    orphan = store / "S2X_killed" / "clc" / "1" / "abc" / "classes.tif"
    orphan.parent.mkdir(parents=True)
    orphan.write_bytes(b"half a COG")
    (store / ".quicklook.png.1234.partial").write_bytes(b"x")
    with server.catalog.engine.connect() as connection:
        gone = connection.execute(sa.text("SELECT raster_url FROM segmentations LIMIT 1")).scalar_one()
    RasterStore(str(store)).delete(gone)
    overrides = [f"db.url={postgis_db}", f"api.store_url={store}"]
    result = CliRunner().invoke(main, ["store", "check", "--min-age", "0", *overrides])
    assert result.exit_code == 1 and "1 orphaned, 1 partial, 1 missing" in result.output
    assert CliRunner().invoke(main, ["store", "check", "--repair", "--min-age", "0", *overrides]).exit_code == 0
    assert not orphan.exists()
    result = CliRunner().invoke(main, ["store", "check", "--min-age", "0", *overrides])
    assert result.exit_code == 0, result.output
    with client("pilot") as pilot:
        assert len(list(pilot.list())) == 1  # the segmentation whose map was lost is gone, the other answers


def test_a_resend_repairs_a_segmentation_whose_map_was_lost(api) -> None:
    client, server, store = api
    with client() as internal:
        first = internal.create(product_request(1))
    with server.catalog.engine.connect() as connection:
        url = connection.execute(sa.text("SELECT raster_url FROM segmentations")).scalar_one()
    RasterStore(str(store)).delete(url)
    with client() as internal:
        again = internal.create(product_request(1))
    assert first.created and again.created and again.segmentation_id != first.segmentation_id
    with client("pilot") as pilot:
        (result,) = pilot.list()
    assert result.classes is not None


def test_a_query_may_span_lines_but_not_hold_other_control_characters(api) -> None:
    client, _, _ = api
    with client() as internal:
        internal.create(product_request(1, burnt_share=0.3))
    with client("pilot") as pilot:
        assert len(list(pilot.search('class:"burnt areas"\ttile:34SGH\nafter:2021-07-01'))) == 1
        assert refused(lambda: list(pilot.search('class:"burnt areas"\x00'))).code() == INVALID
