"""The STAC API and the map files, against a real server on 127.0.0.1 with real TLS, through pystac-client,
GDAL's /vsicurl/ (rasterio) and plain HTTPS."""

from __future__ import annotations

import io
import json
import os
import ssl
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
import warnings
import xml.etree.ElementTree as ET
from email.message import Message

import numpy as np
import pytest
import rasterio
from cryptography import x509
from pystac_client import Client
from pystac_client.stac_api_io import StacApiIO
from pystac_client.warnings import MissingLink

from earthsignature.client import EarthSignatureClient
from earthsignature.core.cog import CLOUD_COLOR
from earthsignature.samples.requests import class_map, product_request
from earthsignature.service.api.stac_items import EXTENSIONS

from .api_fixtures import client_of, map_page_in_chromium, search_on_map_page, server_with_http_app
from .extension_rules import SCHEMAS as EXTENSION_SCHEMAS

pytestmark = pytest.mark.postgis
TILES = ["34SGH", "31TCJ", "33UUP", "35VLG", "32TQM", "30TWM", "29TNE"]


@pytest.fixture(scope="module")
def stac(module_db, tmp_path_factory):
    """A server holding seven CLC maps (two with burnt areas) and one burnt-area model's map."""
    with server_with_http_app(module_db, tmp_path_factory.mktemp("stac")) as (certs, server, gateway):
        with client_of(certs, server) as client:
            for number, tile_id in enumerate(TILES, start=1):
                request = product_request(number, tile_id, day=number, cloud=5.0 * number,
                                          burnt_share=0.3 if number in (1, 4) else 0.0)
                request.quicklook_png = quicklook_png() if number == 1 else b""
                client.create(request)
            client.create(product_request(9, "34SGH", day=9, model="burnt-unet"))
        yield certs, f"https://127.0.0.1:{gateway.port}", f"127.0.0.1:{server.port}"


def quicklook_png() -> bytes:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    plt.imsave(buffer, np.linspace(0, 1, 48 * 48 * 3).reshape(48, 48, 3), format="png")
    return buffer.getvalue()


@pytest.fixture
def pystac_client(stac, monkeypatch):
    """pystac-client as a pilot configures it: the project CA through REQUESTS_CA_BUNDLE (pystac-client asks
    requests to verify with the environment's bundle), the client certificate on the session."""
    certs, root, _ = stac
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(certs.ca.cert_path))

    def open_client(who: str = "pilot") -> Client:
        io = StacApiIO()
        key, cert = getattr(certs, who)
        io.session.cert = (str(cert), str(key))
        return Client.open(f"{root}/stac/", stac_io=io)

    return open_client


def fetch(stac, path: str, headers: dict | None = None, who: str = "pilot", body=None
          ) -> tuple[int, Message, bytes]:
    certs, root, _ = stac
    context = ssl.create_default_context(cafile=str(certs.ca.cert_path))
    context.load_cert_chain(*reversed(getattr(certs, who)))
    headers = {**(headers or {}), **({"Content-Type": "application/json"} if body is not None else {})}
    request = urllib.request.Request(root + path, headers=headers, data=body)
    try:
        with urllib.request.urlopen(request, context=context, timeout=10) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()


def test_pystac_client_searches_pages_and_filters(stac, pystac_client) -> None:
    client = pystac_client()
    assert {c.id for c in client.get_collections()} == {"clc-unet", "burnt-unet"}
    assert client.conforms_to("ITEM_SEARCH") and client.conforms_to("FILTER")
    search = client.search(collections=["clc-unet"], limit=3, max_items=100)
    items = list(search.items())
    assert len(items) == len(TILES) and len(list(search.pages())) == 3  # 3 + 3 + 1, paged by token
    assert search.matched() == len(TILES)  # numberMatched: every page's items, on each page
    for method in ("GET", "POST"):  # next links: a URL with the token, or a body to merge
        pages = list(client.search(collections=["clc-unet"], limit=3, method=method).pages())
        assert [len(page.items) for page in pages] == [3, 3, 1], method
    assert [i.properties["grid:code"] for i in items] == [f"MGRS-{t}" for t in reversed(TILES)]  # newest first
    burnt = client.search(collections=["clc-unet"], filter="fraction:burnt_areas >= 0.1", max_items=100)
    assert sorted(i.properties["grid:code"] for i in burnt.items()) == ["MGRS-34SGH", "MGRS-35VLG"]
    assert burnt.matched() == 2
    cql2_json = {"op": "and", "args": [{"op": "<", "args": [{"property": "eo:cloud_cover"}, 12]},
                                       {"op": "=", "args": [{"property": "collection"}, "clc-unet"]}]}
    assert [i.properties["eo:cloud_cover"] for i in client.search(filter=cql2_json, method="POST").items()] \
        == [10.0, 5.0]
    for bounds in ([5, 12], [[5, 12]]):  # between: CQL2's three arguments, and the drafts' [low, high]
        between = {"op": "between", "args": [{"property": "eo:cloud_cover"}, *bounds]}
        found = client.search(collections=["clc-unet"], filter=between, method="POST").items()
        assert sorted(i.properties["eo:cloud_cover"] for i in found) == [5.0, 10.0]
    assert {i.properties["platform"] for i in client.search(filter="mission = 'sentinel-2' AND platform LIKE "
                                                                   "'sentinel-2%'", max_items=100).items()} \
        == {"sentinel-2a"}
    west, south, *_ = items[-1].bbox  # 34SGH's map, the oldest
    inside = [west + 0.001, south + 0.001, west + 0.002, south + 0.002]
    assert [i.collection_id for i in client.search(bbox=inside, datetime="2021-08-01/2021-08-03").items()] \
        == ["clc-unet"]  # the burnt-area model's map of 34SGH is of 2021-08-10
    assert len(list(client.search(bbox=inside).items())) == 2
    assert list(client.search(bbox=inside, datetime="2021-08-11T00:00:00Z/..").items()) == []
    one = items[0]
    assert [i.id for i in client.search(ids=[one.id]).items()] == [one.id]
    with warnings.catch_warnings():  # the client finds the queryables by their OGC link relation, not a guess
        warnings.simplefilter("error", MissingLink)
        queryables = client.get_collection("clc-unet").get_queryables()["properties"]
        assert "fraction:burnt_areas" in queryables and "eo:cloud_cover" in queryables
        assert "collection" in client.get_queryables()["properties"]
    assert fetch(stac, "/stac/collections/no-such-model/items")[0] == 404
    assert client.get_collection("clc-unet").get_item(one.id).id == one.id


def test_items_carry_assets_classes_and_fractions(stac, pystac_client) -> None:
    item = next(pystac_client().search(collections=["clc-unet"], filter="grid:code = 'MGRS-34SGH'").items())
    expected = class_map(120, 1, 0.3)
    assert item.properties["fraction:burnt_areas"] == pytest.approx(float((expected == 2).mean()), abs=1e-6)
    assert item.properties["proj:code"] == "EPSG:32634" and item.properties["proj:shape"] == [120, 120]
    classes = {c["value"]: c for c in item.assets["classes"].extra_fields["classification:classes"]}
    assert classes[2]["title"] == "Burnt areas" and classes[2]["name"] == "burnt_areas" and classes[255]["nodata"]
    assert set(item.assets) >= {"classes", "cloud_mask", "style", "legend"}
    assert all(a.href.startswith(stac[1] + "/v1/maps/clc-unet/") for a in item.assets.values())
    # the product's quicklook in the item's signed folder too: a STAC browser shows it without a certificate
    thumbnail = item.assets["thumbnail"].href
    assert thumbnail.startswith(item.assets["classes"].href.rpartition("/")[0] + "/")
    context = ssl.create_default_context(cafile=str(stac[0].ca.cert_path))  # trusts the server, presents nothing
    with urllib.request.urlopen(thumbnail, context=context, timeout=10) as response:
        assert response.headers["Content-Type"] == "image/png" and response.read() == quicklook_png()
    status, _, body = fetch(stac, f"/v1/maps/clc-unet/{urllib.parse.quote(item.id)}/thumbnail.png")
    assert status == 200 and body == quicklook_png()  # and by the certificate
    assert item.assets["classes"].media_type == "image/tiff; application=geotiff; profile=cloud-optimized"


def test_an_asset_opens_in_gdal_through_https_range_reads(stac, pystac_client) -> None:
    certs, *_ = stac
    item = next(pystac_client().search(collections=["clc-unet"], filter="grid:code = 'MGRS-34SGH'").items())
    key, cert = certs.pilot
    options = {"GDAL_HTTP_SSLCERT": str(cert), "GDAL_HTTP_SSLKEY": str(key),
               "GDAL_CURL_CA_BUNDLE": str(certs.ca.cert_path)}  # how QGIS is told about the pilot's certificate
    # in a process of its own, as QGIS would be: GDAL holds the interpreter lock while it opens a dataset,
    # and this server runs in the test's process
    reader = ("import json, sys, rasterio\n"
              "with rasterio.Env(**json.loads(sys.argv[2])), rasterio.open(sys.argv[1]) as dataset:\n"
              "    print(json.dumps({'window': dataset.read(1, window=((0, 10), (0, 120))).tolist(),\n"
              "                      'tags': dataset.tags(1), 'overviews': dataset.overviews(1)}))\n")
    done = subprocess.run([sys.executable, "-c", reader, item.assets["classes"].href, json.dumps(options)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    read = json.loads(done.stdout)
    window = np.array(read["window"])
    assert read["tags"]["CLASS_2"] == "Burnt areas" and read["overviews"] == []  # 120 px: none needed
    assert np.array_equal(window, class_map(120, 1, 0.3)[:10])
    path = item.assets["classes"].href.removeprefix(stac[1])
    status, headers, body = fetch(stac, path, {"Range": "bytes=0-99"})
    assert status == 206 and len(body) == 100 and headers["Content-Range"].startswith("bytes 0-99/")
    statuses = {header: fetch(stac, path, {"Range": header})[0]
                for header in ("bytes=abc", "bytes=5-2", "bytes=999999999-", "bytes=0-1,5-6", "bytes=-100")}
    assert statuses["bytes=-100"] == 206 and statuses["bytes=0-1,5-6"] == 206
    assert all(code in (206, 400, 416) for code in statuses.values()), statuses
    status, _, body = fetch(stac, item.assets["legend"].href.removeprefix(stac[1]))
    categories = [c.text for c in ET.fromstring(body).iter("Category")]
    assert status == 200 and categories[2] == "Burnt areas"


@pytest.mark.parametrize("preread", [4 * 1024 * 1024, 0], ids=["read-with-the-lookup", "streamed"])
def test_a_byte_range_is_the_files_bytes_under_the_files_headers(stac, pystac_client, monkeypatch, preread) -> None:
    """Each form of one range answers those bytes of the file under the whole file's ETag and Last-Modified,
    whether read in the call that finds the file or streamed by FileResponse; If-Range keeps or drops it."""
    from earthsignature.service.api import map_files

    monkeypatch.setattr(map_files, "PREREAD_RANGE_BYTES", preread)
    item = next(pystac_client().search(collections=["clc-unet"], filter="grid:code = 'MGRS-34SGH'").items())
    path = item.assets["classes"].href.removeprefix(stac[1])
    status, file_headers, whole = fetch(stac, path)
    size = len(whole)
    assert status == 200 and int(file_headers["Content-Length"]) == size > 200
    spans = {"bytes=0-99": (0, 100), "bytes=100-": (100, size), "bytes=-64": (size - 64, size),
             f"bytes={size - 10}-{size + 1000}": (size - 10, size), "bytes=5-5": (5, 6), "bytes=-99999": (0, size)}
    for header, (start, end) in spans.items():
        status, headers, body = fetch(stac, path, {"Range": header})
        assert status == 206 and body == whole[start:end], header
        assert headers["Content-Range"] == f"bytes {start}-{end - 1}/{size}", header
        assert int(headers["Content-Length"]) == end - start
        same = ("ETag", "Last-Modified", "Content-Type", "Accept-Ranges", "Cache-Control")
        assert [headers[name] for name in same] == [file_headers[name] for name in same]
    status, _, body = fetch(stac, path, {"Range": "bytes=10-19", "If-Range": file_headers["ETag"]})
    assert status == 206 and body == whole[10:20]
    status, _, body = fetch(stac, path, {"Range": "bytes=10-19", "If-Range": '"an-older-etag"'})
    assert status == 200 and body == whole  # changed since the client's copy: all of it
    status, headers, _ = fetch(stac, path, {"Range": f"bytes={size}-"})
    assert status == 416 and headers["Content-Range"] == f"bytes */{size}"
    for endless in ("bytes=" + "1" * 5000 + "-", "bytes=0-" + "9" * 5000, "bytes=-" + "9" * 5000):
        assert fetch(stac, path, {"Range": endless})[0] in (400, 416)  # never int()'s ValueError as a 500


def test_grpc_responses_link_to_the_stac_item_and_the_map(stac, pystac_client) -> None:
    certs, root, address = stac
    key, cert = certs.pilot
    with EarthSignatureClient(address, ca=certs.ca.cert_path, cert=cert, key=key) as client:
        message = next(m for m in client.list_messages() if m.tile_id == "35VLG")
    item = pystac_client().search(ids=[f"{message.product_id}-clc-unet-v1"]).item_collection()[0]
    assert item.id == f"{message.product_id}-clc-unet-v1"  # product, model, version: one item in the catalog
    assert message.item_url == f"{root}/stac/collections/clc-unet/items/{item.id}"
    def unsigned(url: str) -> str:  # both signed for the pilot, each when it was asked for
        folder, _, signed = url.partition("/signed/")
        return f"{folder}/{signed.rsplit('/', 1)[-1]}"

    assert unsigned(message.map_url) == unsigned(item.assets["classes"].href)
    assert "/signed/" in message.map_url and unsigned(message.map_url).endswith("-clc-unet-v1/classes.tif")
    status, _, body = fetch(stac, message.item_url.removeprefix(root))
    assert status == 200 and json.loads(body)["id"] == item.id


def test_errors_are_clear_and_access_needs_a_valid_certificate(stac) -> None:
    status, _, body = fetch(stac, "/stac/search?filter=" + urllib.request.quote("nonsense >= 1"))
    assert status == 400 and "unknown property 'nonsense'" in json.loads(body)["description"]
    status, _, body = fetch(stac, "/stac/search?filter=" + urllib.request.quote("eo:cloud_cover >"))
    assert status == 400 and "not valid CQL2" in json.loads(body)["description"]
    assert fetch(stac, "/stac/collections/no-such-model")[0] == 404
    assert fetch(stac, "/stac/collections/clc-unet/items/S2A_nothing-v1")[0] == 404
    status, _, body = fetch(stac, "/v1/maps/clc-unet/S2A_nothing-v1/classes.tif")
    assert status == 404 and json.loads(body)["code"] == 5
    status, _, body = fetch(stac, "/v1/maps/clc-unet/..%2Fetc-v1/classes.tif")
    assert status in (400, 404)
    certs, *_ = stac
    certs.ca.revoke(x509.load_pem_x509_certificate(certs.pilot[1].read_bytes()).serial_number)
    try:
        status, _, body = fetch(stac, "/stac/collections")
        assert status == 401 and "revoked" in json.loads(body)["message"]
        assert fetch(stac, "/stac/collections", who="internal")[0] == 200
    finally:
        certs.ca.revoked_path.write_text("[]\n")


def test_the_map_page_finds_maps_in_a_real_browser(stac, tmp_path) -> None:
    """Debian's Chromium, headless, presenting the pilot's certificate (Playwright's client certificates):
    the page lists the models, a search draws footprints and class maps, the legend names the classes present."""
    certs, root, _ = stac
    screenshot = tmp_path / "map-page.png"  # the README's picture comes from test_map_page.py
    with map_page_in_chromium(certs, root, "?basemap=none") as page:
        assert page.eval_on_selector_all("#collection option", "o => o.map(x => x.value)") == \
            ["burnt-unet", "clc-unet"]
        search_on_map_page(page, "clc-unet", ("burnt_areas",), center=(0, 0), zoom=1)
        assert page.inner_text("#status") == "2 maps found"
        assert page.evaluate("footprints.getFeatures().length") == 2
        assert page.evaluate("mapLayers.getLayers().getLength()") == 2  # both class maps drawn
        legend = page.eval_on_selector_all(".legend-entry", "e => e.map(x => x.dataset.class)")
        assert "burnt_areas" in legend and "clc-unet" in page.inner_text("#legend h2")
        # the picture: the newest map filling the view, as a pilot zooms in
        page.evaluate("map.getView().fit(footprints.getFeatures()[0].getGeometry().getExtent(), "
                      "{padding: [40, 40, 40, 40]})")
        page.wait_for_timeout(500)
        page.screenshot(path=str(screenshot))
    assert screenshot.stat().st_size > 10_000


@pytest.mark.parametrize("body", [
    {"filter": "(" * 3000 + "eo:cloud_cover < 1" + ")" * 3000, "filter-lang": "cql2-text"},  # crashed cql2
    {"filter": "NOT " * 4000 + "eo:cloud_cover < 1", "filter-lang": "cql2-text"},
    {"filter": "eo:cloud_cover < " + "-" * 15000 + "1", "filter-lang": "cql2-text"},
    {"intersects": {"type": "Polygon", "coordinates": [[[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]]}},  # bow tie
    {"bbox": [170, 0, 190, 10]}, {"bbox": [0, 0, 1]}, {"limit": 0}, {"limit": "many"},
    {"ids": [f"x{k}" for k in range(101)]}, {"datetime": "2021-13-45"},
    {"filter": {"op": "frobnicate", "args": []}},
    {"filter": "id > 5"}, {"filter": "eo:cloud_cover = 'abc'"}, {"filter": "grid:code LIKE 'MGRS\\'"},
    {"filter": "s_intersects(geometry, POLYGON((0 0, 1 1, 1 0, 0 1, 0 0)))"},
    {"filter": {"op": "=", "args": [{"property": "id"}, "a\u0000b"]}},  # PostgreSQL refuses NUL in text
    {"filter": "datetime > 'yesterday'"}, {"token": "forged"},
])
def test_hostile_searches_get_400_and_the_server_stays_up(stac, body) -> None:
    status, _, answer = fetch(stac, "/stac/search", body=json.dumps(body).encode())
    assert status == 400, answer[:300]
    assert fetch(stac, "/stac/search?limit=1")[0] == 200


def test_bodies_too_large_or_too_deep_are_refused(stac) -> None:
    status, _, answer = fetch(stac, "/stac/search", body=b'{"ids": ["' + b"x" * 2_000_000 + b'"]}')
    assert status == 413 and json.loads(answer)["code"] == 8
    chunked = iter([b'{"ids": ["', *[b"x" * 100_000] * 20, b'"]}'])  # no Content-Length: counted as it comes
    status, _, answer = fetch(stac, "/stac/search", body=chunked)
    assert status == 413 and json.loads(answer)["code"] == 8
    status, _, _ = fetch(stac, "/stac/search", body=b'{"filter": ' + b"[" * 200_000 + b"]" * 200_000 + b"}")
    assert status in (400, 413)  # deeper than JSON parsing allows: refused, never a crash
    assert fetch(stac, "/stac/search?limit=1")[0] == 200


def test_pilot_pictures_show_the_classes_present_and_save_a_cog(stac, tmp_path) -> None:
    from rio_cogeo.cogeo import cog_validate

    from earthsignature.client import pictures
    from earthsignature.client.pictures import save_maps, scale_length, share_label

    certs, _, address = stac
    key, cert = certs.pilot
    with EarthSignatureClient(address, ca=certs.ca.cert_path, cert=cert, key=key) as client:
        result = next(r for r in client.list() if r.tile_id == "34SGH" and r.model.startswith("clc"))
        quicklook = client.quicklook(result)
        stem = save_maps(result, tmp_path, quicklook)
    assert quicklook == quicklook_png()  # fetched over HTTPS with the pilot's certificate
    clouded = result.cloud_mask == 1
    assert clouded.any() and (pictures._rgb(result)[clouded] == CLOUD_COLOR).all()  # clouds drawn as clouds
    assert stem.with_suffix(".png").stat().st_size > 20_000
    valid, errors, _ = cog_validate(str(stem.with_suffix(".tif")))
    assert valid, errors
    with rasterio.open(stem.with_suffix(".tif")) as dataset:
        assert dataset.tags(1)["CLASS_2"] == "Burnt areas"
    categories = [c.text for c in ET.parse(f"{stem}.tif.aux.xml").getroot().iter("Category")]
    assert categories[2] == "Burnt areas"
    assert (share_label(0.004), share_label(0.3)) == ("<1 %", "30 %")
    assert (scale_length(1200), scale_length(109_800)) == (200, 20_000)


def test_object_store_files_are_served_by_single_byte_ranges(tmp_path, monkeypatch) -> None:
    """The path for a remote store (s3://, gs://...), run here against a folder: same store methods."""
    from earthsignature.service.api import map_files
    from earthsignature.service.api.errors import ResourceExhausted
    from earthsignature.service.catalog.raster_store import RasterStore

    store = RasterStore(str(tmp_path))
    url = store.write_bytes(store.url_for("a", "file.bin"), bytes(range(256)) * 4)
    whole = map_files.ranged_response(store, url, None)
    assert whole.status_code == 200 and whole.body == bytes(range(256)) * 4
    part = map_files.ranged_response(store, url, "bytes=10-19")
    assert part.status_code == 206 and part.body == bytes(range(10, 20))
    assert part.headers["content-range"] == "bytes 10-19/1024"
    assert map_files.ranged_response(store, url, "bytes=-6").body == bytes(range(250, 256))
    assert map_files.ranged_response(store, url, "bytes=1000-").body == bytes(range(232, 256))
    assert map_files.ranged_response(store, url, "bytes=abc").status_code == 416
    assert map_files.ranged_response(store, url, "bytes=2000-").status_code == 416
    assert map_files.ranged_response(store, url, "bytes=" + "9" * 5000 + "-").status_code == 416
    monkeypatch.setattr(map_files, "MAX_RANGE_BYTES", 100)
    with pytest.raises(ResourceExhausted):
        map_files.ranged_response(store, url, None)


def test_class_maps_as_xyz_tiles(stac, pystac_client) -> None:
    import math

    from rasterio.io import MemoryFile

    item = next(pystac_client().search(collections=["clc-unet"], filter="grid:code = 'MGRS-34SGH'").items())
    template = next(link.href for link in item.links if link.rel == "xyz")
    west, south, east, north = item.bbox
    lon, lat, z = (west + east) / 2, (south + north) / 2, 15
    x = int((lon + 180) / 360 * 2 ** z)
    y = int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * 2 ** z)

    def tile(z: int, x: int, y: int) -> tuple[int, np.ndarray]:
        status, _, body = fetch(stac, template.removeprefix(stac[1]).format(z=z, x=x, y=y))
        if status != 200:
            return status, np.empty(0)
        with MemoryFile(body) as memory, memory.open() as image:
            return status, image.read()

    status, rgba = tile(z, x, y)
    assert status == 200 and rgba.shape == (4, 256, 256)
    opaque = rgba[3] == 255
    assert opaque.mean() > 0.2  # the map covers part of the tile, the rest is transparent
    colours = {tuple(int(v) for v in rgba[:3, r, c]) for r, c in zip(*np.nonzero(opaque), strict=True)}
    legend = {tuple(int(item.assets["classes"].extra_fields["classification:classes"][k]["color_hint"][i:i + 2], 16)
                    for i in (0, 2, 4)) for k in range(4)}
    assert colours <= legend and len(colours) >= 2
    # the map's northern rows are clouded (product_request): a tile over them shows clouds, white
    top = int((1 - math.asinh(math.tan(math.radians(north - 0.0005))) / math.pi) / 2 * 2 ** 16)
    status, rgba = tile(16, int((lon + 180) / 360 * 2 ** 16), top)
    opaque = rgba[3] == 255
    colours = {tuple(int(v) for v in rgba[:3, r, c]) for r, c in zip(*np.nonzero(opaque), strict=True)}
    assert status == 200 and CLOUD_COLOR in colours and colours <= legend | {CLOUD_COLOR}
    status, rgba = tile(z, x + 3, y)  # beside the map
    assert status == 200 and (rgba[3] == 0).all()
    assert tile(23, 0, 0)[0] == 400 and tile(3, 8, 0)[0] == 400


def test_a_maps_tilejson_describes_its_tiles(stac, pystac_client) -> None:
    import math

    item = next(pystac_client().search(collections=["clc-unet"], filter="grid:code = 'MGRS-34SGH'").items())
    links = {link.rel: link for link in item.links}
    assert links["tilejson"].media_type == "application/json"
    status, headers, body = fetch(stac, links["tilejson"].href.removeprefix(stac[1]))
    document = json.loads(body)
    assert status == 200 and headers["Content-Type"] == "application/json"
    assert document["tilejson"] == "3.0.0" and document["tiles"] == [links["xyz"].href]
    assert document["bounds"] == pytest.approx(item.bbox) and document["minzoom"] == 0
    # the deepest zoom is the first whose pixels are finer than the map's (10 m) at its latitude
    west, south, east, north = item.bbox
    latitude = (south + north) / 2
    pixel = item.properties["proj:transform"][0]

    def metres(zoom: int) -> float:
        return 2 * math.pi * 6378137 * math.cos(math.radians(latitude)) / 256 / 2 ** zoom

    assert metres(document["maxzoom"]) <= pixel < metres(document["maxzoom"] - 1)
    lon, lat, zoom = document["center"]
    assert west < lon < east and south < lat < north and 0 <= zoom <= document["maxzoom"]
    x = int((lon + 180) / 360 * 2 ** zoom)
    y = int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * 2 ** zoom)
    status, _, png = fetch(stac, document["tiles"][0].removeprefix(stac[1]).format(z=zoom, x=x, y=y))
    assert status == 200 and png[:8] == b"\x89PNG\r\n\x1a\n"


def test_every_queryable_is_in_the_items_and_finds_them(stac) -> None:
    """One record per property: each name on /queryables is in the item (a property, or the item's own id,
    collection, geometry), and a CQL2 filter on the item's own value finds that item."""
    status, _, body = fetch(stac, "/stac/collections/clc-unet/queryables")
    names = json.loads(body)["properties"]
    status, _, body = fetch(stac, "/stac/collections/clc-unet/items?limit=1")
    (feature,) = json.loads(body)["features"]
    members = {"id": feature["id"], "collection": feature["collection"]}
    assert any(name.startswith("fraction:") for name in names)
    for name, schema in names.items():
        if name == "geometry":
            literal = f"s_intersects(geometry, POINT({feature['bbox'][0] + 0.01} {feature['bbox'][1] + 0.01}))"
        else:
            value = members[name] if name in members else feature["properties"].get(name, 0.0)
            if schema.get("format") == "date-time":
                literal = f"\"{name}\" = TIMESTAMP('{value}')"
            elif schema.get("type") == "number":
                literal = f"\"{name}\" BETWEEN {float(value) - 1e-6} AND {float(value) + 1e-6}"
            else:
                literal = f"\"{name}\" = '{value}'"
        query = urllib.parse.urlencode({"filter": literal, "ids": feature["id"], "collections": "clc-unet"})
        status, _, body = fetch(stac, f"/stac/search?{query}")
        assert status == 200 and [f["id"] for f in json.loads(body)["features"]] == [feature["id"]], (name, body[:300])


def test_get_search_takes_intersects_as_geojson(stac) -> None:
    """GET ``intersects`` is GeoJSON text (it was refused: "'str' object has no attribute 'model_dump'")."""
    status, _, body = fetch(stac, "/stac/search?" + urllib.parse.urlencode({"filter": "\"grid:code\" = 'MGRS-34SGH'"}))
    west, south, east, north = json.loads(body)["features"][0]["bbox"]
    point = json.dumps({"type": "Point", "coordinates": [(west + east) / 2, (south + north) / 2]})
    status, _, body = fetch(stac, "/stac/search?" + urllib.parse.urlencode({"intersects": point}))
    found = json.loads(body)["features"]
    assert status == 200 and found and all(f["properties"]["grid:code"] == "MGRS-34SGH" for f in found)
    far_line = {"type": "LineString", "coordinates": [[101.0, 0.0], [102.0, 1.0]]}  # any GeoJSON geometry
    collection = json.dumps({"type": "GeometryCollection", "geometries": [json.loads(point), far_line]})
    status, _, body = fetch(stac, "/stac/search?" + urllib.parse.urlencode({"intersects": collection}))
    assert status == 200 and {f["id"] for f in json.loads(body)["features"]} == {f["id"] for f in found}
    for bad in ("{", '{"type": "Point", "coordinates": [NaN, 0]}', "[" * 5000):
        status, _, body = fetch(stac, "/stac/search?" + urllib.parse.urlencode({"intersects": bad}))
        assert status == 400 and "intersects" in json.loads(body)["message"]


def test_item_pages_link_to_themselves(stac) -> None:
    for path in ("/stac/search?limit=2", "/stac/collections/clc-unet/items?limit=2"):
        status, headers, body = fetch(stac, path)
        links = {link["rel"]: link["href"] for link in json.loads(body)["links"]}
        assert status == 200 and links["self"].endswith(path) and "next" in links
        assert headers["Content-Type"] == "application/geo+json"


def test_item_answers_hold_no_nulls(stac) -> None:
    """The service renders its item answers itself: nothing is left null for a schema to refuse (a STAC
    field is left out when it has no value)."""
    _, first = fetch(stac, "/stac/search?limit=3")[::2]
    item = json.loads(first)["features"][0]
    single = fetch(stac, f"/stac/collections/{item['collection']}/items/{item['id']}")[2]
    for document in (json.loads(first), json.loads(single)):
        assert document["type"] in ("FeatureCollection", "Feature") and not list(_nulls(document))


def _nulls(value, path: str = ""):
    if value is None:
        yield path
    for key, inner in value.items() if isinstance(value, dict) else enumerate(value if isinstance(value, list) else ()):
        yield from _nulls(inner, f"{path}/{key}")


def test_pages_link_forward_and_back(stac) -> None:
    """Following ``next`` to the last page, then ``prev`` back to the first, visits the same pages (GET and
    POST alike); the first page has no ``prev``, the last no ``next``."""
    _, root, _ = stac

    def page(link: dict) -> tuple[list[str], dict[str, dict]]:
        path = link["href"].removeprefix(root)
        body = json.dumps({**json.loads(link.get("_sent", "{}")), **link.get("body", {})}).encode() \
            if link.get("method") == "POST" else None
        status, _, answer = fetch(stac, path, body=body)
        assert status == 200, answer
        document = json.loads(answer)
        links = {entry["rel"]: {**entry, "_sent": body.decode() if body else "{}"} for entry in document["links"]}
        return [item["id"] for item in document["features"]], links

    for first in ({"href": f"{root}/stac/search?limit=2"},
                  {"href": f"{root}/stac/search", "method": "POST", "body": {"limit": 2}}):
        ids, links = page(first)
        forward = [ids]
        assert "prev" not in links
        while "next" in links:
            ids, links = page(links["next"])
            forward.append(ids)
        backward = [ids]
        while "prev" in links:
            ids, links = page(links["prev"])
            backward.append(ids)
        assert len(forward) >= 3 and backward == forward[::-1], (forward, backward)
        assert len({i for ids in forward for i in ids}) == sum(map(len, forward))  # no item twice


def test_items_and_collections_validate_against_the_stac_schemas_and_extension_rules(stac) -> None:
    """The core JSON schemas pystac ships (offline), and for each extension used the rules its specification
    states (``extension_rules``): no schema is fetched from the internet."""
    from jsonschema import Draft7Validator
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT7

    schemas = offline_schemas()
    registry = Registry().with_resources(
        (uri, Resource.from_contents(schema, default_specification=DRAFT7)) for uri, schema in schemas.items())

    def errors(document: dict, schema_url: str) -> list[str]:
        return [error.message for error in Draft7Validator(schemas[schema_url], registry=registry)
                .iter_errors(document)]

    def core(kind: str) -> str:
        return f"https://schemas.stacspec.org/v1.1.0/{kind}-spec/json-schema/{kind}.json"

    status, _, body = fetch(stac, "/stac/search?limit=100")
    items = json.loads(body)["features"]
    status_c, _, body_c = fetch(stac, "/stac/collections")
    collections = json.loads(body_c)["collections"]
    assert status == status_c == 200 and len(items) == len(TILES) + 1 and len(collections) == 2
    for document in [*items, *collections]:
        kind = "item" if document["type"] == "Feature" else "collection"
        assert document["stac_version"] == "1.1.0" and errors(document, core(kind)) == [], document["id"]
        assert document["stac_extensions"] and all(url in EXTENSION_SCHEMAS for url in document["stac_extensions"])
        for url in document["stac_extensions"]:
            assert errors(document, url) == [], (document["id"], url)
    for item in items:
        for key, value in item["properties"].items():  # our own fractions: numbers in 0..1
            if key.startswith("fraction:") or key.endswith("_fraction"):
                assert 0 <= value <= 1, key
        assert {link["rel"] for link in item["links"]} >= {"self", "parent", "collection", "root", "xyz", "tilejson"}
    # the schemas bite: a bad datetime, an asset without href, a class without a name, an xyz link without {z}
    item = items[0]
    assert errors({**item, "properties": {**item["properties"], "datetime": "yesterday"}}, core("item"))
    assert errors({**item, "assets": {"classes": {}}}, core("item"))
    classes = item["assets"]["classes"]
    unnamed = {**classes, "classification:classes": [{"value": 1}]}
    assert errors({**item, "assets": {**item["assets"], "classes": unnamed}}, EXTENSIONS["classification"])
    bad_xyz = [{**link, "href": link["href"].replace("{z}", "z")} for link in item["links"]]
    assert errors({**item, "links": bad_xyz}, EXTENSIONS["web_map_links"])
    untyped = [{k: v for k, v in link.items() if link["rel"] != "tilejson" or k != "type"} for link in item["links"]]
    assert errors({**item, "links": untyped}, EXTENSIONS["web_map_links"])
    assert errors({**item, "properties": {**item["properties"], "grid:code": "34SGH"}}, EXTENSIONS["grid"])
    assert len({item["id"] for item in items}) == len(items)  # ids unique across collections


def offline_schemas() -> dict[str, dict]:
    """Every schema a STAC validator fetches, by URL: the core and GeoJSON ones pystac ships, and the
    extensions' stated rules."""
    from pystac.validation.local_validator import get_local_schema_cache

    return {**get_local_schema_cache(), **EXTENSION_SCHEMAS}


#: stac-api-validator sends its own requests through ``Session.send``, which trusts certifi's CAs only (it ignores
#: REQUESTS_CA_BUNDLE): the one change to it, a session that trusts the project's CA too. A server with a publicly
#: trusted certificate needs none.
_VALIDATOR_TRUSTING_THE_PROJECT_CA = """
import os
import requests
import stac_api_validator.validations as validations
from stac_api_validator.__main__ import main

class Session(requests.Session):
    def __init__(self):
        super().__init__()
        self.verify = os.environ["REQUESTS_CA_BUNDLE"]

validations.Session = Session
main(prog_name="stac-api-validator")
"""


def test_stac_api_validator_passes_every_declared_conformance_class(stac, tmp_path) -> None:
    """stac-api-validator (PyPI) against the running server as the pilot (an access token for the pilot's
    certificate: the validator sends no certificate), offline: the schemas it fetches come from a local mirror
    (the core ones pystac ships, the extensions' stated rules)."""
    from .schema_mirror import schema_mirror

    certs, root, _ = stac
    _, _, body = fetch(stac, "/stac/")
    declared = json.loads(body)["conformsTo"]
    classes = {"core": "/v1.0.0/core", "collections": "/v1.0.0/collections", "features": "/ogcapi-features",
               "item-search": "/v1.0.0/item-search", "filter": "item-search#filter"}
    assert all(any(uri.endswith(suffix) for uri in declared) for suffix in classes.values())
    token = json.loads(fetch(stac, "/v1/token")[2])["access_token"]  # the pilot's certificate, for a token
    area = {"type": "Polygon", "coordinates": [[[-180, -85], [180, -85], [180, 85], [-180, 85], [-180, -85]]]}
    with schema_mirror(tmp_path, offline_schemas()) as mirror:
        run = subprocess.run(
            [sys.executable, "-c", _VALIDATOR_TRUSTING_THE_PROJECT_CA, "--root-url", f"{root}/stac/",
             "--headers", f"Authorization: Bearer {token}", "--collection", "clc-unet", "--geometry", json.dumps(area),
             "--validate-pagination", *(arg for name in classes for arg in ("--conformance", name))],
            capture_output=True, text=True, timeout=600, env={**os.environ, **mirror.environment(certs.ca.cert_path)})
    report = run.stdout[run.stdout.find("Warnings"):]
    assert run.returncode == 0 and "Errors: none" in report, report[-6000:] + run.stderr[-2000:]
    # the items and collections were validated against every schema they name, all served by the mirror
    assert mirror.refused == [], mirror.refused
    assert set(mirror.served) >= {EXTENSIONS[name] for name in ("classification", "projection", "grid")}
