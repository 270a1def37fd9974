"""Write Sentinel-2 L2A and L1C products in the real SAFE layout, filled with a synthetic scene.

The layout, names, metadata fields and band files follow ESA's SAFE_COMPACT format (processing baseline
05.00): ``MTD_MSIL2A.xml`` with acquisition times, footprint and cloud cover, ``GRANULE/<granule>/
MTD_TL.xml`` with the tile geocoding, and every band as a lossless JPEG 2000 file at its native
resolution in its real UTM CRS (L2A: ``IMG_DATA/R10m|R20m|R60m/T34SGH_<time>_B02_10m.jp2``, plus the
scene classification ``SCL`` at 20 m; L1C: ``IMG_DATA/T34SGH_<time>_B02.jp2``). Small products cover the
north-west corner of their tile, at the real resolutions.

Deliberate simplifications: only native-resolution bands are written (ESA also ships each band
resampled to the coarser grids), no TCI/AOT/WVP/QI rasters, no DATASTRIP metadata.
"""

from __future__ import annotations

import shutil
import zipfile
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cached_property
from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np
import rasterio
from rasterio.transform import from_origin

from earthsignature.core.nomenclature import clc_level3
from earthsignature.core.sentinel2 import (
    BOA_ADD_OFFSET,
    L1C_BANDS,
    L2A_BANDS,
    QUANTIFICATION_VALUE,
    RADIO_ADD_OFFSET,
    ProductName,
    band,
)
from earthsignature.core.tiling_grid import tile
from earthsignature.samples.synthetic import LabelField, SmoothField, cloud_signature, render_reflectance

BASE_RESOLUTION = 10
# 1024 x 1024 tiles as in ESA's products: windowed reads decode only the tiles they touch
_JP2_OPTIONS = {"QUALITY": "100", "REVERSIBLE": "YES", "BLOCKXSIZE": "1024", "BLOCKYSIZE": "1024"}
_SCL_FOR_FAMILY_OF = {1: 5, 2: 4, 3: 4, 4: 4, 5: 6}  # CLC level 1 -> SCL class
_SCL_CLOUD_HIGH = 9
_SCL_BARE_CODES = (131, 132, 133, 331, 332, 334)


@dataclass
class ProductSpec:
    """What to write: the product's identity and the scene inside it."""

    tile_id: str = "34SGH"
    sensing_time: datetime = datetime(2021, 8, 1, 9, 20, 31, tzinfo=UTC)
    level: str = "L2A"
    size: int = 1098  # pixels at 10 m; a multiple of 6 so the 20 m and 60 m grids align
    mission: str = "S2A"
    relative_orbit: int = 93
    baseline: str = "0500"
    seed: int = 0
    cloud_cover: float = 0.0  # percent of the valid area covered by clouds
    nodata_fraction: float = 0.0  # share of the width cut off by a diagonal swath edge (east side)
    codes: tuple[int, ...] = field(default_factory=lambda: tuple(clc_level3().codes))
    feature_size: float = 24.0
    #: a fire since the scene was drawn: a disk of "Burnt areas" (CLC 334) at (row, column), with a radius, as
    #: shares of the size; None: the scene as it is
    burn: tuple[float, float, float] | None = None

    def __post_init__(self) -> None:
        if self.level not in ("L2A", "L1C"):
            raise ValueError(f"level must be L2A or L1C, not {self.level!r}")
        if self.size <= 0 or self.size % 6:
            raise ValueError(f"size must be a positive multiple of 6 (10/20/60 m grids), not {self.size}")
        if not 0 <= self.cloud_cover <= 100:
            raise ValueError(f"cloud_cover is a percentage, got {self.cloud_cover}")
        tile(self.tile_id)  # validates the tile id

    @property
    def name(self) -> ProductName:
        return ProductName(self.mission, self.level, self.sensing_time, self.baseline, self.relative_orbit,
                           self.tile_id.upper().removeprefix("T"), self.sensing_time + timedelta(hours=3))

    @property
    def offset(self) -> int:
        """The digital-number offset ESA's metadata declares: -1000 from processing baseline 04.00, else none."""
        if self.baseline < "0400":
            return 0
        return BOA_ADD_OFFSET if self.level == "L2A" else RADIO_ADD_OFFSET

    @property
    def bands(self) -> tuple[str, ...]:
        return L2A_BANDS if self.level == "L2A" else L1C_BANDS

    @cached_property
    def scene(self) -> LabelField:
        """The true land cover (CLC level-3 codes), in 10 m base pixels."""
        return LabelField(self.size, self.size, self.codes, self.seed, self.feature_size)

    def labels(self, height: int, width: int, scale: int) -> np.ndarray:
        """The land cover (CLC level-3 codes) on a grid of ``scale`` base pixels, the burn included."""
        codes = self.scene.window(0, 0, height, width, scale)
        if self.burn is not None:
            row, col, radius = (share * self.size for share in self.burn)
            rows = (np.arange(height)[:, None] + 0.5) * scale
            cols = (np.arange(width)[None, :] + 0.5) * scale
            codes = np.where((rows - row) ** 2 + (cols - col) ** 2 < radius ** 2, 334, codes)
        return codes

    @cached_property
    def clouds(self) -> SmoothField:
        return SmoothField(self.size, self.size, scale=96.0, seed=self.seed + 7919)

    def nodata(self, row_off: int, col_off: int, height: int, width: int, scale: int) -> np.ndarray:
        """True outside the swath: a slanted edge across the east side."""
        if self.nodata_fraction <= 0:
            return np.zeros((height, width), dtype=bool)
        rows = (np.arange(row_off, row_off + height)[:, None] + 0.5) * scale
        cols = (np.arange(col_off, col_off + width)[None, :] + 0.5) * scale
        edge = self.size * (1 - self.nodata_fraction) + 0.25 * (rows - self.size / 2)
        return cols > edge

    def cloud_mask(self, height: int, width: int, scale: int) -> np.ndarray:
        """Cloudy pixels: the brightest ``cloud_cover`` percent of a smooth field."""
        if self.cloud_cover <= 0:
            return np.zeros((height, width), dtype=bool)
        field_values = self.clouds.window(0, 0, height, width, scale)
        threshold = np.quantile(self.clouds.window(0, 0, self.size // 6, self.size // 6, 6),
                                1 - self.cloud_cover / 100)
        return field_values > threshold


def write_product(out_dir: Path, spec: ProductSpec, zipped: bool = False) -> Path:
    """Write ``spec`` as ``<name>.SAFE`` (or ``<name>.zip`` holding it) in ``out_dir``; return the path."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    safe = out_dir / f"{spec.name}.SAFE"
    staging = out_dir / f".{spec.name}.SAFE.partial"
    shutil.rmtree(staging, ignore_errors=True)
    _SafeWriter(staging, spec).write()
    if zipped:
        archive = out_dir / f"{spec.name}.zip"
        _zip_folder(staging, archive, arcname=safe.name)
        shutil.rmtree(staging)
        return archive
    shutil.rmtree(safe, ignore_errors=True)
    staging.rename(safe)  # a reader never sees a half-written product
    return safe


def _zip_folder(folder: Path, archive: Path, arcname: str) -> None:
    partial = archive.with_suffix(".zip.partial")
    with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_STORED) as zf:
        for path in sorted(folder.rglob("*")):
            zf.write(path, Path(arcname) / path.relative_to(folder))
    partial.rename(archive)


class _SafeWriter:
    def __init__(self, root: Path, spec: ProductSpec):
        self.root = root
        self.spec = spec
        self.tile = tile(spec.tile_id)
        self.name = spec.name
        absolute_orbit = 31891 + int(spec.sensing_time.timestamp() // 86400) % 1000
        stamp = spec.sensing_time.strftime("%Y%m%dT%H%M%S")
        self.granule = f"{spec.level}_T{self.name.tile_id}_A{absolute_orbit:06d}_{stamp}"
        self.file_prefix = f"T{self.name.tile_id}_{stamp}"
        self.rng = np.random.default_rng(spec.seed + 1)
        self._labels: dict[int, np.ndarray] = {}
        self.image_files: list[str] = []

    def write(self) -> None:
        img_data = self.root / "GRANULE" / self.granule / "IMG_DATA"
        for band_name in self.spec.bands:
            self._write_band(img_data, band_name)
        valid, cloudy = 0, 0
        if self.spec.level == "L2A":
            scl = self._write_scl(img_data)
            valid = int((scl > 0).sum())
            cloudy = int((scl == _SCL_CLOUD_HIGH).sum())
        else:
            scale = 2
            shape = (self.spec.size // scale,) * 2
            nodata = self.spec.nodata(0, 0, *shape, scale)
            valid = int((~nodata).sum())
            cloudy = int((self.spec.cloud_mask(*shape, scale) & ~nodata).sum())
        cloud_percent = 100.0 * cloudy / valid if valid else 0.0
        for folder in ("DATASTRIP", "AUX_DATA", "HTML", "rep_info", f"GRANULE/{self.granule}/QI_DATA"):
            (self.root / folder).mkdir(parents=True, exist_ok=True)
        (self.root / f"MTD_MSI{self.spec.level}.xml").write_text(self._product_metadata(cloud_percent))
        (self.root / "GRANULE" / self.granule / "MTD_TL.xml").write_text(self._tile_metadata(cloud_percent))
        (self.root / "manifest.safe").write_text(self._manifest())
        (self.root / "INSPIRE.xml").write_text("<?xml version='1.0' encoding='UTF-8'?><gmd:MD_Metadata "
                                               "xmlns:gmd='http://www.isotc211.org/2005/gmd'/>\n")

    # -- rasters ----------------------------------------------------------------------------------

    def _labels_at(self, resolution: int) -> np.ndarray:
        if resolution not in self._labels:
            scale = resolution // BASE_RESOLUTION
            n = self.spec.size // scale
            self._labels[resolution] = self.spec.labels(n, n, scale)
        return self._labels[resolution]

    def _band_path(self, img_data: Path, band_name: str, resolution: int) -> Path:
        if self.spec.level == "L2A":
            return img_data / f"R{resolution}m" / f"{self.file_prefix}_{band_name}_{resolution}m.jp2"
        return img_data / f"{self.file_prefix}_{band_name}.jp2"

    def _write_jp2(self, path: Path, data: np.ndarray, resolution: int) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        profile = {
            "driver": "JP2OpenJPEG", "width": data.shape[1], "height": data.shape[0], "count": 1,
            "dtype": data.dtype.name, "crs": self.tile.crs,
            "transform": from_origin(self.tile.ulx, self.tile.uly, resolution, resolution),
            **_JP2_OPTIONS,
        }
        with rasterio.open(path, "w", **profile) as dataset:
            dataset.write(data, 1)
        self.image_files.append(str(path.relative_to(self.root).with_suffix("")))

    def _write_band(self, img_data: Path, band_name: str) -> None:
        resolution = band(band_name).resolution
        scale = resolution // BASE_RESOLUTION
        labels = self._labels_at(resolution)
        reflectance = render_reflectance(labels, band_name, self.rng)
        clouds = self.spec.cloud_mask(*labels.shape, scale)
        reflectance[clouds] = 0.35 * reflectance[clouds] + 0.65 * cloud_signature(band_name)
        dn = np.clip(np.rint(reflectance * QUANTIFICATION_VALUE - self.spec.offset), 1, 65535).astype(np.uint16)
        dn[self.spec.nodata(0, 0, *labels.shape, scale)] = 0
        self._write_jp2(self._band_path(img_data, band_name, resolution), dn, resolution)

    def _write_scl(self, img_data: Path) -> np.ndarray:
        labels = self._labels_at(20)
        scl = np.full(labels.shape, 5, dtype=np.uint8)
        for level1, value in _SCL_FOR_FAMILY_OF.items():
            scl[labels // 100 == level1] = value
        scl[np.isin(labels, _SCL_BARE_CODES)] = 5
        scl[labels == 335] = 11
        scl[self.spec.cloud_mask(*labels.shape, 2)] = _SCL_CLOUD_HIGH
        scl[self.spec.nodata(0, 0, *labels.shape, 2)] = 0
        self._write_jp2(self._band_path(img_data, "SCL", 20), scl, 20)
        return scl

    # -- metadata ---------------------------------------------------------------------------------

    def _footprint(self) -> list[tuple[float, float]]:
        extent = self.spec.size * BASE_RESOLUTION
        return self.tile.footprint_lonlat(extent, extent)

    def _product_metadata(self, cloud_percent: float) -> str:
        spec, level = self.spec, self.spec.level
        start = spec.sensing_time.strftime("%Y-%m-%dT%H:%M:%S.024Z")
        stop = (spec.sensing_time + timedelta(seconds=5)).strftime("%Y-%m-%dT%H:%M:%S.024Z")
        positions = " ".join(f"{lat:.6f} {lon:.6f}" for lon, lat in self._footprint())
        files = "\n".join(f"            <IMAGE_FILE>{escape(f)}</IMAGE_FILE>" for f in self.image_files)
        offsets_tag = "BOA_ADD_OFFSET" if level == "L2A" else "RADIO_ADD_OFFSET"
        offsets = "\n".join(
            f'        <{offsets_tag} band_id="{i}">{spec.offset}</{offsets_tag}>' for i in range(len(spec.bands))
        )
        # products before baseline 04.00 have no offsets list
        offsets_list = (f"<{offsets_tag}_VALUES_LIST>\n{offsets}\n      </{offsets_tag}_VALUES_LIST>"
                        if spec.offset else "")
        spectral = "\n".join(
            f'        <Spectral_Information bandId="{i}" physicalBand="{b}"><RESOLUTION>'
            f"{band(b).resolution}</RESOLUTION><Wavelength><CENTRAL unit=\"nm\">{band(b).wavelength_nm}"
            "</CENTRAL></Wavelength></Spectral_Information>"
            for i, b in enumerate(spec.bands)
        )
        quantification = (
            f'<QUANTIFICATION_VALUES_LIST><BOA_QUANTIFICATION_VALUE unit="none">{QUANTIFICATION_VALUE}'
            "</BOA_QUANTIFICATION_VALUE></QUANTIFICATION_VALUES_LIST>"
            if level == "L2A"
            else f'<QUANTIFICATION_VALUE unit="none">{QUANTIFICATION_VALUE}</QUANTIFICATION_VALUE>'
        )
        product_type = "S2MSI2A" if level == "L2A" else "S2MSI1C"
        root = f"Level-{level[1:]}_User_Product"
        return f"""<?xml version="1.0" encoding="UTF-8"?>
<n1:{root} xmlns:n1="https://psd-14.sentinel2.eo.esa.int/PSD/User_Product_{root.split('_')[0]}.xsd">
  <n1:General_Info>
    <Product_Info>
      <PRODUCT_START_TIME>{start}</PRODUCT_START_TIME>
      <PRODUCT_STOP_TIME>{stop}</PRODUCT_STOP_TIME>
      <PRODUCT_URI>{self.name}.SAFE</PRODUCT_URI>
      <PROCESSING_LEVEL>Level-{level[1:]}</PROCESSING_LEVEL>
      <PRODUCT_TYPE>{product_type}</PRODUCT_TYPE>
      <PROCESSING_BASELINE>{spec.name.processing_baseline}</PROCESSING_BASELINE>
      <GENERATION_TIME>{self.name.discriminator.strftime("%Y-%m-%dT%H:%M:%S.000000Z")}</GENERATION_TIME>
      <Datatake datatakeIdentifier="G{spec.mission}_{spec.sensing_time:%Y%m%dT%H%M%S}_N{spec.baseline}">
        <SPACECRAFT_NAME>Sentinel-2{spec.mission[-1]}</SPACECRAFT_NAME>
        <DATATAKE_TYPE>INS-NOBS</DATATAKE_TYPE>
        <DATATAKE_SENSING_START>{start}</DATATAKE_SENSING_START>
        <SENSING_ORBIT_NUMBER>{spec.relative_orbit}</SENSING_ORBIT_NUMBER>
        <SENSING_ORBIT_DIRECTION>DESCENDING</SENSING_ORBIT_DIRECTION>
      </Datatake>
      <Query_Options completeSingleTile="true"><PRODUCT_FORMAT>SAFE_COMPACT</PRODUCT_FORMAT></Query_Options>
      <Product_Organisation>
        <Granule_List>
          <Granule granuleIdentifier="{self.granule}" imageFormat="JPEG2000">
{files}
          </Granule>
        </Granule_List>
      </Product_Organisation>
    </Product_Info>
    <Product_Image_Characteristics>
      {quantification}
      {offsets_list}
      <Spectral_Information_List>
{spectral}
      </Spectral_Information_List>
    </Product_Image_Characteristics>
  </n1:General_Info>
  <n1:Geometric_Info>
    <Product_Footprint>
      <Product_Footprint>
        <Global_Footprint>
          <EXT_POS_LIST>{positions}</EXT_POS_LIST>
        </Global_Footprint>
      </Product_Footprint>
      <RASTER_CS_TYPE>POINT</RASTER_CS_TYPE>
      <PIXEL_ORIGIN>1</PIXEL_ORIGIN>
    </Product_Footprint>
    <Coordinate_Reference_System>
      <GEO_TABLES version="1">EPSG</GEO_TABLES>
      <HORIZONTAL_CS_TYPE>GEOGRAPHIC</HORIZONTAL_CS_TYPE>
    </Coordinate_Reference_System>
  </n1:Geometric_Info>
  <n1:Quality_Indicators_Info>
    <Cloud_Coverage_Assessment>{cloud_percent:.6f}</Cloud_Coverage_Assessment>
  </n1:Quality_Indicators_Info>
</n1:{root}>
"""

    def _tile_metadata(self, cloud_percent: float) -> str:
        sizes = "\n".join(
            f'      <Size resolution="{r}"><NROWS>{self.spec.size * 10 // r}</NROWS>'
            f"<NCOLS>{self.spec.size * 10 // r}</NCOLS></Size>"
            for r in (10, 20, 60)
        )
        positions = "\n".join(
            f'      <Geoposition resolution="{r}">'
            f"<ULX>{self.tile.ulx:.0f}</ULX><ULY>{self.tile.uly:.0f}</ULY>"
            f"<XDIM>{r}</XDIM><YDIM>-{r}</YDIM></Geoposition>"
            for r in (10, 20, 60)
        )
        level = self.spec.level
        return f"""<?xml version="1.0" encoding="UTF-8"?>
<n1:Level-{level[1:]}_Tile_ID xmlns:n1="https://psd-14.sentinel2.eo.esa.int/PSD/S2_PDI_Level-{level[1:]}_Tile_Metadata.xsd">
  <n1:General_Info>
    <TILE_ID>{self.spec.mission}_OPER_MSI_{level}_TL_T{self.name.tile_id}_N{self.spec.baseline}</TILE_ID>
    <SENSING_TIME>{self.spec.sensing_time.strftime("%Y-%m-%dT%H:%M:%S.024Z")}</SENSING_TIME>
  </n1:General_Info>
  <n1:Geometric_Info>
    <Tile_Geocoding>
      <HORIZONTAL_CS_NAME>WGS84 / UTM zone {self.tile.zone:02d}{self.tile.hemisphere}</HORIZONTAL_CS_NAME>
      <HORIZONTAL_CS_CODE>EPSG:{self.tile.epsg}</HORIZONTAL_CS_CODE>
{sizes}
{positions}
    </Tile_Geocoding>
  </n1:Geometric_Info>
  <n1:Quality_Indicators_Info>
    <Image_Content_QI><CLOUDY_PIXEL_PERCENTAGE>{cloud_percent:.6f}</CLOUDY_PIXEL_PERCENTAGE></Image_Content_QI>
  </n1:Quality_Indicators_Info>
</n1:Level-{level[1:]}_Tile_ID>
"""

    def _manifest(self) -> str:
        objects = "\n".join(
            f'    <dataObject ID="{Path(f).name}"><byteStream mimeType="application/octet-stream">'
            f'<fileLocation locatorType="URL" href="./{escape(f)}.jp2"/></byteStream></dataObject>'
            for f in self.image_files
        )
        version = f"esa/safe/sentinel/1.1/sentinel-2/msi/archive_l{self.spec.level[1:].lower()}_user_product"
        return f"""<?xml version="1.0" encoding="UTF-8"?>
<xfdu:XFDU xmlns:xfdu="urn:ccsds:schema:xfdu:1" version="{version}">
  <metadataSection>
    <metadataObject ID="S2_Level-{self.spec.level[1:]}_Product_Metadata"><metadataWrap mimeType="text/xml">
      <xmlData><PRODUCT_URI>{self.name}.SAFE</PRODUCT_URI></xmlData></metadataWrap></metadataObject>
  </metadataSection>
  <dataObjectSection>
{objects}
  </dataObjectSection>
</xfdu:XFDU>
"""
