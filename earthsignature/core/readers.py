"""Open a Sentinel-2 product in whichever layout it comes: the one entry point of the product readers."""

from __future__ import annotations

from pathlib import Path

from earthsignature.core.product import ProductError, Sentinel2Product
from earthsignature.core.safe import read_safe
from earthsignature.core.stac_item import read_stac_item


def open_product(location: str | Path) -> Sentinel2Product:
    """A ``.SAFE`` folder or zip (JPEG 2000 or SAFE-structured COGs), or a STAC item with per-band COG
    assets (a ``.json`` file or an http(s) URL)."""
    text = str(location)
    if text.startswith(("http://", "https://")) or text.endswith(".json"):
        return read_stac_item(text)
    if not Path(text).exists():
        raise ProductError(f"{text}: no such product")
    return read_safe(text)
