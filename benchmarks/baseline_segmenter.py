"""The segmentation before the model-service work of this benchmark's issue, kept only to be measured
against in the same run (not part of the package): strips read band by band for every tile row (the
JPEG 2000 tiles they share decoded again), the softmax over 44 classes in numpy, every pixel blended in
a float32 accumulator one tile plus one stride tall, and the whole accumulator shifted after each row.

It runs the model service's current export (probabilities) through an ONNX copy with the softmax
removed, so it pays for the softmax as it did.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import onnx
from rasterio.enums import Resampling
from rasterio.windows import Window

from earthsignature.core.cog import CLASS_NODATA, CONFIDENCE_NODATA, confidence_values
from earthsignature.core.layout import ModelFolder
from earthsignature.core.manifest import ModelManifest
from earthsignature.service.inference.product_input import ProductInput
from earthsignature.service.inference.segmenter import SegmentationResult, _geotiff, blend_window, softmax


class BaselineInput(ProductInput):
    """Reads each strip's rows directly (no chunks, no read-ahead), as before."""

    def strip(self, row_off: int, rows: int) -> tuple[np.ndarray, np.ndarray]:
        rows = min(rows, self.height - row_off)
        digital_numbers = np.stack([self._read(b, row_off, rows, Resampling.bilinear) for b in self.manifest.bands])
        valid = (digital_numbers > 0).all(axis=0)
        harmonised = np.clip(digital_numbers.astype(np.float32) + self.product.offset, 0, None)
        return self.manifest.normalize(harmonised), valid

    def cloud_mask(self, row_off: int, rows: int) -> np.ndarray:
        from earthsignature.core.sentinel2 import SCL_CLOUD_VALUES

        rows = min(rows, self.height - row_off)
        scl = self._read("SCL", row_off, rows, Resampling.nearest)
        mask = np.isin(scl, SCL_CLOUD_VALUES).astype(np.uint8)
        mask[scl == 0] = 255
        return mask


def logits_model(folder: Path, out: Path) -> Path:
    """A copy of an exported model whose output is the logits again (the softmax nodes removed)."""
    source, target = ModelFolder(folder), ModelFolder(out)
    target.path.mkdir(parents=True, exist_ok=True)
    model = onnx.load(str(source.onnx))
    kept = [n for n in model.graph.node if (not n.output[0].startswith("softmax_") and n.op_type != "Div")
            or (n.op_type == "Div" and not n.input[0].startswith("softmax_"))]
    del model.graph.node[:]
    model.graph.node.extend(kept)
    unused = [i for i in model.graph.initializer if i.name.startswith("softmax_")]
    for initializer in unused:
        model.graph.initializer.remove(initializer)
    (output,) = model.graph.output
    dims = [d.dim_param or d.dim_value for d in output.type.tensor_type.shape.dim]
    model.graph.output.remove(output)
    model.graph.output.append(onnx.helper.make_tensor_value_info("logits", onnx.TensorProto.FLOAT, dims))
    onnx.save(model, str(target.onnx))
    manifest = ModelManifest.load(source.manifest)
    replace(manifest, output_name="logits", output_kind="logits").save(target.manifest)
    return target.path




def tile_starts(length: int, tile: int, stride: int) -> list[int]:
    """Start offsets covering [0, length): regular steps, the last one flush with the end."""
    if length <= tile:
        return [0]
    starts = list(range(0, length - tile, stride))
    return [*starts, length - tile]


def segment_product(source: BaselineInput, backend, out_dir: Path,
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
    # Rolling accumulators: row i of the buffer is product row `top + i`.
    weighted = np.zeros((classes, tile_h + stride, width), dtype=np.float32)
    weights = np.zeros((tile_h + stride, width), dtype=np.float32)
    valid_rows = np.zeros((tile_h + stride, width), dtype=bool)
    top = 0
    paths = (out_dir / "classes.tif", out_dir / "confidence.tif", out_dir / "cloud_mask.tif")
    done_tiles, total_tiles = 0, len(rows) * len(cols)
    with _geotiff(paths[0], source, "classes", manifest.colormap()) as class_out, \
            _geotiff(paths[1], source, "confidence") as confidence_out, \
            _geotiff(paths[2], source, "cloud_mask") as cloud_out:

        def flush(until: int) -> None:
            """Write product rows [top, until) and shift the buffers up."""
            nonlocal top
            n = until - top
            if n <= 0:
                return
            probabilities = weighted[:, :n] / np.maximum(weights[:n], 1e-12)
            class_map = probabilities.argmax(axis=0).astype(np.uint8)
            confidence = confidence_values(probabilities.max(axis=0))
            valid = valid_rows[:n]
            class_map[~valid], confidence[~valid] = CLASS_NODATA, CONFIDENCE_NODATA
            counts[:] += np.bincount(class_map[valid].ravel(), minlength=classes)[:classes]
            target = Window(0, top, width, n)
            class_out.write(class_map, 1, window=target)
            confidence_out.write(confidence, 1, window=target)
            cloud_out.write(source.cloud_mask(top, n), 1, window=target)
            for buffer in (weighted, weights, valid_rows):
                buffer[..., :-n, :] = buffer[..., n:, :]
                buffer[..., -n:, :] = 0
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
                probabilities = softmax(backend.predict(tiles))
                for k, col in enumerate(batch_cols):
                    weighted[:, offset:offset + tile_h, col:col + tile_w] += probabilities[k] * w
                    weights[offset:offset + tile_h, col:col + tile_w] += w
            done_tiles += len(cols)
            if progress:
                progress(done_tiles, total_tiles)
            if row_index == len(rows) - 1:
                flush(height)
    return SegmentationResult(*paths, counts, height, width)

