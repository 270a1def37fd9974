"""Read Sentinel-2 SAFE products (L2A and L1C, folders or zips) into a ``Sentinel2Product``.

``read_safe(path)`` parses the product name, ``MTD_MSIL2A.xml``/``MTD_MSIL1C.xml`` (acquisition times,
footprint, cloud cover, processing baseline, radiometric offsets) and the granule's ``MTD_TL.xml`` (CRS),
and finds every band file: ESA's JPEG 2000 or the Cloud-Optimized GeoTIFFs of SAFE-structured COG
products (Planetary Computer). Zipped products are read in place through GDAL's ``/vsizip/``.
"""

from __future__ import annotations

import re
import zipfile
from datetime import datetime
from pathlib import Path
from xml.etree import ElementTree

from shapely.geometry import Polygon

from earthsignature.core.product import ProductError, Sentinel2Product, footprint_lonlat
from earthsignature.core.sentinel2 import QUANTIFICATION_VALUE, ProductName, band

_BAND_FILE = re.compile(r"_(B\d[\dA]|SCL)(?:_(\d{2})m)?\.(?:jp2|tif|tiff)$", re.IGNORECASE)


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _find_text(root: ElementTree.Element, name: str) -> str | None:
    """Text of the first element with local name ``name`` (SAFE metadata mixes namespaces)."""
    for element in root.iter():
        if _local(element.tag) == name:
            return (element.text or "").strip()
    return None


def _parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def read_safe(path: str | Path) -> Sentinel2Product:
    """The product in a .SAFE folder or a zip holding one; ``ProductError`` names what is missing."""
    path = Path(path)
    if not path.exists():
        raise ProductError(f"{path}: no such product")
    files = _ProductFiles(path)
    try:
        name = ProductName.parse(files.safe_name)
    except ValueError as error:
        raise ProductError(f"{path}: {error}") from None
    metadata = files.xml(f"MTD_MSI{name.level}.xml")
    granules = [f for f in files.names if f.startswith("GRANULE/") and f.endswith("/MTD_TL.xml")]
    if not granules:
        raise ProductError(f"{path}: no GRANULE/*/MTD_TL.xml")
    tile_metadata = files.xml(granules[0])
    offset_tag = "BOA_ADD_OFFSET" if name.level == "L2A" else "RADIO_ADD_OFFSET"
    quantification = _find_text(metadata, "BOA_QUANTIFICATION_VALUE") or _find_text(metadata, "QUANTIFICATION_VALUE")
    try:
        return Sentinel2Product(
            location=str(path), layout="SAFE", product_id=str(name), mission=name.mission, level=name.level,
            tile_id=name.tile_id,
            processing_baseline=_find_text(metadata, "PROCESSING_BASELINE") or name.processing_baseline,
            start_time=_parse_time(_require(metadata, "PRODUCT_START_TIME", path)),
            stop_time=_parse_time(_require(metadata, "PRODUCT_STOP_TIME", path)),
            footprint=footprint_lonlat(_footprint(_require(metadata, "EXT_POS_LIST", path)), str(name)),
            cloud_cover=float(_require(metadata, "Cloud_Coverage_Assessment", path)),
            epsg=int((_find_text(tile_metadata, "HORIZONTAL_CS_CODE") or "").split(":")[-1]),
            band_files=_band_files(files),
            quantification=int(float(quantification or QUANTIFICATION_VALUE)),
            # products before baseline 04.00 carry no offset element: their digital numbers have none
            offset=int(float(_find_text(metadata, offset_tag) or 0)),
        )
    except ValueError as error:
        if isinstance(error, ProductError):
            raise
        raise ProductError(f"{path}: unreadable metadata: {error}") from error


def _band_files(files: _ProductFiles) -> dict[str, str]:
    """Band name -> GDAL path of the file at the band's native resolution (L2A has several)."""
    found = {}
    for relative in files.names:
        match = _BAND_FILE.search(relative)
        if match and "/IMG_DATA/" in relative:
            band_name, resolution = match.group(1).upper(), match.group(2)
            native_resolution = 20 if band_name == "SCL" else band(band_name).resolution
            if resolution is None or int(resolution) == native_resolution:
                found[band_name] = files.gdal_path(relative)
    return found


def _require(root: ElementTree.Element, name: str, path: Path) -> str:
    text = _find_text(root, name)
    if not text:
        raise ProductError(f"{path}: metadata has no {name}")
    return text


def _footprint(ext_pos_list: str) -> Polygon:
    """``EXT_POS_LIST`` is "lat lon lat lon ..." (closed ring); shapely wants (lon, lat)."""
    values = [float(v) for v in ext_pos_list.split()]
    return Polygon(list(zip(values[1::2], values[0::2], strict=True)))


class _ProductFiles:
    """Uniform access to the files of a .SAFE folder or a zip holding one."""

    def __init__(self, path: Path):
        self.path = path
        if path.is_dir():
            self.root, self._zip = path, None
            self.names = sorted(str(p.relative_to(path)) for p in path.rglob("*") if p.is_file())
            self.safe_name = path.name
            return
        if not zipfile.is_zipfile(path):
            raise ProductError(f"{path}: neither a .SAFE folder nor a zip archive")
        self._zip = zipfile.ZipFile(path)
        members = self._zip.namelist()
        safe_dirs = {m.split("/", 1)[0] for m in members if m.split("/", 1)[0].endswith(".SAFE")}
        if len(safe_dirs) != 1:
            raise ProductError(f"{path}: expected one .SAFE folder in the zip, found {sorted(safe_dirs)}")
        self.safe_name = safe_dirs.pop()
        prefix = self.safe_name + "/"
        self.names = sorted(m[len(prefix):] for m in members if m.startswith(prefix) and not m.endswith("/"))

    def xml(self, relative: str) -> ElementTree.Element:
        try:
            if self._zip is None:
                return ElementTree.parse(self.root / relative).getroot()
            with self._zip.open(f"{self.safe_name}/{relative}") as handle:
                return ElementTree.parse(handle).getroot()
        except (FileNotFoundError, KeyError):
            raise ProductError(f"{self.path}: missing {relative}") from None
        except ElementTree.ParseError as error:
            raise ProductError(f"{self.path}: {relative} is not valid XML ({error})") from None

    def gdal_path(self, relative: str) -> str:
        if self._zip is None:
            return str(self.root / relative)
        return f"/vsizip/{self.path.resolve()}/{self.safe_name}/{relative}"
