"""The main job end to end on tiny products: what `make demo` does, small enough for CI."""

from __future__ import annotations

import shutil
import tempfile
from datetime import date
from pathlib import Path

import pytest
from shapely.geometry import Polygon, shape

from earthsignature.core.config import load_config
from earthsignature.core.tiling_grid import tile
from earthsignature.embedded.demo import DEMO_TILES, DemoSettings, run_demo
from earthsignature.embedded.ports import free_port
from earthsignature.embedded.postgres import PostgresCluster

pytestmark = pytest.mark.postgis


def test_demo_on_tiny_products(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("EARTHSIGNATURE_HOME", str(tmp_path / "home"))  # MLflow store, runs
    database_home = Path(tempfile.mkdtemp(prefix="earthsignature-e2e-"))
    database_home.chmod(0o755)  # the PostgreSQL server user must reach its data folder
    overrides = [f"db.data_dir={database_home / 'pg'}", f"db.port={free_port()}",
                 f"api.address=127.0.0.1:{free_port()}", f"api.http_port={free_port()}",
                 f"api.store_url={tmp_path / 'store'}", f"api.certs_dir={tmp_path / 'certs'}",
                 f"monitor.work_dir={tmp_path / 'monitor'}"]
    cfg = load_config("service", "embedded", overrides)
    cluster = PostgresCluster(Path(cfg.db.data_dir), port=int(cfg.db.port))
    # 2-epoch models reach no smoke gate: the CLC and burnt-area ones are let through (a gate of 0), the crops
    # one must reach 1.01, which no model can: registered, not served, as the demo says
    tiny = ["data.fixture.patches_per_tile=4", "data.batch_size=4", "model.base_width=4", "model.depth=2",
            "trainer.max_epochs=2", f"data.root={tmp_path / 'ben'}", "promotion.minimum={test_miou:0.0}"]
    tiny_heads = ["data.fixture.n_samples=8", "data.fixture.size=48", "trainer.max_epochs=2", "data.batch_size=4"]
    gates = {"burnt": ["promotion.minimum={test_miou:0.0}"], "crops": ["promotion.minimum={test_miou:1.01}"]}
    # a text query on metadata ("S2A" is in every product id): a 2-epoch model may predict no forest at all
    settings = DemoSettings(workdir=tmp_path / "demo", size=120, train_overrides=tiny, finetune_overrides=tiny_heads,
                            head_overrides=gates, tile_size=64, overlap=16, text_query="S2A after:2021-08-01 cloud<20")
    try:
        answers = run_demo(cfg, cluster, overrides, settings)
    finally:
        cluster.destroy()
        shutil.rmtree(database_home, ignore_errors=True)

    by_area = answers["area 34SGH + August 2021"]
    area = Polygon(tile("34SGH").footprint_lonlat(20_000, 20_000))
    assert {r.tile_id for r in by_area} == {"34SGH"}
    assert {r.model for r in by_area} == {"clc-unet-smoke:1", "burnt-unet-smoke:1"}  # crops missed its gate
    printed = capsys.readouterr().out
    assert ("crops-unet-smoke: registered, not served: promotion of crops-unet-smoke version 1 to @champion "
            "refused: test_miou = ") in printed and "required >= 1.01 (the experiment's gate)" in printed
    assert "category: Winter cereals" not in answers
    for result in by_area:
        assert shape(result.footprint).intersects(area)
        assert result.start.date() == date(2021, 8, 1)
        assert result.classes is not None and len(result.legend) >= 1
        # the demo's models learnt synthetic scenes, and every map says so, with the test it passed
        assert result.model_card.data_kind == "synthetic" and "miou" in result.model_card.test_metrics
        assert result.model_card.test_set.endswith("test split")
    everything = answers["text: S2A after:2021-08-01 cloud<20"]
    low_cloud = {t for t, _, cloud, _ in DEMO_TILES if cloud < 20}  # 35VLG comes as an Earth Search COG item
    assert {r.tile_id for r in everything} == low_cloud  # every low-cloud product, no other
    assert all(r.cloud_cover < 20 for r in everything)
    for result in answers["category: Burnt"]:
        assert any(s.land_cover.name.lower().startswith("burnt") for s in result.legend.values())
    maps = list((tmp_path / "demo" / "pilot").glob("*.png"))
    assert maps and len(list((tmp_path / "demo" / "pilot").glob("*.tif"))) == len(maps)
    # the second day (34SGH again, a fire drawn in the scene): statistics per date, and the change between them
    statistics, change = answers["statistics"], answers["change"]
    assert [d.date for d in statistics.dates] == ["2021-08-01", "2021-08-06"]
    for day in statistics.dates:
        assert {c.name for c in day.classes} == {"Not burnt", "Burnt"}
        assert sum(c.hectares for c in day.classes) == pytest.approx(day.clear_hectares)
        parts = day.clear_hectares + day.cloud_hectares + day.nodata_hectares + day.uncovered_hectares
        assert parts == pytest.approx(day.area_hectares, rel=0.01)
    assert len(change.before_product_ids) == len(change.after_product_ids) == 1
    assert change.compared_hectares > 0
    assert sum(t.hectares for t in change.matrix) == pytest.approx(change.compared_hectares)
