"""One product in every provider layout: SAFE (JPEG 2000), SAFE-structured COGs, Earth Search COG items
(read in place over HTTP range requests); the offset removed exactly once; antimeridian footprints."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import rasterio
from shapely.geometry import Point

from earthsignature.core.product import ProductError
from earthsignature.core.readers import open_product
from earthsignature.core.stac_item import read_stac_item
from earthsignature.embedded.stac_provider import COG_ITEMS, LocalStacServer
from earthsignature.export.onnx_export import export_checkpoint
from earthsignature.samples.safe_writer import ProductSpec, write_product
from earthsignature.samples.stac_item_writer import write_cog_item
from earthsignature.service.inference.product_input import ProductInput

SCENE = {"tile_id": "34SGH", "size": 120, "seed": 5, "cloud_cover": 10, "nodata_fraction": 0.1}


@pytest.fixture(scope="module")
def exported(tiny_checkpoints, tmp_path_factory):
    return export_checkpoint(tiny_checkpoints[0], tmp_path_factory.mktemp("m"), "clc-tiny", 64, 16)


@pytest.fixture(scope="module")
def manifest(exported):
    return exported[1]


@pytest.fixture(scope="module")
def layouts(tmp_path_factory) -> dict[str, Path]:
    """The same scene as ESA wrote it before baseline 04.00 (no offset) and after (offset +1000), and the
    latter as Earth Search items: raw (offset declared) and harmonised (offset already removed)."""
    root = tmp_path_factory.mktemp("layouts")
    old = write_product(root / "old", ProductSpec(**SCENE, baseline="0211"))
    new = write_product(root / "new", ProductSpec(**SCENE, baseline="0509"))
    return {"safe-02.11": old, "safe-05.09": new,
            "cog-raw": write_cog_item(new, root / "raw" / COG_ITEMS, offset_applied=False),
            "cog-harmonised": write_cog_item(new, root / "harmonised" / COG_ITEMS, offset_applied=True)}


def test_every_layout_gives_the_model_the_same_input(layouts, manifest) -> None:
    offsets = {name: open_product(path).offset for name, path in layouts.items()}
    assert offsets == {"safe-02.11": 0, "safe-05.09": -1000, "cog-raw": -1000, "cog-harmonised": 0}
    strips = {}
    for name, path in layouts.items():
        with ProductInput(open_product(path), manifest) as source:
            strips[name] = source.strip(0, source.height)
    reference, valid = strips["safe-05.09"]
    # products before 04.00 cannot store reflectance below 0.0001: compare where every layout can
    floor = manifest.normalize(np.ones((len(manifest.bands), 1, 1), np.float32))  # digital number 1, per band
    representable = valid & (reference > floor + 1e-4).all(axis=0)
    assert representable.mean() > 0.5
    one_dn = manifest.normalize(np.full((len(manifest.bands), 1, 1), 2, np.float32)) - floor
    for name, (normalised, name_valid) in strips.items():
        assert np.array_equal(name_valid, valid), name
        difference = np.abs(normalised - reference)[:, representable]
        assert (difference <= one_dn[:, 0] * 1.01).all(), name  # the writer's rounding: at most 1 DN
        assert np.median(difference) == 0, name


def test_an_earth_search_item_reads_like_its_safe(layouts) -> None:
    safe, item = open_product(layouts["safe-05.09"]), open_product(layouts["cog-raw"])
    assert item.layout == "STAC-COG" and item.product_id == safe.product_id  # ESA's name, from s2:product_uri
    assert (item.tile_id, item.epsg, item.mission, item.level) == (safe.tile_id, safe.epsg, "S2A", "L2A")
    assert item.processing_baseline == "05.09" and item.start_time == safe.start_time
    assert item.cloud_cover == pytest.approx(safe.cloud_cover) and item.footprint.equals_exact(safe.footprint, 1e-6)
    assert sorted(item.band_files) == sorted(safe.band_files)
    assert np.array_equal(item.read("B8A"), safe.read("B8A")) and np.array_equal(item.read("SCL"), safe.read("SCL"))
    from rio_cogeo.cogeo import cog_validate

    bands = sorted(Path(layouts["cog-raw"]).parent.glob("*.tif"))  # the item's band COGs (core.cog)
    assert len(bands) >= 12 and all(cog_validate(str(path))[0] for path in bands)


def test_safe_structured_cogs_read_like_jpeg2000(layouts, tmp_path) -> None:
    """Planetary Computer's layout: the SAFE tree with a GeoTIFF where ESA has a JPEG 2000."""
    safe = Path(shutil.copytree(layouts["safe-05.09"], tmp_path / layouts["safe-05.09"].name))
    for jp2 in safe.rglob("IMG_DATA/**/*.jp2"):
        rasterio.shutil.copy(str(jp2), str(jp2.with_suffix(".tif")), driver="COG")
        jp2.unlink()
    product, reference = open_product(safe), open_product(layouts["safe-05.09"])
    assert product.band_files["B04"].endswith("_B04_10m.tif") and product.offset == -1000
    assert np.array_equal(product.read("B04"), reference.read("B04"))


def test_bands_stream_over_http_range_requests(layouts) -> None:
    served = layouts["cog-raw"].parents[2]
    with LocalStacServer(served) as server:
        item = json.loads(Path(server.folder / "stac" / "sentinel-2-l2a-cogs").joinpath(
            f"{layouts['cog-raw'].stem}/{layouts['cog-raw'].stem}.json").read_text())
        assert item["assets"]["blue"]["href"].startswith(server.url)  # absolute URLs, as Earth Search's
        product = read_stac_item(item)
        assert product.band_files["B02"].startswith("/vsicurl/http://127.0.0.1:")
        window = rasterio.windows.Window(10, 20, 30, 40)
        remote = product.read("B02", window=window)
        local = open_product(layouts["cog-raw"]).read("B02", window=window)
        assert np.array_equal(remote, local) and server.range_requests[
            f"/{COG_ITEMS}/{layouts['cog-raw'].stem}/B02.tif"] > 0  # read by range, not whole files


def test_the_antimeridian_splits_the_footprint(tmp_path) -> None:
    product = open_product(write_product(tmp_path, ProductSpec(tile_id="01XDA", size=240)))
    assert product.footprint.geom_type == "MultiPolygon" and product.footprint.is_valid
    west, east = sorted(product.footprint.geoms, key=lambda part: part.bounds[0])
    assert west.bounds[0] == pytest.approx(-180.0) and west.bounds[2] < -179.9
    assert east.bounds[0] > 179.9 and east.bounds[2] == pytest.approx(180.0)
    assert product.footprint.intersects(Point(179.95, 72.96))
    assert product.footprint.intersects(Point(-179.99, 72.96))


def test_incomplete_items_are_refused_with_the_reason(layouts) -> None:
    item = json.loads(layouts["cog-raw"].read_text())
    for remove, message in ((("properties", "s2:processing_baseline"), "cannot tell the digital-number offset"),
                            (("properties", "eo:cloud_cover"), "has no eo:cloud_cover"),
                            (("properties", "proj:epsg"), "no proj:epsg")):
        broken = json.loads(json.dumps(item))
        del broken[remove[0]][remove[1]]
        broken["properties"]["s2:product_uri"] = "unknown.SAFE"  # no baseline in a product name either
        for asset in broken["assets"].values():
            asset.pop("raster:bands", None), asset.pop("proj:epsg", None)
        with pytest.raises(ProductError, match=message):
            read_stac_item(broken, str(layouts["cog-raw"]))
    with pytest.raises(ProductError, match="not a STAC item"):
        read_stac_item({"type": "FeatureCollection"})
    assets_only_previews = {**item, "assets": {"thumbnail": {"href": "./thumbnail.jpg"}}}
    with pytest.raises(ProductError, match="no band assets"):
        read_stac_item(assets_only_previews, str(layouts["cog-raw"]))


def _geotiff(path: Path, digital_numbers: np.ndarray, tags: dict, offsets: tuple[float, ...] = ()) -> Path:
    profile = {"driver": "GTiff", "width": 64, "height": 64, "count": 4, "dtype": "uint16", "crs": "EPSG:32634",
               "transform": rasterio.transform.from_origin(700000, 4300000, 10, 10)}
    with rasterio.open(path, "w", **profile) as dataset:
        dataset.write(digital_numbers)
        dataset.descriptions = ("B02", "B03", "B04", "B08")
        dataset.update_tags(**tags)
        if offsets:
            dataset.scales, dataset.offsets = (1e-4,) * 4, offsets
    return path


class _InputRecorder:
    """Stands in for the model to see what ``predict_geotiff`` feeds it (the preprocessing is under test)."""

    def __init__(self, manifest):
        self.manifest, self.inputs = manifest, []

    def predict(self, tiles: np.ndarray) -> np.ndarray:
        self.inputs.append(tiles.copy())
        return np.zeros((len(tiles), self.manifest.num_classes, *tiles.shape[2:]), np.float32)


def test_model_predict_takes_the_offset_from_tags_or_option_and_warns_without(manifest, tmp_path, caplog) -> None:
    from earthsignature.service.inference.predict import digital_number_offset, predict_geotiff

    model = _InputRecorder(manifest)
    reflectance = np.random.default_rng(3).uniform(200, 4000, (4, 64, 64)).astype(np.uint16)
    raw = reflectance + 1000
    images = {"tagged": _geotiff(tmp_path / "tagged.tif", raw, {"BOA_ADD_OFFSET": "-1000"}),
              "scaled": _geotiff(tmp_path / "scaled.tif", raw, {}, offsets=(-0.1,) * 4),
              "baseline": _geotiff(tmp_path / "baseline.tif", raw, {"PROCESSING_BASELINE": "05.11"}),
              "raw": _geotiff(tmp_path / "raw.tif", raw, {}),
              "harmonised": _geotiff(tmp_path / "harmonised.tif", reflectance, {})}
    assert [digital_number_offset(images[k]) for k in ("tagged", "scaled", "baseline", "raw")] == [-1000] * 3 + [None]
    for name, image in images.items():
        caplog.clear()
        predict_geotiff(model, image, tmp_path / f"{name}-classes.tif", -1000 if name == "raw" else None)
        warned = "does not say whether its digital numbers carry" in caplog.text
        assert warned == (name == "harmonised"), name
    assert all(np.array_equal(seen, model.inputs[-1]) for seen in model.inputs)  # the offset removed once
    predict_geotiff(model, images["raw"], tmp_path / "ignored.tif", 0)
    assert np.allclose(model.inputs[-1] - model.inputs[0], manifest.normalize(np.full((4, 1, 1), 1000, np.float32))
                       - manifest.normalize(np.zeros((4, 1, 1), np.float32)), atol=1e-5)


@pytest.mark.parametrize("stream", [True, False])
def test_fetching_a_cog_item_streams_or_copies_its_bands(layouts, tmp_path, stream) -> None:
    from datetime import date

    from earthsignature.service.monitor.runner import LOCAL_COLLECTIONS
    from earthsignature.service.monitor.source import ProductSource, local_provider_yaml

    served = layouts["cog-raw"].parents[2]
    with LocalStacServer(served) as stac:
        yaml = local_provider_yaml("local_s2", stac.catalog_url, tmp_path / "products", LOCAL_COLLECTIONS)
        source = ProductSource("local_s2", tmp_path / "products", yaml, "S2_MSI_L2A_COG", stream_cogs=stream)
        (found, product), = list(source.search(date(2021, 8, 1), "POLYGON((-180 -80,180 -80,180 80,-180 80,-180 -80))"))
        assert found.layout == "STAC-COG" and found.product_id == open_product(layouts["cog-raw"]).product_id
        record = source.fetch(product)
        fetched = open_product(record)
        assert record.endswith(f"{found.product_id}.json") and fetched.offset == -1000
        remote = all(path.startswith("/vsicurl/http://127.0.0.1") for path in fetched.band_files.values())
        assert remote == stream  # streamed: the provider's URLs; not streamed: copies in the work folder
        assert np.array_equal(fetched.read("B04"), open_product(layouts["cog-raw"]).read("B04"))
    if not stream:  # the copies outlive the provider
        assert np.array_equal(open_product(record).read("SCL"), open_product(layouts["cog-raw"]).read("SCL"))
