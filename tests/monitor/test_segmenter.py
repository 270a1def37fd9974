"""Full-product inference: product preparation, seamless blending, no-data edges."""

from __future__ import annotations

import itertools
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import rasterio

from earthsignature.core.readers import open_product
from earthsignature.export.onnx_export import export_checkpoint
from earthsignature.samples.safe_writer import ProductSpec, write_product
from earthsignature.service.inference.backends import OnnxRuntimeBackend
from earthsignature.service.inference.product_input import ProcessingError, ProductInput, to_l2a
from earthsignature.service.inference.segmenter import blend_window, segment_product, tile_starts


@pytest.fixture(scope="module")
def model(tiny_checkpoints, tmp_path_factory):
    onnx_path, manifest, _ = export_checkpoint(tiny_checkpoints[0], tmp_path_factory.mktemp("m"), "clc-tiny", 64, 16)
    return onnx_path, manifest


@pytest.fixture(scope="module")
def product(tmp_path_factory) -> Path:
    spec = ProductSpec(size=300, seed=4, cloud_cover=15, nodata_fraction=0.2, feature_size=20)
    return write_product(tmp_path_factory.mktemp("p"), spec)


def test_tiles_cover_the_product() -> None:
    assert tile_starts(300, 64, 48) == [0, 47, 94, 142, 189, 236]  # spread evenly: overlaps of 17 to 18 px
    assert tile_starts(50, 64, 48) == [0]
    window = blend_window(64, 16)
    assert window[32, 32] == 1.0 and 0 < window[0, 0] < 0.01 and window.shape == (64, 64)


def test_product_input_reads_bands_on_the_model_grid(product, model) -> None:
    _, manifest = model
    source = ProductInput(open_product(product), manifest)
    assert (source.height, source.width, source.crs) == (300, 300, "EPSG:32634")
    strip, valid = source.strip(100, 50)
    assert strip.shape == (4, 50, 300) and strip.dtype == np.float32
    with rasterio.open(open_product(product).band_path("B02")) as dataset:
        blue = dataset.read(1, window=((100, 150), (0, 300))).astype(np.float32) - 1000  # baseline 05.00 offset
    stats = manifest.normalization
    expected = (blue - stats.minimum) / (stats.maximum - stats.minimum) - stats.mean[0]
    assert np.allclose(strip[0][valid], expected[valid], atol=1e-6)  # 10 m bands are read as they are
    clouds = source.cloud_mask(0, 300)
    assert set(np.unique(clouds)) <= {0, 1, 255} and 0.05 < (clouds == 1).mean() < 0.3


def test_l1c_without_sen2cor_names_the_tool(tmp_path, model, monkeypatch) -> None:
    monkeypatch.setenv("PATH", "/usr/bin:/bin")  # no L2A_Process
    l1c = open_product(write_product(tmp_path, ProductSpec(level="L1C", size=60)))
    with pytest.raises(ProcessingError, match=r"L1C .* install ESA's Sen2Cor \(the `L2A_Process` command\)"):
        to_l2a(l1c, tmp_path)
    with pytest.raises(ProcessingError, match="convert it with to_l2a"):
        ProductInput(l1c, model[1])


def test_tiled_equals_one_piece_without_seams(product, model, tmp_path) -> None:
    onnx_path, manifest = model
    source = ProductInput(open_product(product), manifest)
    tiled = segment_product(source, OnnxRuntimeBackend(onnx_path, manifest, batch_size=4), tmp_path / "tiled")
    whole_manifest = replace(manifest, tile_size=320, overlap=0)  # one tile covers the product
    whole = segment_product(ProductInput(open_product(product), whole_manifest),
                            OnnxRuntimeBackend(onnx_path, whole_manifest), tmp_path / "whole")
    with rasterio.open(tiled.classes_path) as a, rasterio.open(whole.classes_path) as b:
        tiled_map, whole_map = a.read(1), b.read(1)
        assert a.colormap(1)[23] == (0, 166, 0, 255)
    valid = whole_map != 255
    agreement = (tiled_map == whole_map)[valid].mean()
    assert agreement > 0.97, agreement
    # no seam: disagreement along tile borders is not concentrated there
    borders = np.zeros_like(valid)
    for start in tile_starts(300, 64, 48)[1:]:
        borders[:, start - 1:start + 1] = borders[start - 1:start + 1, :] = True
    border_errors = (tiled_map != whole_map)[valid & borders].mean()
    assert border_errors < 3 * (1 - agreement) + 0.01, (border_errors, 1 - agreement)
    assert tiled.pixel_counts.sum() == valid.sum() == whole.pixel_counts.sum()


def test_nodata_edges_stay_nodata(product, model, tmp_path) -> None:
    onnx_path, manifest = model
    result = segment_product(ProductInput(open_product(product), manifest),
                             OnnxRuntimeBackend(onnx_path, manifest), tmp_path)
    with rasterio.open(result.classes_path) as classes, rasterio.open(result.confidence_path) as confidence:
        class_map, conf = classes.read(1), confidence.read(1)
        assert classes.crs.to_epsg() == 32634 and classes.transform.a == 10.0
        assert (classes.nodata, confidence.nodata) == (255, 0)
        assert "probability" in confidence.descriptions[0] and "class" in classes.descriptions[0]
    with rasterio.open(open_product(product).band_path("B02")) as dataset:
        nodata_input = dataset.read(1) == 0
    assert nodata_input.mean() > 0.1
    assert (class_map[nodata_input] == 255).all() and (conf[nodata_input] == 0).all()  # each file's no-data
    assert (class_map[~nodata_input] != 255).all() and conf[~nodata_input].min() > 0  # mapped: never no data


def test_confidence_keeps_zero_for_no_data_and_certainty_readable() -> None:
    from earthsignature.core.cog import confidence_values

    values = confidence_values(np.array([0.0, 0.001, 0.5, 0.998, 0.9999, 1.0]))
    assert values.tolist() == [1, 1, 128, 254, 255, 255]  # 0.998 and certainty no longer read as no data


def test_memory_does_not_grow_with_the_product_height(tiny_checkpoints, tmp_path) -> None:
    """Peak memory on a product taller than one read chunk and on one twice as tall. Sentinel-2 tiles are
    square, so the taller product is also twice as wide, and the segmenter's rows twice as long: what must
    not grow is the peak per column. (Holding the whole product would double it; the 1098 px product's
    second chunk is 74 rows against 1024, hence a 15 % margin.)"""
    import tracemalloc

    from earthsignature.service.inference.product_input import CHUNK_ROWS
    from earthsignature.service.inference.segmenter import working_memory

    onnx_path, manifest, _ = export_checkpoint(tiny_checkpoints[0], tmp_path / "model", "clc-tiny", 128, 16)
    per_column = []
    for size in (1098, 2196):
        assert size > CHUNK_ROWS
        spec = ProductSpec(size=size, seed=4, cloud_cover=10, nodata_fraction=0.2, feature_size=40)
        product = write_product(tmp_path / f"products-{size}", spec)
        with ProductInput(open_product(product), manifest) as source:
            tracemalloc.start()
            segment_product(source, OnnxRuntimeBackend(onnx_path, manifest, batch_size=2), tmp_path / str(size))
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            assert peak <= 1.25 * working_memory(manifest, source.height, source.width, batch=2)
        per_column.append(peak / size)
    assert per_column[1] <= 1.15 * per_column[0], per_column
    # the code's own bound says the same: past one chunk of rows, the height changes nothing
    assert working_memory(manifest, 10 * 1098, 1098, 2) == working_memory(manifest, 100 * 1098, 1098, 2)


@pytest.mark.parametrize("length", [65, 100, 120, 129, 300, 1098, 10980])
def test_no_pixel_is_covered_by_three_tiles_in_a_row(length: int) -> None:
    for tile, stride in ((64, 48), (512, 448), (64, 16)):
        starts = tile_starts(length, tile, stride)
        assert starts[0] == 0 and starts[-1] == max(0, length - tile)  # the product is covered
        if 2 * stride >= tile and len(starts) > 2:  # the overlap asked is kept (at most half a tile)
            assert all(b - a <= stride for a, b in itertools.pairwise(starts))
        cover = np.zeros(length, dtype=int)
        for start in starts:
            cover[start:start + tile] += 1
        assert cover.min() >= 1 and cover.max() <= 2


def test_a_float16_model_segments_like_its_float32_export(product, model, tiny_checkpoints, tmp_path) -> None:
    onnx_path, manifest = model
    half_path, half, _ = export_checkpoint(tiny_checkpoints[0], tmp_path / "f16", "clc-tiny", 64, 16,
                                           float16_output=True)
    maps = []
    for path, description in ((onnx_path, manifest), (half_path, half)):
        with ProductInput(open_product(product), description) as source:
            result = segment_product(source, OnnxRuntimeBackend(path, description), tmp_path / description.output_dtype)
        with rasterio.open(result.classes_path) as dataset:
            maps.append(dataset.read(1))
    valid = maps[0] != 255
    assert (maps[1] == 255).sum() == (~valid).sum()
    assert (maps[0][valid] == maps[1][valid]).mean() > 0.99
