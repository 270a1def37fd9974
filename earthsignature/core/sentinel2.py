"""Sentinel-2 MSI facts shared by the product writer, the product reader and the models.

Bands and their ground resolutions, the SAFE product naming convention, and the geometry of the
Sentinel-2 tiling grid (MGRS 100 km squares in UTM, tiles of 109.8 km).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

from pyproj import CRS, Transformer


@dataclass(frozen=True)
class Band:
    name: str
    resolution: int  # metres
    wavelength_nm: int


#: The 13 MSI bands in the order ESA numbers them.
BANDS: tuple[Band, ...] = (
    Band("B01", 60, 443), Band("B02", 10, 490), Band("B03", 10, 560), Band("B04", 10, 665),
    Band("B05", 20, 705), Band("B06", 20, 740), Band("B07", 20, 783), Band("B08", 10, 842),
    Band("B8A", 20, 865), Band("B09", 60, 945), Band("B10", 60, 1375), Band("B11", 20, 1610),
    Band("B12", 20, 2190),
)
BANDS_BY_NAME = {b.name: b for b in BANDS}
#: L2A products drop the cirrus band B10 (it only feeds the atmospheric correction).
L2A_BANDS = tuple(b.name for b in BANDS if b.name != "B10")
L1C_BANDS = tuple(b.name for b in BANDS)
#: The seed's model input: the four 10 m bands.
RGBN_BANDS = ("B02", "B03", "B04", "B08")
#: Digital numbers are reflectance * QUANTIFICATION_VALUE (+ offset from processing baseline 04.00).
QUANTIFICATION_VALUE = 10000
BOA_ADD_OFFSET = -1000
RADIO_ADD_OFFSET = -1000

#: Scene classification (SCL) values of L2A products.
SCL_CLASSES = {
    0: "No data", 1: "Saturated or defective", 2: "Dark area pixels", 3: "Cloud shadows",
    4: "Vegetation", 5: "Not vegetated", 6: "Water", 7: "Unclassified",
    8: "Cloud medium probability", 9: "Cloud high probability", 10: "Thin cirrus", 11: "Snow",
}
SCL_CLOUD_VALUES = (3, 8, 9, 10)


def band(name: str) -> Band:
    try:
        return BANDS_BY_NAME[name.upper()]
    except KeyError:
        raise ValueError(f"unknown Sentinel-2 band {name!r}; bands are {', '.join(BANDS_BY_NAME)}") from None


# --- product names ---------------------------------------------------------------------------------

#: MGRS tile id: UTM zone, latitude band, 100 km column and row letters (never I or O).
_TILE_ID = r"\d{2}[C-HJ-NP-X][A-HJ-NP-Z][A-HJ-NP-V]"


def is_tile_id(text: str) -> bool:
    """Whether ``text`` names an MGRS tile as people write it: ``34SGH``, ``T34SGH``, any case."""
    return re.fullmatch("T?" + _TILE_ID, text.upper()) is not None
_PRODUCT_NAME = re.compile(
    r"^(?P<mission>S2[ABCD])_MSI(?P<level>L1C|L2A)_(?P<sensing>\d{8}T\d{6})_N(?P<baseline>\d{4})_"
    r"R(?P<orbit>\d{3})_T(?P<tile>" + _TILE_ID + r")_(?P<discriminator>\d{8}T\d{6})(?:\.SAFE)?(?:\.zip)?$"
)
_TIME_FORMAT = "%Y%m%dT%H%M%S"


@dataclass(frozen=True)
class ProductName:
    """The parts of ``S2A_MSIL2A_20210801T092031_N0500_R093_T34SGH_20210801T122519``."""

    mission: str
    level: str  # "L2A" or "L1C"
    sensing_time: datetime
    baseline: str
    relative_orbit: int
    tile_id: str
    discriminator: datetime

    @classmethod
    def parse(cls, name: str) -> ProductName:
        match = _PRODUCT_NAME.match(name.rstrip("/").rsplit("/", 1)[-1])
        if not match:
            raise ValueError(
                f"{name!r} is not a Sentinel-2 product name "
                "(expected S2X_MSIL2A_YYYYMMDDTHHMMSS_Nxxxx_Rxxx_Txxxxx_YYYYMMDDTHHMMSS)"
            )
        parts = match.groupdict()
        return cls(
            mission=parts["mission"],
            level=parts["level"],
            sensing_time=datetime.strptime(parts["sensing"], _TIME_FORMAT).replace(tzinfo=UTC),
            baseline=parts["baseline"],
            relative_orbit=int(parts["orbit"]),
            tile_id=parts["tile"],
            discriminator=datetime.strptime(parts["discriminator"], _TIME_FORMAT).replace(tzinfo=UTC),
        )

    @property
    def processing_baseline(self) -> str:
        """The baseline as the metadata write it: ``N0509`` -> ``05.09``."""
        return f"{self.baseline[:2]}.{self.baseline[2:]}"

    def __str__(self) -> str:
        return (
            f"{self.mission}_MSI{self.level}_{self.sensing_time.strftime(_TIME_FORMAT)}_N{self.baseline}_"
            f"R{self.relative_orbit:03d}_T{self.tile_id}_{self.discriminator.strftime(_TIME_FORMAT)}"
        )


# --- MGRS / Sentinel-2 tiling grid ----------------------------------------------------------------

TILE_SIZE_M = 109_800
_COLUMN_SETS = ("ABCDEFGH", "JKLMNPQR", "STUVWXYZ")
_ROW_LETTERS = "ABCDEFGHJKLMNPQRSTUV"
_BAND_LETTERS = "CDEFGHJKLMNPQRSTUVWX"
#: Lowest northing (m) of each northern latitude band, to place the 2000 km row-letter cycle.
_BAND_MIN_NORTHING = {
    "N": 0, "P": 800_000, "Q": 1_700_000, "R": 2_600_000, "S": 3_500_000, "T": 4_400_000,
    "U": 5_300_000, "V": 6_200_000, "W": 7_000_000, "X": 7_900_000,
}


@dataclass(frozen=True)
class Tile:
    """A Sentinel-2 tile: its UTM CRS and upper-left corner (the MGRS square's north-west corner)."""

    tile_id: str
    epsg: int
    ulx: float
    uly: float

    @property
    def crs(self) -> CRS:
        return CRS.from_epsg(self.epsg)

    def footprint_lonlat(self, width_m: float = TILE_SIZE_M, height_m: float = TILE_SIZE_M,
                         ) -> list[tuple[float, float]]:
        """Corners (lon, lat) of the area ``width_m`` x ``height_m`` from the upper-left corner,
        clockwise from the north-west, closed."""
        to_lonlat = Transformer.from_crs(self.crs, "EPSG:4326", always_xy=True)
        corners = [(self.ulx, self.uly), (self.ulx + width_m, self.uly),
                   (self.ulx + width_m, self.uly - height_m), (self.ulx, self.uly - height_m)]
        ring = [to_lonlat.transform(x, y) for x, y in corners]
        return [*ring, ring[0]]


def tile(tile_id: str) -> Tile:
    """Geometry of a northern-hemisphere Sentinel-2 tile such as ``34SGH`` or ``T31TCJ``."""
    tile_id = tile_id.upper().removeprefix("T")
    match = re.fullmatch(r"(\d{2})([C-X])([A-Z])([A-V])", tile_id)
    if not match or match.group(2) not in _BAND_LETTERS:
        raise ValueError(f"{tile_id!r} is not an MGRS tile id like 34SGH")
    zone, lat_band, column, row = int(match.group(1)), match.group(2), match.group(3), match.group(4)
    if lat_band not in _BAND_MIN_NORTHING:
        raise ValueError(f"tile {tile_id}: only northern-hemisphere tiles (bands N..X) are supported")
    column_set = _COLUMN_SETS[(zone - 1) % 3]
    if column not in column_set or row not in _ROW_LETTERS:
        raise ValueError(f"tile {tile_id}: letters {column}{row} do not exist in UTM zone {zone}")
    easting = (column_set.index(column) + 1) * 100_000
    row_offset = 0 if zone % 2 else 5  # even zones start their row letters at F
    northing = ((_ROW_LETTERS.index(row) - row_offset) % 20) * 100_000
    while northing < _BAND_MIN_NORTHING[lat_band]:
        northing += 2_000_000
    return Tile(tile_id, 32600 + zone, float(easting), float(northing + 100_000))
