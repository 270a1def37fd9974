"""The main job on embedded defaults, as far as the project has built it.

Today: start the private PostGIS, write one day of sample Sentinel-2 L2A products over four European
tiles (skipped when already there), read them back as the monitor will, and check the catalog database
answers. Later stages (segmentation, catalog, gRPC, pilot queries) join as they land.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import click
from omegaconf import DictConfig

from earthsignature.data.fixtures.safe_writer import ProductSpec, write_product
from earthsignature.data.safe import SafeProduct
from earthsignature.data.sentinel2 import ProductName
from earthsignature.service.database.cluster import PostgresCluster

DEMO_DAY = datetime(2021, 8, 1, tzinfo=UTC)
#: (tile, sensing time of day, cloud cover %): Greece, France, Bavaria, Finland.
DEMO_TILES = (("34SGH", "09:20:31", 4.0), ("31TCJ", "10:56:21", 12.0),
              ("33UUP", "10:15:59", 25.0), ("35VLG", "09:50:31", 8.0))


def demo_specs(size: int = 1098) -> list[ProductSpec]:
    specs = []
    for seed, (tile_id, clock, cloud) in enumerate(DEMO_TILES):
        hour, minute, second = (int(v) for v in clock.split(":"))
        sensing = DEMO_DAY.replace(hour=hour, minute=minute, second=second)
        specs.append(ProductSpec(tile_id=tile_id, sensing_time=sensing, size=size, seed=seed,
                                 cloud_cover=cloud, nodata_fraction=0.1 * (seed % 2), feature_size=40))
    return specs


def write_demo_products(products_dir: Path, size: int = 1098) -> list[Path]:
    """The demo day's products, written once (a re-run reuses them)."""
    paths = []
    for spec in demo_specs(size):
        path = products_dir / f"{spec.name}.SAFE"
        if not path.exists():
            write_product(products_dir, spec)
        paths.append(path)
    return paths


def run_demo(cfg: DictConfig, cluster: PostgresCluster, workdir: Path, keep_running: bool = False) -> None:
    started = time.monotonic()
    click.secho("1. private PostGIS", bold=True)
    url = cluster.up(cfg.db.name)
    with cluster.connect(cfg.db.name) as conn:
        version = conn.execute("SELECT PostGIS_Version()").fetchone()[0]
    click.echo(f"   {url}  (PostGIS {version})")

    click.secho(f"2. sample Sentinel-2 L2A products for {DEMO_DAY:%Y-%m-%d}", bold=True)
    products_dir = workdir / "products"
    for path in write_demo_products(products_dir):
        product = SafeProduct.open(path)
        lon, lat = product.footprint.centroid.coords[0]
        click.echo(f"   {ProductName.parse(path.name).tile_id}  {product.start_time:%H:%M:%S}  "
                   f"cloud {product.cloud_cover:5.1f}%  centre {lat:6.2f}N {lon:6.2f}E  "
                   f"{len(product.band_files)} band files")
    click.echo(f"   in {products_dir}")

    if keep_running:
        click.echo(f"database left running: `earthsignature db down` stops it ({url})")
    else:
        cluster.down()
    click.secho(f"done in {time.monotonic() - started:.1f} s", bold=True)
