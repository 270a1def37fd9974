"""Synthetic scenes and writers of the real on-disk formats.

Every data set a writer makes carries ``SYNTHETIC-DATA.txt`` at its root, so what is trained on it knows,
and says (the model card in the manifest, the registry and every API response), that it never saw real
Sentinel-2 data.
"""

from __future__ import annotations

from pathlib import Path

SYNTHETIC_MARKER = "SYNTHETIC-DATA.txt"


def mark_synthetic(root: Path, writer: str) -> None:
    (Path(root) / SYNTHETIC_MARKER).write_text(
        f"Synthetic data written by {writer} (EarthSignature's fixture writers): no real satellite data.\n")


def data_kind(root: Path) -> str:
    """"synthetic" for a data set a fixture writer made, else "real"."""
    return "synthetic" if (Path(root) / SYNTHETIC_MARKER).exists() else "real"
