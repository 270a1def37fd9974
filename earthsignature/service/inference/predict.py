"""Segment a small GeoTIFF with an inference backend: the model service's smallest end-to-end use.

The monitor's full-product segmenter (tiles, overlap, blending, streaming) builds on the same pieces;
this one reads the whole image, runs it as a single tile and writes the class map with the manifest's
color table.

Digital numbers of processing baseline 04.00 and later carry a +1000 offset that the models do not expect.
A GeoTIFF says so, if at all, in its tags (``BOA_ADD_OFFSET``/``RADIO_ADD_OFFSET``, as GDAL's Sentinel-2
driver writes them, or ``PROCESSING_BASELINE``) or in its bands' scale and offset (0.0001 and -0.1, as
Earth Search's COGs declare); ``offset`` overrides them, and an image that says nothing is read as
offset-free with a warning.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import rasterio

from earthsignature.core.sentinel2 import BOA_ADD_OFFSET
from earthsignature.service.inference.backends import InferenceBackend

log = logging.getLogger(__name__)


def read_bands(path: Path, bands: tuple[str, ...]) -> tuple[np.ndarray, dict]:
    """The manifest's bands from a GeoTIFF, by band description, else in file order."""
    with rasterio.open(path) as dataset:
        descriptions = dataset.descriptions
        if all(descriptions) and set(bands) <= set(descriptions):
            indexes = [descriptions.index(b) + 1 for b in bands]
        elif dataset.count == len(bands):
            indexes = list(range(1, dataset.count + 1))
        else:
            raise ValueError(f"{path} has bands {descriptions or dataset.count}; the model needs {', '.join(bands)}")
        return dataset.read(indexes), dataset.profile


def digital_number_offset(path: Path) -> int | None:
    """The offset the image's digital numbers carry, from its own metadata; None when it does not say."""
    with rasterio.open(path) as dataset:
        tags = {**dataset.tags(), **{k: v for i in dataset.indexes for k, v in dataset.tags(i).items()}}
        scales, offsets = dataset.scales, dataset.offsets
    for name in ("BOA_ADD_OFFSET", "RADIO_ADD_OFFSET"):
        if name in tags:
            return int(float(tags[name]))
    if tags.get("PROCESSING_BASELINE"):
        return BOA_ADD_OFFSET if float(tags["PROCESSING_BASELINE"]) >= 4.0 else 0
    if any(offset != 0 for offset in offsets) and all(scale > 0 for scale in scales):
        return round(offsets[0] / scales[0])
    return None


def predict_geotiff(backend: InferenceBackend, image: Path, output: Path,
                    offset: int | None = None) -> dict[str, float]:
    """Write the class map of ``image`` to ``output``; return the share of each predicted class.

    ``offset``: added to the digital numbers (-1000 for raw products of baseline 04.00 and later); None:
    from the image's metadata, else 0 with a warning."""
    manifest = backend.manifest
    digital_numbers, profile = read_bands(image, manifest.bands)
    if offset is None:
        offset = digital_number_offset(image)
    if offset is None:
        log.warning("%s does not say whether its digital numbers carry the +1000 offset of processing baseline "
                    "04.00 and later: read as offset-free; pass --offset -1000 for such raw products", image.name)
        offset = 0
    harmonised = np.maximum(digital_numbers.astype(np.float32) + offset, 0)
    scores = backend.predict(manifest.normalize(harmonised)[None])  # probabilities or logits: same argmax
    classes = scores[0].argmax(axis=0).astype(np.uint8)
    profile.update(count=1, dtype="uint8", nodata=None, compress="deflate")
    output.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(output, "w", **profile) as dataset:
        dataset.write(classes, 1)
        dataset.write_colormap(1, manifest.colormap())
    counts = np.bincount(classes.ravel(), minlength=manifest.num_classes)
    order = np.argsort(counts)[::-1]
    return {manifest.classes[i].name: counts[i] / classes.size for i in order if counts[i]}
