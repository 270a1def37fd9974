"""Read Sentinel-2 SAFE products (L2A and L1C, folders or zips): metadata and band files.

``SafeProduct.open(path)`` parses the product name, ``MTD_MSIL2A.xml``/``MTD_MSIL1C.xml`` (acquisition
times, footprint, cloud cover, radiometric offsets) and the granule's ``MTD_TL.xml`` (CRS), and finds
every band file. Bands are read with rasterio, windowed and resampled; zipped products are read in
place through GDAL's ``/vsizip/``.
"""

from __future__ import annotations

import re
import zipfile
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from xml.etree import ElementTree

import numpy as np
import rasterio
from rasterio.enums import Resampling
from rasterio.windows import Window
from shapely.geometry import Polygon

from earthsignature.core.sentinel2 import QUANTIFICATION_VALUE, ProductName, band

_BAND_FILE = re.compile(r"_(B\d[\dA]|SCL)(?:_(\d{2})m)?\.jp2$")


class ProductError(ValueError):
    """A product that is not a readable Sentinel-2 SAFE product; the message says what is wrong."""


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


@dataclass(frozen=True)
class SafeProduct:
    """A Sentinel-2 product on disk and what its metadata says."""

    path: Path
    name: ProductName
    start_time: datetime
    stop_time: datetime
    footprint: Polygon  # lon/lat, EPSG:4326
    cloud_cover: float  # percent
    epsg: int
    #: band name -> GDAL path of its native-resolution file ("B02", ..., "SCL")
    band_files: dict[str, str] = field(repr=False)
    quantification: int = QUANTIFICATION_VALUE
    offset: int = 0  # BOA_ADD_OFFSET (L2A) or RADIO_ADD_OFFSET (L1C)

    @property
    def level(self) -> str:
        return self.name.level

    @property
    def product_id(self) -> str:
        return str(self.name)

    @property
    def tile_id(self) -> str:
        return self.name.tile_id

    @classmethod
    def open(cls, path: str | Path) -> SafeProduct:
        path = Path(path)
        if not path.exists():
            raise ProductError(f"{path}: no such product")
        files = _ProductFiles(path)
        name = ProductName.parse(files.safe_name)
        metadata = files.xml(f"MTD_MSI{name.level}.xml")
        granules = [f for f in files.names if f.startswith("GRANULE/") and f.endswith("/MTD_TL.xml")]
        if not granules:
            raise ProductError(f"{path}: no GRANULE/*/MTD_TL.xml")
        tile_metadata = files.xml(granules[0])
        crs_code = _find_text(tile_metadata, "HORIZONTAL_CS_CODE") or ""
        band_files = {}
        for relative in files.names:
            match = _BAND_FILE.search(relative)
            if match and "/IMG_DATA/" in relative:
                band_name, resolution = match.group(1), match.group(2)
                native_resolution = 20 if band_name == "SCL" else band(band_name).resolution
                if resolution is None or int(resolution) == native_resolution:
                    band_files[band_name] = files.gdal_path(relative)
        offset_tag = "BOA_ADD_OFFSET" if name.level == "L2A" else "RADIO_ADD_OFFSET"
        quantification = _find_text(metadata, "BOA_QUANTIFICATION_VALUE") or _find_text(
            metadata, "QUANTIFICATION_VALUE")
        try:
            return cls(
                path=path,
                name=name,
                start_time=_parse_time(_require(metadata, "PRODUCT_START_TIME", path)),
                stop_time=_parse_time(_require(metadata, "PRODUCT_STOP_TIME", path)),
                footprint=_footprint(_require(metadata, "EXT_POS_LIST", path)),
                cloud_cover=float(_require(metadata, "Cloud_Coverage_Assessment", path)),
                epsg=int(crs_code.split(":")[-1]),
                band_files=band_files,
                quantification=int(float(quantification or QUANTIFICATION_VALUE)),
                offset=int(_find_text(metadata, offset_tag) or 0),
            )
        except ValueError as error:
            raise ProductError(f"{path}: unreadable metadata: {error}") from error

    def band_path(self, band_name: str) -> str:
        try:
            return self.band_files[band_name]
        except KeyError:
            raise ProductError(
                f"{self.product_id} has no band {band_name}; it has {', '.join(sorted(self.band_files))}"
            ) from None

    def read(self, band_name: str, window: Window | None = None, out_shape: tuple[int, int] | None = None,
             resampling: Resampling = Resampling.bilinear) -> np.ndarray:
        """Digital numbers of one band, optionally windowed and resampled to ``out_shape``."""
        with rasterio.open(self.band_path(band_name)) as dataset:
            return dataset.read(1, window=window, out_shape=out_shape, resampling=resampling)

    def reflectance(self, dn: np.ndarray) -> np.ndarray:
        """Surface (L2A) or top-of-atmosphere (L1C) reflectance from digital numbers; 0 (no data) -> NaN."""
        values = (dn.astype(np.float32) + self.offset) / self.quantification
        values[dn == 0] = np.nan
        return values


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
