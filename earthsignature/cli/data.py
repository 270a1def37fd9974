"""``earthsignature classes`` and ``fixtures``: nomenclatures, and sample data in the real on-disk formats."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import click

from earthsignature.cli.common import ISO_DATE
from earthsignature.core.classes import UnknownClassError
from earthsignature.core.nomenclature import NOMENCLATURE_NAMES, get_nomenclature


@click.command()
@click.argument("nomenclature", default="clc_level3", type=click.Choice(NOMENCLATURE_NAMES))
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@click.option("--lookup", help="show only the class with this code or name")
def classes(nomenclature: str, fmt: str, lookup: str | None) -> None:
    """List the classes of a nomenclature (code, name, color, the CLC codes each covers)."""
    nom = get_nomenclature(nomenclature)
    try:
        selected = [nom.lookup(lookup)] if lookup else list(nom)
    except UnknownClassError as error:
        raise click.ClickException(str(error)) from error
    if fmt == "json":
        click.echo(json.dumps([c.to_dict() for c in selected], indent=1))
        return
    for cls in selected:
        covers = "" if cls.clc_codes == (cls.code,) else f"  <- CLC {', '.join(map(str, cls.clc_codes))}"
        click.echo(f"{cls.index:3d}  {cls.code:>5}  {cls.hex_color}  {cls.name}{covers}")


# --- fixtures ---------------------------------------------------------------------------------------


@click.group()
def fixtures() -> None:
    """Write sample data in the real on-disk formats (SAFE products, BigEarthNet v2, image/mask pairs)."""


@fixtures.command("safe")
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
@click.option("--tile", "tiles", multiple=True, default=["34SGH"], show_default=True, help="MGRS tile id")
@click.option("--date", "date", type=ISO_DATE, default="2021-08-01T09:20:31", show_default=True,
              help="sensing time (UTC)")
@click.option("--level", type=click.Choice(["L2A", "L1C"]), default="L2A", show_default=True)
@click.option("--size", type=int, default=1098, show_default=True, help="pixels at 10 m (multiple of 6)")
@click.option("--cloud-cover", type=float, default=5.0, show_default=True, help="percent")
@click.option("--nodata-fraction", type=float, default=0.0, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--baseline", default="0500", show_default=True,
              help="processing baseline (04.00 and later: digital numbers carry +1000)")
@click.option("--zip", "zipped", is_flag=True, help="write <name>.zip instead of <name>.SAFE")
@click.option("--cog-item", "cog_item", type=click.Choice(["raw", "harmonised"]), default=None,
              help="write an Earth Search STAC item with per-band COGs instead (harmonised: offset removed)")
def fixtures_safe(out: Path, tiles: tuple[str, ...], date: datetime, level: str, size: int, cloud_cover: float,
                  nodata_fraction: float, seed: int, baseline: str, zipped: bool, cog_item: str | None) -> None:
    """Write one Sentinel-2 product per --tile into OUT."""
    import tempfile

    from earthsignature.samples.safe_writer import ProductSpec, write_product
    from earthsignature.samples.stac_item_writer import write_cog_item

    for k, tile_id in enumerate(tiles):
        try:
            spec = ProductSpec(tile_id=tile_id, sensing_time=date, level=level, size=size, baseline=baseline,
                               cloud_cover=cloud_cover, nodata_fraction=nodata_fraction, seed=seed + k)
        except ValueError as error:
            raise click.BadParameter(str(error)) from error
        if cog_item is None:
            click.echo(write_product(out, spec, zipped=zipped))
            continue
        Path(out).mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=out) as scratch:
            try:
                click.echo(write_cog_item(write_product(Path(scratch), spec), out, cog_item == "harmonised"))
            except ValueError as error:
                raise click.BadParameter(str(error)) from error


@fixtures.command("bigearthnet")
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
@click.option("--patches-per-tile", type=int, default=8, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
def fixtures_bigearthnet(out: Path, patches_per_tile: int, seed: int) -> None:
    """Write a BigEarthNet v2 folder (S2, S1, reference maps, metadata.parquet) into OUT."""
    from earthsignature.samples.bigearthnet_writer import write_bigearthnet_v2

    metadata = write_bigearthnet_v2(out, patches_per_tile=patches_per_tile, seed=seed)
    click.echo(f"{len(metadata)} patches in {out}: {metadata['split'].value_counts().to_dict()}")


@fixtures.command("pairs")
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
@click.option("--nomenclature", type=click.Choice(NOMENCLATURE_NAMES), required=True)
@click.option("--samples", type=int, default=12, show_default=True)
@click.option("--size", type=int, default=120, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
def fixtures_pairs(out: Path, nomenclature: str, samples: int, size: int, seed: int) -> None:
    """Write an image/mask GeoTIFF pair set (HRL, Urban Atlas, burnt areas, pilot) into OUT."""
    from earthsignature.samples.pairs_writer import write_image_mask_pairs

    splits = write_image_mask_pairs(out, get_nomenclature(nomenclature), samples, size, seed=seed)
    click.echo(f"{len(splits)} pairs in {out}: {splits['split'].value_counts().to_dict()}")


@click.group("data")
def data_group() -> None:
    """Training data: convert releases to faster formats."""


@data_group.command("pack")
@click.argument("root", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--no-s1", is_flag=True, help="pack the Sentinel-2 patches and maps only")
def data_pack(root: Path, no_s1: bool) -> None:
    """Pack the reBEN (BigEarthNet v2) release at ROOT into ROOT/BigEarthNet-V2-LMDB, reBEN's LMDB format.

    Train from it with data.source=lmdb: one read per sample instead of thirteen files.
    """
    import time

    from earthsignature.data.reben_lmdb import pack_release

    missing = [name for name in ("metadata.parquet", "BigEarthNet-S2", "Reference_Maps") if not (root / name).exists()]
    if missing:
        raise click.ClickException(f"{root} is not a reBEN release: it lacks {', '.join(missing)}")
    started = time.perf_counter()
    try:
        records, folder = pack_release(root, with_s1=not no_s1)
    except (OSError, KeyError, ValueError) as error:
        raise click.ClickException(f"packing {root} failed: {error}") from error
    click.echo(f"{records} records in {folder} ({time.perf_counter() - started:.1f} s)")
