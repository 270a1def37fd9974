"""API benchmark: ListSegmentation over a catalog of 10,000 products, on loopback with mutual TLS.

1. A private PostGIS cluster and a catalog of N products (default 10,000) with footprints scattered
   over Europe's Sentinel-2 tiles, small segmentation COGs (64 x 64, shared in a pool of 100 files), one
   1098 x 1098 product for the wire-size measurement, and 10 acquisitions whose maps are a full-size
   10980 x 10980 COG with overviews (the realistic case: every result is a window read).
2. The Database service as `earthsignature serve` runs it, in its own processes: 1 server process, then
   one per core (api.processes; several processes share the port).
3. With 1, 8 and 32 concurrent clients (one channel each): latency p50/p99 and throughput of a
   10 km x 10 km area query, a categories query, and 10 km windows of the full-size maps; throughput as
   a ratio to 1 client of the same server, and the catalog query alone (PostGIS, no gRPC, no rasters) as
   the baseline of the same run. Measured after the load has settled (vacuumed, checkpointed, flushed), in
   ``--rounds`` rounds (each: both server configurations, every query); a row is the median over the rounds,
   and a scaling figure the median of each round's ratio to the same round's 1-client figure, with its range.
4. Bytes on the wire for the same clipped 1000 x 1000 map: zstd (default), PNG, legacy repeated
   uint32 (the seed's), and class polygons (geobuf), as ratios to the legacy form.
5. The HTTP app of the same server (HTTPS with client certificates, in every server process): STAC item
   search of the same 10 km area and a CQL2 filter (burnt areas >= 10 %), 10 items a page, and 16 KiB range
   reads of a class-map COG, with 1, 8 and 32 clients (a requests session each), beside the gRPC rows above.
   Every row's throughput is also given against one client of one server process (the scaling figure).

    python benchmarks/api.py [--products 10000] [--seconds 4] [--full-size 10980] [--rounds 3]
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import multiprocessing
import os
import statistics
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
from affine import Affine
from results_file import write_results  # benchmarks/results_file.py, beside this script
from shapely.geometry import Polygon

from earthsignature.client import EarthSignatureClient, Encoding
from earthsignature.core.classes import ClassShare, LandCoverClass
from earthsignature.core.layout import CertificateFolder
from earthsignature.core.raster_codec import unpack_rgb
from earthsignature.core.settings import ApiLimits, ApiSettings
from earthsignature.core.tiling_grid import tile
from earthsignature.embedded.ports import free_port
from earthsignature.embedded.postgres import PostgresCluster, scratch_cluster
from earthsignature.service.api.auth import init_certificates
from earthsignature.service.api.lifecycle import serving
from earthsignature.service.catalog.catalog import Catalog, Filters, ProductRecord, SegmentationRecord
from earthsignature.service.catalog.raster_store import RasterStore
from earthsignature.service.catalog.schema import upgrade

CLASSES = [(0, 312, "Coniferous forest", 0x00A600), (1, 211, "Non-irrigated arable land", 0xFFFFA8),
           (2, 334, "Burnt areas", 0x000000), (3, 512, "Water bodies", 0x80F2E6)]
FULL_SIZE_PRODUCTS, FULL_SIZE_MODEL = 10, "clc-unet-full"
# UTM zones 29..35, latitude bands S..V: most of the European Sentinel-2 grid
ZONES, BANDS, COLUMNS, ROWS = range(29, 36), "STUV", "CDEFG", "ABCDEFGHJK"


def european_tiles(rng: np.random.Generator, count: int) -> list:
    tiles = []
    while len(tiles) < count:
        zone = int(rng.choice(list(ZONES)))
        column_set = ("ABCDEFGH", "JKLMNPQR", "STUVWXYZ")[(zone - 1) % 3]
        tile_id = f"{zone}{rng.choice(list(BANDS))}{column_set[int(rng.integers(2, 6))]}{rng.choice(list(ROWS))}"
        try:
            tiles.append(tile(tile_id))
        except ValueError:
            continue
    return tiles


def load_catalog(url: str, store: RasterStore, products: int, full_size: int) -> tuple[str, Polygon]:
    """Fill the catalog; return the big product's id and a 10 km x 10 km area inside it."""
    rng = np.random.default_rng(0)
    catalog = Catalog(url, pool_size=2)
    pool = []
    for k in range(100):
        data = rng.integers(0, 4, size=(64, 64)).astype(np.uint8)
        pool.append(store.write_cog(store.url_for("pool", f"{k}.tif"), data, "EPSG:32634",
                                    Affine(10, 0, 700000, 0, -10, 4300000), 255))
    start = datetime(2021, 7, 1, tzinfo=UTC)
    for k, geometry in enumerate(european_tiles(rng, products)):
        moment = start + timedelta(minutes=int(rng.integers(0, 60 * 24 * 60)))
        burnt = float(rng.uniform(0, 0.2)) if k % 5 == 0 else 0.0
        classes = [ClassShare(LandCoverClass(312, "Coniferous forest", unpack_rgb(0x00A600), 0), 2000, 0.5 - burnt),
                   ClassShare(LandCoverClass(211, "Non-irrigated arable land", unpack_rgb(0xFFFFA8), 1), 2000, 0.5)]
        if burnt:
            classes.append(ClassShare(LandCoverClass(334, "Burnt areas", unpack_rgb(0), 2), int(4096 * burnt), burnt))
        footprint = Polygon(geometry.footprint_lonlat())
        catalog.add(ProductRecord(f"S2X_BENCH_{k:06d}_T{geometry.tile_id}", geometry.tile_id, "S2A", "L2A", moment,
                                  moment + timedelta(seconds=5), footprint, float(rng.uniform(0, 60))),
                    SegmentationRecord("clc-unet", "1", pool[k % 100], "EPSG:32634",
                                       [700000, 10, 0, 4300000, 0, -10], 64, 64, classes))
    big = tile("34SGH")
    size = 1098
    data = np.zeros((size, size), dtype=np.uint8)
    yy, xx = np.mgrid[:size, :size]
    data[(xx // 137 + yy // 91) % 3 == 1] = 1
    data[(xx - 500) ** 2 + (yy - 600) ** 2 < 200**2] = 2
    data[yy > 900] = 3
    url_big = store.write_cog(store.url_for("big", "classes.tif"), data, f"EPSG:{big.epsg}",
                              Affine(10, 0, big.ulx, 0, -10, big.uly), 255)
    classes = [ClassShare(LandCoverClass(c, n, unpack_rgb(col), v), int((data == v).sum()), float((data == v).mean()))
               for v, c, n, col in CLASSES]
    big_id = "S2A_MSIL2A_20210801T092031_N0500_R093_T34SGH_20210801T122031"
    catalog.add(ProductRecord(big_id, "34SGH", "S2A", "L2A", datetime(2021, 8, 1, 9, 20, tzinfo=UTC),
                              datetime(2021, 8, 1, 9, 21, tzinfo=UTC),
                              Polygon(big.footprint_lonlat(size * 10, size * 10)), 3.0),
                SegmentationRecord("clc-unet", "1", url_big, f"EPSG:{big.epsg}",
                                   [big.ulx, 10, 0, big.uly, 0, -10], size, size, classes))
    _add_full_size_products(catalog, store, big, full_size)
    catalog.dispose()
    corner = Polygon(big.footprint_lonlat(10_000, 10_000))
    return big_id, corner


def settle(url: str) -> None:
    """Let the load's after-effects finish before measuring: the tables vacuumed and analysed (autovacuum would
    do it during the first measurements), PostgreSQL's dirty pages and the written COGs flushed to disk. Else
    the first rows measured, the 1-client 1-process baseline among them, share the machine with that work."""
    import psycopg

    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True) as connection:
        connection.execute("VACUUM ANALYZE")
        connection.execute("CHECKPOINT")
    os.sync()


def _add_full_size_products(catalog: Catalog, store: RasterStore, big, size: int) -> None:
    """FULL_SIZE_PRODUCTS acquisitions of one tile whose maps are one size x size COG with overviews (a
    whole 10980 x 10980 product by default): the realistic case, where each result is a window read."""
    rows = np.arange(size, dtype=np.int32)[:, None]
    data = ((rows // 311 + np.arange(size, dtype=np.int32)[None, :] // 233) % 4).astype(np.uint8)
    url = store.write_cog(store.url_for("full", "classes.tif"), data, f"EPSG:{big.epsg}",
                          Affine(10, 0, big.ulx, 0, -10, big.uly), 255)
    counts = np.bincount(data.ravel(), minlength=4)
    del data
    classes = [ClassShare(LandCoverClass(c, n, unpack_rgb(col), v), int(counts[v]), float(counts[v] / size**2))
               for v, c, n, col in CLASSES]
    for k in range(FULL_SIZE_PRODUCTS):
        moment = datetime(2021, 6, 1, 9, 20, tzinfo=UTC) + timedelta(days=k)
        catalog.add(ProductRecord(f"S2B_MSIL2A_{moment:%Y%m%dT%H%M%S}_N0500_R093_T34SGH_FULL{k:02d}", "34SGH",
                                  "S2B", "L2A", moment, moment + timedelta(seconds=5),
                                  Polygon(big.footprint_lonlat(size * 10, size * 10)), 3.0),
                    SegmentationRecord(FULL_SIZE_MODEL, "1", url, f"EPSG:{big.epsg}",
                                       [big.ulx, 10, 0, big.uly, 0, -10], size, size, classes))


def serve(url: str, settings: ApiSettings, ready, stop) -> None:
    """The Database service as `earthsignature serve` runs it (settings.processes server processes)."""
    with serving(url, settings):
        ready.set()
        stop.wait()


@dataclass(frozen=True)
class Workload:
    """One measured query, picklable so that client processes can run it: ``kind`` grpc (ListSegmentation with
    ``params``), text (SearchSegmentation of ``params["query"]``), stac (an item search with ``params``) or
    range (16 KiB of the map file at ``params["path"]``)."""

    kind: str
    target: str  # the gRPC address, or the HTTP app's root
    certs: str  # the certificate folder
    params: dict

    def client(self):
        if self.kind in ("grpc", "text"):
            pilot = CertificateFolder(Path(self.certs)).identity("pilot")
            return EarthSignatureClient(self.target, ca=CertificateFolder(Path(self.certs)).ca_cert, cert=pilot.cert,
                                        key=pilot.key)
        return StacSession(self.target, CertificateFolder(Path(self.certs)))

    def call(self, client) -> None:
        # gRPC answers are taken as the wire gives them (messages, rasters not decoded): the load shares the
        # server's cores, and decoding is a pilot's cost on the pilot's own machine
        if self.kind == "grpc":
            collections.deque(client.list_messages(**self.params), maxlen=0)
        elif self.kind == "text":
            collections.deque(client.search_messages(**self.params), maxlen=0)
        elif self.kind == "stac":
            client.search(**self.params)
        else:
            client.range_read(self.params["path"])


def _client_process(workload: Workload, threads: int, seconds: float, ready, go, results) -> None:
    """``threads`` clients in this process: each connects and warms up, then all send for ``seconds`` from
    ``go``; the timings go back through ``results`` (or the error)."""
    times: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    warmed = threading.Barrier(threads + 1)

    def worker() -> None:
        try:
            with workload.client() as client:
                workload.call(client)  # warm-up: connection and TLS handshake
                warmed.wait()
                go.wait()
                end, local = time.perf_counter() + seconds, []
                while not local or time.perf_counter() < end:  # at least one timed request per client
                    started = time.perf_counter()
                    workload.call(client)
                    local.append(time.perf_counter() - started)
            with lock:
                times.extend(local)
        except BaseException as error:  # a failed client must not leave the others waiting at the barrier
            errors.append(repr(error))
            warmed.abort()

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for thread in pool:
        thread.start()
    with contextlib.suppress(threading.BrokenBarrierError):
        warmed.wait()
    ready.release()
    go.wait()
    cpu = time.process_time()
    for thread in pool:
        thread.join()
    results.put((times, errors, time.process_time() - cpu))


def latencies(workload: Workload, clients: int, seconds: float) -> dict:
    """``clients`` clients (threads), spread over one client process per core so that the clients' own
    interpreter lock does not cap what the server is asked; throughput is the timed requests over the
    timed window only."""
    context = multiprocessing.get_context("spawn")
    processes = min(clients, os.cpu_count() or 1)
    shares = [clients // processes + (k < clients % processes) for k in range(processes)]
    ready, go, results = context.Semaphore(0), context.Event(), context.Queue()
    workers = [context.Process(target=_client_process, args=(workload, share, seconds, ready, go, results))
               for share in shares]
    for worker in workers:
        worker.start()
    for _ in workers:
        ready.acquire(timeout=120)
    begin = time.perf_counter()
    go.set()
    times: list[float] = []
    client_cpu_s = 0.0
    for _ in workers:
        local, errors, cpu_s = results.get(timeout=seconds + 300)
        if errors:
            raise RuntimeError(f"{len(errors)} of {clients} clients failed: {errors[0]}")
        times.extend(local)
        client_cpu_s += cpu_s
    elapsed = time.perf_counter() - begin
    for worker in workers:
        worker.join(60)
    times.sort()
    return {"requests": len(times), "p50_ms": 1000 * statistics.median(times),
            "p99_ms": 1000 * times[min(len(times) - 1, int(0.99 * len(times)))], "per_s": len(times) / elapsed,
            "client_processes": processes,
            # the machine's CPU the clients themselves took (decoding answers, TLS): not left to the server
            "client_cpu_share": client_cpu_s / (elapsed * (os.cpu_count() or 1))}


class StacSession:
    """One STAC client: a requests session with the pilot's certificate (a connection kept alive)."""

    def __init__(self, root: str, certs: CertificateFolder):
        import requests

        pilot = certs.identity("pilot")
        self.root, self.session, self.ca = root, requests.Session(), str(certs.ca_cert)
        self.session.cert = (str(pilot.cert), str(pilot.key))

    def __enter__(self) -> StacSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.session.close()

    def range_read(self, path: str) -> bytes:
        """The first 16 KiB of a map file (what GDAL's /vsicurl/ asks first: header and tile offsets)."""
        response = self.session.get(f"{self.root}{path}", headers={"Range": "bytes=0-16383"}, verify=self.ca,
                                    timeout=60)
        response.raise_for_status()
        return response.content

    def search(self, **params) -> list:
        # verify per request: a session's verify loses to CURL_CA_BUNDLE, which rasterio sets at import
        response = self.session.get(f"{self.root}/stac/search", params={"limit": 10, **params}, verify=self.ca,
                                    timeout=60)
        response.raise_for_status()
        return response.json()["features"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--products", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--full-size", type=int, default=10_980, help="side of the full-size maps, pixels")
    parser.add_argument("--workers", type=int, default=ApiSettings.workers,
                        help="threads the gRPC methods run in, per server process")
    parser.add_argument("--work-slots", type=int, default=ApiLimits.work_slots,
                        help="map queries working at once per server process (api.limits.work_slots)")
    parser.add_argument("--only", default="", help="measure only the queries whose name contains this")
    parser.add_argument("--rounds", type=int, default=3, help="each configuration measured this many times")
    args = parser.parse_args()
    with scratch_cluster("earthsignature-api-bench-") as (cluster, work):
        run(args, work, cluster)


def run(args: argparse.Namespace, work: Path, cluster: PostgresCluster) -> None:
    url = cluster.up("bench")
    upgrade(url)
    store = RasterStore(str(work / "store"))
    started = time.perf_counter()
    big_id, area = load_catalog(url, store, args.products, args.full_size)
    load_seconds = time.perf_counter() - started
    settle(url)
    certs = CertificateFolder(work / "certs")
    init_certificates(certs, ("server", "pilot"))
    address, http_port = f"127.0.0.1:{free_port()}", free_port()
    stac_root, bbox = f"https://127.0.0.1:{http_port}", ",".join(f"{v:.6f}" for v in area.bounds)
    grpc_queries = {
        "area 10 km x 10 km": Workload("grpc", address, str(certs.path), {"wkt": area.wkt}),
        "categories (burnt areas)": Workload("grpc", address, str(certs.path), {"categories": ["Burnt areas"]}),
        "10 km windows of full-size maps": Workload("grpc", address, str(certs.path),
                                                    {"wkt": area.wkt, "model_names": [FULL_SIZE_MODEL]}),
    }
    http_queries = {
        "STAC search: area 10 km x 10 km": Workload("stac", stac_root, str(certs.path), {"bbox": bbox}),
        "STAC search: CQL2 burnt >= 0.1": Workload("stac", stac_root, str(certs.path),
                                                   {"filter": "fraction:burnt_areas >= 0.1"}),
    }
    catalog_p50 = catalog_baselines(url, area)

    def settings(processes: int) -> ApiSettings:
        return ApiSettings(address=address, http_port=http_port, store_url=str(work / "store"),
                           certs_dir=str(certs.path), workers=args.workers, processes=processes,
                           limits=ApiLimits(work_slots=args.work_slots))

    rows = []
    for round_number in range(args.rounds):  # each round: both server configurations, every query
        for processes in sorted({1, os.cpu_count() or 1}):
            with running(url, settings(processes)):
                if "map file: 16 KiB range read" not in http_queries:
                    with StacSession(stac_root, certs) as session:
                        href = session.search(bbox=bbox)[0]["assets"]["classes"]["href"]
                    http_queries["map file: 16 KiB range read"] = Workload("range", stac_root, str(certs.path),
                                                                           {"path": href.removeprefix(stac_root)})
                for name, workload in (grpc_queries | http_queries).items():
                    if args.only in name:
                        for clients in (1, 8, 32):
                            rows.append({"query": name, "round": round_number, "server_processes": processes,
                                         "clients": clients, **latencies(workload, clients, args.seconds)})
    with running(url, settings(1)):
        sizes, pixels = wire_sizes(grpc_queries["area 10 km x 10 km"], area, big_id)
    summary = summarize(rows, catalog_p50)
    print_table(args, load_seconds, summary, sizes, pixels)
    write_results("api", {"products": args.products + 1, "full_size": args.full_size, "rounds": args.rounds,
                          "seconds": args.seconds, "load_seconds": load_seconds, "rows": summary,
                          "measurements": rows, "wire_bytes": sizes, "pixels": pixels})


@contextlib.contextmanager
def running(url: str, settings: ApiSettings):
    """The service (``settings.processes`` server processes) in a process of its own while the block runs."""
    context = multiprocessing.get_context("spawn")
    ready, stop = context.Event(), context.Event()
    process = context.Process(target=serve, args=(url, settings, ready, stop))
    process.start()
    try:
        if not ready.wait(120):
            raise RuntimeError("the service did not start within 120 s")
        yield
    finally:
        stop.set()
        process.join(60)


def catalog_baselines(url: str, area: Polygon) -> dict[str, float]:
    """The catalog query of each gRPC query alone (PostGIS, no gRPC, no rasters): p50 ms of 50."""
    filters = {"area 10 km x 10 km": Filters(area=area),
               "categories (burnt areas)": Filters(category_names=("burnt areas",)),
               "10 km windows of full-size maps": Filters(area=area, model_names=(FULL_SIZE_MODEL,))}
    catalog, base = Catalog(url, pool_size=2), {}
    try:
        for name, query in filters.items():
            timings = []
            for _ in range(50):
                t = time.perf_counter()
                catalog.search(query)
                timings.append(time.perf_counter() - t)
            base[name] = 1000 * statistics.median(timings)
    finally:
        catalog.dispose()
    return base


def wire_sizes(area_query: Workload, area: Polygon, big_id: str) -> tuple[dict[str, int], int]:
    """Bytes of one clipped map's answer in each raster encoding, and its pixels."""
    sizes, pixels = {}, 0
    with area_query.client() as client:
        for label, encoding in (("zstd (default)", Encoding.RASTER_ENCODING_ZSTD),
                                ("PNG", Encoding.RASTER_ENCODING_PNG),
                                ("legacy repeated uint32 (seed)", Encoding.RASTER_ENCODING_LEGACY_UINT32),
                                ("class polygons (geobuf)", Encoding.RASTER_ENCODING_GEOBUF_POLYGONS)):
            (message,) = list(client.list_messages(wkt=area.wkt, product_ids=[big_id], encoding=encoding))
            sizes[label] = message.ByteSize()
            pixels = message.segmentation.height * message.segmentation.width
    return sizes, pixels


def summarize(rows: list[dict], catalog_p50: dict[str, float]) -> list[dict]:
    """One row per query, server processes and clients: medians over the rounds, and the scaling figures as
    each round's ratio to the same round's 1 client (of the same server; of 1 server process), their median
    and range. A ratio within one round compares measurements minutes apart, not a whole run apart."""
    def of(query: str, round_number: int, processes: int, clients: int) -> dict:
        return next(r for r in rows if (r["query"], r["round"], r["server_processes"], r["clients"]) ==
                    (query, round_number, processes, clients))

    summary = []
    for key in dict.fromkeys((r["query"], r["server_processes"], r["clients"]) for r in rows):
        query, processes, clients = key
        same = [r for r in rows if (r["query"], r["server_processes"], r["clients"]) == key]
        vs_one = [r["per_s"] / of(query, r["round"], processes, 1)["per_s"] for r in same]
        vs_single = [r["per_s"] / of(query, r["round"], 1, 1)["per_s"] for r in same]
        row = {"query": query, "server_processes": processes, "clients": clients,
               "per_s": statistics.median(r["per_s"] for r in same),
               "p50_ms": statistics.median(r["p50_ms"] for r in same),
               "p99_ms": statistics.median(r["p99_ms"] for r in same),
               "client_cpu_share": statistics.median(r["client_cpu_share"] for r in same),
               "throughput_vs_1_client": statistics.median(vs_one),
               "throughput_vs_1_client_1_process": statistics.median(vs_single),
               "throughput_vs_1_client_1_process_range": [min(vs_single), max(vs_single)]}
        if query in catalog_p50:
            row |= {"catalog_only_p50_ms": catalog_p50[query], "p50_over_catalog": row["p50_ms"] / catalog_p50[query]}
        summary.append(row)
    return summary


def print_table(args, load_seconds: float, summary: list[dict], sizes: dict[str, int], pixels: int) -> None:
    print(f"\ncatalog of {args.products + 1} products loaded in {load_seconds:.0f} s "
          f"({(args.products + 1) / load_seconds:.0f} products/s through Catalog.add); {args.rounds} rounds of "
          f"{args.seconds:.0f} s per measurement, medians")
    print(f"{'query':<32} {'procs':>5} {'clients':>7} {'p50 ms':>8} {'p99 ms':>8} {'req/s':>7} {'vs 1 client':>11} "
          f"{'vs 1 cl 1 proc':>14} {'(range)':>13} {'client CPU':>10} {'p50 / catalog':>14}")
    for row in summary:
        over_catalog = f"{row['p50_over_catalog']:>13.1f}x" if "p50_over_catalog" in row else f"{'-':>14}"
        low, high = row["throughput_vs_1_client_1_process_range"]
        print(f"{row['query']:<32} {row['server_processes']:>5} {row['clients']:>7} {row['p50_ms']:>8.1f} "
              f"{row['p99_ms']:>8.1f} {row['per_s']:>7.1f} {row['throughput_vs_1_client']:>10.2f}x "
              f"{row['throughput_vs_1_client_1_process']:>13.2f}x {f'{low:.2f}-{high:.2f}x':>13} "
              f"{row['client_cpu_share']:>9.0%} {over_catalog}")
    legacy = sizes["legacy repeated uint32 (seed)"]
    print(f"\nbytes on the wire for one clipped map ({pixels:,} pixels):")
    for label, size in sizes.items():
        print(f"  {label:<32} {size:>10,} bytes  {size / legacy:>7.4f} of legacy")


if __name__ == "__main__":
    main()
