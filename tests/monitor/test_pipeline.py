"""The whole daily ingestion against the real Database service (PostGIS, gRPC with mutual TLS)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from datetime import UTC, date
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from shapely.geometry import shape

from earthsignature.cli import main
from earthsignature.client import EarthSignatureClient
from earthsignature.core.config import load_config
from earthsignature.core.layout import CertificateFolder, ModelFolder
from earthsignature.core.sentinel2 import ProductName
from earthsignature.core.tiling_grid import tile
from earthsignature.embedded.stac_provider import LocalStacServer
from earthsignature.export.onnx_export import export_checkpoint
from earthsignature.samples.safe_writer import ProductSpec, write_product
from earthsignature.service.api.auth import TlsFiles
from earthsignature.service.api.server import build_server
from earthsignature.service.monitor import pipeline
from earthsignature.service.monitor.runner import run_days

from ..conftest import write_checkpoint

pytestmark = pytest.mark.postgis
DAY = date(2021, 8, 1)
GOOD = ("34SGH", "31TCJ")


@pytest.fixture
def setting(postgis_db, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", "/usr/bin:/bin")  # no Sen2Cor here
    certs = tmp_path / "certs"
    assert CliRunner().invoke(main, ["certs", "init", f"api.certs_dir={certs}"]).exit_code == 0
    models = []
    for name, classes in (("clc-tiny", "clc_level3"), ("burnt-tiny", "burnt_area")):
        checkpoint = write_checkpoint(tmp_path / name / "model.ckpt", seed=3, classes=classes)
        onnx_path, manifest, _ = export_checkpoint(checkpoint, tmp_path / "models" / name, name, 64, 16)
        manifest.with_version("1").save(ModelFolder(onnx_path.parent).manifest)
        models.append(str(onnx_path.parent))
    products = tmp_path / "catalog"
    for seed, tile_id in enumerate(GOOD):
        write_product(products, ProductSpec(tile_id=tile_id, size=120, seed=seed, cloud_cover=10,
                                            nodata_fraction=0.1), zipped=True)
    write_product(products, ProductSpec(tile_id="35VLG", size=60, level="L1C"), zipped=True)
    corrupted = write_product(products, ProductSpec(tile_id="33UUP", size=60), zipped=True)
    tls = TlsFiles.from_folder(CertificateFolder(certs))
    with build_server(postgis_db, str(tmp_path / "store"), "127.0.0.1:0", tls) as server, \
            LocalStacServer(products) as stac:
        corrupted.write_bytes(corrupted.read_bytes()[:5000])  # described in the catalog, broken on the wire
        overrides = [f"monitor.work_dir={tmp_path / 'work'}", f"monitor.catalog_url={stac.catalog_url}",
                     f"monitor.models=[{','.join(models)}]", "monitor.product_types=[S2_MSI_L2A,S2_MSI_L1C]",
                     "monitor.download.retries=1",
                     "monitor.download.backoff_s=0.05", f"api.address=127.0.0.1:{server.port}",
                     f"api.certs_dir={certs}"]
        yield overrides, server, certs, tmp_path


def count(server, table: str) -> int:
    with server.catalog.engine.connect() as connection:
        return connection.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one()


def test_a_day_of_ingestion(setting, monkeypatch, capfd) -> None:
    overrides, server, certs, _ = setting
    cfg = load_config("service", "embedded", overrides)
    # one worker, in this process: a process forked from this one, which hosts the gRPC server, can crash in
    # gRPC (its threads do not survive a fork); forked workers run from `monitor run` processes below
    report = run_days(cfg, DAY, DAY, workers=1)
    assert not report.succeeded
    failed = {ProductName.parse(f.product_id).tile_id: f for f in report.failures}
    assert sorted(failed) == ["33UUP", "35VLG"], report.summary  # typed records: step, error, message, time, attempt
    assert (failed["35VLG"].step, failed["35VLG"].error) == ("process", "ProcessingError")
    assert "Sen2Cor (the `L2A_Process` command)" in failed["35VLG"].message
    assert (failed["33UUP"].step, failed["33UUP"].error) == ("fetch", "DownloadError")
    assert "download failed 2 times" in failed["33UUP"].message and failed["33UUP"].attempt == 1
    assert count(server, "segmentations") == 2 * len(GOOD)  # two products x two models
    # one line per product and model segmented, not a progress bar per worker
    segmented = [line for line in capfd.readouterr().err.splitlines() if line.startswith("segmented ")]
    assert len(segmented) == 2 * len(GOOD) and all(" Mpx/s)" in line for line in segmented)

    folder = CertificateFolder(certs)
    monitor = folder.identity("monitor")
    with EarthSignatureClient(f"127.0.0.1:{server.port}", ca=folder.ca_cert, cert=monitor.cert,
                              key=monitor.key) as api:
        results = list(api.list(start="2021-08-01T00:00:00", end="2021-08-01T23:59:59"))
        burnt = list(api.list(categories=["Burnt"]))
    assert sorted(r.tile_id for r in results) == sorted([*GOOD, *GOOD])
    assert {r.model for r in results} == {"clc-tiny:1", "burnt-tiny:1"} and len(burnt) <= 2
    for result in results:
        assert result.start.date() == DAY and result.start.tzinfo == UTC
        footprint = shape(result.footprint)
        corner = tile(result.tile_id).footprint_lonlat(1200, 1200)
        assert footprint.buffer(1e-4).contains(shape({"type": "Polygon", "coordinates": [corner]}))
        assert sum(s.fraction for s in result.legend.values()) == pytest.approx(1.0)
        valid = result.classes != 255
        assert 0.8 < valid.mean() < 0.95  # the product's no-data edge stays no-data
        assert result.cloud_mask is not None and set(np.unique(result.cloud_mask)) <= {0, 1, 255}
    from rio_cogeo.cogeo import cog_validate

    written = sorted(Path(cfg.monitor.work_dir).rglob("*.cog.tif"))  # the monitor's own COGs (core.cog)
    assert written and all(cog_validate(str(path))[0] for path in written)

    # a second run does nothing new: no CreateProduct, same rows, and it asks the Database service what it
    # has once per model to plan and at most once more to conclude (not once per product and model: 4 x 2)
    asked, list_maps = [], server.core.list_maps
    monkeypatch.setattr(server.core, "list_maps", lambda *args: asked.append(args[1]) or list_maps(*args))
    started = time.perf_counter()
    again = run_days(cfg, DAY, DAY, workers=1)
    assert len(asked) <= 2 * 2 and {query.model_names for query in asked[:2]} == {("clc-tiny",), ("burnt-tiny",)}
    assert count(server, "segmentations") == 2 * len(GOOD) and len(again.failures) == 2
    assert {f.attempt for f in again.failures} == {2}  # the same two steps failed a second time
    assert time.perf_counter() - started < 60


def test_killed_between_segment_and_publish_then_resumed_at_publish(setting, monkeypatch) -> None:
    """A worker killed while its Publish is in flight: the next run publishes what was segmented, without
    segmenting again (each step is a Luigi task with its own target)."""
    overrides, server, _, tmp_path = setting
    work = tmp_path / "work"
    in_flight, release = threading.Event(), threading.Event()

    def held(*args, **kwargs):  # the Database service holds the first CreateProduct, then drops it
        in_flight.set()
        release.wait(120)
        raise ConnectionError("dropped")

    monkeypatch.setattr(server.core, "create_product", held)
    command = [sys.executable, "-m", "earthsignature.cli", "monitor", "run", "--date", DAY.isoformat(),
               "--workers", "1", *overrides]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert in_flight.wait(180), "no CreateProduct arrived"
    finally:
        process.kill()  # SIGKILL: no clean-up runs
        process.wait()
        release.set()
    monkeypatch.undo()
    segmented = {path: path.stat().st_mtime_ns for path in work.glob("2021-08-01/*/*/segmentation.json")}
    assert segmented and count(server, "segmentations") == 0

    report = run_days(load_config("service", "embedded", overrides), DAY, DAY, workers=1)
    assert len(report.failures) == 2  # only the L1C and the corrupted product
    assert count(server, "segmentations") == 2 * len(GOOD) and count(server, "products") == len(GOOD)
    assert {path: path.stat().st_mtime_ns for path in segmented} == segmented  # not segmented again
    products = work / "products"
    downloaded = sorted(ProductName.parse(p.name).tile_id for p in products.glob("*.SAFE"))
    assert downloaded == sorted([*GOOD, "35VLG"])  # the L1C one downloads, then fails at Process
    assert not [p for p in products.iterdir() if p.name.startswith(".")]


def test_a_worker_process_that_dies_is_a_failure_too(setting, monkeypatch) -> None:
    """A product whose process dies (killed for memory, a crash in native code) runs no on_failure: it is still
    reported, with the exit code, not left out of the day's failures."""
    overrides = setting[0]
    fetch = pipeline.Fetch.run

    def dying(task):  # runs in the forked process of one product
        if "T31TCJ" in task.product_id:
            os._exit(9)
        return fetch(task)

    monkeypatch.setattr(pipeline.Fetch, "run", dying)
    report = run_days(load_config("service", "embedded", overrides), DAY, DAY, workers=2)
    died = {ProductName.parse(f.product_id).tile_id: f for f in report.failures if f.error == "ProcessDied"}
    assert died["31TCJ"].step == "ingest" and "exit code 9" in died["31TCJ"].message and not report.succeeded
    assert {ProductName.parse(f.product_id).tile_id for f in report.failures} >= {"31TCJ", "33UUP", "35VLG"}


def test_cli_run_and_status(setting) -> None:
    overrides, _, _, _ = setting
    runner = CliRunner()
    result = runner.invoke(main, ["monitor", "run", "--date", DAY.isoformat(), "--workers", "1", *overrides])
    assert result.exit_code == 1 and "2 failure(s)" in result.output
    status = runner.invoke(main, ["monitor", "status", "--date", DAY.isoformat(), *overrides])
    assert status.exit_code == 0
    assert status.output.count("clc-tiny-v1: published") == len(GOOD)
    assert "33UUP  SAFE     not fetched" in status.output
    failures = [line for line in status.output.splitlines() if "FAILED" in line]  # the step and reason, per product
    assert len(failures) == 2
    assert any("FAILED fetch of S2" in line and "T33UUP" in line and "(attempt 1, " in line
               and "DownloadError: " in line for line in failures)
    assert any("FAILED process of" in line and "ProcessingError: " in line and "Sen2Cor" in line for line in failures)
    bad = runner.invoke(main, ["monitor", "run", "--start", "2021-08-03", "--end", "2021-08-01", *overrides])
    assert bad.exit_code == 2 and "is before --start" in bad.output
