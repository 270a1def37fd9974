"""Every request under a budget: generated pathological input is refused within its budget while pilots are
served, catalog statements are cancelled past their time, and inputs that once reached a 500 are 4xx."""

from __future__ import annotations

import json
import ssl
import threading
import time
import urllib.parse

import grpc
import pytest
import sqlalchemy as sa

from earthsignature.core.settings import ApiLimits
from earthsignature.samples.requests import product_request
from earthsignature.service.api.auth import Caller
from earthsignature.service.api.budget import Deadline
from earthsignature.service.api.errors import DeadlineExceeded
from earthsignature.service.api.records import ItemSearch, MapQuery

from .api_fixtures import client_of, https, https_context, server_with_http_app

pytestmark = pytest.mark.postgis
PARSE_TIMEOUT_S = 2.0


@pytest.fixture(scope="module")
def service(module_db, tmp_path_factory):
    """A server with two CLC maps, its HTTP app, and a 2 s parse budget."""
    limits = ApiLimits(parse_timeout_s=PARSE_TIMEOUT_S, parse_processes=1)
    with server_with_http_app(module_db, tmp_path_factory.mktemp("budget"), limits) as (certs, server, gateway):
        with client_of(certs, server) as client:
            client.create(product_request(1, "34SGH", day=1, burnt_share=0.3))
            client.create(product_request(2, "31TCJ", day=2))
        yield certs, server, f"https://127.0.0.1:{gateway.port}"


def search(root: str, cql2_text: str) -> str:
    return f"{root}/stac/search?" + urllib.parse.urlencode({"filter": cql2_text, "filter-lang": "cql2-text"})


def pathological_filters() -> dict[str, str]:
    """Generated inputs of each class that has held a parser or the catalog: deep and backtracking nesting,
    prefix-operator runs, long arithmetic chains, wide ORs, many-vertex geometries, wildcard patterns."""
    ring = ", ".join(f"{10 + k / 5000:.6f} {40 + (k % 2) / 1000:.6f}" for k in range(4999))
    return {
        **{f"unbalanced nesting {n}": "(" * n + "a=" + ")" * n for n in (18, 23, 31, 63)},
        "balanced nesting 200": "(" * 200 + "eo:cloud_cover > 1" + ")" * 200,
        "not run": "not " * 300 + "eo:cloud_cover > 1",
        "minus run": "eo:cloud_cover > " + "-" * 400 + "1",
        "arithmetic chain": "eo:cloud_cover > " + "+".join(["1"] * 600),
        "wide or": " or ".join(f"\"fraction:burnt_areas\" > 0.{k:04d}" for k in range(3000)),
        "many vertices": f"s_intersects(geometry, LINESTRING({ring}))",
        "unterminated string": "id = '" + "a" * 15000,
    }


def sent_as() -> list[tuple[str, str]]:
    """Every filter by POST, and by GET where it fits a URL of a few kilobytes."""
    filters = pathological_filters()
    return [(name, "POST") for name in sorted(filters)] + [
        (name, "GET") for name in sorted(filters) if len(search("https://127.0.0.1:1", filters[name])) < 8000]


@pytest.mark.parametrize(("name", "method"), sent_as())
def test_pathological_filters_are_refused_with_a_reason(service, name, method):
    certs, _, root = service
    text = pathological_filters()[name]
    body = json.dumps({"filter": text, "filter-lang": "cql2-text"}).encode() if method == "POST" else None
    status, answer = https(https_context(certs), search(root, text) if method == "GET" else f"{root}/stac/search",
                           body)
    assert status == 400, (name, status, answer)
    assert answer["code"] == grpc.StatusCode.INVALID_ARGUMENT.value[0] and answer["message"]


@pytest.mark.parametrize("text", [
    "(" * 40 + "eo:cloud_cover > 1" + ")" * 40, "id like '" + "%_" * 2000 + "x'",
    " or ".join(f"eo:cloud_cover > {k}" for k in range(60)),
])
def test_deep_wide_or_wild_but_within_limits_is_answered(service, text):
    certs, _, root = service
    body = json.dumps({"filter": text, "filter-lang": "cql2-text"}).encode()
    status, answer = https(https_context(certs), f"{root}/stac/search", body)
    assert status == 200, answer
    assert answer["numberReturned"] == (0 if "like" in text else 2)


def test_a_malformed_request_line_is_answered_as_json(service):
    certs, _, root = service
    status, answer = https(https_context(certs), f"{root}/stac/search?filter=" + "a" * 70_000)
    assert status == 400 and answer["code"] == grpc.StatusCode.INVALID_ARGUMENT.value[0]


def test_a_runaway_parse_holds_nobody(service):
    """A filter cql2 backtracks on for minutes is cut at its budget; pilots asking meanwhile, over gRPC and
    HTTP, are answered before it is (in one process with the parser, they waited for it)."""
    certs, server, root = service
    context = https_context(certs)
    finished: dict[str, float] = {}

    def hostile() -> None:
        finished["status"] = https(context, search(root, "(" * 30 + "a=" + ")" * 30))[0]
        finished["hostile"] = time.monotonic()

    thread = threading.Thread(target=hostile)
    thread.start()
    time.sleep(PARSE_TIMEOUT_S / 4)
    with client_of(certs, server, "pilot") as pilot:
        assert len(list(pilot.list(max_pixels=64))) == 2
    finished["grpc"] = time.monotonic()
    assert https(context, f"{root}/stac/search?limit=5")[1]["numberReturned"] == 2
    finished["http"] = time.monotonic()
    thread.join(60)
    assert finished["status"] == 400
    assert finished["grpc"] < finished["hostile"] and finished["http"] < finished["hostile"]


def test_the_parser_recovers_after_a_killed_parse(service):
    certs, _, root = service
    context = https_context(certs)
    assert https(context, search(root, "(" * 25 + "a=" + ")" * 25))[0] == 400
    status, body = https(context, search(root, "\"fraction:burnt_areas\" > 0.1"))
    assert status == 200 and len(body["features"]) == 1


def test_statements_past_their_budget_are_cancelled(module_db, tmp_path):
    """A catalog statement waiting on a lock: past lock_timeout the answer is UNAVAILABLE (retry), past
    statement_timeout DEADLINE_EXCEEDED; over HTTP both are 503. Nothing is left running in PostgreSQL."""
    engine = sa.create_engine(module_db)
    for limits, code in ((ApiLimits(lock_timeout_ms=200), grpc.StatusCode.UNAVAILABLE),
                         (ApiLimits(lock_timeout_ms=0, statement_timeout_ms=300), grpc.StatusCode.DEADLINE_EXCEEDED)):
        with server_with_http_app(module_db, tmp_path / code.name, limits) as (certs, server, gateway), \
                engine.connect() as blocker:
            blocker.execute(sa.text("LOCK TABLE products IN ACCESS EXCLUSIVE MODE"))
            with client_of(certs, server, "pilot") as pilot, pytest.raises(grpc.RpcError) as refused:
                list(pilot.list(max_pixels=64))
            assert refused.value.code() == code, refused.value.details()
            status, body = https(https_context(certs), f"https://127.0.0.1:{gateway.port}/stac/search?limit=1")
            assert status == 503 and body["code"] == code.value[0]
            blocker.rollback()
    with engine.connect() as connection:
        waiting = connection.scalar(sa.text("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"))
    assert waiting == 0
    engine.dispose()


@pytest.mark.parametrize(("body", "content_type"), [
    (b"[1, 2]", "application/json"), (b'"eo:cloud_cover > 1"', "application/json"), (b"42", "application/json"),
    (b"{not json", "application/json"), (b'{"limit": 2}', "text/plain"), (b"[" * 100_000, "application/json"),
    (json.dumps({"intersects": {"type": "Point", "coordinates": [1e400, 0]}}).encode(), "application/json"),
    (b'{"intersects": {"type": "Point", "coordinates": [-Infinity, NaN]}}', "application/json"),
    (b'{"bbox": [10, 50, 11, 40]}', "application/json"), (b'{"bbox": [10, 40, 11, 50, 3]}', "application/json"),
    (b'{"datetime": "0001-01-01T00:00:00+23:59"}', "application/json"),
    (b'{"limit": "many"}', "application/json"), (b'{"collections": "x"}', "application/json"),
])
def test_post_search_bodies_are_answered_400(service, body, content_type):
    certs, _, root = service
    status, answer = https(https_context(certs), f"{root}/stac/search", body, content_type)
    assert status == 400, (body[:60], status, answer)
    assert answer["code"] == grpc.StatusCode.INVALID_ARGUMENT.value[0] and len(answer["message"]) < 1000


def test_post_search_takes_cql2_text(service):
    certs, _, root = service
    body = json.dumps({"filter": "\"fraction:burnt_areas\" > 0.1", "filter-lang": "cql2-text"}).encode()
    status, answer = https(https_context(certs), f"{root}/stac/search", body)
    assert status == 200 and len(answer["features"]) == 1


@pytest.mark.parametrize("query", [
    "datetime=0001-01-01T00:00:00%2B23:59", "datetime=9999-12-31T23:59:59-23:59", "bbox=10,50,11,40",
    "filter=datetime%20%3E%20TIMESTAMP('0001-01-01T00:00:00%2B23:59')", "bbox=1e400,0,1,1", "limit=-1",
])
def test_get_search_edges_are_400(service, query):
    certs, _, root = service
    status, answer = https(https_context(certs), f"{root}/stac/search?{query}")
    assert status == 400, (query, status, answer)


@pytest.mark.parametrize("category", ["²", "٣", "¹²³", "1" * 12])
def test_categories_that_look_like_digits(service, category):
    """``str.isdigit`` takes superscripts and other scripts' digits, which ``int`` refuses: a category is a
    code only when it is ASCII digits; otherwise it is a name (unknown here: INVALID_ARGUMENT)."""
    certs, server, root = service
    with client_of(certs, server, "pilot") as pilot, pytest.raises(grpc.RpcError) as refused:
        list(pilot.list(categories=[category]))
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    status, _ = https(https_context(certs), f"{root}/v1/segmentation:list?" + urllib.parse.urlencode(
        {"categories": category}))
    assert status == 400


def test_a_world_spanning_area_is_answered(service):
    """An area that cannot be reprojected to a map's UTM zone whole is clipped to the map first."""
    certs, server, _ = service
    with client_of(certs, server, "pilot") as pilot:
        found = list(pilot.list(wkt="POLYGON((-180 -90, 180 -90, 180 90, -180 90, -180 -90))", max_pixels=64))
    assert len(found) == 2 and all(r.classes.size > 0 for r in found)


def tls_socket(certs, port: int):
    import socket

    raw = socket.create_connection(("127.0.0.1", port), timeout=30)
    return https_context(certs).wrap_socket(raw, server_hostname="127.0.0.1")


@pytest.mark.parametrize("after_a_request", [False, True])
def test_a_client_trickling_headers_is_disconnected(module_db, tmp_path, after_a_request):
    """Authenticated connections too: headers not in within header_timeout_s, the server closes."""
    limits = ApiLimits(header_timeout_s=1.0)
    with server_with_http_app(module_db, tmp_path, limits) as (certs, _, gateway), \
            tls_socket(certs, gateway.port) as connection:
        if after_a_request:
            connection.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            assert b"200 OK" in connection.recv(65536)
        connection.sendall(b"GET /stac/ HTTP/1.1\r\n")
        connection.settimeout(0.25)
        closed = False
        for _ in range(40):  # one header line every 0.25 s for 10 s: never complete, always sending
            try:
                connection.sendall(b"X-Slow: 1\r\n")
                if connection.recv(65536) == b"":  # the server closed it
                    closed = True
                    break
            except TimeoutError:  # nothing to read: still open
                continue
            except (ConnectionError, ssl.SSLError):  # reset or cut by the server
                closed = True
                break
        assert closed, "the server kept a connection whose headers never finished"


def test_a_body_that_never_arrives_is_answered_408(module_db, tmp_path):
    limits = ApiLimits(body_timeout_s=1.0)
    with server_with_http_app(module_db, tmp_path, limits) as (certs, _, gateway), \
            tls_socket(certs, gateway.port) as connection:
        connection.sendall(b"POST /stac/search HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                           b"Content-Length: 100\r\n\r\n{\"limit\":")
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 408") and b'"code":4' in answer.replace(b" ", b"")


def test_health_is_checked_like_every_route(service, tmp_path):
    """``/healthz`` reports on the catalog: only to a valid, unrevoked certificate with a role."""
    from cryptography import x509

    certs, _, root = service
    assert https(https_context(certs), f"{root}/healthz") == (200, {"status": "SERVING"})
    roleless = certs.ca.issue(tmp_path / "nobody", "nobody", None)
    context = https_context(certs)
    context.load_cert_chain(str(roleless[1]), str(roleless[0]))
    assert https(context, f"{root}/healthz")[0] == 403
    certs.ca.revoke(x509.load_pem_x509_certificate(certs.pilot[1].read_bytes()).serial_number)
    try:
        status, answer = https(https_context(certs), f"{root}/healthz")
        assert status == 401 and "revoked" in answer["message"]
    finally:
        certs.ca.revoked_path.write_text("[]\n")


@pytest.mark.parametrize(("field", "value"), [
    ("wkt", "POLYGON((0 0" + ", 1 1" * 16_000 + ", 0 0))"),  # near the 100,000-character cap
    ("wkt", "GEOMETRYCOLLECTION(" * 5_000 + "POINT(1 1)" + ")" * 5_000),
    ("wkt", "POLYGON(" + "(" * 30_000),
    ("query", 'class:"' + "a" * 1_990),
    ("query", "class:" * 333),
    ("query", " ".join(["after:2021-01-01"] * 120)),
    ("query", "bbox:" + ",".join(["1" * 400] * 4)),
])
def test_other_client_text_is_answered_at_its_worst(service, field, value):
    """The other parsers of client text (WKT by GEOS, the query language's single regular-expression pass) on
    inputs at their length caps built to be expensive: answered, by status, like any input."""
    certs, server, _ = service
    with client_of(certs, server, "pilot") as pilot:
        try:
            if field == "wkt":
                list(pilot.list(wkt=value, max_pixels=64))
            else:
                list(pilot.search(value, max_pixels=64))
        except grpc.RpcError as error:
            assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error.details()


LONG = "1" * 5_000  # past the 4,300 digits int() takes from text
HUGE = "1" * 400  # an integer past a float's range


@pytest.mark.parametrize("path", [
    f"/v1/maps/clc-unet/S2A_nothing-v1/tiles/{LONG}/0/0.png", f"/v1/maps/clc-unet/S2A_nothing-v1/tiles/3/1/{LONG}.png",
    f"/stac/search?limit={LONG}", f"/stac/search?bbox={LONG},0,1,1", f"/stac/collections/clc-unet/items?limit={LONG}",
    f"/stac/search?datetime={LONG}-01-01T00:00:00Z/..", f"/v1/segmentation:list?nResults={LONG}",
    f"/v1/segmentation:list?maxPixels={HUGE}", f"/v1/segmentation:search?query=cloud%3C{LONG}",
    *("/stac/search?" + urllib.parse.urlencode({"filter": f"{name} > {number}"})
      for name in ("eo:cloud_cover", '"fraction:burnt_areas"') for number in (LONG, HUGE, f"-{HUGE}")),
], ids=lambda text: f"{text[:45]}...{len(text)}")
def test_numbers_past_int_and_float_are_4xx(service, path):
    """Numbers in paths, parameters and filters longer than int() parses or larger than a float holds: a 4xx
    naming the input, as every other bad number is, never a 500."""
    certs, _, root = service
    status, answer = https(https_context(certs), root + path)
    assert 400 <= status < 500 and answer["code"] in (3, 5, 11), (path[:80], status, answer)


@pytest.mark.parametrize("body", [
    f'{{"limit": {LONG}}}', f'{{"bbox": [{HUGE}, 0, 1, 1]}}', f'{{"bbox": [{LONG}, 0, 1, 1]}}',
    f'{{"intersects": {{"type": "Point", "coordinates": [{HUGE}, 0]}}}}',
    *(f'{{"filter-lang": "cql2-json", "filter": {{"op": ">", "args": [{{"property": "{name}"}}, {number}]}}}}'
      for name in ("eo:cloud_cover", "fraction:burnt_areas") for number in (LONG, HUGE)),
    f'{{"filter": "eo:cloud_cover > {HUGE}", "filter-lang": "cql2-text"}}',
], ids=lambda text: f"{text[:45]}...{len(text)}")
def test_numbers_past_int_and_float_in_search_bodies_are_400(service, body):
    certs, _, root = service
    status, answer = https(https_context(certs), f"{root}/stac/search", body.encode())
    assert status == 400 and answer["code"] == 3, (body[:80], status, answer)


@pytest.mark.parametrize(("method", "path", "expected"), [
    ("PATCH", "/map/static/../../x", 405), ("DELETE", "/map/static/app.js", 405), ("PUT", "/stac/search", 405),
    ("POST", "/healthz", 405), ("GET", "/nothing", 404),
])
def test_odd_methods_and_paths_are_4xx(service, method, path, expected):
    import http.client

    certs, _, root = service
    connection = http.client.HTTPSConnection("127.0.0.1", int(root.rsplit(":", 1)[1]), context=https_context(certs))
    connection.request(method, path, body=b"{}" if method != "GET" else None)
    response = connection.getresponse()
    body = json.loads(response.read())
    connection.close()
    assert response.status == expected and body["code"] in (5, 12), body


def test_map_queries_work_in_turn_within_their_deadline(service):
    """While every work slot of the process is taken, a map query or a STAC search waits or, past its deadline,
    is answered DEADLINE_EXCEEDED naming the wait; once a slot frees, it is answered."""
    certs, server, root = service
    core = server.core
    caller = Caller("pilot", "pilot", 1)
    release, taken = threading.Event(), threading.Barrier(core.limits.work_slots + 1)

    def hold() -> None:
        core.work_slots.run(Deadline.within(30.0), "held by the test", lambda: (taken.wait(10), release.wait(30)))

    holders = [threading.Thread(target=hold) for _ in range(core.limits.work_slots)]
    for holder in holders:
        holder.start()
    taken.wait(10)
    try:
        with pytest.raises(DeadlineExceeded, match="waiting for the server to search the catalog"):
            list(core.list_maps(caller, MapQuery(), Deadline.within(0.3)))
        with pytest.raises(DeadlineExceeded, match="waiting for the server to search the catalog"):
            core.search_items(caller, ItemSearch(), Deadline.within(0.3), lambda page: page)
        answered: list = []
        with client_of(certs, server, "pilot") as client:
            asking = [threading.Thread(target=lambda: answered.extend(client.list(tile_ids=["31TCJ"]))),
                      threading.Thread(target=lambda: answered.append(
                          https(https_context(certs), f"{root}/stac/search?limit=5")[1]))]
            for ask in asking:
                ask.start()
            time.sleep(1.0)
            assert all(ask.is_alive() for ask in asking) and not answered  # waiting for a slot
            release.set()
            for ask in asking:
                ask.join(30)
        stac_page = next(a for a in answered if isinstance(a, dict))
        listed = [a.product_id for a in answered if not isinstance(a, dict)]
        assert listed == [product_request(2, "31TCJ", day=2).product_id] and stac_page["numberReturned"] == 2
    finally:
        release.set()
        for holder in holders:
            holder.join(30)
