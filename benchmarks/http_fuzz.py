"""HTTP fuzz of the Database service's HTTP app, on 127.0.0.1 with mutual TLS, a pilot probing meanwhile.

1. A private PostGIS cluster, the project's certificates, a few products (with a quicklook), and `earthsignature
   serve` with its HTTP app in its own process.
2. Generated requests over every route: the bindings (``/v1/segmentation:list|search`` with hostile
   parameters and mutated queries), the STAC API (GET and POST searches with generated CQL2 text and JSON,
   pathological nesting and chains, odd bboxes, datetimes, bodies that are not JSON objects, every other STAC
   route with odd ids), the map files (byte ranges valid and not, odd file names), the XYZ tiles (odd z/x/y),
   quicklooks, and unknown paths and methods; four client threads on kept-alive connections.
3. Meanwhile a pilot asks (gRPC ListSegmentation and a STAC search in turn): its p50 / p99 latency.

A clean run answers every request (no 5xx, no connection dropped unanswered).

    python benchmarks/http_fuzz.py [--requests 10000] [--seed 0] [--threads 4]
"""

from __future__ import annotations

import argparse
import collections
import http.client
import json
import random
import ssl
import threading
import time
import urllib.parse
from pathlib import Path

from probe import Probe  # benchmarks/probe.py, beside this script
from results_file import write_results  # benchmarks/results_file.py, beside this script
from served import Server, clients, prepare  # benchmarks/served.py, beside this script

from earthsignature.embedded.postgres import PostgresCluster, scratch_cluster
from earthsignature.samples.requests import product_request

TILES = ("34SGH", "31TCJ", "33UUP", "35VLG", "01XDA")
ODD_TEXT = ["", "..", "../../etc/passwd", "%00", "\x00", "é", "²", "٣", "9" * 40, "x" * 3000, "' OR 1=1 --",
            "%s%n", "null", "[]", "{}", "-1", "1e400", "NaN", "-Infinity", "0001-01-01T00:00:00+23:59"]
NUMBERS = ["0", "1", "-1", "1e400", "-1e400", "nan", "inf", "1e-320", "180.0000001", "-90", "91", "10", "50",
           "0x10", "1_000", "", "²", "1" * 400, "1" * 5000]  # past a float; past int()'s 4,300 digits
PROPERTIES = ["eo:cloud_cover", "fraction:burnt_areas", "fraction:coniferous_forest", "datetime", "id",
              "collection", "grid:code", "geometry", "start_datetime", "unknown:thing", "earthsignature:product_id"]
LITERALS = ["5", "0.5", "'x'", "'S2A%'", "TIMESTAMP('2021-08-01T00:00:00Z')", "DATE('2021-08-01')",
            "TIMESTAMP('0001-01-01T00:00:00+23:59')", "POINT(23 38)", "POLYGON((23 38, 24 38, 24 39, 23 38))",
            "1e400", "-1", "NULL", "TRUE", "'" + "a" * 300 + "'"]


# --- generators ---------------------------------------------------------------------------------------------


def cql2_text(rng: random.Random, depth: int = 0) -> str:
    """Grammar-guided CQL2 text, then character mutations; now and then a pathological shape."""
    roll = rng.random()
    if roll < 0.04:
        n = rng.choice([15, 20, 23, 30, 63, 200])
        return "(" * n + rng.choice(["a=", "eo:cloud_cover > 1", "not a=1"]) + ")" * n
    if roll < 0.06:
        return f"{rng.choice(PROPERTIES)} > " + rng.choice(["+", "-", "*"]).join(["1"] * rng.choice([50, 600]))
    if roll < 0.08:
        return " or ".join(f"\"fraction:burnt_areas\" > 0.{k:04d}" for k in range(rng.choice([70, 3000])))
    if roll < 0.09:
        return "not " * rng.choice([10, 300]) + "eo:cloud_cover > 1"
    text = _expression(rng, depth)
    for _ in range(rng.choice([0, 0, 0, 1, 2])):
        at = rng.randrange(len(text) + 1)
        text = text[:at] + rng.choice(["(", ")", "'", '"', " ", "-", "\x00", "é", ",", "AND"]) + text[at + 1:]
    return text


def _expression(rng: random.Random, depth: int) -> str:
    if depth < 3 and rng.random() < 0.35:
        joiner = rng.choice([" and ", " or ", " AND "])
        return "(" + joiner.join(_expression(rng, depth + 1) for _ in range(rng.randint(2, 3))) + ")"
    kind = rng.random()
    prop = rng.choice(PROPERTIES)
    if kind < 0.6:
        return f"{prop} {rng.choice(['=', '<>', '<', '<=', '>', '>='])} {rng.choice(LITERALS)}"
    if kind < 0.7:
        return f"{prop} LIKE {rng.choice(LITERALS)}"
    if kind < 0.8:
        return f"{prop} BETWEEN {rng.choice(LITERALS)} AND {rng.choice(LITERALS)}"
    if kind < 0.9:
        return f"{prop} IN ({', '.join(rng.choice(LITERALS) for _ in range(rng.randint(1, 4)))})"
    return f"S_INTERSECTS({prop}, {rng.choice(LITERALS)})"


def cql2_json(rng: random.Random, depth: int = 0):
    if depth > 2 or rng.random() < 0.5:
        op = rng.choice(["=", "<", ">", "like", "between", "in", "s_intersects", "isNull", "frobnicate"])
        args = [{"property": rng.choice(PROPERTIES)}, rng.choice([5, 0.5, "x", None, [], {}, True, 1e308,
                                                                  {"timestamp": rng.choice(ODD_TEXT)}])]
        return {"op": op, "args": args[: rng.randint(0, 3)]}
    if rng.random() < 0.05:
        tree = {"op": "=", "args": [{"property": "id"}, "x"]}
        for _ in range(rng.choice([70, 5000])):
            tree = {"op": "not", "args": [tree]}
        return tree
    branches = [cql2_json(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    return {"op": rng.choice(["and", "or", "not"]), "args": branches}


def bbox(rng: random.Random) -> str:
    if rng.random() < 0.5:
        west, south = rng.uniform(-180, 180), rng.uniform(-90, 90)
        return f"{west},{south},{west + rng.uniform(-5, 5)},{south + rng.uniform(-5, 5)}"
    return ",".join(rng.choice(NUMBERS) for _ in range(rng.choice([3, 4, 4, 6, 7])))


def datetime_text(rng: random.Random) -> str:
    moments = ["2021-08-01T00:00:00Z", "2021-08-01t00:00:00z", "2021-08-01", "..", "", "2021-13-45T99:99:99Z",
               "0001-01-01T00:00:00+23:59", "9999-12-31T23:59:59-23:59", "2021-08-01T00:00:00.123456789Z"]
    return "/".join(rng.choice(moments) for _ in range(rng.choice([1, 2, 2, 3])))


class Requests:
    """Each call: (route kind, method, path, body, headers) for one generated request."""

    def __init__(self, rng: random.Random, items: list[tuple[str, str]], products: list[str]):
        self.rng, self.items, self.products = rng, items, products

    def __call__(self):
        rng = self.rng
        maker = rng.choices([self.binding, self.stac_get, self.stac_post, self.stac_other, self.map_file,
                             self.tile, self.quicklook, self.odd], weights=[14, 24, 20, 10, 12, 8, 4, 8])[0]
        return maker()

    def _q(self, params: list[tuple[str, str]]) -> str:
        return urllib.parse.urlencode(params)

    def binding(self):
        rng = self.rng
        if rng.random() < 0.5:
            names = ["wkt", "start_date", "endDate", "product_ids", "categories", "model_names", "tile_ids",
                     "n_results", "page_token", "raster_encoding", "min_category_fraction", "max_cloud_cover",
                     "max_pixels", "colour"]
            params = [(rng.choice(names), rng.choice(ODD_TEXT + NUMBERS + ["POLYGON((23 38, 24 38, 24 39, 23 38))",
                                                                           "2021-08-01T00:00:00Z", "34SGH"]))
                      for _ in range(rng.randint(0, 4))]
            return "binding list", "GET", "/v1/segmentation:list?" + self._q(params), None, {}
        words = ["forest", "class:burnt", "class:²", "fraction>=0.2", "after:0001-01-01", "bbox:1,2,3,4", "tile:34SGH",
                 "cloud<20", 'class:"unterminated', "model:clc-unet"]
        query = " ".join(rng.choice(words + ODD_TEXT[:8]) for _ in range(rng.randint(0, 5)))
        return "binding search", "GET", "/v1/segmentation:search?" + self._q([("query", query)]), None, {}

    def stac_get(self):
        rng = self.rng
        params = []
        for name in rng.sample(["bbox", "datetime", "filter", "limit", "ids", "collections", "token", "intersects",
                                "filter-lang", "sortby"], rng.randint(0, 4)):
            value = {"bbox": lambda: bbox(rng), "datetime": lambda: datetime_text(rng),
                     "filter": lambda: cql2_text(rng), "limit": lambda: rng.choice([*NUMBERS, "5", "100000"]),
                     "ids": lambda: ",".join(rng.choice([i for _, i in self.items] + ODD_TEXT[:5])
                                             for _ in range(rng.randint(1, 3))),
                     "collections": lambda: rng.choice(["clc-unet", "burnt-unet", "nothing", "", ",,"]),
                     "token": lambda: rng.choice(ODD_TEXT), "intersects": lambda: rng.choice(
                         ['{"type":"Point","coordinates":[23,38]}', '{"type":"Point","coordinates":[1e400,0]}',
                          "POINT(1 2)", "{", '{"type":"Polygon","coordinates":[]}']),
                     "filter-lang": lambda: rng.choice(["cql2-text", "cql2-json", "cql-text", ""]),
                     "sortby": lambda: rng.choice(["datetime", "-x", ""])}[name]()
            params.append((name, value))
        path = "/stac/search?" + self._q(params)
        if len(path) > 12_000:  # too long for a URL: a real client would POST it
            return self.stac_post()
        return "STAC GET search", "GET", path, None, {}

    def stac_post(self):
        rng = self.rng
        roll = rng.random()
        headers = {"Content-Type": "application/json"}
        if roll < 0.1:
            body = rng.choice([b"[1,2]", b'"text"', b"42", b"null", b"{", b"[" * 50_000, b"\xff\xfe",
                               b'{"limit": NaN}', b'{"bbox": [Infinity, 0, 1, 1]}',
                               b'{"bbox": [' + b"1" * 400 + b', 0, 1, 1]}', b'{"limit": ' + b"1" * 5000 + b"}"])
        elif roll < 0.15:
            body, headers = b'{"limit": 2}', {"Content-Type": rng.choice(["text/plain", "application/xml", ""])}
        else:
            value: dict = {}
            for name in rng.sample(["bbox", "datetime", "filter", "limit", "ids", "collections", "intersects", "token"],
                                   rng.randint(0, 4)):
                value[name] = {"bbox": lambda: [rng.choice([0, 1e308, -200, 10, 50, float("1e10")])
                                                for _ in range(rng.choice([4, 4, 5, 6]))],
                               "datetime": lambda: datetime_text(rng),
                               "filter": lambda: cql2_text(rng) if rng.random() < 0.5 else cql2_json(rng),
                               "limit": lambda: rng.choice([1, 0, -1, 10**9, "x", None]),
                               "ids": lambda: rng.choice([["x"], "x", [1, 2], ["a"] * 500]),
                               "collections": lambda: rng.choice([["clc-unet"], "clc-unet", [None]]),
                               "intersects": lambda: rng.choice([{"type": "Point", "coordinates": [23, 38]},
                                                                 {"type": "Polygon", "coordinates": [[[0, 0]]]}, "x",
                                                                 {"type": "LineString", "coordinates": [[0, 0]] * 3}]),
                               "token": lambda: rng.choice(ODD_TEXT)}[name]()
            if isinstance(value.get("filter"), str):
                value["filter-lang"] = "cql2-text"
            try:
                body = json.dumps(value).encode()
            except (ValueError, RecursionError):
                body = b"{}"
        return "STAC POST search", "POST", "/stac/search", body, headers

    def stac_other(self):
        rng = self.rng
        collection, item = rng.choice(self.items)
        odd, box = urllib.parse.quote(rng.choice(ODD_TEXT), safe=""), urllib.parse.quote(bbox(rng))
        path = rng.choice(["/stac/", "/stac/conformance", "/stac/collections", f"/stac/collections/{collection}",
                           f"/stac/collections/{odd}", f"/stac/collections/{collection}/items?limit=2&bbox={box}",
                           f"/stac/collections/{collection}/items/{item}",
                           f"/stac/collections/{collection}/items/{odd}",
                           "/stac/queryables", f"/stac/collections/{collection}/queryables",
                           f"/stac/collections/{odd}/queryables", "/stac/api", f"/stac/search?{odd}=1"])
        return "STAC other", "GET", path, None, {}

    def map_file(self):
        rng = self.rng
        collection, item = rng.choice(self.items)
        name = rng.choice(["classes.tif", "confidence.tif", "cloud_mask.tif", "classes.tif.aux.xml", "classes.qml",
                           "classes.png", "tilejson.json", "..%2Fclasses.tif", "nothing.tif",
                           urllib.parse.quote(rng.choice(ODD_TEXT), safe="")])
        def offset() -> str:  # up to past int()'s 4,300 digits
            return str(rng.randint(1, 9)) * rng.choice([1, 5, 19, 400, 5000])

        ranges = ["bytes=0-16383", "bytes=-100", "bytes=100-", "bytes=0-0,5-9", "bytes=9-1", "bytes=abc",
                  "bytes=99999999999-", "bytes=0-99999999999", "items=0-1", "bytes=" + "0-1," * 500,
                  f"bytes={offset()}-", f"bytes=0-{offset()}", f"bytes=-{offset()}", f"bytes={offset()}-{offset()}"]
        headers = {"Range": rng.choice(ranges)} if rng.random() < 0.7 else {}
        if headers and rng.random() < 0.2:  # a client's copy, current or not
            headers["If-Range"] = rng.choice(['"an-older-etag"', "W/\"weak\"", "Thu, 01 Jan 1970 00:00:00 GMT"])
        return "map file", rng.choice(["GET", "GET", "HEAD"]), f"/v1/maps/{collection}/{item}/{name}", None, headers

    def tile(self):
        rng = self.rng
        collection, item = rng.choice(self.items)
        z = rng.choice([0, 3, 8, 12, 14, 30, 99, -1, "x", "1" * 5000])  # up to past int()'s 4,300 digits
        zoom = z if isinstance(z, int) else 0
        x, y = (rng.choice([0, 1, 2 ** max(zoom, 0) // 2, 2 ** 40, -5, "9" * 5000]) for _ in range(2))
        return "XYZ tile", "GET", f"/v1/maps/{collection}/{item}/tiles/{z}/{x}/{y}.png", None, {}

    def quicklook(self):
        product = self.rng.choice(self.products + [urllib.parse.quote(t, safe="") for t in ODD_TEXT[:6]])
        return "quicklook", "GET", f"/v1/products/{product}/quicklook.png", None, {}

    def odd(self):
        rng = self.rng
        method = rng.choice(["PUT", "DELETE", "PATCH", "OPTIONS", "GET", "POST"])
        path = rng.choice(["/", "/v1", "/v1/segmentation:create", "/map", "/map/static/../../x", "/healthz",
                           "/%2e%2e/", "/stac/collections/clc-unet/items", "/v1/segmentation:list"])
        return "other paths and methods", method, path, b"{}" if method in ("POST", "PUT", "PATCH") else None, {}


# --- running it ----------------------------------------------------------------------------------------------


def send(connections: dict, context: ssl.SSLContext, port: int, request) -> str:
    """One request on this thread's kept-alive connection (reopened when the server closed it): its status, or
    what went wrong."""
    _, method, path, body, headers = request
    for attempt in range(2):
        connection = connections.get("c")
        if connection is None:
            connection = connections["c"] = http.client.HTTPSConnection("127.0.0.1", port, context=context,
                                                                        timeout=60)
        try:
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
            response.read()
            if response.getheader("connection", "").lower() == "close":
                connection.close()
                connections.pop("c", None)
            return str(response.status)
        except (http.client.HTTPException, OSError) as error:
            connection.close()
            connections.pop("c", None)
            if attempt == 1:
                return f"no answer ({type(error).__name__})"
    return "no answer"


def fuzz(port: int, context: ssl.SSLContext, requests: int, seed: int, threads: int, items, products):
    codes: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    examples: dict[str, str] = {}
    lock, counter = threading.Lock(), [0]

    def worker(number: int) -> None:
        generate = Requests(random.Random(seed * 1000 + number), items, products)
        connections: dict = {}
        while True:
            with lock:
                if counter[0] >= requests:
                    return
                counter[0] += 1
            request = generate()
            try:
                outcome = send(connections, context, port, request)
            except (UnicodeError, ValueError) as error:  # a request http.client cannot even write: ours
                outcome = f"not sent ({type(error).__name__})"
            with lock:
                codes[request[0]][outcome] += 1
                if not outcome.startswith(("2", "3", "4")):
                    examples.setdefault(f"{request[0]} {outcome}", f"{request[1]} {request[2][:300]!r} "
                                                                    f"{(request[3] or b'')[:200]!r}")

    workers = [threading.Thread(target=worker, args=(k,)) for k in range(threads)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join()
    return codes, examples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=4)
    args = parser.parse_args()
    with scratch_cluster("earthsignature-http-fuzz-") as (cluster, work):
        run(args, work, cluster)


def run(args: argparse.Namespace, work: Path, cluster: PostgresCluster) -> None:
    url, certs, address, http_port = prepare(cluster, work)
    server = Server([f"db.url={url}", f"api.address={address}", f"api.http_port={http_port}",
                     f"api.store_url={work / 'store'}", f"api.certs_dir={certs.path}"], work / "server.log")
    client = clients(certs, address)

    server.start(client)
    pilot = certs.identity("pilot")
    try:
        with client("internal") as internal:
            for number, tile_id in enumerate(TILES, start=1):
                internal.create(product_request(number, tile_id, day=number, burnt_share=0.2 * (number % 2)))
            internal.create(product_request(9, "34SGH", day=9, model="burnt-unet"))
        context = ssl.create_default_context(cafile=str(certs.ca_cert))
        context.load_cert_chain(str(pilot.cert), str(pilot.key))
        connection = http.client.HTTPSConnection("127.0.0.1", http_port, context=context, timeout=60)
        connection.request("GET", "/stac/search?limit=20")
        features = json.loads(connection.getresponse().read())["features"]
        connection.close()
        items = [(f["collection"], f["id"]) for f in features]
        products = sorted({f["properties"]["earthsignature:product_id"] for f in features})
        print(f"fuzzing the HTTP app with {args.requests} requests ({args.threads} threads)...", flush=True)
        started = time.perf_counter()
        with Probe(lambda: client("pilot"), f"https://127.0.0.1:{http_port}",
                   (str(certs.ca_cert), str(pilot.cert), str(pilot.key))) as probe:
            codes, examples = fuzz(http_port, context, args.requests, args.seed, args.threads, items, products)
        seconds = time.perf_counter() - started
    finally:
        server.stop()
    total = collections.Counter()
    for counter in codes.values():
        total += counter
    statuses = sorted(total)
    print(f"\n{'route':<26} " + " ".join(f"{s:>8}" for s in statuses))
    for kind, counter in sorted(codes.items()):
        print(f"{kind:<26} " + " ".join(f"{counter.get(s, 0):>8}" for s in statuses))
    print(f"{'all':<26} " + " ".join(f"{total[s]:>8}" for s in statuses))
    server_errors = sum(n for s, n in total.items() if not s.startswith(("2", "3", "4", "not sent")))
    print(f"\n{sum(total.values())} requests in {seconds:.0f} s; 5xx or unanswered: {server_errors}")
    for key, example in list(examples.items())[:10]:
        print(f"  {key}: {example}")
    summary = probe.summary()
    for kind, row in summary.items():
        print(f"pilot probe ({kind}) during the fuzz: {row['probes']} answered, {row['failed']} failed, "
              f"p50 {row['p50_ms']:.1f} ms, p99 {row['p99_ms']:.1f} ms, max {row['max_ms']:.1f} ms")
    write_results("http_fuzz", {"requests": sum(total.values()), "seconds": seconds, "threads": args.threads,
                                "codes": {k: dict(v) for k, v in codes.items()}, "totals": dict(total),
                                "server_errors_or_unanswered": server_errors, "examples": examples,
                                "pilot_probe": summary})


if __name__ == "__main__":
    main()
