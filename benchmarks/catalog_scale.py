"""A continent's catalog: the same queries on 10,000 and 1,000,000 segmentations.

Each size is a new database filled by ``samples/catalog_rows.py`` as the daily ingestion of Europe would
have filled it (real Sentinel-2 tiles, revisits every five days from 2023-01-01, three models, every legend
class's statistics, cloud cover), generated inside PostgreSQL at COPY speed; the maps are one small real COG
per tile that all its segmentations point at (catalog queries never read them; ListSegmentation reads a
window of one per answer). Then ``earthsignature serve`` (one process per core) answers 1 and 8 clients:
STAC search by bbox + datetime, by CQL2 class share, by ids, a page 1,000 pages deep; gRPC ListSegmentation
by area, dates and category; SearchSegmentation text; and CreateProduct's catalog side (``Catalog.add``)
per second. Beside each served figure, the query's catalog search alone (in-process, no transport): the
share of the time the catalog takes. Area statistics read maps, not only rows: ``area_statistics.py``
measures them.

    .venv/bin/python benchmarks/catalog_scale.py [--sizes 10000,1000000] [--seconds 3]

Prints a table and writes benchmarks/results/catalog_scale.json.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
from api import Workload, latencies, serve  # benchmarks/api.py, beside this script
from results_file import write_results
from shapely.geometry import MultiPolygon, Polygon, box

from earthsignature.core.classes import ClassShare, LandCoverClass
from earthsignature.core.layout import CertificateFolder
from earthsignature.core.settings import ApiSettings
from earthsignature.core.tiling_grid import tile
from earthsignature.embedded.ports import free_port
from earthsignature.embedded.postgres import PostgresCluster, scratch_cluster
from earthsignature.samples.catalog_rows import catalog_size_bytes, write_catalog
from earthsignature.service.api.auth import init_certificates
from earthsignature.service.catalog.catalog import Catalog, Filters, PageKey, ProductRecord, SegmentationRecord
from earthsignature.service.catalog.items import item_id
from earthsignature.service.catalog.raster_store import RasterStore
from earthsignature.service.catalog.schema import upgrade

#: Around Toulouse, a degree and a half square (a dozen tiles), a month: the smallest catalog holds enough
#: maps there for every query to return as many results as at a million (each row records how many).
AREA = box(0.5, 43.0, 2.0, 44.5)
MONTH = (datetime(2023, 1, 1, tzinfo=UTC), datetime(2023, 1, 31, 23, 59, 59, tzinfo=UTC))
DEEP_PAGE = 1_000  # pages of 10
CREATED = 200  # Catalog.add calls timed per size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,1000000", help="segmentations per catalog, comma-separated")
    parser.add_argument("--seconds", type=float, default=3.0, help="per query and client count")
    parser.add_argument("--clients", default="1,8")
    parser.add_argument("--only", default="", help="measure only the queries whose name contains this")
    args = parser.parse_args()
    started = time.perf_counter()
    with scratch_cluster("earthsignature-scale-bench-") as (cluster, work):
        certs = CertificateFolder(work / "certs")
        init_certificates(certs, ("server", "pilot"))
        sizes = [int(size) for size in args.sizes.split(",")]
        results = [measure_size(cluster, work, certs, size, args) for size in sizes]
    report(results, time.perf_counter() - started)


def measure_size(cluster: PostgresCluster, work: Path, certs: CertificateFolder, size: int,
                 args: argparse.Namespace) -> dict:
    url = cluster.up(f"scale_{size}")
    upgrade(url)
    store = RasterStore(str(work / f"store-{size}"))
    begin = time.perf_counter()
    layout = write_catalog(url, size, store)
    load_s = time.perf_counter() - begin
    database_bytes = catalog_size_bytes(url)
    print(f"{size:>9,} segmentations: loaded in {load_s:.0f} s, {database_bytes / size:,.0f} bytes each", flush=True)
    address, http_port = f"127.0.0.1:{free_port()}", free_port()
    workloads = _workloads(url, size, address, f"https://127.0.0.1:{http_port}", certs)
    settings = ApiSettings(address=address, http_port=http_port, store_url=str(work / f"store-{size}"),
                           certs_dir=str(certs.path), processes=os.cpu_count() or 1,
                           store_check_at_start=False)  # a million rows are not checked at every start
    context = multiprocessing.get_context("spawn")
    ready, stop = context.Event(), context.Event()
    server = context.Process(target=serve, args=(url, settings, ready, stop))
    server.start()
    rows = []
    try:
        if not ready.wait(180):
            raise RuntimeError("the server did not start")
        for name, (workload, filters) in workloads.items():
            if args.only not in name:
                continue
            catalog_ms, results = _catalog_ms(url, filters)
            for clients in (int(c) for c in args.clients.split(",")):
                rows.append({"query": name, "clients": clients, **latencies(workload, clients, args.seconds),
                             "catalog_search_ms": catalog_ms, "results": results})
                print(f"  {name:<44} {clients:>2} clients  p50 {rows[-1]['p50_ms']:8.1f} ms  "
                      f"p99 {rows[-1]['p99_ms']:8.1f} ms", flush=True)
    finally:
        stop.set()
        server.join(60)
    return {"segmentations": size, "layout": layout, "load_s": load_s, "database_bytes": database_bytes,
            "bytes_per_segmentation": database_bytes / size, "queries": rows, "create_per_s": _creates(url)}


def _workloads(url: str, size: int, address: str, stac_root: str,
               certs: CertificateFolder) -> dict[str, tuple[Workload, Filters]]:
    """The queries, with parameters drawn from the catalog the same way at every size (the items and the
    deep page lie in the first 10,000 segmentations, which every size holds), each with the catalog search
    it makes (``Filters``), timed alone in-process."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            picked = connection.execute(sa.text(
                "SELECT p.product_id, s.model_name, s.model_version FROM segmentations s "
                "JOIN products p ON p.id = s.product_pk "
                "WHERE s.id IN (1, 2001, 4001, 6001, 8001) ORDER BY s.id")).all()
            depth = min(DEEP_PAGE * 10, size - 10)  # the last page of a small catalog
            start_time, segmentation_id = connection.execute(sa.text(
                "SELECT p.start_time, s.id FROM segmentations s JOIN products p ON p.id = s.product_pk "
                "ORDER BY p.start_time DESC, s.id DESC OFFSET :depth LIMIT 1"), {"depth": depth}).one()
    finally:
        engine.dispose()
    month = f"{MONTH[0]:%Y-%m-%dT%H:%M:%SZ}/{MONTH[1]:%Y-%m-%dT%H:%M:%SZ}"
    bbox = ",".join(f"{v:g}" for v in AREA.bounds)

    def stac(params: dict) -> Workload:
        return Workload("stac", stac_root, str(certs.path), params)

    def grpc(params: dict, kind: str = "grpc") -> Workload:
        return Workload(kind, address, str(certs.path), params)

    ids = tuple(item_id(product, model, version) for product, model, version in picked)
    token = PageKey(start_time, segmentation_id).token()
    share = {"op": ">", "args": [{"property": "fraction:burnt"}, 0.2]}
    return {
        "STAC bbox + datetime": (stac({"bbox": bbox, "datetime": month}),
                                 Filters(area=AREA, start=MONTH[0], end=MONTH[1], limit=11)),
        "STAC CQL2 fraction:burnt > 0.2": (stac({"filter": "fraction:burnt > 0.2", "filter-lang": "cql2-text"}),
                                           Filters(expression=share, limit=11)),
        "STAC ids (5 items)": (stac({"ids": ",".join(ids)}), Filters(item_ids=ids, limit=11)),
        "STAC deep page (token)": (stac({"token": token}), Filters(page_token=token, limit=11)),
        # 5 answers at every size (the smallest catalog has a dozen there)
        "gRPC list: area, month, coniferous forest": (
            grpc({"wkt": AREA.wkt, "start": MONTH[0], "end": MONTH[1], "categories": ["Coniferous forest"],
                  "max_pixels": 256, "n_results": 5}),
            Filters(area=AREA, start=MONTH[0], end=MONTH[1], category_names=("coniferous forest",), limit=5)),
        "gRPC text: coniferous forest, a month": (
            grpc({"query": "coniferous forest after:2023-01-01 before:2023-01-31", "max_pixels": 256}, "text"),
            Filters(words="coniferous forest", start=MONTH[0], end=datetime(2023, 1, 31, tzinfo=UTC), limit=10)),
    }


def _catalog_ms(url: str, filters: Filters, runs: int = 30) -> tuple[float, int]:
    """The median time of the query's catalog search alone (SQL and rows), in-process, no transport; and how
    many results it finds (the page's size: sizes compare only where it is the same)."""
    catalog = Catalog(url, pool_size=1)
    results = len(catalog.search(filters))
    timings = []
    for _ in range(runs):
        began = time.perf_counter()
        catalog.search(filters)
        timings.append(time.perf_counter() - began)
    catalog.dispose()
    return 1000 * statistics.median(timings), results


def _creates(url: str) -> float:
    """``Catalog.add`` calls per second, one after the other (the catalog side of CreateProduct)."""
    catalog = Catalog(url, pool_size=1)
    geometry = tile("31TCJ")
    footprint = MultiPolygon([Polygon(geometry.footprint_lonlat())])
    classes = [ClassShare(LandCoverClass(312, "Coniferous forest", (0, 166, 0), 0), 1000, 0.5),
               ClassShare(LandCoverClass(211, "Non-irrigated arable land", (255, 255, 168), 1), 1000, 0.5)]
    moment = datetime(2030, 1, 1, 10, 30, tzinfo=UTC)
    began = time.perf_counter()
    for k in range(CREATED):
        when = moment + timedelta(days=k)
        catalog.add(ProductRecord(f"S2A_MSIL2A_{when:%Y%m%dT%H%M%S}_N0509_R051_T31TCJ_{when:%Y%m%dT%H%M%S}",
                                  "31TCJ", "S2A", "L2A", when, when + timedelta(seconds=5), footprint, 10.0),
                    SegmentationRecord("clc-unet", "3", "scale/31TCJ.tif", f"EPSG:{geometry.epsg}",
                                       [geometry.ulx, 6862.5, 0, geometry.uly, 0, -6862.5], 16, 16, classes))
    per_s = CREATED / (time.perf_counter() - began)
    catalog.dispose()
    return per_s


def report(results: list[dict], seconds: float) -> None:
    small, large = results[0], results[-1]
    headers = [f"{result['segmentations']:,} p50/p99 ms" for result in results]
    print(f"\n{'query':<44} {'clients':>7} " + " ".join(f"{h:>24}" for h in headers) + f" {'p50 ratio':>9}"
          + "  catalog search alone, p50")
    for row in large["queries"]:
        base = next(q for q in small["queries"] if (q["query"], q["clients"]) == (row["query"], row["clients"]))
        cells = []
        for result in results:
            match = next(q for q in result["queries"] if (q["query"], q["clients"]) == (row["query"], row["clients"]))
            cells.append(f"{match['p50_ms']:>11.1f} / {match['p99_ms']:>9.1f}")
        row["p50_vs_smallest"] = row["p50_ms"] / base["p50_ms"]
        print(f"{row['query']:<44} {row['clients']:>7} " + " ".join(f"{c:>24}" for c in cells)
              + f" {row['p50_vs_smallest']:>8.2f}x  catalog search {base['catalog_search_ms']:.1f} -> "
                f"{row['catalog_search_ms']:.1f} ms, results {base['results']} -> {row['results']}")
    for result in results:
        print(f"{result['segmentations']:>9,}: load {result['load_s']:.0f} s, "
              f"{result['bytes_per_segmentation']:,.0f} bytes per segmentation, "
              f"Catalog.add {result['create_per_s']:.1f}/s")
    print(f"whole benchmark: {seconds / 60:.1f} min")
    write_results("catalog_scale", {"sizes": results, "seconds": seconds})


if __name__ == "__main__":
    main()
