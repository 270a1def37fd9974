"""Prepare a Sentinel-2 product for a model: the manifest's bands, at its resolution, normalised.

L2A products are read directly: each band at its native resolution, resampled (bilinear) to the model's
ground resolution, in chunks of ``CHUNK_ROWS`` rows aligned with the JPEG 2000 tiles of ESA's products,
so each compressed tile row is decoded once (the tiles of a segmenter's strips overlap) and memory stays
bounded; the next chunk is read by a background thread (GDAL releases the interpreter lock, and decodes
with all cores) while the model works on this one. The scene classification (SCL, 20 m) gives the cloud
mask. L1C products go through ESA's Sen2Cor (``L2A_Process``) first when it is
installed; without it they fail with a message naming the tool, never fed silently to an L2A model.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine
from rasterio.enums import Resampling
from rasterio.windows import Window

from earthsignature.core.cog import CLOUD_MASK_NODATA
from earthsignature.core.manifest import ModelManifest
from earthsignature.core.product import REMOTE_READ_OPTIONS, Sentinel2Product
from earthsignature.core.readers import open_product
from earthsignature.core.sentinel2 import SCL_CLOUD_VALUES, band

SEN2COR = "L2A_Process"


class ProcessingError(RuntimeError):
    """A product that cannot be prepared for a model; the message says why and what to install."""


def to_l2a(product: Sentinel2Product, work_dir: Path) -> Sentinel2Product:
    """The L2A version of ``product``: itself, or Sen2Cor's output for an L1C product."""
    if product.level == "L2A":
        return product
    executable = shutil.which(SEN2COR)
    if executable is None:
        raise ProcessingError(
            f"{product.product_id} is L1C and the models read L2A: install ESA's Sen2Cor (the `{SEN2COR}` command) "
            "to convert it, or search L2A products only (monitor.product_types=[S2_MSI_L2A])")
    output = Path(tempfile.mkdtemp(prefix="sen2cor-", dir=work_dir))
    result = subprocess.run([executable, str(product.path), "--output_dir", str(output)], capture_output=True,
                            text=True, check=False)
    produced = sorted(output.glob("S2*_MSIL2A_*.SAFE"))
    if result.returncode != 0 or not produced:
        raise ProcessingError(f"Sen2Cor failed on {product.product_id}: {result.stderr.strip()[-800:]}")
    return open_product(produced[0])


#: Rows of the model grid read at once: ESA's 10 m bands are JPEG 2000 in 1024 x 1024 tiles.
CHUNK_ROWS = 1024


class ProductInput:
    """Windows of a product as a model sees them, read chunk by chunk ahead of use."""

    def __init__(self, product: Sentinel2Product, manifest: ModelManifest):
        if product.level != "L2A":
            raise ProcessingError(f"{product.product_id} is {product.level}; convert it with to_l2a() first")
        self.product, self.manifest = product, manifest
        reference = min(manifest.bands, key=lambda b: band(b).resolution)
        with rasterio.Env(**REMOTE_READ_OPTIONS), rasterio.open(product.band_path(reference)) as dataset:
            scale = manifest.resolution / dataset.res[0]
            self.height, self.width = round(dataset.height / scale), round(dataset.width / scale)
            self.transform = dataset.transform @ Affine.scale(scale)
            self.crs = dataset.crs.to_string()
        for name in manifest.bands:
            product.band_path(name)  # a missing band fails now, with the product's band list
        self._reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="product-reader")
        self._chunks: dict[tuple[str, int], Future] = {}

    def close(self) -> None:
        self._reader.shutdown(wait=True, cancel_futures=True)
        self._chunks.clear()

    def __enter__(self) -> ProductInput:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _read(self, name: str, row_off: int, rows: int, resampling: Resampling) -> np.ndarray:
        """Rows [row_off, row_off + rows) of a band on the model's grid."""
        with rasterio.Env(GDAL_NUM_THREADS="ALL_CPUS", **REMOTE_READ_OPTIONS), \
                rasterio.open(self.product.band_path(name)) as dataset:
            factor = dataset.height / self.height  # band pixels per model pixel
            window = Window(0, row_off * factor, dataset.width, rows * factor)
            return dataset.read(1, window=window, out_shape=(rows, self.width), resampling=resampling,
                                boundless=False)

    def strip(self, row_off: int, rows: int) -> tuple[np.ndarray, np.ndarray]:
        """Normalised bands [bands, rows, width] (float32) and the valid-pixel mask [rows, width].

        Digital numbers are harmonised to reflectance x 10000 first: products of processing baseline
        04.00 and later carry a +1000 offset (BOA_ADD_OFFSET -1000 in their metadata) that the training
        data (BigEarthNet v2) does not have, so the models expect the offset removed.
        """
        rows = min(rows, self.height - row_off)
        digital_numbers = self._rows("bands", row_off, rows)
        valid = (digital_numbers > 0).all(axis=0)
        harmonised = digital_numbers.astype(np.float32)  # one float copy, harmonised in place
        harmonised += self.product.offset
        np.maximum(harmonised, 0, out=harmonised)
        return self.manifest.normalize(harmonised), valid

    def cloud_mask(self, row_off: int, rows: int) -> np.ndarray:
        """1 where SCL says cloud, cloud shadow or cirrus, 0 elsewhere, 255 where SCL has no data."""
        rows = min(rows, self.height - row_off)
        scl = self._rows("SCL", row_off, rows)[0]
        mask = np.isin(scl, SCL_CLOUD_VALUES).astype(np.uint8)
        mask[scl == 0] = CLOUD_MASK_NODATA
        return mask

    def _rows(self, layer: str, row_off: int, rows: int) -> np.ndarray:
        """[bands, rows, width] digital numbers of ``layer`` ("bands": the manifest's, or "SCL"), put
        together from the cached chunks; the chunk after the last one used is read ahead."""
        first, last = row_off // CHUNK_ROWS, (row_off + rows - 1) // CHUNK_ROWS
        for stale in [key for key in self._chunks if key[0] == layer and key[1] < first]:
            del self._chunks[stale]  # the segmenter moves down the product: chunks above are done
        parts = []
        for k in range(first, last + 1):
            chunk = self._chunk(layer, k).result()
            start = max(row_off - k * CHUNK_ROWS, 0)
            stop = min(row_off + rows - k * CHUNK_ROWS, CHUNK_ROWS)
            parts.append(chunk[:, start:stop])
        self._chunk(layer, last + 1)
        return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=1)

    def _chunk(self, layer: str, k: int) -> Future:
        if (layer, k) not in self._chunks and k * CHUNK_ROWS < self.height:
            self._chunks[(layer, k)] = self._reader.submit(self._read_chunk, layer, k)
        return self._chunks.get((layer, k))

    def _read_chunk(self, layer: str, k: int) -> np.ndarray:
        row_off = k * CHUNK_ROWS
        rows = min(CHUNK_ROWS, self.height - row_off)
        if layer == "SCL":
            return self._read("SCL", row_off, rows, Resampling.nearest)[None]
        return np.stack([self._read(b, row_off, rows, Resampling.bilinear) for b in self.manifest.bands])
