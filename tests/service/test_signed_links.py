"""Signed map links: what a pilot authenticated by mutual TLS receives opens without a certificate, in Debian's
GDAL too, until it expires; an altered, expired or foreign signature is refused; a key rotation keeps the
previous key valid."""

from __future__ import annotations

import base64
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
from earthsignature.service.api import access_tokens
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
    for part in ("key", "signature", "caller"):  # any text a path segment decodes to, non-ASCII included
        with pytest.raises(BadSignature):
            signer.verify(SCOPE, query | {part: "é\u0000²😀"}, now=1_000_100)


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


def without_certificate(certs, url: str, token: str | None = None) -> tuple[int, bytes]:
    """A request that presents no certificate (``token``: an access token in its Authorization header)."""
    context = ssl.create_default_context(cafile=str(certs.ca.cert_path))  # trusts the server, presents nothing
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, context=context, timeout=10) as response:
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
    tilejson = next(link["href"] for link in item["links"] if link["rel"] == "tilejson")
    status, body = without_certificate(certs, tilejson)
    assert status == 200 and json.loads(body)["tiles"][0].startswith(folder + "/tiles/")  # the tiles stay signed
    with client_of(certs, server, "pilot") as pilot:
        map_url = next(pilot.list_messages()).map_url
    assert "/signed/" in map_url and without_certificate(certs, map_url)[0] == 200  # a gRPC answer's link too

    non_ascii_key = href.replace(f"/{signed['key']}/", "/%C3%A9/")
    assert without_certificate(certs, non_ascii_key)[0] == 403  # was a TypeError in the comparison: 500
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


def test_an_access_token_is_bound_to_its_certificate_serial_and_expires(tmp_path) -> None:
    signer = LinkSigner(LinkKeys(tmp_path / "keys"), lifetime_s=600)
    issued = access_tokens.issue(signer, "acme", 0x1F2E, now=1_000_000)
    assert issued.expires_at == 1_000_600 and issued.token.startswith(access_tokens.PREFIX)
    assert access_tokens.verify(signer, issued.token, now=1_000_100) == access_tokens.TokenHolder("acme", 0x1F2E)
    with pytest.raises(BadSignature, match="expired"):
        access_tokens.verify(signer, issued.token, now=1_000_601)
    body = base64.urlsafe_b64decode(issued.token.removeprefix(access_tokens.PREFIX) + "==")
    forged = access_tokens.PREFIX + base64.urlsafe_b64encode(body.replace(b"1f2e/", b"1f2f/", 1)).decode()
    with pytest.raises(BadSignature, match="altered"):  # another certificate's serial: the signature breaks
        access_tokens.verify(signer, forged, now=1_000_100)
    non_ascii = base64.urlsafe_b64encode(body.replace(b"/acme/", "/acmé/".encode())).decode()
    for garbage in ("", "Bearer", "es1.", "es1.!!!!", "es1." + "A" * 2000, issued.token[:-3],
                    access_tokens.PREFIX + non_ascii):
        with pytest.raises(BadSignature):
            access_tokens.verify(signer, garbage, now=1_000_100)


def test_an_access_token_opens_every_route_for_a_while_and_a_revocation_ends_it(served) -> None:
    certs, server, root = served
    status, issued = https(https_context(certs), f"{root}/v1/token")
    token = issued["access_token"]
    assert status == 200 and issued["token_type"] == "Bearer" and issued["expires_in"] == 3600
    status, body = without_certificate(certs, f"{root}/stac/search?collections=clc-unet", token)
    item = json.loads(body)["features"][0]
    signed = item["assets"]["classes"]["href"].split("/signed/")[1]
    assert status == 200 and signed.split("/")[2] == "acme"  # the answer's links are signed for the token's pilot
    assert without_certificate(certs, f"{root}/v1/segmentation:list?n_results=1", token)[0] == 200
    plain_map = f"{root}/v1/maps/clc-unet/{urllib.parse.quote(item['id'])}/classes.tif"
    status, body = without_certificate(certs, plain_map, token)
    assert status == 200 and body[:4] == b"II*\x00"  # no signed folder: the token authenticates the map
    status, body = without_certificate(certs, f"{root}/v1/token", token)
    assert status == 401  # a token never mints a token: only the certificate does
    assert https(https_context(certs, "internal"), f"{root}/v1/token")[0] == 403  # pilots only
    for bad in (token[:-2] + ("AA" if token[-2:] != "AA" else "BB"), "nonsense"):
        status, body = without_certificate(certs, f"{root}/stac/search", bad)
        assert status == 401 and "access token" in json.loads(body)["message"]
    expired = access_tokens.issue(server.core.signer, "acme", 1, now=time.time() - 7200).token
    status, body = without_certificate(certs, f"{root}/stac/search", expired)
    assert status == 401 and "expired" in json.loads(body)["message"]

    # a second pilot's token works until that pilot's certificate is revoked
    key, cert = certs.ca.issue(certs.ca.folder.parent / "beta", "beta", "pilot")
    context = ssl.create_default_context(cafile=str(certs.ca.cert_path))
    context.load_cert_chain(str(cert), str(key))
    beta = https(context, f"{root}/v1/token")[1]["access_token"]
    assert without_certificate(certs, f"{root}/stac/search", beta)[0] == 200
    from cryptography import x509

    certs.ca.revoke(x509.load_pem_x509_certificate(cert.read_bytes()).serial_number)
    status, body = without_certificate(certs, f"{root}/stac/search", beta)
    assert status == 401 and "revoked" in json.loads(body)["message"]
    assert without_certificate(certs, f"{root}/stac/search", token)[0] == 200  # acme's still works


def test_debians_gdal_and_curl_open_a_map_with_an_access_token(served) -> None:
    certs, _, root = served
    token = https(https_context(certs), f"{root}/v1/token")[1]["access_token"]
    _, found = https(https_context(certs), f"{root}/stac/search?collections=clc-unet")
    plain_map = f"{root}/v1/maps/clc-unet/{urllib.parse.quote(found['features'][0]['id'])}/classes.tif"
    ca = str(certs.ca.cert_path)
    environment = {**os.environ, "GDAL_CURL_CA_BUNDLE": ca, "CURL_CA_BUNDLE": ca, "SSL_CERT_FILE": ca,
                   "GDAL_HTTP_HEADERS": f"Authorization: Bearer {token}"}
    environment.pop("GDAL_DATA", None)
    result = subprocess.run([shutil.which("gdalinfo"), f"/vsicurl/{plain_map}"], capture_output=True, text=True,
                            timeout=60, env=environment)
    assert result.returncode == 0 and "Burnt areas" in result.stdout.split("Categories:")[1], result.stderr
    search = subprocess.run(["curl", "-sf", "--cacert", ca, "-H", f"Authorization: Bearer {token}",
                             f"{root}/stac/search?collections=clc-unet&limit=1"], capture_output=True, timeout=60)
    assert search.returncode == 0 and json.loads(search.stdout)["features"]
