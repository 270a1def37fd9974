"""Sentinel-2 MSI facts shared by the product writer, the product reader and the models.

Bands and their ground resolutions, scene classes and the SAFE product naming convention (the tiling
grid's geometry is ``core.tiling_grid``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime


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

#: MGRS tile id: UTM zone, latitude band, 100 km column and row letters (never I or O). ASCII only: ``\d``
#: would take other scripts' digits (``٣٤SGH``) and ``upper()`` turns some letters into ASCII ones (``ſ``).
_TILE_ID = r"[0-9]{2}[C-HJ-NP-X][A-HJ-NP-Z][A-HJ-NP-V]"


def is_tile_id(text: str) -> bool:
    """Whether ``text`` names an MGRS tile as people write it: ``34SGH``, ``T34SGH``, any case."""
    return text.isascii() and re.fullmatch("T?" + _TILE_ID, text.upper()) is not None


_PRODUCT_NAME = re.compile(
    r"^(?P<mission>S2[ABCD])_MSI(?P<level>L1C|L2A)_(?P<sensing>\d{8}T\d{6})_N(?P<baseline>\d{4})_"
    r"R(?P<orbit>\d{3})_T(?P<tile>" + _TILE_ID + r")_(?P<discriminator>\d{8}T\d{6})(?:\.SAFE)?(?:\.zip)?$",
    re.ASCII,  # \d: 0-9 only (strptime would read other scripts' digits as a different name)
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
