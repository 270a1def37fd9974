"""How much: area statistics over 30 dates of a full-size Sentinel-2 tile, against a direct count.

One tile (31TCJ, 10,980 x 10,980 pixels of 10 m) is stored for each of ``--dates`` days by the real ingestion
(class map, cloud mask, observed map and cell counts): fields of 200 m in ten classes, clouds over a different
part each day, a slanted no-data swath edge every third day. Two areas are asked for every date:

* a 10 km x 10 km square inside the tile (slanted in UTM: it is straight in longitude and latitude);
* the whole tile (its footprint).

Each is answered by the service core in-process (``DatabaseCore.area_statistics``: the catalog search, the
counting plan, whole cells from their stored counts, edge cells read from the observed map), and by a direct
count (class map and cloud mask read at full resolution under the area, the area rasterized, every pixel
counted). Both must agree to the pixel; the table says whether they do.

    .venv/bin/python benchmarks/area_statistics.py [--dates 30] [--size 10980]

Prints a table and writes benchmarks/results/area_statistics.json.
"""

from __future__ import annotations

import argparse
import statistics
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
from affine import Affine
from results_file import write_results
from shapely.geometry import Polygon, box

from earthsignature.core.classes import LandCoverClass
from earthsignature.core.cog import CLASS_NODATA, CLOUD_MASK_NODATA
from earthsignature.core.settings import ApiLimits
from earthsignature.core.tiling_grid import tile
from earthsignature.embedded.postgres import scratch_cluster
from earthsignature.service.api.budget import Deadline
from earthsignature.service.api.core import INSECURE_CALLER, DatabaseCore
from earthsignature.service.api.records import StatisticsQuery
from earthsignature.service.catalog import area_statistics
from earthsignature.service.catalog.catalog import Catalog, Filters
from earthsignature.service.catalog.ingest import Submission, ingest
from earthsignature.service.catalog.raster_store import RasterStore, RasterWindow
from earthsignature.service.catalog.schema import upgrade

TILE = tile("31TCJ")
LEGEND = {k: LandCoverClass(code, f"class {code}", (20 * k, 255 - 20 * k, 128), k)
          for k, code in enumerate((111, 112, 211, 212, 231, 311, 312, 324, 334, 512))}
FIRST_DAY = datetime(2023, 6, 1, 10, 30, tzinfo=UTC)
MODEL = "clc-unet"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dates", type=int, default=30)
    parser.add_argument("--size", type=int, default=10_980, help="pixels per side of the tile's maps")
    parser.add_argument("--runs", type=int, default=3, help="timed runs of each answer (the median is kept)")
    args = parser.parse_args()
    with scratch_cluster("earthsignature-stats-bench-", fast_unsafe=True) as (cluster, work):
        url = cluster.up("statistics")
        upgrade(url)
        catalog, store = Catalog(url, pool_size=2), RasterStore((work / "store").as_uri())
        ingestion = [store_date(catalog, store, day, args.size) for day in range(args.dates)]
        core = DatabaseCore(catalog, store, ApiLimits(request_deadline_s=600), insecure=True)
        rows = [measure(core, catalog, store, name, area, args.runs) for name, area in areas(args.size)]
        core.close()
        catalog.dispose()
        sizes = stored_sizes(work / "store")
    report(rows, ingestion, sizes, args)


def areas(size: int) -> list[tuple[str, Polygon]]:
    """(name, area in EPSG:4326): a 10 km square near the tile's centre, and the whole tile."""
    footprint = Polygon(TILE.footprint_lonlat(size * 10, size * 10))
    centre = footprint.centroid
    half_lon, half_lat = 5_000 / (111_320 * np.cos(np.radians(centre.y))), 5_000 / 110_950
    square = box(centre.x - half_lon, centre.y - half_lat, centre.x + half_lon, centre.y + half_lat)
    return [("10 km x 10 km", square), ("whole tile", footprint)]


def maps(size: int, day: int) -> tuple[np.ndarray, np.ndarray]:
    """A day's class map (fields of 20 pixels in ten classes) and cloud mask (a band of clouds that moves)."""
    rng = np.random.default_rng(day)
    fields = rng.integers(0, len(LEGEND), (size // 20 + 1, size // 20 + 1)).astype(np.uint8)
    classes = np.repeat(np.repeat(fields, 20, axis=0), 20, axis=1)[:size, :size]
    cloud = np.zeros((size, size), dtype=np.uint8)
    top = (day * size // 7) % size
    cloud[top:top + size // 6, :] = 1
    if day % 3 == 0:  # a slanted swath edge: no data east of it
        columns = np.arange(size)
        edge = (size * 0.85 - np.arange(size) * 0.1).astype(int)
        classes[columns[None, :] >= edge[:, None]] = CLASS_NODATA
        cloud[columns[None, :] >= edge[:, None]] = CLOUD_MASK_NODATA
    return classes, cloud


def store_date(catalog: Catalog, store: RasterStore, day: int, size: int) -> float:
    classes, cloud = maps(size, day)
    transform = Affine(10.0, 0, TILE.ulx, 0, -10.0, TILE.uly)
    crs = f"EPSG:{TILE.epsg}"
    start = FIRST_DAY + timedelta(days=day)
    began = time.perf_counter()
    ingest(Submission(
        product_id=f"S2A_MSIL2A_{start:%Y%m%dT%H%M%S}_N0509_R051_T{TILE.tile_id}_{start:%Y%m%dT%H%M%S}",
        model_name=MODEL, model_version="1", footprint=Polygon(TILE.footprint_lonlat(size * 10, size * 10)),
        classes=RasterWindow(classes, transform, crs, CLASS_NODATA), legend=LEGEND, start=start, end=start,
        layers={"cloud_mask": RasterWindow(cloud, transform, crs, CLOUD_MASK_NODATA)}), catalog, store)
    seconds = time.perf_counter() - began
    print(f"date {day + 1}: stored in {seconds:.1f} s", flush=True)
    return seconds


def direct_count(catalog: Catalog, store: RasterStore, area: Polygon) -> dict:
    """Every map's class map and cloud mask read under the area at full resolution, every pixel counted."""
    found = [f.segmentation for f in catalog.search(Filters(area=area, model_names=(MODEL,), limit=1000))]
    totals: dict[str, dict[int, int]] = {}
    for date_plan in area_statistics.plan(area, found):
        for segmentation, region in zip(date_plan.maps, date_plan.regions, strict=True):
            local = area_statistics.in_map_crs(region, segmentation.crs)
            totals[str(date_plan.day)] = area_statistics.count_directly(segmentation, local, store).counts
    return totals


def fast_count(core: DatabaseCore, area: Polygon) -> list:
    return core.area_statistics(INSECURE_CALLER, StatisticsQuery(area, MODEL), Deadline.within(600))


def measure(core: DatabaseCore, catalog: Catalog, store: RasterStore, name: str, area: Polygon, runs: int) -> dict:
    direct_s, fast_s = [], []
    for _ in range(runs):
        began = time.perf_counter()
        direct = direct_count(catalog, store, area)
        direct_s.append(time.perf_counter() - began)
        began = time.perf_counter()
        answer = fast_count(core, area)
        fast_s.append(time.perf_counter() - began)
    agree = all(_hectares(direct[str(day.day)]) == _answer_hectares(day) for day in answer)
    row = {"area": name, "dates": len(answer), "area_km2": round(area_statistics.geodesic_hectares(area) / 100, 1),
           "direct_s": round(statistics.median(direct_s), 3), "statistics_s": round(statistics.median(fast_s), 3),
           "agree": agree}
    row["speedup"] = round(row["direct_s"] / row["statistics_s"], 1)
    print(f"{name}: direct {row['direct_s']} s, statistics {row['statistics_s']} s, agree {agree}", flush=True)
    return row


def _hectares(counts: dict[int, int]) -> dict[int, float]:
    """Hectares by observed value (classes, 254 clouds, 255 no data) of a direct count."""
    return {value: round(pixels * 0.01, 2) for value, pixels in counts.items()}


def _answer_hectares(day) -> dict[int, float]:
    """The same from the service's answer."""
    answer = {row.land_cover.index: round(row.hectares, 2) for row in day.classes if row.hectares}
    answer.update({value: round(hectares, 2) for value, hectares in ((254, day.cloud_ha), (255, day.nodata_ha))
                   if hectares})
    return answer


def stored_sizes(folder: Path) -> dict:
    """Bytes per map of each stored file kind (class map, observed map, cell counts, cloud mask)."""
    kinds = {"classes.tif": [], "observed.tif": [], "observed.tif.cells.npz": [], "cloud_mask.tif": []}
    for path in folder.rglob("*"):
        if path.name in kinds:
            kinds[path.name].append(path.stat().st_size)
    return {name: int(statistics.mean(sizes)) for name, sizes in kinds.items() if sizes}


def report(rows: list[dict], ingestion: list[float], sizes: dict, args: argparse.Namespace) -> None:
    print(f"\n{'area':<16}{'dates':>6}{'km2':>10}{'direct s':>10}{'stats s':>10}{'speedup':>9}  agree")
    for row in rows:
        print(f"{row['area']:<16}{row['dates']:>6}{row['area_km2']:>10,.0f}{row['direct_s']:>10.2f}"
              f"{row['statistics_s']:>10.2f}{row['speedup']:>8.1f}x  {row['agree']}")
    print(f"ingestion: {statistics.median(ingestion):.1f} s per map (median); bytes per map: " +
          ", ".join(f"{name} {size / 1e6:.1f} MB" for name, size in sizes.items()))
    write_results("area_statistics", {"tile": TILE.tile_id, "size": args.size, "dates": args.dates,
                                      "runs": args.runs, "rows": rows,
                                      "ingestion_s_median": round(statistics.median(ingestion), 2),
                                      "bytes_per_map": sizes})


if __name__ == "__main__":
    main()
