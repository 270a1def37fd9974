"""Fuzz and fault harness for the Database service, on 127.0.0.1 with mutual TLS.

1. A private PostGIS cluster, the project's certificates, a few valid products, and `earthsignature serve`
   in its own process.
2. Fuzz: generated requests across the three RPCs (Hypothesis strategies for the messages, grammar-aware
   mutations of the query language, mutated CreateProduct requests, raw bytes); counts per status code.
   A clean run has no UNKNOWN and no INTERNAL.
   Meanwhile a pilot asks (gRPC ListSegmentation and a STAC search in turn): its p50 / p99 latency.
3. Fault drills, each followed by an audit of the catalog against the store (lost, duplicated,
   half-written, orphaned): kill -9 of the server during a CreateProduct burst (then a restart),
   PostgreSQL stopped in immediate mode during queries and ingestion (then restarted, the server kept),
   a corrupt COG, and 8 identical concurrent CreateProducts (10 rounds).

    python benchmarks/api_fuzz.py [--requests 10000] [--seed 0]
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import threading
import time
from pathlib import Path

import grpc
import rasterio
import sqlalchemy as sa
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from probe import Probe  # benchmarks/probe.py, beside this script
from results_file import write_results  # benchmarks/results_file.py, beside this script
from served import Server, clients, prepare  # benchmarks/served.py, beside this script

from earthsignature.core import raster_codec
from earthsignature.embedded.postgres import PostgresCluster, scratch_cluster
from earthsignature.pb.snapearth.api.v1 import database_pb2, segmentation_pb2
from earthsignature.samples.requests import product_request as sample_request
from earthsignature.service.catalog.catalog import Catalog
from earthsignature.service.catalog.raster_store import RasterStore, gdal_path
from earthsignature.service.catalog.store_check import check_store

E = segmentation_pb2.RasterEncoding
TILES = ("34SGH", "31TCJ", "33UUP", "35VLG")
SERVICE = "/snapearth.api.v1.DatabaseProductService/"


# --- requests ------------------------------------------------------------------------------------------


def product_request(number: int, tile_id: str = "34SGH") -> database_pb2.CreateProductRequest:
    """A valid, small CreateProduct request (64 x 64 maps), a distinct product per number."""
    return sample_request(number, tile_id, size=64, burnt_share=(number % 7) / 10)


HOSTILE_TEXT = st.one_of(
    # what protobuf can carry: any Unicode scalar value (no lone surrogates), NUL and controls included
    st.text(st.characters(codec="utf-8"), max_size=60), st.text(st.characters(min_codepoint=0, max_codepoint=0x1F),
                                                                 max_size=10),
    st.sampled_from(["..", "../../etc/passwd", "a/b", "\x00", "9" * 5000, "x" * 100_000, "Burnt areas", "312",
                     "forest", "34SGH", "clc-unet", "CIRCULARSTRING(0 0, 1 1, 2 0)", "%s%n", "' OR 1=1 --"]))
NUMBERS = st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from([0.0, 0.5, 1.0, 20.0, -1.0, 1e308])
WKT = st.one_of(
    st.sampled_from(["POLYGON((23 38, 24 38, 24 39, 23 39, 23 38))", "POINT(23.5 38.5)", "POLYGON((1 2, 3",
                     "CIRCULARSTRING(0 0, 1 1, 2 0)", "POLYGON((500 0, 501 0, 501 1, 500 0))",
                     "POLYGON((0 0, 1 1, 1 0, 0 1, 0 0))", "GEOMETRYCOLLECTION EMPTY", "POINT(nan nan)",
                     "POLYGON((0 0" + ", 1 1" * 20_000 + "))"]), HOSTILE_TEXT)


@st.composite
def timestamps(draw, message) -> None:
    message.seconds = draw(st.integers(-2**40, 2**40) | st.integers(1_600_000_000, 1_700_000_000))
    message.nanos = draw(st.integers(-2**31, 2**31 - 1) | st.just(0))


@st.composite
def list_requests(draw) -> database_pb2.ListSegmentationRequest:
    request = database_pb2.ListSegmentationRequest()
    if draw(st.booleans()):
        request.wkt = draw(WKT)
    for name in ("start_date", "end_date"):
        if draw(st.booleans()):
            draw(timestamps(getattr(request, name)))
    for name in ("product_ids", "categories", "model_names", "tile_ids"):
        getattr(request, name).extend(draw(st.lists(HOSTILE_TEXT, max_size=3)))
    if draw(st.booleans()):
        request.n_results = draw(st.integers(-2**31, 2**31 - 1) | st.integers(0, 120))
    request.page_token = draw(HOSTILE_TEXT | st.just(""))
    request.raster_encoding = draw(st.integers(0, 9) | st.integers(0, 2**31 - 1))
    request.min_category_fraction = draw(NUMBERS | st.just(0.0))
    if draw(st.booleans()):
        request.max_cloud_cover = draw(NUMBERS)
    request.max_pixels = draw(st.integers(-2**31, 2**31 - 1) | st.integers(0, 100_000))
    return request


QUERY_TERMS = ["forest", "burnt", "class:burnt", 'class:"burnt areas"', "class:312", "class:" + "9" * 40,
               "fraction>=0.2", "fraction>=nan", "after:2021-08-01", "before:2021-08-31T12:00", "after:99999-1-1",
               "tile:34SGH", "tile:../x", "product:S2A_MSIL2A", "model:clc-unet", "cloud<20", "cloud<1e999",
               "bbox:23,38,24,39", "bbox:nan,0,1,1", "bbox:1,2,3", 'class:"unterminated', ":", "<=", "key:",
               "S2A"]


@st.composite
def queries(draw) -> str:
    """Terms of the query language, then mutations of their characters (grammar-aware fuzzing)."""
    text = " ".join(draw(st.lists(st.sampled_from(QUERY_TERMS), max_size=6)))
    for _ in range(draw(st.integers(0, 3))):
        if not text:
            break
        at = draw(st.integers(0, len(text) - 1))
        text = text[:at] + draw(st.sampled_from(['"', ":", " ", "\x00", "<", "9" * 30, "", "é"])) + text[at + 1:]
    return text


@st.composite
def search_requests(draw) -> database_pb2.SearchSegmentationRequest:
    request = database_pb2.SearchSegmentationRequest(query=draw(queries() | HOSTILE_TEXT))
    if draw(st.booleans()):
        request.n_results = draw(st.integers(-5, 120))
    request.page_token = draw(st.just("") | HOSTILE_TEXT)
    request.raster_encoding = draw(st.integers(0, 9))
    request.max_pixels = draw(st.integers(-10, 100_000))
    return request


def _mutate_raster(draw, raster) -> None:
    choice = draw(st.integers(0, 7))
    if choice == 0:
        raster.height, raster.width = draw(st.integers(-5, 10**6)), draw(st.integers(-5, 10**6))
    elif choice == 1:
        raster.encoding = draw(st.integers(0, 2**31 - 1))
    elif choice == 2:
        raster.encoded_data = draw(st.binary(max_size=200))
    elif choice == 3:
        raster.dtype = draw(HOSTILE_TEXT)
    elif choice == 4:
        del raster.geotransform[:]
        raster.geotransform.extend(draw(st.lists(NUMBERS, max_size=7)))
    elif choice == 5:
        raster.crs = draw(st.sampled_from(["EPSG:4326", "EPSG:999999", "", "+proj=longlat"]) | HOSTILE_TEXT)
    elif choice == 6:
        raster.nodata = draw(st.integers(0, 2**32 - 1))
    else:
        raster.encoded_data = raster_codec.zstandard.ZstdCompressor().compress(bytes(draw(st.integers(0, 10**6))))


@st.composite
def create_requests(draw, base: database_pb2.CreateProductRequest) -> database_pb2.CreateProductRequest:
    request = database_pb2.CreateProductRequest()
    request.CopyFrom(base)
    request.product_id = f"{base.product_id}x{draw(st.integers(0, 10**6))}"
    for _ in range(draw(st.integers(1, 3))):
        field = draw(st.sampled_from(["product_id", "model_name", "model_version", "tile_id", "platform",
                                      "processing_level", "cloud_cover", "start_date", "data", "segmentation",
                                      "cloud_mask", "confidence", "classes", "quicklook_png"]))
        if field in ("product_id", "model_name", "model_version", "tile_id", "platform", "processing_level"):
            setattr(request, field, draw(HOSTILE_TEXT))
        elif field == "cloud_cover":
            request.cloud_cover = draw(NUMBERS)
        elif field == "start_date":
            draw(timestamps(request.start_date))
        elif field == "data":
            request.data.precision = draw(st.integers(0, 2**32 - 1))
            request.data.dimensions = draw(st.integers(0, 2**32 - 1))
        elif field in ("segmentation", "cloud_mask", "confidence"):
            _mutate_raster(draw, getattr(request, field))
        elif field == "classes":
            item = request.classes.add(value=draw(st.integers(0, 2**32 - 1)), code=draw(st.integers(-2**31, 2**31 - 1)))
            item.name, item.color = draw(HOSTILE_TEXT), draw(st.integers(0, 2**32 - 1))
        else:
            request.quicklook_png = draw(st.binary(max_size=100))
    return request


# --- fuzz -------------------------------------------------------------------------------------------------


def fuzz(client_factory, address: str, requests: int, seed: int) -> dict[str, collections.Counter]:
    codes: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    per_kind = max(1, requests // 4)
    options = settings(max_examples=per_kind, database=None, deadline=None, phases=[Phase.generate],
                       suppress_health_check=list(HealthCheck), derandomize=False)
    base = product_request(999, "35VLG")
    with client_factory("internal") as internal:
        def record(kind: str, call) -> None:
            try:
                call()
                codes[kind]["OK"] += 1
            except grpc.RpcError as error:
                codes[kind][error.code().name] += 1

        @options
        @given(list_requests())
        def fuzz_list(request) -> None:
            record("ListSegmentation", lambda: list(internal.stub.ListSegmentation(request, timeout=60)))

        @options
        @given(search_requests())
        def fuzz_search(request) -> None:
            record("SearchSegmentation", lambda: list(internal.stub.SearchSegmentation(request, timeout=60)))

        @options
        @given(create_requests(base))
        def fuzz_create(request) -> None:
            record("CreateProduct", lambda: internal.stub.CreateProduct(request, timeout=60))

        raw_calls = {name: (internal.channel.unary_stream if name != "CreateProduct" else internal.channel.unary_unary)(
            SERVICE + name) for name in ("ListSegmentation", "SearchSegmentation", "CreateProduct")}

        @options
        @given(st.sampled_from(sorted(raw_calls)), st.binary(max_size=400))
        def fuzz_bytes(name, payload) -> None:
            call = raw_calls[name]
            record(f"raw bytes: {name}",
                   (lambda: call(payload, timeout=60)) if name == "CreateProduct"
                   else (lambda: list(call(payload, timeout=60))))

        for run in (fuzz_list, fuzz_search, fuzz_create, fuzz_bytes):
            started = time.perf_counter()
            run()
            print(f"  {run.__name__}: {sum(sum(c.values()) for c in codes.values())} requests so far, "
                  f"{time.perf_counter() - started:.0f} s", flush=True)
    return codes


# --- audit and drills ----------------------------------------------------------------------------------------


def audit(url: str, store: RasterStore, acknowledged: set[str]) -> dict[str, int]:
    """lost: acknowledged segmentations missing; duplicated: one product and model stored twice;
    half-written: rows whose map is missing or unreadable; orphaned: store files no row names."""
    catalog = Catalog(url, pool_size=1)
    try:
        with catalog.engine.connect() as connection:
            stored = {str(i) for i in connection.execute(sa.text("SELECT id FROM segmentations")).scalars()}
            duplicated = connection.execute(sa.text(
                "SELECT count(*) FROM (SELECT 1 FROM segmentations GROUP BY product_pk, model_name, model_version "
                "HAVING count(*) > 1) d")).scalar_one()
            urls = connection.execute(sa.text("SELECT raster_url FROM segmentations")).scalars().all()
        half = 0
        for url in urls:
            try:
                with rasterio.open(gdal_path(url)) as dataset:
                    dataset.read(1, window=((0, 1), (0, 1)))
            except (rasterio.errors.RasterioError, OSError):
                half += 1
        report = check_store(catalog, store, repair=False, min_age_s=0)
    finally:
        catalog.dispose()
    return {"lost": len(acknowledged - stored), "duplicated": int(duplicated), "half_written": half,
            "orphaned": len(report.orphans) + len(report.partial)}


def burst(client_factory, requests: list, threads: int = 6) -> tuple[set[str], collections.Counter]:
    """Send ``requests`` from ``threads`` threads; the acknowledged segmentation ids and the status codes."""
    acknowledged, codes, lock = set(), collections.Counter(), threading.Lock()
    pending = list(requests)

    def work() -> None:
        with client_factory("internal", timeout_s=20) as client:
            while True:
                with lock:
                    if not pending:
                        return
                    request = pending.pop()
                try:
                    answer = client.create(request)
                    with lock:
                        acknowledged.add(answer.segmentation_id)
                        codes["OK"] += 1
                except grpc.RpcError as error:
                    with lock:
                        codes[error.code().name] += 1

    workers = [threading.Thread(target=work) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(120)
    return acknowledged, codes


def drills(server: Server, cluster: PostgresCluster, url: str, store: RasterStore, client_factory,
           acknowledged: set[str]) -> list[dict]:
    results = []
    # 1. kill -9 during a CreateProduct burst, then a restart (which repairs the store)
    killer = threading.Timer(0.8, server.kill)
    killer.start()
    got, codes = burst(client_factory, [product_request(2000 + k, TILES[k % 4]) for k in range(60)])
    killer.join()
    acknowledged |= got
    server.start(client_factory)
    results.append({"drill": "kill -9 during 60 CreateProducts", "codes": dict(codes),
                    **audit(url, store, acknowledged)})
    # 2. PostgreSQL stopped (immediate) during queries and ingestion, restarted; the server is kept
    stopper = threading.Timer(0.5, lambda: cluster.stop("immediate"))
    stopper.start()
    query_codes: collections.Counter = collections.Counter()

    def query_loop() -> None:
        with client_factory("pilot", timeout_s=10) as client:
            for _ in range(30):
                try:
                    list(client.list(n_results=5))
                    query_codes["OK"] += 1
                except grpc.RpcError as error:
                    query_codes[error.code().name] += 1
                time.sleep(0.05)

    querying = threading.Thread(target=query_loop)
    querying.start()
    got, codes = burst(client_factory, [product_request(3000 + k, TILES[k % 4]) for k in range(40)], threads=3)
    querying.join()
    stopper.join()
    acknowledged |= got
    cluster.start()
    time.sleep(1)
    after, after_codes = burst(client_factory, [product_request(3100, "34SGH")], threads=1)
    acknowledged |= after
    results.append({"drill": "PostgreSQL stop -m immediate during queries and 40 CreateProducts",
                    "codes": dict(codes + query_codes), "after_restart": dict(after_codes),
                    **audit(url, store, acknowledged)})
    # 3. a corrupt COG: answers leave it out, nothing fails
    with client_factory("pilot") as client:
        first = next(iter(client.list_messages(n_results=1)))
    catalog = Catalog(url, pool_size=1)
    with catalog.engine.connect() as connection:
        damaged = connection.execute(sa.text(
            "SELECT s.raster_url FROM segmentations s JOIN products p ON p.id = s.product_pk "
            "WHERE p.product_id = :p LIMIT 1"), {"p": first.product_id}).scalar_one()
    catalog.dispose()
    original = Path(gdal_path(damaged)).read_bytes()
    Path(gdal_path(damaged)).write_bytes(b"not a GeoTIFF")
    codes = collections.Counter()
    with client_factory("pilot") as client:
        for _ in range(20):
            try:
                list(client.list(n_results=10))
                codes["OK"] += 1
            except grpc.RpcError as error:
                codes[error.code().name] += 1
    found = audit(url, store, acknowledged)
    results.append({"drill": "a corrupt COG under 20 queries (1 half-written: the damaged one)",
                    "codes": dict(codes), **found})
    Path(gdal_path(damaged)).write_bytes(original)  # mended, so the next drill audits only itself
    # 4. 8 identical concurrent CreateProducts, 10 rounds
    codes, created = collections.Counter(), 0
    for round_number in range(10):
        request = product_request(4000 + round_number, TILES[round_number % 4])
        got, round_codes = burst(client_factory, [request] * 8, threads=8)
        acknowledged |= got
        codes += round_codes
        created += len(got)
    results.append({"drill": "8 identical concurrent CreateProducts x 10", "codes": dict(codes),
                    "distinct_segmentations": created, **audit(url, store, acknowledged)})
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    with scratch_cluster("earthsignature-fuzz-") as (cluster, work):
        run(args, work, cluster)


def run(args: argparse.Namespace, work: Path, cluster: PostgresCluster) -> None:
    url, certs, address, http_port = prepare(cluster, work)
    store = RasterStore(str(work / "store"))
    server = Server([f"db.url={url}", f"api.address={address}", f"api.http_port={http_port}",
                     f"api.store_url={store.root_url}",
                     f"api.certs_dir={certs.path}", "api.store_check_min_age_s=0"], work / "server.log")
    client_factory = clients(certs, address)

    server.start(client_factory)
    try:
        acknowledged, _ = burst(client_factory, [product_request(k, TILES[k % 4]) for k in range(8)])
        started = time.perf_counter()
        print(f"fuzzing with {args.requests} requests...", flush=True)
        pilot = certs.identity("pilot")
        with Probe(lambda: client_factory("pilot"), f"https://127.0.0.1:{http_port}",
                   (str(certs.ca_cert), str(pilot.cert), str(pilot.key))) as probe:
            codes = fuzz(client_factory, address, args.requests, args.seed)
        fuzz_seconds = time.perf_counter() - started
        acknowledged |= {a for a in _acknowledged_ids(url)}
        print("fault drills...", flush=True)
        drill_results = drills(server, cluster, url, store, client_factory, acknowledged)
    finally:
        server.stop()
    total = collections.Counter()
    for counter in codes.values():
        total += counter
    print(f"\n{'request kind':<32} " + " ".join(f"{c:>17}" for c in sorted(total)))
    for kind, counter in sorted(codes.items()):
        print(f"{kind:<32} " + " ".join(f"{counter.get(c, 0):>17}" for c in sorted(total)))
    print(f"{'all':<32} " + " ".join(f"{total[c]:>17}" for c in sorted(total)))
    print(f"\n{sum(total.values())} requests in {fuzz_seconds:.0f} s; UNKNOWN {total.get('UNKNOWN', 0)}, "
          f"INTERNAL {total.get('INTERNAL', 0)}\n")
    summary = probe.summary()
    for kind, row in summary.items():
        print(f"pilot probe ({kind}) during the fuzz: {row['probes']} answered, {row['failed']} failed, "
              f"p50 {row['p50_ms']:.1f} ms, p99 {row['p99_ms']:.1f} ms, max {row['max_ms']:.1f} ms")
    print(f"{'drill':<66} {'lost':>5} {'dup':>5} {'half':>5} {'orph':>5}  codes")
    for row in drill_results:
        print(f"{row['drill']:<66} {row['lost']:>5} {row['duplicated']:>5} {row['half_written']:>5} "
              f"{row['orphaned']:>5}  {row['codes']}")
    log = (work / "server.log").read_text(errors="replace")
    for marker in ("internal error ", "could not store the product"):  # what INTERNAL answers were about
        for at in [m.start() for m in re.finditer(marker, log)][:3]:
            print(f"\nserver log at {marker!r}:\n{log[at:at + 3000]}")
    write_results("api_fuzz", {"requests": sum(total.values()), "seconds": fuzz_seconds,
                               "codes": {k: dict(v) for k, v in codes.items()}, "totals": dict(total),
                               "drills": drill_results, "pilot_probe": summary})


def _acknowledged_ids(url: str) -> set[str]:
    """Every segmentation stored so far (the fuzz's successful creates were acknowledged)."""
    engine = sa.create_engine(url)
    with engine.connect() as connection:
        ids = {str(i) for i in connection.execute(sa.text("SELECT id FROM segmentations")).scalars()}
    engine.dispose()
    return ids


if __name__ == "__main__":
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    main()
