"""The ``earthsignature`` command: the one place that knows every part of the project.

Each capability adds its own subcommands here; ``earthsignature --help`` lists what exists.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path

import click

from earthsignature.config import PROJECT_ROOT, load_config
from earthsignature.data.nomenclature import NOMENCLATURE_NAMES, UnknownClassError, get_nomenclature


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """EarthSignature: Sentinel-2 land-cover segmentation toolkit and services."""


# --- db ---------------------------------------------------------------------------------------------


def _service_config(config: str, overrides: tuple[str, ...]):
    return load_config("service", config, overrides)


def _cluster(config: str, overrides: tuple[str, ...]):
    from earthsignature.service.database.cluster import cluster_from_config

    cfg = _service_config(config, overrides)
    if cfg.db.url:
        raise click.ClickException(f"db.url is set ({cfg.db.url}): that database is not ours to manage")
    return cfg, cluster_from_config(cfg.db, PROJECT_ROOT)


_config_option = click.option("-c", "--config", default="embedded", show_default=True,
                              help="service config in conf/service/")
_overrides_argument = click.argument("overrides", nargs=-1)


@main.group()
def db() -> None:
    """The private PostGIS cluster (embedded default database). OVERRIDES: e.g. db.port=5544."""


@db.command("up")
@_config_option
@_overrides_argument
def db_up(config: str, overrides: tuple[str, ...]) -> None:
    """Initialise, start and create the database with PostGIS (idempotent); print its URL."""
    from earthsignature.service.database.cluster import ClusterError

    cfg, cluster = _cluster(config, overrides)
    try:
        click.echo(cluster.up(cfg.db.name))
    except ClusterError as error:
        raise click.ClickException(str(error)) from error


@db.command("down")
@_config_option
@_overrides_argument
def db_down(config: str, overrides: tuple[str, ...]) -> None:
    """Stop the cluster (its data stays)."""
    _, cluster = _cluster(config, overrides)
    cluster.down()
    click.echo(f"stopped ({cluster.data_dir})")


@db.command("status")
@_config_option
@_overrides_argument
def db_status(config: str, overrides: tuple[str, ...]) -> None:
    """Say whether the cluster runs; exit 3 when it does not (like pg_ctl status)."""
    cfg, cluster = _cluster(config, overrides)
    if not cluster.initialized:
        click.echo(f"not initialised ({cluster.data_dir})")
        sys.exit(3)
    if not cluster.is_running():
        click.echo(f"stopped ({cluster.data_dir})")
        sys.exit(3)
    click.echo(f"running on {cluster.host}:{cluster.port} ({cluster.data_dir}): {cluster.url(cfg.db.name)}")


@db.command("url")
@_config_option
@_overrides_argument
def db_url(config: str, overrides: tuple[str, ...]) -> None:
    """Print the SQLAlchemy URL of the catalog database."""
    cfg = _service_config(config, overrides)
    if cfg.db.url:
        click.echo(cfg.db.url)
        return
    _, cluster = _cluster(config, overrides)
    click.echo(cluster.url(cfg.db.name))


# --- nomenclatures ----------------------------------------------------------------------------------


@main.command()
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
        chosen = {s.index for s in selected}
        records = [{**c, "clc_codes": list(nom.by_index(c["index"]).clc_codes)}
                   for c in nom.to_dict() if c["index"] in chosen]
        click.echo(json.dumps(records, indent=1))
        return
    for cls in selected:
        covers = "" if cls.clc_codes == (cls.code,) else f"  <- CLC {', '.join(map(str, cls.clc_codes))}"
        click.echo(f"{cls.index:3d}  {cls.code:>5}  {cls.hex_color}  {cls.name}{covers}")


# --- fixtures ---------------------------------------------------------------------------------------


@main.group()
def fixtures() -> None:
    """Write sample data in the real on-disk formats (SAFE products, BigEarthNet v2, image/mask pairs)."""


@fixtures.command("safe")
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
@click.option("--tile", "tiles", multiple=True, default=["34SGH"], show_default=True, help="MGRS tile id")
@click.option("--date", "date", default="2021-08-01T09:20:31", show_default=True, help="sensing time (UTC)")
@click.option("--level", type=click.Choice(["L2A", "L1C"]), default="L2A", show_default=True)
@click.option("--size", type=int, default=1098, show_default=True, help="pixels at 10 m (multiple of 6)")
@click.option("--cloud-cover", type=float, default=5.0, show_default=True, help="percent")
@click.option("--nodata-fraction", type=float, default=0.0, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--zip", "zipped", is_flag=True, help="write <name>.zip instead of <name>.SAFE")
def fixtures_safe(out: Path, tiles: tuple[str, ...], date: str, level: str, size: int, cloud_cover: float,
                  nodata_fraction: float, seed: int, zipped: bool) -> None:
    """Write one Sentinel-2 product per --tile into OUT."""
    from earthsignature.data.fixtures.safe_writer import ProductSpec, write_product

    sensing = datetime.fromisoformat(date).replace(tzinfo=UTC)
    for k, tile_id in enumerate(tiles):
        try:
            spec = ProductSpec(tile_id=tile_id, sensing_time=sensing, level=level, size=size,
                               cloud_cover=cloud_cover, nodata_fraction=nodata_fraction, seed=seed + k)
        except ValueError as error:
            raise click.BadParameter(str(error)) from error
        click.echo(write_product(out, spec, zipped=zipped))


@fixtures.command("bigearthnet")
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
@click.option("--patches-per-tile", type=int, default=8, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
def fixtures_bigearthnet(out: Path, patches_per_tile: int, seed: int) -> None:
    """Write a BigEarthNet v2 folder (S2, S1, reference maps, metadata.parquet) into OUT."""
    from earthsignature.data.fixtures.bigearthnet_writer import write_bigearthnet_v2

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
    from earthsignature.data.fixtures.pairs_writer import write_image_mask_pairs

    splits = write_image_mask_pairs(out, get_nomenclature(nomenclature), samples, size, seed=seed)
    click.echo(f"{len(splits)} pairs in {out}: {splits['split'].value_counts().to_dict()}")


# --- training toolkit (Hydra entry points) -------------------------------------------------------

_HYDRA_PASSTHROUGH = {"ignore_unknown_options": True, "allow_extra_args": True, "help_option_names": []}


def _run_hydra(entry_point, prog: str, args: list[str]) -> None:
    """Hand the arguments to a @hydra.main function as if it were its own program, so every Hydra
    feature works: overrides, --multirun sweeps, --cfg job, --help."""
    saved = sys.argv
    sys.argv = [prog, *args]
    try:
        entry_point()
    finally:
        sys.argv = saved


@main.command(context_settings=_HYDRA_PASSTHROUGH)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def train(args: tuple[str, ...]) -> None:
    """Train a segmentation model: Hydra overrides, e.g. `experiment=smoke trainer.max_epochs=5`."""
    from earthsignature.train.train import main as train_main

    _run_hydra(train_main, "earthsignature train", list(args))


@main.command(context_settings=_HYDRA_PASSTHROUGH)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def finetune(args: tuple[str, ...]) -> None:
    """Fine-tune a pre-trained model on a pilot task: `pretrained=CKPT [finetune=head|full] data=...`."""
    from earthsignature.train.train import finetune_main

    _run_hydra(finetune_main, "earthsignature finetune", list(args))


@main.command(context_settings=_HYDRA_PASSTHROUGH)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def evaluate(args: tuple[str, ...]) -> None:
    """Score models on the Table 2 test sets: `checkpoint=CKPT [test_sets.burnt_area.checkpoint=...]`."""
    from earthsignature.train.evaluate import main as evaluate_main

    _run_hydra(evaluate_main, "earthsignature evaluate", list(args))


# --- demo -------------------------------------------------------------------------------------------


@main.command()
@click.option("--keep-running", is_flag=True, help="leave the database running afterwards")
@_config_option
@_overrides_argument
def demo(keep_running: bool, config: str, overrides: tuple[str, ...]) -> None:
    """Run the main job on embedded defaults (what exists so far: see the README)."""
    from earthsignature.demo import run_demo

    cfg, cluster = _cluster(config, overrides)
    run_demo(cfg, cluster, PROJECT_ROOT / "var" / "demo", keep_running=keep_running)


if __name__ == "__main__":
    main()
