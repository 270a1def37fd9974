"""SAFE products: written in the real layout, opened by rasterio/GDAL, parsed back by our reader."""

from __future__ import annotations

import zipfile
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
import rasterio
from shapely.geometry import Polygon

from earthsignature.core.product import ProductError
from earthsignature.core.readers import open_product
from earthsignature.core.sentinel2 import L1C_BANDS, L2A_BANDS, band
from earthsignature.core.tiling_grid import tile
from earthsignature.samples.safe_writer import ProductSpec, write_product
from earthsignature.samples.synthetic import class_signature

SENSING = datetime(2021, 8, 1, 9, 20, 31, tzinfo=UTC)


@pytest.fixture(scope="module")
def l2a(tmp_path_factory: pytest.TempPathFactory) -> tuple[ProductSpec, Path]:
    spec = ProductSpec(tile_id="34SGH", sensing_time=SENSING, size=120, seed=3, cloud_cover=20,
                       nodata_fraction=0.25, feature_size=30)
    return spec, write_product(tmp_path_factory.mktemp("l2a"), spec)


def test_l2a_layout_and_names(l2a) -> None:
    _, path = l2a
    assert path.name == "S2A_MSIL2A_20210801T092031_N0500_R093_T34SGH_20210801T122031.SAFE"
    assert (path / "MTD_MSIL2A.xml").is_file() and (path / "manifest.safe").is_file()
    granule = next((path / "GRANULE").iterdir())
    assert granule.name.startswith("L2A_T34SGH_A") and (granule / "MTD_TL.xml").is_file()
    files = sorted(p.relative_to(granule / "IMG_DATA").as_posix() for p in granule.rglob("*.jp2"))
    assert "R10m/T34SGH_20210801T092031_B02_10m.jp2" in files
    assert "R20m/T34SGH_20210801T092031_SCL_20m.jp2" in files
    assert "R60m/T34SGH_20210801T092031_B09_60m.jp2" in files
    assert len(files) == len(L2A_BANDS) + 1  # + SCL; no B10 in L2A


def test_every_band_at_its_real_resolution_and_crs(l2a) -> None:
    spec, path = l2a
    product = open_product(path)
    geometry = tile("34SGH")
    for name in (*L2A_BANDS, "SCL"):
        resolution = 20 if name == "SCL" else band(name).resolution
        with rasterio.open(product.band_path(name)) as dataset:
            assert dataset.driver == "JP2OpenJPEG"
            assert dataset.crs.to_epsg() == 32634
            assert dataset.res == (resolution, resolution)
            assert dataset.shape == (spec.size * 10 // resolution,) * 2
            assert (dataset.transform.c, dataset.transform.f) == (geometry.ulx, geometry.uly)


def test_metadata_parses_back(l2a) -> None:
    _, path = l2a
    product = open_product(path)
    assert product.product_id == path.name.removesuffix(".SAFE")
    assert (product.level, product.tile_id, product.epsg) == ("L2A", "34SGH", 32634)
    assert product.start_time == SENSING.replace(microsecond=24000)
    assert product.stop_time > product.start_time
    # footprint: the 1.2 km x 1.2 km north-west corner of tile 34SGH
    expected = Polygon(tile("34SGH").footprint_lonlat(1200, 1200))
    assert product.footprint.is_valid
    assert product.footprint.symmetric_difference(expected).area / expected.area < 0.05
    # cloud cover in the metadata is what the SCL band shows, close to what was asked
    scl = product.read("SCL")
    measured = 100 * np.isin(scl, (8, 9)).sum() / (scl > 0).sum()
    assert product.cloud_cover == pytest.approx(measured, abs=1e-3)
    assert 10 < product.cloud_cover < 30
    assert (product.offset, product.quantification) == (-1000, 10000)


def test_pixels_carry_the_scene(l2a) -> None:
    spec, path = l2a
    product = open_product(path)
    nir = product.reflectance(product.read("B08"))
    truth = spec.scene.window(0, 0, spec.size, spec.size)
    clear = ~spec.cloud_mask(spec.size, spec.size, 1) & ~np.isnan(nir)
    nodata = spec.nodata(0, 0, spec.size, spec.size, 1)
    assert np.isnan(nir[nodata]).all() and not np.isnan(nir[~nodata]).any()
    # per class, the mean clear NIR reflectance is the class signature (B08 is the 8th band)
    for code in np.unique(truth[clear])[:10]:
        region = clear & (truth == code)
        if region.sum() > 50:
            assert nir[region].mean() == pytest.approx(class_signature(int(code))[7], rel=0.1, abs=0.01)


def test_gdal_sentinel2_driver_reads_our_metadata(l2a) -> None:
    _, path = l2a
    with rasterio.open(path / "MTD_MSIL2A.xml") as dataset:
        assert dataset.driver == "SENTINEL2"
        subdatasets = dataset.subdatasets
    assert any(s.endswith(":10m:EPSG_32634") for s in subdatasets)
    ten_metre = next(s for s in subdatasets if s.endswith(":10m:EPSG_32634"))
    with rasterio.open(ten_metre) as dataset:
        assert dataset.crs.to_epsg() == 32634 and dataset.res == (10, 10)
        blue = 1 + next(i for i, d in enumerate(dataset.descriptions) if d.startswith("B2,"))
        assert np.array_equal(dataset.read(blue), open_product(path).read("B02"))


def test_zipped_l1c_reads_through_vsizip(tmp_path: Path) -> None:
    spec = ProductSpec(tile_id="31TCJ", level="L1C", size=60, seed=1)
    archive = write_product(tmp_path, spec, zipped=True)
    assert archive.name.startswith("S2A_MSIL1C_") and archive.suffix == ".zip"
    with zipfile.ZipFile(archive) as zf:
        names = zf.namelist()
    assert all(n.startswith(archive.stem + ".SAFE/") for n in names)
    assert any(n.endswith("/IMG_DATA/T31TCJ_20210801T092031_B10.jp2") for n in names)  # flat L1C layout
    product = open_product(archive)
    assert product.level == "L1C" and sorted(product.band_files) == sorted(L1C_BANDS)
    assert product.band_path("B02").startswith("/vsizip/")
    assert product.read("B02").shape == (60, 60) and product.read("B01").shape == (10, 10)
    assert product.read("B02", out_shape=(30, 30)).shape == (30, 30)


def test_writer_is_deterministic(tmp_path: Path) -> None:
    spec = ProductSpec(size=60, seed=5, cloud_cover=10)
    first = open_product(write_product(tmp_path / "a", spec)).read("B04")
    second = open_product(write_product(tmp_path / "b", spec)).read("B04")
    other = open_product(write_product(tmp_path / "c", ProductSpec(size=60, seed=6))).read("B04")
    assert np.array_equal(first, second) and not np.array_equal(first, other)


def test_bad_specs_and_bad_products(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="multiple of 6"):
        ProductSpec(size=100)
    with pytest.raises(ValueError, match="L2A or L1C"):
        ProductSpec(level="L3")
    with pytest.raises(ProductError, match="no such product"):
        open_product(tmp_path / "missing.SAFE")
    corrupt = tmp_path / "S2A_MSIL2A_20210801T092031_N0500_R093_T34SGH_20210801T122031.zip"
    corrupt.write_bytes(b"PK\x03\x04 truncated download")
    with pytest.raises(ProductError, match=r"neither a \.SAFE folder nor a zip"):
        open_product(corrupt)
    product = write_product(tmp_path, ProductSpec(size=6))
    (product / "MTD_MSIL2A.xml").write_text("<not-closed>")
    with pytest.raises(ProductError, match=r"MTD_MSIL2A\.xml is not valid XML"):
        open_product(product)
    with pytest.raises(ProductError, match="has no band B10"):
        open_product(write_product(tmp_path / "ok", ProductSpec(size=6))).band_path("B10")
