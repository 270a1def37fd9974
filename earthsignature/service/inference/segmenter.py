"""Segment a whole product tile by tile: overlapping windows, weighted blending, bounded memory.

Tiles of the manifest's size overlap by its overlap; each tile's class probabilities are weighted by a
window that is 1 in its interior and ramps down (to a small floor, never 0) across the overlap, and the
weighted sums are normalised, so predictions blend smoothly and no seam follows the tile grid. Tiles
are processed one tile row at a time: a rolling accumulator as tall as a tile holds the rows still
being blended, finished rows are written out at once (windowed writes), so memory depends on the tile
size and the product width, never its height: about classes x tile x width x 4 bytes.

Outputs: the class map (uint8 channel indices, 255 where the input has no data), the confidence (max
probability x 255), the cloud mask from SCL, and the per-class pixel counts.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
from rasterio.windows import Window

from earthsignature.service.inference.backends import InferenceBackend
from earthsignature.service.inference.product_input import ProductInput

NODATA = 255


def tile_starts(length: int, tile: int, stride: int) -> list[int]:
    """Start offsets covering [0, length): regular steps, the last one flush with the end."""
    if length <= tile:
        return [0]
    starts = list(range(0, length - tile, stride))
    return [*starts, length - tile]


def blend_window(tile: int, overlap: int, floor: float = 1e-3) -> np.ndarray:
    """[tile, tile] weights: 1 inside, a linear ramp across ``overlap`` pixels at each border."""
    if overlap == 0:
        return np.ones((tile, tile), dtype=np.float32)
    position = np.arange(tile, dtype=np.float32)
    ramp = np.minimum(1.0, np.minimum(position + 0.5, tile - position - 0.5) / overlap)
    ramp = np.maximum(ramp, floor)
    return np.outer(ramp, ramp).astype(np.float32)


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    exponentials = np.exp(shifted)
    return exponentials / exponentials.sum(axis=1, keepdims=True)


def probabilities_of(backend: InferenceBackend, tiles: np.ndarray) -> np.ndarray:
    """[N, classes, H, W] class probabilities: the model's own output, or the softmax of its logits for
    models exported before the softmax moved into the graph."""
    output = backend.predict(tiles)
    if backend.manifest.output_kind == "logits":
        return softmax(output)
    return output if output.flags.writeable else output.copy()  # the segmenter weights it in place


@dataclass
class SegmentationResult:
    classes_path: Path
    confidence_path: Path
    cloud_mask_path: Path
    pixel_counts: np.ndarray  # per output channel, valid pixels only
    height: int
    width: int


def _geotiff(path: Path, source: ProductInput, colormap: dict | None = None) -> rasterio.io.DatasetWriter:
    profile = {"driver": "GTiff", "width": source.width, "height": source.height, "count": 1, "dtype": "uint8",
               "crs": source.crs, "transform": source.transform, "nodata": NODATA, "tiled": True,
               "blockxsize": 256, "blockysize": 256, "compress": "deflate"}
    dataset = rasterio.open(path, "w", **profile)
    if colormap:
        dataset.write_colormap(1, colormap)
    return dataset


def segment_product(source: ProductInput, backend: InferenceBackend, out_dir: Path,
                    progress: Callable[[int, int], None] | None = None) -> SegmentationResult:
    """Write classes.tif, confidence.tif and cloud_mask.tif (tiled GeoTIFFs) for the whole product."""
    manifest = backend.manifest
    tile, overlap = manifest.tile_size, manifest.overlap
    stride = tile - overlap
    height, width, classes = source.height, source.width, manifest.num_classes
    window = blend_window(tile, overlap)
    rows, cols = tile_starts(height, tile, stride), tile_starts(width, tile, stride)
    tile_h, tile_w = min(tile, height), min(tile, width)
    out_dir.mkdir(parents=True, exist_ok=True)
    counts = np.zeros(classes, dtype=np.int64)
    # Rolling accumulators, one tile tall: row i of the buffer is product row `top + i` (a tile row starts
    # at `top` once the rows above it are flushed).
    weighted = np.zeros((classes, tile_h, width), dtype=np.float32)
    weights = np.zeros((tile_h, width), dtype=np.float32)
    valid_rows = np.zeros((tile_h, width), dtype=bool)
    top = 0
    paths = (out_dir / "classes.tif", out_dir / "confidence.tif", out_dir / "cloud_mask.tif")
    done_tiles, total_tiles = 0, len(rows) * len(cols)
    with _geotiff(paths[0], source, manifest.colormap()) as class_out, _geotiff(paths[1], source) as confidence_out, \
            _geotiff(paths[2], source) as cloud_out:

        def flush(until: int) -> None:
            """Write product rows [top, until) and shift the buffers up."""
            nonlocal top
            n = until - top
            if n <= 0:
                return
            # a pixel's weights are positive and common to its classes: the argmax of the weighted sums is
            # the argmax of the blended probabilities, and only the maximum needs dividing
            class_map = weighted[:, :n].argmax(axis=0).astype(np.uint8)
            best = np.take_along_axis(weighted[:, :n], class_map[None].astype(np.intp), axis=0)[0]
            confidence = np.rint(best / np.maximum(weights[:n], 1e-12) * 255).astype(np.uint8)
            valid = valid_rows[:n]
            class_map[~valid], confidence[~valid] = NODATA, 0
            counts[:] += np.bincount(class_map[valid].ravel(), minlength=classes)[:classes]
            target = Window(0, top, width, n)
            class_out.write(class_map, 1, window=target)
            confidence_out.write(confidence, 1, window=target)
            cloud_out.write(source.cloud_mask(top, n), 1, window=target)
            carry = weighted.shape[1] - n  # rows still being blended move to the top
            for buffer in (weighted, weights, valid_rows):
                buffer[..., :carry, :] = buffer[..., n:, :]
                buffer[..., carry:, :] = 0
            top = until

        for row_index, row in enumerate(rows):
            flush(row)  # rows above this tile row are final
            strip, valid = source.strip(row, tile_h)
            offset = row - top
            valid_rows[offset:offset + tile_h] |= valid
            w = window[:tile_h, :tile_w]
            for first in range(0, len(cols), backend.batch_size):  # one batch of logits in memory at a time
                batch_cols = cols[first:first + backend.batch_size]
                tiles = np.stack([strip[:, :, col:col + tile_w] for col in batch_cols])
                probabilities = probabilities_of(backend, tiles)
                for k, col in enumerate(batch_cols):
                    np.multiply(probabilities[k], w, out=probabilities[k])  # in place: no tile-sized temporary
                    weighted[:, offset:offset + tile_h, col:col + tile_w] += probabilities[k]
                    weights[offset:offset + tile_h, col:col + tile_w] += w
            done_tiles += len(cols)
            if progress:
                progress(done_tiles, total_tiles)
            if row_index == len(rows) - 1:
                flush(height)
    return SegmentationResult(*paths, counts, height, width)

