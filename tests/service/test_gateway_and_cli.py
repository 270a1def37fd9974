"""The HTTP bindings and the certificate exchange, against a real server on 127.0.0.1."""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from click.testing import CliRunner

from earthsignature.cli import main
from earthsignature.client import EarthSignatureClient
from earthsignature.embedded.ports import free_port
from earthsignature.samples.requests import product_request
from earthsignature.service.api.auth import TlsFiles
from earthsignature.service.api.http_gateway import start_gateway
from earthsignature.service.api.server import build_server

from .api_fixtures import make_certificates

pytestmark = pytest.mark.postgis


@pytest.fixture
def running(postgis_db, tmp_path):
    certs = make_certificates(tmp_path / "certs")
    tls = TlsFiles(certs.ca.cert_path, certs.server[1], certs.server[0], certs.ca.revoked_path)
    with build_server(postgis_db, str(tmp_path / "store"), "127.0.0.1:0", tls) as server:
        gateway = start_gateway(server.service, ("127.0.0.1", free_port()), tls)
        key, cert = certs.internal
        with EarthSignatureClient(f"127.0.0.1:{server.port}", ca=certs.ca.cert_path, cert=cert, key=key) as client:
            client.create(product_request(1, "34SGH", burnt_share=0.3))
            client.create(product_request(2, "31TCJ", day=1))
        yield certs, server, gateway
        gateway.shutdown()


def _get(gateway, certs, path: str, who: str = "pilot") -> tuple[int, list[dict]]:
    context = ssl.create_default_context(cafile=str(certs.ca.cert_path))
    if who:
        key, cert = getattr(certs, who)
        context.load_cert_chain(cert, key)
    url = f"https://127.0.0.1:{gateway.server_address[1]}{path}"
    try:
        with urllib.request.urlopen(url, context=context, timeout=10) as response:
            return response.status, [json.loads(line) for line in response.read().splitlines()]
    except urllib.error.HTTPError as error:
        return error.code, [json.loads(error.read())]


def test_http_bindings_answer_like_grpc(running) -> None:
    certs, _, gateway = running
    status, lines = _get(gateway, certs, "/v1/segmentation:list?categories=Burnt%20areas")
    assert status == 200 and [line["result"]["tile_id"] for line in lines] == ["34SGH"]
    result = lines[0]["result"]
    assert result["segmentation"]["crs"] == "EPSG:32634"
    assert result["segmentation"]["encoding"] == "RASTER_ENCODING_ZSTD"
    assert {c["name"] for c in result["classes"]} >= {"Burnt areas", "Coniferous forest"}
    status, lines = _get(gateway, certs, "/v1/segmentation:search?query=tile:31TCJ&n_results=5")
    assert status == 200 and [line["result"]["tile_id"] for line in lines] == ["31TCJ"]
    status, lines = _get(gateway, certs, "/v1/segmentation:list?start_date=2021-08-02T00:00:00Z")
    assert status == 200 and len(lines) == 1


@pytest.mark.parametrize(("path", "status", "code"), [
    ("/v1/segmentation:list?n_results=1000", 400, "INVALID_ARGUMENT"),
    ("/v1/segmentation:search?query=cloud>5", 400, "INVALID_ARGUMENT"),
    ("/v1/segmentation:list?colour=red", 400, "INVALID_ARGUMENT"),
    ("/v1/products", 404, "Not Found"),
])
def test_http_errors(running, path, status, code) -> None:
    certs, _, gateway = running
    got, lines = _get(gateway, certs, path)
    assert got == status and lines[0]["error"]["code"] == code


def test_http_refuses_callers_without_a_certificate(running) -> None:
    certs, _, gateway = running
    with pytest.raises((ssl.SSLError, urllib.error.URLError, ConnectionError)):
        _get(gateway, certs, "/v1/segmentation:list", who="")


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
