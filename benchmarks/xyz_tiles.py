"""XYZ tiles of a class map: the service's renderer (``map_render.render_tile``) beside rio-tiler's
(``Reader.tile`` on morecantile's Web Mercator grid, then ``ImageData.render`` with the map's colour table),
on the same COG and the same tiles, in one run.

The map: a full-size class COG on tile 31TCJ's grid (10980 x 10980 px at 10 m, fields of 200 m in ten CLC
classes, a slanted no-data edge), written by the service's one COG writer (tiles of 512, nearest-neighbour
overviews, colour table). Per zoom level, tiles drawn at random over the map; each renderer's median time
per tile (PNG bytes out, nearest neighbour both), and how alike the pictures are: the share of pixels with
the same colour and transparency. Prints a table and writes ``benchmarks/results/xyz_tiles.json``.

    python benchmarks/xyz_tiles.py [--tiles 30] [--zooms 9 11 13 15]
"""

from __future__ import annotations

import argparse
import io
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from results_file import write_results  # benchmarks/results_file.py, beside this script

from earthsignature.core.cog import write_cog
from earthsignature.core.nomenclature import clc_level3
from earthsignature.core.tiling_grid import tile
from earthsignature.service.api.map_render import render_tile

SIZE = 10980
CODES = (112, 211, 231, 311, 312, 324, 333, 411, 512, 523)


def class_map(folder: Path) -> Path:
    """A full-size class COG: fields of 20 px in ten classes, no data east of a slanted edge."""
    rng = np.random.default_rng(0)
    legend = clc_level3()
    values = np.array([legend.by_code(code).index for code in CODES], dtype=np.uint8)
    fields = values[rng.integers(0, len(values), (SIZE // 20 + 1, SIZE // 20 + 1))]
    data = np.kron(fields, np.ones((20, 20), dtype=np.uint8))[:SIZE, :SIZE]
    rows, cols = np.ogrid[:SIZE, :SIZE]
    data[cols > 0.85 * SIZE + 0.1 * (rows - SIZE / 2)] = 255
    grid = tile("31TCJ")
    from affine import Affine

    colormap = {c.index: (*c.color, 255) for c in legend.classes}
    return write_cog(folder / "classes.tif", data, grid.crs, Affine(10, 0, grid.ulx, 0, -10, grid.uly), 255, colormap)


def tiles_over(path: Path, zoom: int, count: int, rng: np.random.Generator) -> list[tuple[int, int, int]]:
    """``count`` XYZ tiles at ``zoom`` (morecantile's Web Mercator grid) around points of the map's data."""
    import morecantile
    import rasterio
    from rasterio.warp import transform

    with rasterio.open(path) as dataset:
        rows, cols = rng.uniform(0.05, 0.95, count) * SIZE, rng.uniform(0.05, 0.75, count) * SIZE
        xs, ys = dataset.transform * (cols, rows)
        lons, lats = transform(dataset.crs, "EPSG:4326", list(xs), list(ys))
    grid = morecantile.tms.get("WebMercatorQuad")
    return [(t.z, t.x, t.y) for t in (grid.tile(lon, lat, zoom) for lon, lat in zip(lons, lats, strict=True))]


def ours(path: Path, z: int, x: int, y: int) -> bytes:
    return render_tile(str(path), z, x, y)


def rio_tiler(path: Path, z: int, x: int, y: int) -> bytes:
    from rio_tiler.io import Reader

    with Reader(str(path)) as source:
        image = source.tile(x, y, z, tilesize=256, resampling_method="nearest", reproject_method="nearest")
        return image.render(img_format="PNG", colormap=source.colormap)


def rgba(png: bytes) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(png)).convert("RGBA"))


def alike(first: bytes, second: bytes) -> float:
    """Share of pixels drawn alike: both transparent, or the same opaque colour."""
    a, b = rgba(first), rgba(second)
    both_clear = (a[..., 3] == 0) & (b[..., 3] == 0)
    same = (a == b).all(axis=-1) & (a[..., 3] > 0)
    return float((both_clear | same).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiles", type=int, default=30)
    parser.add_argument("--zooms", type=int, nargs="+", default=[9, 11, 13, 15])
    args = parser.parse_args()
    rng = np.random.default_rng(1)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        path = class_map(Path(tmp))
        for renderer in (ours, rio_tiler):  # warm-up: imports, GDAL's caches
            renderer(path, *tiles_over(path, 12, 1, rng)[0])
        for zoom in args.zooms:
            timings: dict[str, list[float]] = {"ours": [], "rio-tiler": []}
            similarity = []
            for z, x, y in tiles_over(path, zoom, args.tiles, rng):
                pictures = {}
                for name, renderer in (("ours", ours), ("rio-tiler", rio_tiler)):
                    start = time.perf_counter()
                    pictures[name] = renderer(path, z, x, y)
                    timings[name].append((time.perf_counter() - start) * 1000)
                similarity.append(alike(pictures["ours"], pictures["rio-tiler"]))
            row = {"zoom": zoom, "tiles": args.tiles,
                   **{f"{name}_ms": statistics.median(values) for name, values in timings.items()},
                   "alike": statistics.mean(similarity)}
            row["rio_tiler_over_ours"] = row["rio-tiler_ms"] / row["ours_ms"]
            rows.append(row)
    print(f"\nXYZ tiles of a {SIZE} x {SIZE} class COG, 256 px PNG, nearest neighbour; median ms per tile")
    print(f"{'zoom':>4} {'tiles':>5} {'ours':>8} {'rio-tiler':>10} {'rio-tiler / ours':>17} {'pixels alike':>13}")
    for r in rows:
        print(f"{r['zoom']:>4} {r['tiles']:>5} {r['ours_ms']:>8.1f} {r['rio-tiler_ms']:>10.1f} "
              f"{r['rio_tiler_over_ours']:>16.2f}x {r['alike']:>12.1%}")
    write_results("xyz_tiles", {"args": vars(args), "rows": rows})


if __name__ == "__main__":
    main()
