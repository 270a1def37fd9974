"""Segment a small GeoTIFF with an inference backend: the model service's smallest end-to-end use.

The monitor's full-product segmenter (tiles, overlap, blending, streaming) builds on the same pieces;
this one reads the whole image, runs it as a single tile and writes the class map with the manifest's
color table.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import rasterio

from earthsignature.service.inference.backends import InferenceBackend


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


def predict_geotiff(backend: InferenceBackend, image: Path, output: Path) -> dict[str, float]:
    """Write the class map of ``image`` to ``output``; return the share of each predicted class."""
    manifest = backend.manifest
    digital_numbers, profile = read_bands(image, manifest.bands)
    scores = backend.predict(manifest.normalize(digital_numbers)[None])  # probabilities or logits: same argmax
    classes = scores[0].argmax(axis=0).astype(np.uint8)
    profile.update(count=1, dtype="uint8", nodata=None, compress="deflate")
    output.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(output, "w", **profile) as dataset:
        dataset.write(classes, 1)
        dataset.write_colormap(1, manifest.colormap())
    counts = np.bincount(classes.ravel(), minlength=manifest.num_classes)
    order = np.argsort(counts)[::-1]
    return {manifest.classes[i].name: counts[i] / classes.size for i in order if counts[i]}
