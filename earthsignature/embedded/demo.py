"""The main job on embedded defaults: every part of EarthSignature, once, on one machine.

1. the private PostGIS; 2. sample Sentinel-2 L2A products, as a local STAC catalog (SAFE zips and an Earth
Search COG item): one day over four European tiles, and Greece again five days later with a fire; 3. the
seed's three models: the smoke land-cover model and its burnt-area and crops heads (trained once; re-runs
reuse them); 4. ONNX export, MLflow registration, promotion to @champion, deployment to a Triton
repository; 5. TLS certificates and the gRPC server; 6. the monitor for the first day with the three
models; 7. a pilot's queries (area + dates, categories, a text query), saved as GeoTIFFs and PNG maps with
the legend; 8. the monitor for the second day; 9. the burnt area's statistics over August and what changed
between the two days.
``DemoSettings`` scales it down for the end-to-end test.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

import click
import grpc
from omegaconf import DictConfig
from shapely.geometry import Polygon, box

from earthsignature.core.config import load_config, state_home
from earthsignature.core.layout import CertificateFolder
from earthsignature.core.manifest import DEFAULT_OVERLAP, DEFAULT_TILE_SIZE
from earthsignature.core.tiling_grid import tile
from earthsignature.embedded.fixtures import write_missing_fixtures
from earthsignature.embedded.postgres import PostgresCluster
from earthsignature.embedded.stac_provider import COG_ITEMS
from earthsignature.samples.safe_writer import ProductSpec, write_product
from earthsignature.samples.stac_item_writer import item_id, write_cog_item

DEMO_DAY = date(2021, 8, 1)
#: Five days later (Sentinel-2's revisit), Greece again, the same land with a fire in it and fewer clouds.
SECOND_DAY = date(2021, 8, 6)
SECOND_DAY_BURN = (0.3, 0.35, 0.12)  # the burnt disk: row, column and radius as shares of the product's size
#: (tile, sensing time of day, cloud cover %): Greece, France, Bavaria, Finland.
DEMO_TILES = (("34SGH", "09:20:31", 4.0, "0500"), ("31TCJ", "10:56:21", 12.0, "0301"),
              ("33UUP", "10:15:59", 25.0, "0500"), ("35VLG", "09:50:31", 8.0, "0509"))
#: The smoke model's classes plus burnt areas (arable land and pastures for crops): every model finds something.
DEMO_CODES = (112, 211, 231, 311, 312, 324, 333, 411, 512, 523, 334)


@dataclass
class DemoSettings:
    config: str = "embedded"  # the service config (-c), used for every part the demo runs
    workdir: Path = field(default_factory=lambda: state_home() / "demo")
    size: int = 1098  # pixels at 10 m per product
    train_overrides: list[str] = field(default_factory=list)
    finetune_overrides: list[str] = field(default_factory=list)
    #: more overrides for one fine-tune, by short name ("burnt", "crops")
    head_overrides: dict[str, list[str]] = field(default_factory=dict)
    tile_size: int = DEFAULT_TILE_SIZE
    overlap: int = DEFAULT_OVERLAP
    workers: int = 2
    keep_running: bool = False
    text_query: str = "forest after:2021-08-01 cloud<20"


def demo_specs(size: int = 1098) -> list[ProductSpec]:
    specs = []
    for seed, (tile_id, clock, cloud, baseline) in enumerate(DEMO_TILES):
        hour, minute, second = (int(v) for v in clock.split(":"))
        sensing = datetime.combine(DEMO_DAY, datetime.min.time(), UTC).replace(hour=hour, minute=minute,
                                                                               second=second)
        specs.append(ProductSpec(tile_id=tile_id, sensing_time=sensing, size=size, seed=seed, cloud_cover=cloud,
                                 baseline=baseline,
                                 nodata_fraction=0.1 * (seed % 2), codes=DEMO_CODES, feature_size=20))
    return specs


def second_day_spec(size: int = 1098) -> ProductSpec:
    """34SGH on the second day: the first day's scene (same seed) with a burnt disk, 2 % clouds."""
    first = demo_specs(size)[0]
    sensing = datetime.combine(SECOND_DAY, first.sensing_time.timetz())
    return ProductSpec(tile_id=first.tile_id, sensing_time=sensing, size=size, seed=first.seed, cloud_cover=2.0,
                       baseline=first.baseline, codes=DEMO_CODES, feature_size=first.feature_size,
                       burn=SECOND_DAY_BURN)


def write_demo_catalog(folder: Path, size: int) -> list[Path]:
    """The first day's products in both provider layouts, and the second day's (written once; re-runs reuse
    them): zipped SAFE products, and the first day's last one as an Earth Search item with per-band COGs
    (baseline 05.09, offset already removed)."""
    *safe_specs, cog_spec = demo_specs(size)
    safe_specs.append(second_day_spec(size))
    paths = []
    for spec in safe_specs:
        path = folder / f"{spec.name}.zip"
        if not path.exists():
            write_product(folder, spec, zipped=True)
        paths.append(path)
    item = folder / COG_ITEMS / item_id(str(cog_spec.name)) / f"{item_id(str(cog_spec.name))}.json"
    if not item.exists():
        with tempfile.TemporaryDirectory(dir=folder) as scratch:
            write_cog_item(write_product(Path(scratch), cog_spec), folder / COG_ITEMS, offset_applied=True)
    return [*paths, item]


def _step(number: int, text: str) -> None:
    click.secho(f"{number}. {text}", bold=True)


#: The seed's three models: (short name, entry point, experiment, registered name). Fine-tunes start
#: from the first (the CLC model).
DEMO_MODELS = (("clc", "train", "smoke", "clc-unet-smoke"),
               ("burnt", "finetune", "smoke_burnt_area", "burnt-unet-smoke"),
               ("crops", "finetune", "smoke_crops", "crops-unet-smoke"))


def _train_models(settings: DemoSettings) -> list[Path]:
    """Best checkpoints of the smoke CLC model and its burnt-area and crops heads (trained once)."""
    from earthsignature.train.tracking import run_name
    from earthsignature.train.train import train

    runs = settings.workdir / "runs"
    checkpoints: list[Path] = []
    for name, config, experiment, _ in DEMO_MODELS:
        summary_path = runs / name / "summary.json"
        if not summary_path.exists():
            overrides = [f"experiment={experiment}", *settings.train_overrides] if config == "train" else [
                f"experiment={experiment}", f"pretrained={checkpoints[0]}", *settings.finetune_overrides,
                *settings.head_overrides.get(name, [])]
            # the run named as `earthsignature train|finetune` names it (the experiment and its overrides)
            asked = run_name(experiment, [o for o in overrides if not o.startswith("pretrained=")])
            cfg = load_config(None, config, [*overrides, f"run_dir={runs / name}", "trainer.enable_progress_bar=false",
                                             f"logger.run_name='{asked} (demo {name})'"])
            write_missing_fixtures(cfg)  # the smoke experiments' synthetic data sets
            train(cfg)
        checkpoints.append(Path(json.loads(summary_path.read_text())["best_checkpoint"]))
        click.echo(f"   {name}: {checkpoints[-1]}")
    return checkpoints


def _publish_models(checkpoints: list[Path], repository: Path, tracking_uri: str, settings: DemoSettings
                    ) -> list[Path]:
    """Export and register each model (once), promote it to @champion through the gate its experiment declares,
    and deploy what was promoted, as `earthsignature export`, `model promote` and `model deploy` do; return the
    deployed version folders. A model that misses its gate stays registered, not served (the demo says so)."""
    from earthsignature.export.registry import ModelRegistry, RegistryError
    from earthsignature.export.release import deploy, export_and_register
    from earthsignature.export.triton_repository import ServingOptions

    registry = ModelRegistry(tracking_uri, artifact_root=str(load_config("logger", "mlflow").artifact_location))
    folders = []
    for (_, _, _, name), checkpoint in zip(DEMO_MODELS, checkpoints, strict=True):
        deployed = sorted((repository / name).glob("[0-9]*"), key=lambda p: int(p.name))
        refusal = settings.workdir / "exports" / name / "not-promoted.txt"
        if not deployed and not refusal.exists():
            _, registered, _ = export_and_register(checkpoint, settings.workdir / "exports" / name, name, registry,
                                                   settings.tile_size, settings.overlap)
            try:
                registry.promote(name, registered.version, "champion")
                deployed = [deploy(registry, f"{name}@champion", repository, ServingOptions(backend="python"))]
            except RegistryError as error:
                refusal.write_text(f"{error}\n")
        if deployed:
            folders.append(deployed[-1])
            click.echo(f"   {name} @champion (through its gate) -> {deployed[-1]}")
        else:
            click.echo(f"   {name}: registered, not served: {refusal.read_text().strip()}")
    return folders


def served_names(folders: list[Path]) -> set[str]:
    """The registered names of the deployed models (a Triton repository's ``<name>/<version>`` folders)."""
    return {folder.parent.name for folder in folders}


def _start_server(config: str, overrides: list[str], address: str, certs: CertificateFolder, log_file: Path
                  ) -> subprocess.Popen:
    """`earthsignature serve` in its own process (it outlives the demo with --keep-running), once it answers."""
    from earthsignature.client import EarthSignatureClient

    log_file.parent.mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen([sys.executable, "-m", "earthsignature.cli", "serve", "-c", config, *overrides],
                               stdout=log_file.open("ab"), stderr=subprocess.STDOUT)
    monitor = certs.identity("monitor")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise click.ClickException(f"the server exited: see {log_file}")
        try:
            with EarthSignatureClient(address, ca=certs.ca_cert, cert=monitor.cert, key=monitor.key,
                                      timeout_s=2) as client:
                list(client.list(n_results=1))
            return process
        except grpc.RpcError:
            time.sleep(0.3)
    process.terminate()
    raise click.ClickException(f"the server did not answer within 60 s: see {log_file}")


def _pilot(address: str, certs: CertificateFolder, out: Path, text_query: str, served: set[str]) -> dict[str, list]:
    """A pilot's session: what it asks, what it gets, and the maps it saves (as `earthsignature query`)."""
    from earthsignature.client import EarthSignatureClient
    from earthsignature.client.pictures import save_maps

    greece = tile("34SGH")
    area = Polygon(greece.footprint_lonlat(20_000, 20_000)).intersection(box(-180, -90, 180, 90))
    answers: dict[str, list] = {}
    out.mkdir(parents=True, exist_ok=True)
    pilot = certs.identity("pilot")
    with EarthSignatureClient(address, ca=certs.ca_cert, cert=pilot.cert, key=pilot.key) as client:
        answers["area 34SGH + August 2021"] = list(client.list(wkt=area.wkt, start="2021-08-01", end="2021-08-31"))
        answers["category: Burnt"] = list(client.list(categories=["Burnt"], min_category_fraction=0.01))
        if DEMO_MODELS[2][3] in served:  # the crops model's class (only when it passed its gate)
            answers["category: Winter cereals"] = list(client.list(categories=["Winter cereals"]))
        answers[f"text: {text_query}"] = list(client.search(text_query))
        for question, results in answers.items():
            click.echo(f"   {question}: {len(results)} result(s)")
            for result in results:
                click.echo(f"     {result.summary()}")
                if result.classes is not None:
                    save_maps(result, out, client.quicklook(result))
    return answers


def _how_much(address: str, certs: CertificateFolder) -> dict[str, object]:
    """The burnt-area model's statistics in Greece over August, and what changed between the two days (as
    `earthsignature query stats` and `query change`)."""
    from earthsignature.client import EarthSignatureClient
    from earthsignature.client.tables import change_text, statistics_frame, statistics_text

    model = DEMO_MODELS[1][3]
    area = Polygon(tile("34SGH").footprint_lonlat(20_000, 20_000)).wkt
    pilot = certs.identity("pilot")
    with EarthSignatureClient(address, ca=certs.ca_cert, cert=pilot.cert, key=pilot.key) as client:
        statistics = client.statistics_message(area, model, start="2021-08-01", end="2021-08-31")
        change = client.change_message(area, model, (DEMO_DAY.isoformat(), None), (SECOND_DAY.isoformat(), None),
                                       to_categories=["Burnt"])
    click.echo(f"   {model} in 34SGH's first 20 km, August 2021 (hectares):")
    click.echo("\n".join(f"     {line}" for line in statistics_text(statistics_frame(statistics)).splitlines()))
    click.echo(f"   what changed from {DEMO_DAY} to {SECOND_DAY} (hectares):")
    click.echo("\n".join(f"     {line}" for line in change_text(change).splitlines()))
    return {"statistics": statistics, "change": change}


def _stac_pilot(web: str, certs: CertificateFolder) -> None:
    """What a STAC client sees: the collections and the burnt maps (a CQL2 filter), over HTTPS with the pilot's
    certificate."""
    import json
    import urllib.parse

    from earthsignature.client.api_client import fetch_link

    pilot = certs.identity("pilot")
    tls = (certs.ca_cert, pilot.cert, pilot.key)
    collections = json.loads(fetch_link(f"{web}/stac/collections", tls))["collections"]
    query = urllib.parse.urlencode({"filter": "fraction:burnt >= 0.1", "limit": 100})
    burnt = json.loads(fetch_link(f"{web}/stac/search?{query}", tls))["features"]
    click.echo(f"   STAC {web}/stac/: collections {', '.join(c['id'] for c in collections)}; "
               f"'fraction:burnt >= 0.1' (the burnt-area model's class): {len(burnt)} item(s)")


def run_demo(cfg: DictConfig, cluster: PostgresCluster, overrides: list[str], settings: DemoSettings) -> dict:
    """The whole main job; returns the pilot's answers (for the end-to-end test)."""
    from earthsignature.embedded.stac_provider import local_provider
    from earthsignature.service.api.auth import init_certificates
    from earthsignature.service.api.lifecycle import public_url
    from earthsignature.service.monitor.runner import run_days

    started = time.monotonic()
    work = settings.workdir
    _step(1, "private PostGIS")
    url = cluster.up(cfg.db.name)
    click.echo(f"   {url}")

    _step(2, f"sample Sentinel-2 L2A products of {DEMO_DAY} and {SECOND_DAY} (local STAC catalog: SAFE zips and "
             "a COG item)")
    catalog = work / "catalog"
    for path in write_demo_catalog(catalog, settings.size):
        click.echo(f"   {path.name}")

    _step(3, "training the smoke land-cover model and its burnt-area and crops heads")
    checkpoints = _train_models(settings)

    _step(4, "export, register, promote through each experiment's gate, deploy")
    repository = work / "triton-repository"
    models = _publish_models(checkpoints, repository, str(load_config("logger", "mlflow").tracking_uri), settings)

    _step(5, "certificates and the gRPC server (mutual TLS)")
    certs = CertificateFolder(Path(cfg.api.certs_dir))
    init_certificates(certs, ("server", "monitor", "pilot"))
    server = _start_server(settings.config, overrides, cfg.api.address, certs, work / "logs" / "server.log")
    try:
        click.echo(f"   gRPC on {cfg.api.address}, HTTPS gateway on port {cfg.api.http_port} (pid {server.pid})")
        web = public_url(cfg.api, insecure=False)

        _step(6, f"the monitor for {DEMO_DAY} with the {len(models)} models served")
        monitor_cfg = load_config("service", settings.config, [
            *overrides, f"monitor.local_catalog={catalog}", f"monitor.models=[{','.join(str(m) for m in models)}]",
            "monitor.product_types=[S2_MSI_L2A,S2_MSI_L2A_COG]"])
        with local_provider(monitor_cfg.monitor) as catalog_url:
            report = run_days(monitor_cfg, DEMO_DAY, DEMO_DAY, settings.workers, catalog_url=catalog_url)
        for failure in report.failures:
            click.echo(f"   FAILED {failure.line()}")
        click.echo(f"   {'all products published' if report.succeeded else 'some products failed'}")

        _step(7, "a pilot's queries (gRPC, then the STAC API)")
        answers = _pilot(cfg.api.address, certs, work / "pilot", settings.text_query, served_names(models))
        if web:
            _stac_pilot(web, certs)

        _step(8, f"the monitor for {SECOND_DAY}: Greece again, with a fire")
        with local_provider(monitor_cfg.monitor) as catalog_url:
            report = run_days(monitor_cfg, SECOND_DAY, SECOND_DAY, settings.workers, catalog_url=catalog_url)
        for failure in report.failures:
            click.echo(f"   FAILED {failure.line()}")

        _step(9, "how much burnt, and what changed (area statistics)")
        if DEMO_MODELS[1][3] in served_names(models):
            answers.update(_how_much(cfg.api.address, certs))
    finally:
        if not settings.keep_running:
            server.send_signal(signal.SIGTERM)
            server.wait(30)
    if not settings.keep_running:
        cluster.down()
    click.secho(f"\ndone in {time.monotonic() - started:.0f} s", bold=True)
    click.echo(f"  pilot maps (PNG + GeoTIFF): {work / 'pilot'}")
    click.echo(f"  COG store:                  {cfg.api.store_url}")
    click.echo(f"  monitor work folder:        {monitor_cfg.monitor.work_dir}")
    click.echo(f"  MLflow UI:                  .venv/bin/mlflow ui --backend-store-uri "
               f"{load_config('logger', 'mlflow').tracking_uri}")
    if web:
        state = "" if settings.keep_running else " (while the server runs: --keep-running)"
        click.echo(f"  map page:                   {web}/map{state}")
        click.echo(f"  STAC API root:              {web}/stac/")
        click.echo(f"  pilot certificate:          {certs.identity('pilot').cert} (key beside it; CA "
                   f"{certs.ca_cert}); in a browser: import the pilot's PKCS#12, see the README")
    if settings.keep_running:
        click.echo(f"  server (pid {server.pid}):   {cfg.api.address}; stop: kill {server.pid} && "
                   "earthsignature db down")
    return answers
