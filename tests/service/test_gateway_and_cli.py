"""The HTTP bindings and the certificate exchange, against a real server on 127.0.0.1."""

from __future__ import annotations

import json
import socket
import ssl
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from click.testing import CliRunner

from earthsignature.cli import main
from earthsignature.client import EarthSignatureClient
from earthsignature.core.product import gdal_path
from earthsignature.samples.requests import product_request
from earthsignature.service.api.core import INSECURE_CALLER

from .api_fixtures import client_of, server_with_http_app

pytestmark = pytest.mark.postgis


@pytest.fixture
def running(postgis_db, tmp_path):
    with server_with_http_app(postgis_db, tmp_path) as (certs, server, gateway):
        with client_of(certs, server) as client:
            with_quicklook = product_request(1, "34SGH", burnt_share=0.3)
            with_quicklook.quicklook_png = QUICKLOOK
            client.create(with_quicklook)
            client.create(product_request(2, "31TCJ", day=1))
        yield certs, server, gateway


QUICKLOOK = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64  # what the monitor sent, byte for byte


def _fetch(url: str, certs, who: str | None = "pilot") -> tuple[int, bytes]:
    """(status, body) of a GET presenting ``who``'s certificate (None: none)."""
    context = ssl.create_default_context(cafile=str(certs.ca.cert_path))
    if who:
        key, cert = getattr(certs, who)
        context.load_cert_chain(cert, key)
    try:
        with urllib.request.urlopen(url, context=context, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def test_quicklooks_are_links_a_pilot_can_open(running) -> None:
    certs, server, gateway = running
    key, cert = certs.pilot
    with EarthSignatureClient(f"127.0.0.1:{server.port}", ca=certs.ca.cert_path, cert=cert, key=key) as client:
        messages = {m.tile_id: m for m in client.list_messages()}
    link = messages["34SGH"].quicklook
    assert link.startswith(f"https://127.0.0.1:{gateway.port}/v1/maps/") and "/signed/" in link
    assert link.endswith("/thumbnail.png")  # among the map's files, signed for the pilot
    assert messages["31TCJ"].quicklook == ""  # published without one
    assert _fetch(link, certs, who=None) == (200, QUICKLOOK)  # opens without a certificate, like the maps
    product_route = f"https://127.0.0.1:{gateway.port}/v1/products/{messages['34SGH'].product_id}/quicklook.png"
    assert _fetch(product_route, certs) == (200, QUICKLOOK)  # the product's route, with the certificate
    assert _fetch(product_route, certs, who=None)[0] == 401
    status, body = _fetch(product_route.replace("34SGH", "35VLG"), certs)
    assert status == 404 and json.loads(body)["code"] == 5
    status, body = _fetch(f"https://127.0.0.1:{gateway.port}/v1/products/..%2F..%2Fetc/quicklook.png", certs)
    assert status == 404 and json.loads(body)["code"] == 5  # an identifier, never a path
    status, body = _fetch(f"https://127.0.0.1:{gateway.port}/v1/products/no%20such%3Bid/quicklook.png", certs)
    assert status == 400 and json.loads(body)["code"] == 3


def _get(gateway, certs, path: str, who: str = "pilot", method: str = "GET", timeout: float = 10
         ) -> tuple[int, list[dict]]:
    context = ssl.create_default_context(cafile=str(certs.ca.cert_path))
    if who:
        key, cert = getattr(certs, who)
        context.load_cert_chain(cert, key)
    request = urllib.request.Request(f"https://127.0.0.1:{gateway.port}{path}", method=method)
    try:
        with urllib.request.urlopen(request, context=context, timeout=timeout) as response:
            return response.status, [json.loads(line) for line in response.read().splitlines()]
    except urllib.error.HTTPError as error:
        return error.code, [json.loads(error.read())]


def test_http_bindings_answer_like_grpc_gateway(running) -> None:
    certs, _, gateway = running
    status, lines = _get(gateway, certs, "/v1/segmentation:list?categories=Burnt%20areas")
    assert status == 200 and [line["result"]["tileId"] for line in lines] == ["34SGH"]  # camelCase, as grpc-gateway
    result = lines[0]["result"]
    assert result["segmentation"]["crs"] == "EPSG:32634"
    assert result["segmentation"]["encoding"] == "RASTER_ENCODING_ZSTD"
    assert {c["name"] for c in result["classes"]} >= {"Burnt areas", "Coniferous forest"}
    for query in ("query=tile:31TCJ&n_results=5", "query=tile:31TCJ&nResults=5"):  # snake_case or camelCase
        status, lines = _get(gateway, certs, f"/v1/segmentation:search?{query}")
        assert status == 200 and [line["result"]["tileId"] for line in lines] == ["31TCJ"]
    status, lines = _get(gateway, certs, "/v1/segmentation:list?startDate=2021-08-02T00:00:00Z")
    assert status == 200 and len(lines) == 1
    assert _get(gateway, certs, "/healthz") == (200, [{"status": "SERVING"}])


@pytest.mark.parametrize(("path", "method", "status", "code"), [
    ("/v1/segmentation:list?n_results=1000", "GET", 400, 3),     # INVALID_ARGUMENT
    ("/v1/segmentation:search?query=cloud>5", "GET", 400, 3),
    ("/v1/segmentation:list?colour=red", "GET", 400, 3),
    ("/v1/products", "GET", 404, 5),                               # NOT_FOUND
    ("/v1/segmentation:list", "POST", 405, 12),                    # UNIMPLEMENTED
    ("/v1/segmentation:list", "DELETE", 405, 12),
])
def test_http_errors_are_google_rpc_status(running, path, method, status, code) -> None:
    certs, _, gateway = running
    got, (body,) = _get(gateway, certs, path, method=method)
    assert got == status and body["code"] == code and body["message"] and body["details"] == []


@pytest.mark.parametrize("path", ["/v1/segmentation:list", "/stac/", "/map", "/healthz", "/v1/statistics:area",
                                  "/v1/maps/clc-unet/any-clc-unet-v1/classes.tif",
                                  "/v1/maps/clc-unet/any-clc-unet-v1/tiles/0/0/0.png"])
def test_http_refuses_callers_without_a_certificate(running, path) -> None:
    """The handshake asks for a certificate without requiring one (a signed map link opens without): every
    route answers a caller without one 401, a map file in a made-up signed folder 403."""
    certs, _, gateway = running
    status, lines = _get(gateway, certs, path, who="")
    assert (status, lines[0]["code"]) == (401, 16) and "client certificate" in lines[0]["message"]
    if path.startswith("/v1/maps/"):
        folder, _, name = path.partition("-v1/")
        status, lines = _get(gateway, certs, f"{folder}-v1/signed/9999999999/k/x/00/{name}", who="")
        assert (status, lines[0]["code"]) == (403, 7)


def test_idle_connections_block_nobody(running) -> None:
    """Raw TCP connections that never start TLS (or stop half-way) while pilots get their answers."""
    certs, _, gateway = running
    idle = [socket.create_connection(("127.0.0.1", gateway.port)) for _ in range(8)]
    half = socket.create_connection(("127.0.0.1", gateway.port))
    half.sendall(b"\x16\x03\x01\x00\xff")  # the start of a TLS ClientHello, and then nothing
    try:
        for _ in range(3):
            started = time.monotonic()
            status, lines = _get(gateway, certs, "/v1/segmentation:list", timeout=5)
            assert status == 200 and len(lines) == 2 and time.monotonic() - started < 5
    finally:
        for connection in [*idle, half]:
            connection.close()


def test_an_error_after_the_first_result_is_sent_in_band(running, monkeypatch) -> None:
    from earthsignature.service.api import core
    from earthsignature.service.api.errors import Unavailable

    certs, _, gateway = running
    calls = []
    original = core.DatabaseCore._answer

    def failing_second(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise Unavailable("the raster store went away")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(core.DatabaseCore, "_answer", failing_second)
    status, lines = _get(gateway, certs, "/v1/segmentation:list")
    assert status == 200 and "result" in lines[0]
    assert lines[-1] == {"error": {"code": 14, "message": "the raster store went away", "details": []}}


def test_certificate_exchange_through_the_cli(running, tmp_path: Path) -> None:
    certs, server, _ = running
    runner = CliRunner()
    certs_dir = certs.ca.folder.parent
    pilot_dir = tmp_path / "pilot-side"
    result = runner.invoke(main, ["certs", "request", "--name", "acme", "--out", str(pilot_dir)])
    assert result.exit_code == 0 and (pilot_dir / "acme.csr").exists() and (pilot_dir / "acme.key").exists()
    result = runner.invoke(main, ["certs", "issue", "--csr", str(pilot_dir / "acme.csr"), "--role", "pilot",
                                  f"api.certs_dir={certs_dir}"])
    assert result.exit_code == 0, result.output
    serial = result.output.split("serial ")[1].split(")")[0]  # hexadecimal, as openssl prints it
    arguments = ["query", "search", "burnt", "--address", f"127.0.0.1:{server.port}", "--ca", str(certs.ca.cert_path),
                 "--cert", str(pilot_dir / "acme.crt"), "--key", str(pilot_dir / "acme.key"),
                 "--save", str(tmp_path / "maps")]
    result = runner.invoke(main, arguments)
    assert result.exit_code == 0, result.output
    assert "1 result(s)" in result.output and "Burnt areas 30%" in result.output
    assert len(list((tmp_path / "maps").glob("*.tif"))) == 1 and len(list((tmp_path / "maps").glob("*.png"))) == 1
    assert runner.invoke(main, ["certs", "revoke", f"serial={serial}", f"api.certs_dir={certs_dir}"]).exit_code == 0
    result = runner.invoke(main, arguments)
    assert result.exit_code == 1 and "UNAUTHENTICATED" in result.output and serial in result.output


def test_a_link_key_rotation_through_the_cli(running) -> None:
    """`certs rotate-link-key` on the running server's folder: links signed before still open, new links are
    signed with the new key, no restart."""
    certs, server, gateway = running
    _, lines = _get(gateway, certs, "/stac/search?collections=clc-unet")
    item = lines[0]["features"][0]["id"]
    found = server.core.find_item(INSECURE_CALLER, "clc-unet", item)
    before = server.core.signed_folder(found, INSECURE_CALLER)
    result = CliRunner().invoke(main, ["certs", "rotate-link-key", f"api.certs_dir={certs.ca.folder.parent}"])
    assert result.exit_code == 0 and "new link-signing key" in result.output, result.output
    after = server.core.signed_folder(found, INSECURE_CALLER)
    assert before.split("/")[2] != after.split("/")[2]  # the key id
    context = ssl.create_default_context(cafile=str(certs.ca.cert_path))  # no client certificate
    for signed in (before, after):
        url = f"https://127.0.0.1:{gateway.port}/v1/maps/clc-unet/{item}/{signed}/classes.tif"
        with urllib.request.urlopen(url, context=context, timeout=10) as answer:
            assert answer.status == 200


def test_one_access_log_line_per_request(running, caplog) -> None:
    import logging

    certs, _, gateway = running
    with caplog.at_level(logging.INFO, logger="earthsignature.http"):
        _get(gateway, certs, "/v1/segmentation:list?tileIds=31TCJ")
        _get(gateway, certs, "/v1/nothing")
        time.sleep(0.2)  # the line is written when the response ends, in the server's thread
    lines = [r.getMessage() for r in caplog.records if r.name == "earthsignature.http"]
    assert len(lines) == 2
    # the caller (the pilot certificate's common name), address, method, path, status, duration
    assert lines[0].startswith("acme 127.0.0.1 GET /v1/segmentation:list 200 ") and lines[0].endswith(" ms")
    assert " GET /v1/nothing 404 " in lines[1]


def test_a_map_file_missing_from_the_store_is_404(running) -> None:
    """A catalog row whose file is gone (or is a folder) is answered 404 naming the file, never a 500."""
    certs, server, gateway = running
    _, lines = _get(gateway, certs, "/stac/search?collections=clc-unet")
    item = lines[0]["features"][0]["id"]
    path = Path(gdal_path(server.core.map_file(INSECURE_CALLER, "clc-unet", item, "classes.tif")))
    route = f"/v1/maps/clc-unet/{item}/classes.tif"
    assert _get(gateway, certs, route, method="HEAD") == (200, [])
    path.rename(path.with_suffix(".moved"))
    status, body = _get(gateway, certs, route)
    assert status == 404 and "classes.tif of" in body[0]["message"] and "not in the store" in body[0]["message"]
    path.mkdir()  # a folder in its place
    assert _get(gateway, certs, route) == (status, body)
