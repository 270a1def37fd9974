"""Synthetic scenes and writers of the real on-disk formats.

Every data set a writer makes carries a marker at its root (``core.layout.DatasetFolder``), so what is
trained on it knows, and says (the model card in the manifest, the registry and every API response), that
it never saw real Sentinel-2 data. Tests, the demo and the smoke experiments' entry points
(``embedded.fixtures``) call the writers; the production path (data, models, train, export, services)
never imports them.
"""

from __future__ import annotations

from pathlib import Path

from earthsignature.core.layout import DatasetFolder


def mark_synthetic(root: Path, writer: str) -> None:
    DatasetFolder(Path(root)).synthetic_marker.write_text(
        f"Synthetic data written by {writer} (EarthSignature's fixture writers): no real satellite data.\n")
