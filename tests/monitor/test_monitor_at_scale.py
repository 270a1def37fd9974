"""The monitor on real provider layouts and across workers: Earth Search COG items read in place, products on
the real grid in both hemispheres and across the antimeridian, one provider search per day, and one day shared
by two workers under luigid."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from shapely.geometry import shape

from earthsignature.cli import main
from earthsignature.client import EarthSignatureClient
from earthsignature.core.config import load_config
from earthsignature.core.layout import CertificateFolder, ModelFolder
from earthsignature.embedded.ports import free_port
from earthsignature.embedded.stac_provider import COG_ITEMS, LocalStacServer
from earthsignature.export.onnx_export import export_checkpoint
from earthsignature.samples.safe_writer import ProductSpec, write_product
from earthsignature.samples.stac_item_writer import write_cog_item
from earthsignature.service.api.auth import TlsFiles
from earthsignature.service.api.server import build_server
from earthsignature.service.monitor.runner import LOCAL_COLLECTIONS, run_days
from earthsignature.service.monitor.source import ProductSource, local_provider_yaml

from ..conftest import write_checkpoint

pytestmark = pytest.mark.postgis
DAY = date(2021, 8, 1)
WORLD = "POLYGON((-180 -85,180 -85,180 85,-180 85,-180 -85))"


@pytest.fixture
def service(postgis_db, tmp_path):
    """The Database service with mutual TLS, one deployed model, and the overrides that point at them."""
    certs = tmp_path / "certs"
    assert CliRunner().invoke(main, ["certs", "init", f"api.certs_dir={certs}"]).exit_code == 0
    checkpoint = write_checkpoint(tmp_path / "clc" / "model.ckpt", seed=3)
    onnx_path, manifest, _ = export_checkpoint(checkpoint, tmp_path / "models" / "clc-tiny", "clc-tiny", 64, 16)
    manifest.with_version("1").save(ModelFolder(onnx_path.parent).manifest)
    tls = TlsFiles.from_folder(CertificateFolder(certs))
    with build_server(postgis_db, str(tmp_path / "store"), "127.0.0.1:0", tls) as server:
        yield server, [f"monitor.models=[{onnx_path.parent}]", f"api.address=127.0.0.1:{server.port}",
                       f"api.certs_dir={certs}", "monitor.download.retries=1", "monitor.download.backoff_s=0.05"]


def rows(server, sql: str) -> list:
    with server.catalog.engine.connect() as connection:
        return list(connection.execute(sa.text(sql)))


def _small_square(lon: float, lat: float) -> str:
    return (f"POLYGON(({lon - 0.005} {lat - 0.005},{lon + 0.005} {lat - 0.005},{lon + 0.005} {lat + 0.005},"
            f"{lon - 0.005} {lat + 0.005},{lon - 0.005} {lat - 0.005}))")


def test_cog_items_both_hemispheres_and_the_antimeridian_in_one_search_per_product_type(service, tmp_path) -> None:
    """Products on the real grid: a COG item in the north, a SAFE across 180 degrees in the north (01XDA), one
    in the south (60HWB, EPSG:32760) and one in the south across 180 degrees (01JBK, EPSG:32701)."""
    server, overrides = service
    catalog = tmp_path / "catalog"
    harmonised = write_product(tmp_path / "scratch", ProductSpec(tile_id="33UUP", size=120, seed=1, baseline="0509"))
    write_cog_item(harmonised, catalog / COG_ITEMS, offset_applied=True)
    for seed, (tile_id, size) in enumerate((("01XDA", 240), ("60HWB", 120), ("01JBK", 480)), start=2):
        write_product(catalog, ProductSpec(tile_id=tile_id, size=size, seed=seed), zipped=True)
    product_types = ["S2_MSI_L2A", "S2_MSI_L2A_COG"]
    with LocalStacServer(catalog) as stac:
        yaml = local_provider_yaml("local_s2", stac.catalog_url, tmp_path / "probe", LOCAL_COLLECTIONS)
        list(ProductSource("local_s2", tmp_path / "probe", yaml).search(DAY))  # what one search costs
        one_search = stac.requests["/stac/catalog.json"]
        stac.clear_requests()
        cfg = load_config("service", "embedded", [*overrides, f"monitor.work_dir={tmp_path / 'work'}",
                                                  f"monitor.catalog_url={stac.catalog_url}",
                                                  f"monitor.product_types=[{','.join(product_types)}]",
                                                  f"monitor.area_wkt='{WORLD}'"])
        report = run_days(cfg, DAY, DAY, workers=1)
        assert report.succeeded, report.failures
        assert stac.requests["/stac/catalog.json"] == one_search * len(product_types)  # never once per product
        item_bands = [path for path in stac.range_requests if path.startswith(f"/{COG_ITEMS}/")]
        assert item_bands, "the COG item's bands are read over range requests"
    work = tmp_path / "work"
    assert not list((work / "products").glob("*/B02.tif"))  # streamed, not copied
    stored = rows(server, "SELECT tile_id, ST_NumGeometries(footprint), ST_IsValid(footprint) FROM products "
                          "ORDER BY tile_id")
    # split at 180 degrees, on either side, in both hemispheres
    assert stored == [("01JBK", 2, True), ("01XDA", 2, True), ("33UUP", 1, True), ("60HWB", 1, True)]

    folder = CertificateFolder(Path(cfg.api.certs_dir))
    caller = folder.identity("monitor")
    with EarthSignatureClient(cfg.api.address, ca=folder.ca_cert, cert=caller.cert, key=caller.key) as api:
        for tile_id, lat in (("01XDA", 72.96), ("01JBK", -27.11)):
            for lon in (179.99, -179.99):  # either side of the antimeridian finds the product
                found = list(api.list(wkt=_small_square(lon, lat)))
                assert [r.tile_id for r in found] == [tile_id], (tile_id, lon)
                assert shape(found[0].footprint).geom_type == "MultiPolygon"
        south = list(api.list(wkt=_small_square(177.005, -38.853)))  # New Zealand, EPSG:32760
        assert [r.tile_id for r in south] == ["60HWB"] and (south[0].classes != 255).any()
        assert south[0].crs == "EPSG:32760"


def _luigid(tmp_path: Path) -> tuple[subprocess.Popen, int]:
    port = free_port()
    (tmp_path / "luigid-logs").mkdir()
    luigid = Path(sys.executable).with_name("luigid")
    process = subprocess.Popen([str(luigid), "--address", "127.0.0.1", "--port", str(port),
                                "--state-path", str(tmp_path / "luigi-state.pickle"),
                                "--logdir", str(tmp_path / "luigid-logs")],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return process, port
        except OSError:
            time.sleep(0.2)
    process.kill()
    raise RuntimeError("luigid did not start")


def test_two_workers_share_a_day_under_luigid(service, tmp_path) -> None:
    server, overrides = service
    catalog = tmp_path / "catalog"
    tiles = ("31TCJ", "32TQM", "33UUP", "34SGH", "35VLG", "36UUA")
    for seed, tile_id in enumerate(tiles):
        write_product(catalog, ProductSpec(tile_id=tile_id, size=120, seed=seed), zipped=True)
    luigid, port = _luigid(tmp_path)
    try:
        with LocalStacServer(catalog) as stac:
            workers = []
            for name in ("a", "b"):
                command = [sys.executable, "-m", "earthsignature.cli", "monitor", "run", "--date", DAY.isoformat(),
                           "--workers", "1", "--scheduler", f"127.0.0.1:{port}", *overrides,
                           f"monitor.work_dir={tmp_path / name}", f"monitor.catalog_url={stac.catalog_url}"]
                workers.append(subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                                text=True))
            outputs = [worker.communicate(timeout=300)[0] for worker in workers]
    finally:
        os.kill(luigid.pid, signal.SIGTERM)
        luigid.wait(timeout=30)
    for worker, output in zip(workers, outputs, strict=True):
        assert worker.returncode == 0, output[-3000:]
        assert "all products succeeded" in output
    published = rows(server, "SELECT p.tile_id FROM segmentations s JOIN products p ON p.id = s.product_pk")
    assert sorted(t for (t,) in published) == sorted(tiles)  # every product published exactly once
    segmented = {name: {p.parent.parent.name for p in (tmp_path / name).glob("2021-08-01/*/*/segmentation.json")}
                 for name in ("a", "b")}
    assert not segmented["a"] & segmented["b"]  # none processed twice
    assert len(segmented["a"] | segmented["b"]) == len(tiles)
