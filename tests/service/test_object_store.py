"""The Database service with its maps in an S3-compatible object store (moto's server on 127.0.0.1): maps are
written and read back through the store's own API (fsspec and GDAL's /vsis3/), `store check` finds orphans
there, and a pilot's map links are the store's own pre-signed URLs, so the bytes leave the service; Debian's
GDAL opens them and reads the class names."""

from __future__ import annotations

import os
import shutil
import subprocess
import urllib.error
import urllib.parse
import urllib.request

import numpy as np
import pytest
import s3fs
from affine import Affine
from click.testing import CliRunner
from shapely.geometry import box

from earthsignature.cli import main
from earthsignature.samples.requests import product_request
from earthsignature.service.catalog.raster_store import RasterStore
from earthsignature.service.catalog.store_check import check_store

from .api_fixtures import client_of, https, https_context, server_with_http_app
from .s3_server import s3_server
from .test_signed_links import without_certificate

pytestmark = pytest.mark.postgis
LIFETIME_S = 3600  # api.limits.link_lifetime_s
QUICKLOOK = b"\x89PNG\r\n\x1a\n a product's quicklook"  # stored and served as sent


@pytest.fixture(scope="module")
def s3():
    with s3_server() as server:
        yield server


@pytest.fixture(scope="module")
def served(module_db, tmp_path_factory, s3):
    with server_with_http_app(module_db, tmp_path_factory.mktemp("s3"), store_url=s3.url("service"),
                              store_endpoint=s3.endpoint) as (certs, server, gateway):
        with client_of(certs, server) as client:
            request = product_request(1, "34SGH", burnt_share=0.3)
            request.quicklook_png = QUICKLOOK
            client.create(request)
        yield certs, server, f"https://127.0.0.1:{gateway.port}"


def objects(s3, prefix: str) -> list[str]:
    """The store's own listing (the bucket as any S3 client sees it)."""
    fs = s3fs.S3FileSystem(client_kwargs={"endpoint_url": s3.endpoint}, use_listings_cache=False)
    return fs.find(f"{s3.bucket}/{prefix}")


def opened(url: str, headers: dict[str, str] | None = None) -> tuple[int, bytes, str]:
    """(status, body, the URL that answered) of a plain GET: no certificate, no credentials."""
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=30) as response:
        return response.status, response.read(), response.url


def test_a_store_on_an_s3_server_writes_reads_windows_and_deletes(s3) -> None:
    store = RasterStore(s3.url("unit"), s3.endpoint)
    values = np.arange(200 * 300, dtype=np.uint8).reshape(200, 300) % 7
    url = store.write_cog(store.url_for("p", "classes.tif"), values, "EPSG:32634", Affine(10, 0, 600_000, 0, -10,
                          4_200_000), nodata=255, colormap={k: (k * 30, 0, 0, 255) for k in range(7)})
    assert objects(s3, "unit") == [f"{s3.bucket}/unit/p/classes.tif"]
    assert store.read_pixels(url, 10, 20, 3, 4).tolist() == values[10:13, 20:24].tolist()  # GDAL's /vsis3/
    window = store.read(url, box(21.0, 37.0, 23.0, 39.0), max_pixels=1_000)
    assert window is not None and window.data.size <= 1_000 and window.crs == "EPSG:32634"
    payload = store.read_bytes(url)
    assert payload[:4] == b"II*\x00" and store.size(url) == len(payload)
    assert store.read_range(url, 2, 10) == payload[2:10]
    presigned = urllib.parse.urlsplit(store.presigned_url(url, 600))
    query = urllib.parse.parse_qs(presigned.query)
    assert f"{presigned.scheme}://{presigned.netloc}" == s3.endpoint
    assert presigned.path == f"/{s3.bucket}/unit/p/classes.tif"
    assert query["X-Amz-Algorithm"] == ["AWS4-HMAC-SHA256"] and query["X-Amz-Expires"] == ["600"]
    store.delete(url)
    assert not store.exists(url) and objects(s3, "unit") == []
    assert RasterStore("/some/folder").presigned_url("/some/folder/a.tif", 600) is None  # a folder signs nothing


def test_a_store_endpoint_belongs_to_an_s3_store() -> None:
    for root, endpoint in (("/var/rasters", "http://127.0.0.1:9000"), ("s3://maps", "127.0.0.1:9000"),
                           ("s3://maps", "ftp://127.0.0.1:9000"), ("gs://maps", "https://storage.example.org")):
        with pytest.raises(ValueError, match="endpoint"):
            RasterStore(root, endpoint)


def test_store_check_finds_and_repairs_orphans_in_the_object_store(served, s3, module_db) -> None:
    _, server, _ = served
    fs = s3fs.S3FileSystem(client_kwargs={"endpoint_url": s3.endpoint})
    orphan = f"{s3.bucket}/service/S2X_killed/clc-unet/1/abc/classes.tif"
    fs.pipe(orphan, b"half a COG")
    store = server.core.store
    young = check_store(server.catalog, store, min_age_s=3600)  # S3's LastModified: an ingestion in flight
    assert young.orphans == [] and young.files > 5
    assert check_store(server.catalog, store, min_age_s=0).orphans == [orphan]
    overrides = [f"db.url={module_db}", f"api.store_url={s3.url('service')}", f"api.store_endpoint={s3.endpoint}"]
    result = CliRunner().invoke(main, ["store", "check", "--repair", "--min-age", "0", *overrides])
    assert result.exit_code == 0 and "1 orphaned" in result.output, result.output
    assert not fs.exists(orphan) and check_store(server.catalog, store, min_age_s=0).clean


def test_a_pilots_map_links_are_the_stores_presigned_urls(served, s3) -> None:
    certs, server, root = served
    status, found = https(https_context(certs), f"{root}/stac/search?collections=clc-unet")
    item = found["features"][0]
    stored = [key for key in ("classes", "confidence", "cloud_mask", "legend", "style", "thumbnail")
              if key in item["assets"]]
    assert status == 200 and {"classes", "cloud_mask", "legend", "style", "thumbnail"} <= set(stored)
    for key in stored:  # the stored files: from the store
        href = urllib.parse.urlsplit(item["assets"][key]["href"])
        query = urllib.parse.parse_qs(href.query)
        assert f"{href.scheme}://{href.netloc}" == s3.endpoint and href.path.startswith(f"/{s3.bucket}/service/")
        assert query["X-Amz-Expires"] == [str(LIFETIME_S)] and query["X-Amz-Signature"]
    assert opened(item["assets"]["thumbnail"]["href"])[1] == QUICKLOOK
    classes = item["assets"]["classes"]["href"]
    status, body, answered = opened(classes)
    assert status == 200 and body[:4] == b"II*\x00" and answered.startswith(s3.endpoint)
    request = urllib.request.Request(classes, headers={"Range": "bytes=0-99"})
    with urllib.request.urlopen(request, timeout=30) as response:  # GDAL reads windows by ranges
        assert response.status == 206 and len(response.read()) == 100
    # what the service draws stays its own route, in a signed folder, drawn from the store's maps
    visual = item["assets"]["visual"]["href"]
    tile = next(link["href"] for link in item["links"] if link["rel"] == "xyz").format(z=0, x=0, y=0)
    for drawn in (visual, tile):
        assert drawn.startswith(root) and "/signed/" in drawn
        status, png = without_certificate(certs, drawn)
        assert status == 200 and png[:8] == b"\x89PNG\r\n\x1a\n"
    with client_of(certs, server, "pilot") as pilot:
        (answer,) = pilot.list()
        map_url = next(pilot.list_messages()).map_url
    assert answer.classes is not None and answer.classes.size  # the window read through GDAL's /vsis3/
    assert map_url.startswith(f"{s3.endpoint}/{s3.bucket}/service/") and "X-Amz-Signature=" in map_url


def test_the_services_own_map_route_redirects_to_the_store(served, s3) -> None:
    certs, _, root = served
    _, found = https(https_context(certs), f"{root}/stac/search?collections=clc-unet")
    visual = found["features"][0]["assets"]["visual"]["href"]
    signed_folder = visual.rpartition("/")[0]
    request = urllib.request.Request(f"{signed_folder}/classes.tif")
    opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=https_context(certs)),
                                         _NoRedirect())
    with pytest.raises(urllib.error.HTTPError) as redirect:
        opener.open(request, timeout=30)
    location = redirect.value.headers["Location"]
    assert redirect.value.code == 307 and location.startswith(f"{s3.endpoint}/{s3.bucket}/service/")
    assert "X-Amz-Signature=" in location and redirect.value.headers["Cache-Control"] == "no-store"
    status, body, _ = opened(location)
    assert status == 200 and body[:4] == b"II*\x00"


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def test_debians_gdal_opens_a_presigned_link_and_reads_the_class_names(served) -> None:
    gdalinfo = shutil.which("gdalinfo")
    assert gdalinfo, "Debian's GDAL command-line tools are installed by `make setup` (scripts/os-packages.sh)"
    certs, _, root = served
    _, found = https(https_context(certs), f"{root}/stac/search?collections=clc-unet")
    item = found["features"][0]
    ca = str(certs.ca.cert_path)
    environment = {**os.environ, "GDAL_CURL_CA_BUNDLE": ca, "CURL_CA_BUNDLE": ca, "SSL_CERT_FILE": ca}
    environment.pop("GDAL_DATA", None)  # the virtualenv's GDAL_DATA is not Debian's GDAL's
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        environment.pop(name, None)  # a pilot has no store credentials: the link is all it needs
    # the store's link: the class names travel in the COG itself (its band metadata)
    direct = subprocess.run([gdalinfo, f"/vsicurl/{item['assets']['classes']['href']}"], capture_output=True,
                            text=True, timeout=60, env=environment)
    assert direct.returncode == 0, direct.stderr
    assert "Driver: GTiff" in direct.stdout and "CLASS_2=Burnt areas" in direct.stdout
    # the service's signed folder: GDAL follows the redirects to the store, for the sidecar legend too
    folder = item["assets"]["visual"]["href"].rpartition("/")[0]
    redirected = subprocess.run([gdalinfo, f"/vsicurl/{folder}/classes.tif"], capture_output=True, text=True,
                                timeout=60, env=environment)
    assert redirected.returncode == 0, redirected.stderr
    assert "Burnt areas" in redirected.stdout.split("Categories:")[1]
