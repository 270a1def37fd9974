"""Signed map links: what a pilot authenticated by mutual TLS receives opens without a certificate, in Debian's
GDAL too, until it expires; an altered, expired or foreign signature is refused; a key rotation keeps the
previous key valid."""

from __future__ import annotations

import json
import os
import shutil
import ssl
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest

from earthsignature.samples.requests import product_request
from earthsignature.service.api.signed_links import PARAMETERS, BadSignature, LinkKeys, LinkSigner

from .api_fixtures import client_of, https, https_context, server_with_http_app

pytestmark = pytest.mark.postgis
SCOPE = "/v1/maps/clc-unet/S2A_X-clc-unet-v1/"


def parts(signed: str) -> dict[str, str]:
    """A signed folder's parts, as the route hands them over (decoded)."""
    segments = [urllib.parse.unquote(segment) for segment in signed.split("/")]
    assert segments[0] == "signed"
    return dict(zip(PARAMETERS, segments[1:], strict=True))


def test_a_signature_covers_scope_expiry_and_caller(tmp_path) -> None:
    signer = LinkSigner(LinkKeys(tmp_path / "keys"), lifetime_s=600)
    query = parts(signer.sign(SCOPE, "acme", now=1_000_000))
    assert signer.verify(SCOPE, query, now=1_000_100) == "acme"
    for altered in ({"caller": "mallory"}, {"expires": str(int(query["expires"]) + 3600)},
                    {"signature": "0" * 64}, {"key": "00000000"}):
        with pytest.raises(BadSignature, match="does not match"):
            signer.verify(SCOPE, query | altered, now=1_000_100)
    with pytest.raises(BadSignature, match="does not match"):
        signer.verify(SCOPE.replace("S2A_X", "S2A_Y"), query, now=1_000_100)  # another item's files
    with pytest.raises(BadSignature, match="expired"):
        signer.verify(SCOPE, query, now=1_000_601)
    with pytest.raises(BadSignature, match="carries"):
        signer.verify(SCOPE, {"signature": query["signature"]}, now=1_000_100)


def test_a_rotation_keeps_the_previous_key_valid_for_one_more_rotation(tmp_path) -> None:
    keys = LinkKeys(tmp_path / "keys")
    signer = LinkSigner(keys, 600)  # as a running server holds it
    old = parts(signer.sign(SCOPE, "acme"))
    LinkKeys(tmp_path / "keys").rotate()  # `certs rotate-link-key`, another process
    assert signer.verify(SCOPE, old) == "acme"  # signed just before: still opens
    assert parts(signer.sign(SCOPE, "acme"))["key"] != old["key"]  # new links: the new key, no restart
    LinkKeys(tmp_path / "keys").rotate()
    with pytest.raises(BadSignature):
        signer.verify(SCOPE, old)
    assert oct(keys.current_file.stat().st_mode)[-3:] == "600"


@pytest.fixture(scope="module")
def served(module_db, tmp_path_factory):
    with server_with_http_app(module_db, tmp_path_factory.mktemp("signed")) as (certs, server, gateway):
        with client_of(certs, server) as client:
            client.create(product_request(1, "34SGH", burnt_share=0.3))
        yield certs, server, f"https://127.0.0.1:{gateway.port}"


def without_certificate(certs, url: str) -> tuple[int, bytes]:
    context = ssl.create_default_context(cafile=str(certs.ca.cert_path))  # trusts the server, presents nothing
    try:
        with urllib.request.urlopen(url, context=context, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def test_answers_carry_links_that_open_without_a_certificate(served) -> None:
    certs, server, root = served
    status, found = https(https_context(certs), f"{root}/stac/search?collections=clc-unet")
    item = found["features"][0]
    href = item["assets"]["classes"]["href"]
    folder, _, file_name = href.rpartition("/")
    signed = parts(folder[folder.index("/signed/") + 1:])
    assert status == 200 and file_name == "classes.tif" and signed["caller"] == "acme"
    assert int(signed["expires"]) > time.time() + 3000  # api.limits.link_lifetime_s: an hour
    status, body = without_certificate(certs, href)
    assert status == 200 and body[:4] == b"II*\x00"
    assert without_certificate(certs, f"{folder}/classes.tif.aux.xml")[0] == 200  # one folder, every file
    tile = next(link["href"] for link in item["links"] if link["rel"] == "xyz").format(z=0, x=0, y=0)
    assert "/signed/" in tile and without_certificate(certs, tile)[0] == 200
    with client_of(certs, server, "pilot") as pilot:
        map_url = next(pilot.list_messages()).map_url
    assert "/signed/" in map_url and without_certificate(certs, map_url)[0] == 200  # a gRPC answer's link too

    other_item = href.replace("-clc-unet-v1/", "-clc-unet-v2/")
    status, body = without_certificate(certs, other_item)
    assert status == 403 and json.loads(body)["code"] == 7  # PERMISSION_DENIED, not NOT_FOUND
    assert without_certificate(certs, href.replace("/acme/", "/mallory/"))[0] == 403
    scope = href[len(root):href.index("signed/")]
    expired = server.core.signer.sign(scope, "acme", now=time.time() - 7200)
    status, body = without_certificate(certs, f"{root}{scope}{expired}/classes.tif")
    assert status == 403 and "expired" in json.loads(body)["message"]
    assert without_certificate(certs, f"{root}{scope}classes.tif")[0] == 401  # no signature, no certificate


def test_debians_gdal_opens_a_signed_link_and_reads_the_class_names(served) -> None:
    gdalinfo = shutil.which("gdalinfo")
    assert gdalinfo, "Debian's GDAL command-line tools are installed by `make setup` (scripts/os-packages.sh)"
    certs, _, root = served
    _, found = https(https_context(certs), f"{root}/stac/search?collections=clc-unet")
    href = found["features"][0]["assets"]["classes"]["href"]
    # the project CA signs the test server's certificate: GDAL is told to trust it (a production server's
    # certificate from a public CA needs nothing); the virtualenv's GDAL_DATA is not Debian's GDAL's
    ca = str(certs.ca.cert_path)
    environment = {**os.environ, "GDAL_CURL_CA_BUNDLE": ca, "CURL_CA_BUNDLE": ca, "SSL_CERT_FILE": ca}
    environment.pop("GDAL_DATA", None)
    result = subprocess.run([gdalinfo, f"/vsicurl/{href}"], capture_output=True, text=True, timeout=60,
                            env=environment)
    assert result.returncode == 0, result.stderr
    assert "Driver: GTiff" in result.stdout and "CLASS_2=Burnt areas" in result.stdout
    assert "Categories:" in result.stdout  # the .aux.xml beside it, fetched with the same signature
    assert "Burnt areas" in result.stdout.split("Categories:")[1]
