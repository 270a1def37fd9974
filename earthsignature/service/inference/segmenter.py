"""Segment a whole product tile by tile: overlapping windows, weighted blending only where tiles overlap,
memory bounded by the overlaps, not by the product.

Tiles of the manifest's size are spread evenly so neighbours overlap by at least the manifest's overlap
(at most half a tile). Where a pixel is covered by one tile its class probabilities are that tile's;
where tiles overlap, each tile's probabilities are weighted by a window that ramps down across the
overlap (to a small floor, never 0) and the weighted sums are normalised, so predictions blend smoothly
and no seam follows the tile grid. A tile row is finished as soon as its tiles are: the rows it shares
with the next tile row wait in a buffer as tall as the overlap, the columns a tile shares with the next
tile in one as wide; so memory is about classes x overlap x product width x 4 bytes, plus one batch.
The argmax and the confidence are computed once per finished pixel.

Outputs: the class map (uint8 channel indices, 255 where the input has no data), the confidence (max
probability x 254, so 0..254, and 255 where there is no data: the GeoTIFF's no-data value), the cloud mask
from SCL, and the per-class pixel counts.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
from rasterio.windows import Window

from earthsignature.core.cog import (
    CLASS_NODATA,
    CONFIDENCE_NODATA,
    LAYER_DESCRIPTIONS,
    LAYER_NODATA,
    confidence_values,
)
from earthsignature.service.inference.backends import InferenceBackend
from earthsignature.service.inference.product_input import CHUNK_ROWS, ProductInput


def tile_starts(length: int, tile: int, stride: int) -> list[int]:
    """Start offsets of the fewest tiles whose steps are at most ``stride``, spread evenly over
    [0, length): neighbours overlap by about the same amount, at least tile - stride, except that no
    pixel is covered by more than two tiles in a row (steps of at least half a tile; on a product a
    little longer than one tile, that makes the overlap smaller than asked)."""
    if length <= tile:
        return [0]
    count = -(-(length - tile) // stride) + 1
    while count > 2 and (length - tile) / (count - 1) < tile / 2:
        count -= 1
    return [round(k * (length - tile) / (count - 1)) for k in range(count)]


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


def _geotiff(path: Path, source: ProductInput, layer: str, colormap: dict | None = None) -> rasterio.io.DatasetWriter:
    profile = {"driver": "GTiff", "width": source.width, "height": source.height, "count": 1, "dtype": "uint8",
               "crs": source.crs, "transform": source.transform, "nodata": LAYER_NODATA[layer], "tiled": True,
               "blockxsize": 256, "blockysize": 256, "compress": "deflate"}
    dataset = rasterio.open(path, "w", **profile)
    dataset.set_band_description(1, LAYER_DESCRIPTIONS[layer])
    if colormap:
        dataset.write_colormap(1, colormap)
    return dataset


@dataclass(frozen=True)
class _Span:
    """Where a tile lies along one axis: [start, end), and the parts it shares with its neighbours."""

    start: int
    end: int
    shared_before: int  # the first pixel not shared with the previous tile
    shared_after: int  # the first pixel shared with the next tile


def _spans(length: int, tile: int, overlap: int) -> list[_Span]:
    starts = tile_starts(length, tile, tile - overlap)
    size = min(tile, length)
    spans = []
    for k, start in enumerate(starts):
        before = starts[k - 1] + size if k else start
        after = starts[k + 1] if k + 1 < len(starts) else start + size
        assert before <= after, "tile_starts never lets three tiles cover a pixel"
        spans.append(_Span(start, start + size, before, after))
    return spans


def working_memory(manifest, height: int, width: int, batch: int) -> int:
    """Bytes the segmenter holds at most for a product, besides the model itself: the two overlap-tall
    accumulators, one batch of tiles and of their probabilities, a tile's shared columns, one tile row's
    outputs, the strip being read and the chunks read ahead. It grows with the width, never the height."""
    tile, classes, bands = manifest.tile_size, manifest.num_classes, len(manifest.bands)
    tile_h, tile_w = min(tile, height), min(tile, width)
    shared = max(s.start + tile_h - s.shared_after for s in _spans(height, tile, manifest.overlap))
    accumulators = 2 * (classes + 1) * shared * width * 4
    batches = batch * (classes + bands) * tile_h * tile_w * 4 + classes * tile_h * tile_w * 4
    outputs = tile_h * width * (2 + 8 + 4)  # classes, confidence, argmax indices, confidence before scaling
    reading = bands * tile_h * width * (4 + 4 + 2) + 3 * (bands + 1) * min(CHUNK_ROWS, height) * width * 2
    return accumulators + batches + outputs + reading


def _finish(weighted: np.ndarray, weights: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Class indices and confidence (1..255) of [classes, ...] probabilities, or of weighted sums with their
    weights (positive and common to a pixel's classes: the argmax of the sums is the blended argmax)."""
    classes = weighted.argmax(axis=0)
    best = np.take_along_axis(weighted, classes[None], axis=0)[0]
    if weights is not None:
        best = best / weights
    return classes.astype(np.uint8), confidence_values(best)


class _TileRow:
    """The finished rows [top, bottom) of one tile row: its classes and confidence, filled tile by tile."""

    def __init__(self, top: int, bottom: int, width: int):
        self.top, self.bottom = top, bottom
        self.classes = np.full((bottom - top, width), CLASS_NODATA, dtype=np.uint8)
        self.confidence = np.full((bottom - top, width), CONFIDENCE_NODATA, dtype=np.uint8)

    def put(self, rows: slice, cols: slice, finished: tuple[np.ndarray, np.ndarray]) -> None:
        self.classes[rows, cols], self.confidence[rows, cols] = finished


def segment_product(source: ProductInput, backend: InferenceBackend, out_dir: Path,
                    progress: Callable[[int, int], None] | None = None) -> SegmentationResult:
    """Write classes.tif, confidence.tif and cloud_mask.tif (tiled GeoTIFFs) for the whole product."""
    manifest = backend.manifest
    tile, overlap, classes = manifest.tile_size, manifest.overlap, manifest.num_classes
    height, width = source.height, source.width
    row_spans, col_spans = _spans(height, tile, overlap), _spans(width, tile, overlap)
    tile_h, tile_w = min(tile, height), min(tile, width)
    window = blend_window(tile, overlap)[:tile_h, :tile_w]
    out_dir.mkdir(parents=True, exist_ok=True)
    counts = np.zeros(classes, dtype=np.int64)
    paths = (out_dir / "classes.tif", out_dir / "confidence.tif", out_dir / "cloud_mask.tif")
    # rows shared by this tile row and the previous one: weighted sums and weights, the whole width
    above, above_weights = np.zeros((classes, 0, width), np.float32), np.zeros((0, width), np.float32)
    with _geotiff(paths[0], source, "classes", manifest.colormap()) as class_out, \
            _geotiff(paths[1], source, "confidence") as confidence_out, \
            _geotiff(paths[2], source, "cloud_mask") as cloud_out:
        for done, rows in enumerate(row_spans, start=1):
            strip, valid = source.strip(rows.start, tile_h)
            shared_top = rows.shared_before - rows.start  # rows of `above`
            shared_bottom = rows.shared_after - rows.start  # from here on: shared with the next tile row
            below = np.zeros((classes, tile_h - shared_bottom, width), np.float32)
            below_weights = np.zeros((tile_h - shared_bottom, width), np.float32)
            finished = _TileRow(rows.start, rows.shared_after, width)
            _tile_row(backend, strip, col_spans, window, (shared_top, shared_bottom), (above, above_weights),
                      (below, below_weights), finished)
            if shared_top:  # every tile of this row has added to the rows shared with the previous one
                finished.put(slice(0, shared_top), slice(None), _finish(above, above_weights))
            _write(finished, valid[: finished.bottom - finished.top], source, (class_out, confidence_out, cloud_out),
                   counts)
            above, above_weights = below, below_weights
            if progress:
                progress(done * len(col_spans), len(row_spans) * len(col_spans))
    return SegmentationResult(*paths, counts, height, width)


def _tile_row(backend: InferenceBackend, strip: np.ndarray, col_spans: list[_Span], window: np.ndarray,
              shared: tuple[int, int], above: tuple[np.ndarray, np.ndarray], below: tuple[np.ndarray, np.ndarray],
              finished: _TileRow) -> None:
    """Run the tiles of one tile row in batches; finish what only they cover, add the rest to the buffers."""
    shared_top, shared_bottom = shared
    middle = slice(shared_top, shared_bottom)
    pending: tuple[np.ndarray, np.ndarray] | None = None  # the previous tile's share of the next columns
    per_call = backend.tiles_per_call  # Triton: several requests in flight
    for first in range(0, len(col_spans), per_call):  # one call's probabilities in memory at a time
        batch = col_spans[first:first + per_call]
        probabilities = probabilities_of(backend, np.stack([strip[:, :, c.start:c.end] for c in batch]))
        for k, cols in enumerate(batch):
            tile = probabilities[k]
            left, right = cols.shared_before - cols.start, cols.shared_after - cols.start
            # only this tile covers the middle rows between its shared columns: its probabilities are final
            finished.put(middle, slice(cols.shared_before, cols.shared_after), _finish(tile[:, middle, left:right],
                                                                                       None))
            np.multiply(tile, window, out=tile)  # weighted, in place, for what it shares
            if pending is not None:  # the columns shared with the previous tile are complete now
                weighted, weights = pending
                weighted += tile[:, middle, :left]
                weights += window[middle, :left]
                finished.put(middle, slice(cols.start, cols.shared_before), _finish(weighted, weights))
            pending = (tile[:, middle, right:].copy(), window[middle, right:].copy()) if right < tile.shape[2] \
                else None
            for (sums, weights), rows in ((above, slice(0, shared_top)), (below, slice(shared_bottom, None))):
                sums[:, :, cols.start:cols.end] += tile[:, rows]
                weights[:, cols.start:cols.end] += window[rows]


def _write(finished: _TileRow, valid: np.ndarray, source: ProductInput, outputs: tuple, counts: np.ndarray) -> None:
    class_out, confidence_out, cloud_out = outputs
    rows = finished.bottom - finished.top
    finished.classes[~valid], finished.confidence[~valid] = CLASS_NODATA, CONFIDENCE_NODATA
    counts += np.bincount(finished.classes[valid].ravel(), minlength=len(counts))[: len(counts)]
    target = Window(0, finished.top, source.width, rows)
    class_out.write(finished.classes, 1, window=target)
    confidence_out.write(finished.confidence, 1, window=target)
    cloud_out.write(source.cloud_mask(finished.top, rows), 1, window=target)
